//! Corpus families about layers 2 and 3: VLAN tags, IPv4 options, IPv6
//! extension headers, broadcast/multicast and foreign destinations, martian
//! sources, broken IP headers (fragments: `corpus_frag`).
use std::net::{IpAddr, Ipv6Addr};

use crate::packet::{Csum, Ext, Icmp, Packet, Tcp, L4, SYN};

use crate::{
    corpus::{echo, fam, fill, link_local_peer, tcp, udp, Gen},
    corpus_l4::{tcp_port, udp_port},
};

/// What a probe of these families asks for.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Syn(u16),
    Udp(u16),
    Echo,
}

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::Syn(p) => format!("tcp S -> {}", tcp_port(p)),
            Kind::Udp(p) => format!("udp -> {}", udp_port(p)),
            Kind::Echo => "echo request".to_string(),
        }
    }

    /// The L4 of the probe; `len`: payload bytes.
    pub fn l4(self, v6: bool, port: u16, len: usize) -> L4 {
        match self {
            Kind::Syn(p) => {
                let mut l = tcp(port, p, SYN);
                if let L4::Tcp(Tcp { payload, .. }) = &mut l {
                    *payload = fill(len, port);
                }
                l
            }
            Kind::Udp(p) => udp(port, p, len),
            Kind::Echo => {
                let mut l = echo(v6, port);
                if let L4::Icmp(Icmp { body, .. }) = &mut l {
                    *body = fill(len, port);
                }
                l
            }
        }
    }
}

const BASIC: [Kind; 5] = [
    Kind::Syn(22),
    Kind::Syn(8080),
    Kind::Udp(80),
    Kind::Udp(53),
    Kind::Echo,
];

pub fn add(g: &mut Gen) {
    for v6 in [false, true] {
        vlans(g, v6);
        destinations(g, v6);
        sources(g, v6);
        headers(g, v6);
    }
    v4_options(g);
    v6_extensions(g);
}

/// A probe of `kind` from a fresh pool address, 16 payload bytes.
fn probe(g: &mut Gen, v6: bool, kind: Kind) -> Packet {
    let (src, port) = g.src(v6);
    g.to_server(src, kind.l4(v6, port, 16))
}

fn vlans(g: &mut Gen, v6: bool) {
    let tags: [(&str, Vec<(u16, u16)>); 6] = [
        ("priority tag (VLAN 0)", vec![(0x8100, 0)]),
        ("VLAN 100", vec![(0x8100, 100)]),
        ("VLAN 100 priority 5", vec![(0x8100, 0xa064)]),
        ("802.1ad tag 100", vec![(0x88a8, 100)]),
        ("QinQ 100/200", vec![(0x88a8, 100), (0x8100, 200)]),
        (
            "three tags",
            vec![(0x88a8, 100), (0x8100, 200), (0x8100, 300)],
        ),
    ];
    for (what, t) in tags {
        for kind in BASIC {
            let mut p = probe(g, v6, kind);
            p.vlans = t.clone();
            // Only the priority tag reaches the stack (no VLAN interfaces).
            let tag = what.starts_with("priority").then_some("vlan0");
            g.push_pkt(format!("{} {} in {what}", fam(v6), kind.name()), tag, &p);
        }
    }
}

/// The server's link-local address (EUI-64 from its MAC, as the kernel makes it).
fn server_link_local(mac: [u8; 6]) -> IpAddr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
    .into()
}

fn destinations(g: &mut Gen, v6: bool) {
    let srv_mac = g.env.srv_mac;
    let bcast = [0xff; 6];
    let other_mac = [0x02, 0x55, 0x55, 0x55, 0x55, 0x55];
    let ip = |s: &str| -> IpAddr { s.parse().expect("addr") };
    let srv = crate::corpus::server(v6);
    let list: Vec<(&str, [u8; 6], IpAddr, Option<&'static str>)> = if v6 {
        vec![
            ("broadcast MAC", bcast, srv, None),
            ("another host's MAC", other_mac, srv, Some("l2-dst")),
            (
                "all-nodes ff02::1",
                [0x33, 0x33, 0, 0, 0, 1],
                ip("ff02::1"),
                None,
            ),
            (
                "all-nodes ff02::1 on the server's MAC",
                srv_mac,
                ip("ff02::1"),
                None,
            ),
            (
                "ff05::2 (multicast)",
                [0x33, 0x33, 0, 0, 0, 2],
                ip("ff05::2"),
                None,
            ),
            (
                "another host's address 2001:db8::77",
                srv_mac,
                ip("2001:db8::77"),
                Some("addresses"),
            ),
            (
                "an off-link address 2001:db8:1::9",
                srv_mac,
                ip("2001:db8:1::9"),
                Some("addresses"),
            ),
            (
                "subnet-router anycast 2001:db8::",
                srv_mac,
                ip("2001:db8::"),
                Some("addresses"),
            ),
            (
                "the server's link-local address",
                srv_mac,
                server_link_local(srv_mac),
                None,
            ),
        ]
    } else {
        vec![
            ("broadcast MAC", bcast, srv, None),
            ("another host's MAC", other_mac, srv, Some("l2-dst")),
            ("multicast MAC", [1, 0, 0x5e, 0, 0, 1], srv, None),
            (
                "subnet broadcast on the broadcast MAC",
                bcast,
                ip("192.0.2.255"),
                None,
            ),
            (
                "subnet broadcast on the server's MAC",
                srv_mac,
                ip("192.0.2.255"),
                Some("addresses"),
            ),
            (
                "network address 192.0.2.0",
                srv_mac,
                ip("192.0.2.0"),
                Some("addresses"),
            ),
            ("limited broadcast", bcast, ip("255.255.255.255"), None),
            (
                "limited broadcast on the server's MAC",
                srv_mac,
                ip("255.255.255.255"),
                None,
            ),
            (
                "224.0.0.1 on its MAC",
                [1, 0, 0x5e, 0, 0, 1],
                ip("224.0.0.1"),
                None,
            ),
            (
                "224.0.0.1 on the server's MAC",
                srv_mac,
                ip("224.0.0.1"),
                None,
            ),
            (
                "239.1.2.3 on its MAC",
                [1, 0, 0x5e, 1, 2, 3],
                ip("239.1.2.3"),
                None,
            ),
            (
                "another host's address 192.0.2.77",
                srv_mac,
                ip("192.0.2.77"),
                Some("addresses"),
            ),
            (
                "an off-link address 198.51.100.9",
                srv_mac,
                ip("198.51.100.9"),
                Some("addresses"),
            ),
        ]
    };
    for (what, mac, dst, tag) in list {
        for kind in BASIC {
            let mut p = probe(g, v6, kind);
            p.dst_mac = mac;
            p.dst = dst;
            g.push_pkt(format!("{} {} to {what}", fam(v6), kind.name()), tag, &p);
        }
    }
}

fn sources(g: &mut Gen, v6: bool) {
    let ip = |s: &str| -> IpAddr { s.parse().expect("addr") };
    let list: Vec<(&str, IpAddr, Option<&'static str>)> = if v6 {
        vec![
            ("from ::1", ip("::1"), None),
            ("from ::", ip("::"), None),
            ("from ff02::1", ip("ff02::1"), None),
            (
                "from ::ffff:192.0.2.2 (v4-mapped)",
                ip("::ffff:192.0.2.2"),
                None,
            ),
            (
                "from ::192.0.2.2 (v4-compatible)",
                ip("::192.0.2.2"),
                Some("no-route-back"),
            ),
            (
                "from the server's own address",
                ip("2001:db8::1"),
                Some("addresses"),
            ),
            ("from a link-local peer", link_local_peer(), None),
            (
                "from 2001:db8:1::7 (no route back)",
                ip("2001:db8:1::7"),
                Some("no-route-back"),
            ),
            (
                "from fc00::1 (no route back)",
                ip("fc00::1"),
                Some("no-route-back"),
            ),
        ]
    } else {
        vec![
            ("from 127.0.0.1", ip("127.0.0.1"), None),
            ("from 127.255.255.254", ip("127.255.255.254"), None),
            ("from 0.0.0.0", ip("0.0.0.0"), None),
            ("from 0.1.2.3", ip("0.1.2.3"), None),
            ("from 224.0.0.5", ip("224.0.0.5"), None),
            ("from 239.255.255.250", ip("239.255.255.250"), None),
            ("from 255.255.255.255", ip("255.255.255.255"), None),
            (
                "from 240.0.0.1 (class E)",
                ip("240.0.0.1"),
                Some("no-route-back"),
            ),
            (
                "from the server's own address",
                ip("192.0.2.1"),
                Some("addresses"),
            ),
            (
                "from the subnet broadcast 192.0.2.255",
                ip("192.0.2.255"),
                Some("addresses"),
            ),
            (
                "from the network address 192.0.2.0",
                ip("192.0.2.0"),
                Some("addresses"),
            ),
            (
                "from 198.51.100.7 (no route back)",
                ip("198.51.100.7"),
                Some("no-route-back"),
            ),
            (
                "from 169.254.1.1 (no route back)",
                ip("169.254.1.1"),
                Some("no-route-back"),
            ),
        ]
    };
    let dsts: Vec<(&str, IpAddr, Option<&'static str>)> = if v6 {
        vec![
            ("to ::1", ip("::1"), None),
            ("to ::", ip("::"), Some("addresses")),
            (
                "to ::ffff:192.0.2.1",
                ip("::ffff:192.0.2.1"),
                Some("addresses"),
            ),
        ]
    } else {
        vec![
            ("to 127.0.0.1", ip("127.0.0.1"), None),
            ("to 0.0.0.0", ip("0.0.0.0"), None),
        ]
    };
    for kind in [Kind::Syn(22), Kind::Syn(8080), Kind::Udp(53), Kind::Echo] {
        for (what, src, tag) in &list {
            let mut p = probe(g, v6, kind);
            p.src = *src;
            g.push_pkt(format!("{} {} {what}", fam(v6), kind.name()), *tag, &p);
        }
        for (what, dst, tag) in &dsts {
            let mut p = probe(g, v6, kind);
            p.dst = *dst;
            g.push_pkt(format!("{} {} {what}", fam(v6), kind.name()), *tag, &p);
        }
    }
}

fn headers(g: &mut Gen, v6: bool) {
    type Edit = fn(&mut Packet);
    let mut list: Vec<(&str, Edit)> = vec![
        ("TTL 0", |p| p.ttl = 0),
        ("TTL 1", |p| p.ttl = 1),
        ("ECN CE", |p| p.tos = 3),
        ("DSCP EF", |p| p.tos = 0xb8),
        ("30 bytes of Ethernet padding", |p| p.trailer = vec![0; 30]),
        ("IP version 5", |p| p.version = Some(5)),
    ];
    if !v6 {
        list.push(("bad IPv4 header checksum", |p| p.ip_csum = Csum::Bad));
        list.push(("DF set", |p| p.df = true));
    }
    for kind in [Kind::Syn(80), Kind::Syn(8080), Kind::Udp(53)] {
        for (what, edit) in &list {
            let mut p = probe(g, v6, kind);
            edit(&mut p);
            g.push_pkt(format!("{} {} with {what}", fam(v6), kind.name()), None, &p);
        }
        // Length fields that disagree with the frame.
        let p = probe(g, v6, kind);
        let f = p.frames().remove(0);
        let mut cut = f.clone();
        cut.truncate(f.len() - 6);
        g.push(
            format!(
                "{} {} cut 6 bytes short of its IP length",
                fam(v6),
                kind.name()
            ),
            None,
            vec![cut],
        );
        let p = probe(g, v6, kind);
        let mut f = p.frames().remove(0);
        if v6 {
            // Payload length 0 without a jumbo option.
            f[18] = 0;
            f[19] = 0;
        } else {
            // IHL 4: shorter than the fixed header.
            f[14] = 0x44;
        }
        g.push(
            format!("{} {} with a broken IP length field", fam(v6), kind.name()),
            None,
            vec![f],
        );
    }
}

fn v4_options(g: &mut Gen) {
    let srv = [192u8, 0, 2, 1];
    let opt = |v: &[u8]| v.to_vec();
    let lsrr = |ty: u8, ptr: u8| {
        let mut v = vec![ty, 7, ptr];
        v.extend(srv);
        v.push(1);
        v
    };
    let list: Vec<(&str, Vec<u8>)> = vec![
        ("4 NOPs", opt(&[1, 1, 1, 1])),
        ("end of options", opt(&[0, 0, 0, 0])),
        ("40 bytes of NOPs", vec![1; 40]),
        ("record route", opt(&[7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
        ("timestamp", opt(&[68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ("router alert", opt(&[148, 4, 0, 0])),
        ("loose source route", lsrr(131, 4)),
        ("loose source route, finished", lsrr(131, 8)),
        ("strict source route", lsrr(137, 4)),
        (
            "security (RFC 1108)",
            opt(&[130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ),
        ("CIPSO", opt(&[134, 10, 0, 0, 0, 1, 1, 4, 0, 0, 1, 1])),
        ("stream id", opt(&[136, 4, 0, 1])),
        ("unknown option 30", opt(&[30, 4, 0, 0])),
        ("option with length 1", opt(&[7, 1, 0, 0])),
        ("option longer than the header", opt(&[7, 40, 4, 0])),
    ];
    for kind in [Kind::Syn(80), Kind::Syn(8080), Kind::Udp(53)] {
        for (what, o) in &list {
            let mut p = probe(g, false, kind);
            p.v4_opts = o.clone();
            g.push_pkt(
                format!("v4 {} with IP option {what}", kind.name()),
                Some("options"),
                &p,
            );
        }
    }
}

fn v6_extensions(g: &mut Gen) {
    let addr = [0x20u8, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let rh = |t: u8, left: u8, n: usize| {
        let mut d = vec![0u8; 4];
        for _ in 0..n {
            d.extend(addr);
        }
        Ext::routing(t, left, &d)
    };
    let ah = Ext::new(51, &[0; 22]);
    let list: Vec<(&str, Vec<Ext>)> = vec![
        ("hop-by-hop with padding", vec![Ext::hbh(&[])]),
        ("hop-by-hop router alert", vec![Ext::hbh(&[5, 2, 0, 0])]),
        (
            "hop-by-hop unknown option (skip)",
            vec![Ext::hbh(&[0x1e, 2, 0, 0])],
        ),
        (
            "hop-by-hop unknown option (discard)",
            vec![Ext::hbh(&[0x5e, 2, 0, 0])],
        ),
        (
            "hop-by-hop unknown option (discard, ICMP)",
            vec![Ext::hbh(&[0x9e, 2, 0, 0])],
        ),
        (
            "hop-by-hop unknown option (discard, ICMP if unicast)",
            vec![Ext::hbh(&[0xde, 2, 0, 0])],
        ),
        (
            "hop-by-hop jumbo option",
            vec![Ext::hbh(&[0xc2, 4, 0, 1, 0, 0])],
        ),
        ("destination options with padding", vec![Ext::dest(&[])]),
        (
            "destination options unknown option (discard)",
            vec![Ext::dest(&[0x5e, 2, 0, 0])],
        ),
        (
            "destination options unknown option (discard, ICMP)",
            vec![Ext::dest(&[0x9e, 2, 0, 0])],
        ),
        ("routing type 0, 0 segments left", vec![rh(0, 0, 1)]),
        ("routing type 0, 1 segment left", vec![rh(0, 1, 1)]),
        ("routing type 2, 1 segment left", vec![rh(2, 1, 1)]),
        ("routing type 4 (SRH), 0 segments left", vec![rh(4, 0, 1)]),
        ("routing type 253, 1 segment left", vec![rh(253, 1, 1)]),
        (
            "hop-by-hop, dest, routing, dest",
            vec![Ext::hbh(&[]), Ext::dest(&[]), rh(0, 0, 1), Ext::dest(&[])],
        ),
        (
            "destination options then hop-by-hop",
            vec![Ext::dest(&[]), Ext::hbh(&[])],
        ),
        ("two hop-by-hop headers", vec![Ext::hbh(&[]), Ext::hbh(&[])]),
        ("6 destination options headers", vec![Ext::dest(&[]); 6]),
        ("7 destination options headers", vec![Ext::dest(&[]); 7]),
        ("12 destination options headers", vec![Ext::dest(&[]); 12]),
        ("authentication header", vec![ah.clone()]),
        (
            "hop-by-hop then authentication header",
            vec![Ext::hbh(&[]), ah],
        ),
    ];
    for kind in [Kind::Syn(80), Kind::Syn(8080), Kind::Udp(53)] {
        for (what, exts) in &list {
            let mut p = probe(g, true, kind);
            p.exts = exts.clone();
            let tag = if what.contains("(discard") || what.contains("jumbo") {
                Some("options")
            } else if exts.len() > 6 {
                Some("ext-chain")
            } else {
                None
            };
            g.push_pkt(format!("v6 {} after {what}", kind.name()), tag, &p);
        }
    }
    // No next header after extension headers.
    for exts in [vec![Ext::hbh(&[])], vec![Ext::dest(&[])]] {
        let (src, id) = g.src(true);
        let mut p = g.to_server(
            src,
            L4::Summed {
                proto: 59,
                bytes: fill(16, id),
            },
        );
        p.exts = exts;
        g.push_pkt(
            "v6 no next header after an extension header".to_string(),
            None,
            &p,
        );
    }
}
