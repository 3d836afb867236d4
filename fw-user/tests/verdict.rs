//! Verdict tests: fw's programs run through BPF_PROG_TEST_RUN (no interface,
//! no traffic), checking the exact XDP action, the counter deltas per reason
//! and, for answers sent with XDP_TX, every field of the reply.
//!
//! Run as root: `cargo test --release -p fw-user --test verdict -- --test-threads=1`.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fw_common::{
    FlowKey, FlowValue, Reason, CT_F_OUTBOUND, CT_F_REPLIED, CT_F_SEEDED, CT_F_SYNACK, CT_ICMP,
    CT_STAT_ENTRIES, CT_TCP_CLOSED, CT_TCP_ESTABLISHED, CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_UDP,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
use fw_testkit::{
    check::{assert_icmp_error, assert_tcp_reset},
    packet::{checksum::fix_v4_header_checksum, malformed::malformed_frames, *},
    testrun::{flow_key, now_ns, CpuPin, Fw, XDP_DROP, XDP_PASS, XDP_TX},
};
use fw_user::{
    kernel::maps::CtTable,
    model::{
        config::Config,
        policy::{parse_prefix, Policy, PortRange, Proto, RejectWith, ECHO},
    },
};

const SEC: u64 = 1_000_000_000;

/// Runs `pkt` and expects the seed's reject: ICMP host unreachable, XDP_TX.
#[track_caller]
fn expect_host_unreach(fw: &Fw, what: &str, pkt: &Packet) {
    let f = pkt.frame();
    let out = fw.expect(what, &f, XDP_TX, Reason::Reject);
    let fam = pkt.fam();
    assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
}

#[test]
fn allowed_ports_pass_and_count_hits() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        for (i, (proto, port)) in [(Proto::Tcp, 22), (Proto::Tcp, 80), (Proto::Udp, 80)]
            .into_iter()
            .enumerate()
        {
            let sport = 40000 + i as u16;
            let pkt = match proto {
                Proto::Tcp => Packet::tcp(fam, sport, port, SYN),
                Proto::Udp => Packet::udp(fam, sport, port),
                Proto::Icmp => Packet::echo_request(fam, sport),
            };
            let hits = fw.port_hits(proto, port);
            fw.expect(
                &format!("{fam:?} {proto} {port}"),
                &pkt.frame(),
                XDP_PASS,
                Reason::Port,
            );
            assert_eq!(
                fw.port_hits(proto, port),
                hits + 1,
                "{fam:?} {proto} {port}: one port hit"
            );
        }
    }
    // Nothing else was hit.
    assert_eq!(fw.port_hits(Proto::Tcp, 23), 0);
    assert_eq!(fw.port_hits(Proto::Udp, 22), 0);
}

#[test]
fn closed_ports_get_host_unreachable() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let cases = [
            ("tcp syn 23", Packet::syn(fam, 23)),
            ("tcp syn 443", Packet::syn(fam, 443)),
            (
                "tcp ack mid-stream 443",
                Packet::tcp(fam, 40100, 443, ACK | PSH).payload(100),
            ),
            ("udp 22", Packet::udp(fam, 40101, 22)),
            ("udp 53", Packet::udp(fam, 40102, 53)),
            ("udp 81", Packet::udp(fam, 40103, 81)),
            ("tcp 80 is tcp only: udp 81", Packet::udp(fam, 40104, 81)),
            ("icmp echo request", Packet::echo_request(fam, 7)),
            (
                "other protocol (GRE)",
                Packet::to_host(
                    fam,
                    L4::Raw {
                        proto: 47,
                        bytes: vec![0; 24],
                    },
                ),
            ),
        ];
        for (what, pkt) in cases {
            expect_host_unreach(&fw, &format!("{fam:?} {what}"), &pkt);
        }
    }
    // Quotes are cut at the RFC limits; L2 padding is not quoted.
    expect_host_unreach(
        &fw,
        "v4 big udp",
        &Packet::udp(Fam::V4, 40200, 9).payload(1000),
    );
    expect_host_unreach(
        &fw,
        "v6 big udp",
        &Packet::udp(Fam::V6, 40200, 9).payload(1400),
    );
    expect_host_unreach(
        &fw,
        "v4 udp one byte over",
        &Packet::udp(Fam::V4, 40201, 9).payload(549 - 28 + 1),
    );
    expect_host_unreach(&fw, "v4 padded syn", &Packet::syn(Fam::V4, 23).trailer(6));
    expect_host_unreach(
        &fw,
        "v6 padded",
        &Packet::udp(Fam::V6, 40202, 9).payload(1).trailer(5),
    );
    expect_host_unreach(
        &fw,
        "v4 odd length",
        &Packet::udp(Fam::V4, 40203, 9).payload(33),
    );
    expect_host_unreach(
        &fw,
        "v6 odd length",
        &Packet::udp(Fam::V6, 40203, 9).payload(33),
    );
    // A TOS on the request shows in the reply like Linux does it.
    let mut f = Packet::syn(Fam::V4, 25).frame();
    f[15] = 0x10; // IPTOS_LOWDELAY
    fix_v4_header_checksum(&mut f, 14);
    let out = fw.expect("v4 with tos", &f, XDP_TX, Reason::Reject);
    assert_icmp_error(&f, &out, 3, 1);
}

#[test]
fn non_ip_passes() {
    let fw = Fw::seed();
    fw.expect(
        "arp request",
        &arp_request(PEER_MAC, PEER4, HOST4),
        XDP_PASS,
        Reason::NonIp,
    );
    fw.expect(
        "lldp",
        &other_ethertype(PEER_MAC, HOST_MAC, 0x88cc),
        XDP_PASS,
        Reason::NonIp,
    );
    fw.expect(
        "ipx",
        &other_ethertype(PEER_MAC, HOST_MAC, 0x8137),
        XDP_PASS,
        Reason::NonIp,
    );
    let mut tagged = l2(PEER_MAC, BROADCAST_MAC, &[(TPID_8021Q, 5)], 0x0806);
    tagged.extend_from_slice(&arp_request(PEER_MAC, PEER4, HOST4)[14..]);
    fw.expect("arp in a vlan", &tagged, XDP_PASS, Reason::NonIp);
}

#[test]
fn neighbor_discovery_passes() {
    let fw = Fw::seed();
    let (snm, snm_mac) = solicited_node(HOST6);
    let mut target = HOST6.octets().to_vec();
    target.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]); // source link-layer address option
    let ns = Packet::icmp(Fam::V6, 135, 0, [0; 4], target.clone())
        .to(snm)
        .l2_dst(snm_mac);
    let mut ns = ns;
    ns.ttl = 255;
    fw.expect("neighbor solicitation", &ns.frame(), XDP_PASS, Reason::Ndp);
    let dad = Packet {
        src: Ipv6Addr::UNSPECIFIED.into(),
        ..ns.clone()
    };
    fw.expect(
        "duplicate address detection (from ::)",
        &dad.frame(),
        XDP_PASS,
        Reason::Ndp,
    );
    let mut na = Packet::icmp(Fam::V6, 136, 0, [0x60, 0, 0, 0], PEER6.octets().to_vec());
    na.ttl = 255;
    fw.expect("neighbor advertisement", &na.frame(), XDP_PASS, Reason::Ndp);
    let ll: Ipv6Addr = "fe80::2".parse().unwrap();
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let mut rs = Packet::icmp(Fam::V6, 133, 0, [0; 4], vec![])
        .from(ll)
        .to(all_routers)
        .l2_dst([0x33, 0x33, 0, 0, 0, 2]);
    rs.ttl = 255;
    fw.expect("router solicitation", &rs.frame(), XDP_PASS, Reason::Ndp);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let mut ra = Packet::icmp(Fam::V6, 134, 0, [64, 0, 0x07, 0x08], vec![0; 8])
        .from(ll)
        .to(all_nodes)
        .l2_dst([0x33, 0x33, 0, 0, 0, 1]);
    ra.ttl = 255;
    fw.expect("router advertisement", &ra.frame(), XDP_PASS, Reason::Ndp);
    let mut redirect = Packet::icmp(Fam::V6, 137, 0, [0; 4], vec![0; 32]).from(ll);
    redirect.ttl = 255;
    fw.expect("redirect", &redirect.frame(), XDP_PASS, Reason::Ndp);
    let vlan_ns = ns.clone().vlan(7);
    fw.expect(
        "neighbor solicitation in a vlan",
        &vlan_ns.frame(),
        XDP_PASS,
        Reason::Ndp,
    );
}

#[test]
fn malformed_frames_are_dropped() {
    let fw = Fw::seed();
    for (what, f) in malformed_frames() {
        fw.expect(&what, &f, XDP_DROP, Reason::Malformed);
    }
}

#[test]
fn martians_are_dropped() {
    let fw = Fw::seed();
    let v4 = |s: [u8; 4], d: [u8; 4]| -> Packet {
        Packet::syn(Fam::V4, 22)
            .from(Ipv4Addr::from(s))
            .to(Ipv4Addr::from(d))
    };
    let v6 = |s: &str, d: &str| -> Packet {
        Packet::syn(Fam::V6, 22)
            .from(s.parse::<Ipv6Addr>().unwrap())
            .to(d.parse::<Ipv6Addr>().unwrap())
    };
    let host4 = HOST4.octets();
    let cases = [
        ("127.0.0.1 source", v4([127, 0, 0, 1], host4)),
        ("127.1.2.3 source", v4([127, 1, 2, 3], host4)),
        ("multicast source", v4([224, 0, 0, 1], host4)),
        ("multicast source 239/8", v4([239, 1, 2, 3], host4)),
        ("limited broadcast source", v4([255, 255, 255, 255], host4)),
        ("0.0.0.0 source to unicast", v4([0, 0, 0, 0], host4)),
        ("0.1.2.3 source", v4([0, 1, 2, 3], host4)),
        ("loopback destination", v4([192, 0, 2, 2], [127, 0, 0, 1])),
        ("::1 source", v6("::1", "2001:db8::1")),
        ("multicast source", v6("ff02::1", "2001:db8::1")),
        ("v4-mapped source", v6("::ffff:192.0.2.2", "2001:db8::1")),
        ("::1 destination", v6("2001:db8::2", "::1")),
        ("0.0.0.0 destination", v4([192, 0, 2, 2], [0, 0, 0, 0])),
        ("0.1.2.3 destination", v4([192, 0, 2, 2], [0, 1, 2, 3])),
        (":: destination", v6("2001:db8::2", "::")),
        (
            "::1 source, udp",
            Packet::udp(Fam::V6, 1, 80).from("::1".parse::<Ipv6Addr>().unwrap()),
        ),
        (
            "127/8 source, icmp",
            Packet::echo_request(Fam::V4, 1).from(Ipv4Addr::new(127, 0, 0, 1)),
        ),
        ("127/8 source in a vlan", v4([127, 0, 0, 1], host4).vlan(9)),
    ];
    for (what, pkt) in cases {
        fw.expect(what, &pkt.frame(), XDP_DROP, Reason::Martian);
    }
}

#[test]
fn broadcast_and_multicast_are_never_answered() {
    let fw = Fw::seed();
    let bcast = Ipv4Addr::BROADCAST;
    let mdns4 = Ipv4Addr::new(224, 0, 0, 251);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let mdns6: Ipv6Addr = "ff02::fb".parse().unwrap();
    let mut mld = Packet::icmp(Fam::V6, 143, 0, [0; 4], vec![0; 20])
        .from(Ipv6Addr::UNSPECIFIED)
        .to("ff02::16".parse::<Ipv6Addr>().unwrap())
        .l2_dst([0x33, 0x33, 0, 0, 0, 0x16]);
    mld.ttl = 1;
    let cases = [
        (
            "v4 udp to 255.255.255.255",
            Packet::udp(Fam::V4, 1000, 9)
                .to(bcast)
                .l2_dst(BROADCAST_MAC),
        ),
        (
            "v4 dhcp discover from 0.0.0.0",
            Packet::udp(Fam::V4, 68, 67)
                .from(Ipv4Addr::UNSPECIFIED)
                .to(bcast)
                .l2_dst(BROADCAST_MAC),
        ),
        (
            "v4 mdns",
            Packet::udp(Fam::V4, 5353, 5353)
                .to(mdns4)
                .l2_dst([1, 0, 0x5e, 0, 0, 0xfb]),
        ),
        (
            "v4 tcp syn to a multicast group",
            Packet::syn(Fam::V4, 23)
                .to(mdns4)
                .l2_dst([1, 0, 0x5e, 0, 0, 0xfb]),
        ),
        (
            "v4 unicast ip in an L2 broadcast",
            Packet::udp(Fam::V4, 1000, 9).l2_dst(BROADCAST_MAC),
        ),
        (
            "v4 subnet broadcast",
            Packet::udp(Fam::V4, 1000, 9)
                .to(Ipv4Addr::new(192, 0, 2, 255))
                .l2_dst(BROADCAST_MAC),
        ),
        (
            "v6 udp to ff02::1",
            Packet::udp(Fam::V6, 1000, 9)
                .to(all_nodes)
                .l2_dst([0x33, 0x33, 0, 0, 0, 1]),
        ),
        (
            "v6 mdns",
            Packet::udp(Fam::V6, 5353, 5353)
                .to(mdns6)
                .l2_dst([0x33, 0x33, 0, 0, 0, 0xfb]),
        ),
        (
            "v6 unicast ip in an L2 multicast",
            Packet::udp(Fam::V6, 1000, 9).l2_dst([0x33, 0x33, 0, 0, 0, 1]),
        ),
        ("v6 mld report from ::", mld),
        (
            "v6 tcp syn from ::",
            Packet::syn(Fam::V6, 23).from(Ipv6Addr::UNSPECIFIED),
        ),
        (
            "v4 vlan broadcast",
            Packet::udp(Fam::V4, 1000, 9)
                .to(bcast)
                .l2_dst(BROADCAST_MAC)
                .vlan(3),
        ),
    ];
    for (what, pkt) in cases {
        fw.expect(what, &pkt.frame(), XDP_DROP, Reason::RejectSilent);
    }
}

#[test]
fn icmp_errors_are_never_answered() {
    let fw = Fw::seed();
    // Quoting flows fw never saw: not RELATED, and an error never gets an error.
    for fam in Fam::ALL {
        let quoted = Packet::tcp(fam, 40000, 40001, ACK).outbound();
        let errs: &[(u8, u8)] = match fam {
            Fam::V4 => &[
                (3, 1),
                (3, 3),
                (3, 4),
                (4, 0),
                (5, 1),
                (11, 0),
                (12, 0),
                (1, 0),
                (9, 0),
                (10, 0),
                (42, 0),
            ],
            Fam::V6 => &[(1, 3), (1, 4), (2, 0), (3, 0), (4, 1), (100, 0), (127, 0)],
        };
        for &(ty, code) in errs {
            let pkt = Packet::icmp_error(fam, fam.router(), ty, code, [0, 0, 5, 0xdc], &quoted);
            fw.expect(
                &format!("{fam:?} icmp error {ty}/{code}, unknown flow"),
                &pkt.frame(),
                XDP_DROP,
                Reason::RejectSilent,
            );
        }
    }
    // Informational messages are rejected like any other packet.
    for (fam, ty) in [
        (Fam::V4, 13),
        (Fam::V4, 17),
        (Fam::V4, 0),
        (Fam::V6, 129),
        (Fam::V6, 200),
    ] {
        let pkt = Packet::icmp(fam, ty, 0, [0, 1, 0, 1], vec![0; 12]);
        expect_host_unreach(&fw, &format!("{fam:?} icmp informational type {ty}"), &pkt);
    }
}

#[test]
fn vlan_tags_are_followed_and_only_priority_tags_answered() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        // The first is a priority tag (VLAN 0), which the stack takes as
        // untagged: answered, tag kept. The stack drops frames of other
        // VLANs (no VLAN interface), and a second tag: never answered.
        for (i, tags) in [
            vec![(TPID_8021Q, 0)],
            vec![(TPID_8021Q, 100)],
            vec![(TPID_8021AD, 200), (TPID_8021Q, 300)],
            vec![(TPID_8021Q, 10), (TPID_8021Q, 20)],
            vec![(TPID_8021Q, 0), (TPID_8021Q, 0)],
        ]
        .into_iter()
        .enumerate()
        {
            let sport = 41000 + i as u16;
            let mut ok = Packet::tcp(fam, sport, 22, SYN);
            ok.vlans = tags.clone();
            fw.expect(
                &format!("{fam:?} {tags:?} ssh"),
                &ok.frame(),
                XDP_PASS,
                Reason::Port,
            );
            let mut bad = Packet::tcp(fam, sport, 23, SYN);
            bad.vlans = tags.clone();
            let mut bad_udp = Packet::udp(fam, sport, 53).payload(300);
            bad_udp.vlans = tags.clone();
            if i == 0 {
                expect_host_unreach(&fw, &format!("{fam:?} {tags:?} telnet"), &bad);
                expect_host_unreach(&fw, &format!("{fam:?} {tags:?} udp"), &bad_udp);
            } else {
                for (what, p) in [("telnet", &bad), ("udp", &bad_udp)] {
                    fw.expect(
                        &format!("{fam:?} {tags:?} {what}"),
                        &p.frame(),
                        XDP_DROP,
                        Reason::RejectSilent,
                    );
                }
            }
        }
    }
}

#[test]
fn ipv4_options_and_ipv6_extension_headers() {
    let fw = Fw::seed();
    // Router alert (4 bytes) and a record-route option with room for 2 hops + EOL.
    let ra = [0x94, 0x04, 0, 0];
    let rr = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (i, opts) in [
        ra.to_vec(),
        rr.to_vec(),
        [ra.to_vec(), rr.to_vec(), vec![0; 4]].concat(),
        vec![1; 40],
    ]
    .into_iter()
    .enumerate()
    {
        let sport = 42000 + i as u16;
        let ok = Packet::tcp(Fam::V4, sport, 80, SYN).v4_options(&opts);
        fw.expect(
            &format!("v4 options {opts:?} to 80"),
            &ok.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let ok = Packet::udp(Fam::V4, sport, 80).v4_options(&opts);
        fw.expect(
            &format!("v4 options {opts:?} udp 80"),
            &ok.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let bad = Packet::tcp(Fam::V4, sport, 81, SYN).v4_options(&opts);
        expect_host_unreach(&fw, &format!("v4 options {opts:?} to 81"), &bad);
        let bad = Packet::udp(Fam::V4, sport, 81)
            .v4_options(&opts)
            .payload(600);
        expect_host_unreach(&fw, &format!("v4 options {opts:?} big udp to 81"), &bad);
    }
    let chains: [&[u8]; 5] = [
        &[HOP_BY_HOP],
        &[ROUTING],
        &[DEST_OPTS],
        &[HOP_BY_HOP, ROUTING, DEST_OPTS],
        &[
            HOP_BY_HOP, DEST_OPTS, ROUTING, DEST_OPTS, DEST_OPTS, DEST_OPTS,
        ],
    ];
    for (i, chain) in chains.into_iter().enumerate() {
        let sport = 42100 + i as u16;
        let ok = Packet::tcp(Fam::V6, sport, 22, SYN).v6_exts(chain);
        fw.expect(
            &format!("v6 {chain:?} ssh"),
            &ok.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let ok = Packet::udp(Fam::V6, sport, 80).v6_exts(chain);
        fw.expect(
            &format!("v6 {chain:?} udp 80"),
            &ok.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let bad = Packet::tcp(Fam::V6, sport, 23, SYN).v6_exts(chain);
        expect_host_unreach(&fw, &format!("v6 {chain:?} telnet"), &bad);
        let bad = Packet::udp(Fam::V6, sport, 23).v6_exts(chain).payload(1300);
        expect_host_unreach(&fw, &format!("v6 {chain:?} big udp"), &bad);
        let echo = Packet::echo_request(Fam::V6, 9).v6_exts(chain);
        expect_host_unreach(&fw, &format!("v6 {chain:?} echo request"), &echo);
    }
    // An ICMPv6 error behind extension headers is still an error.
    let quoted = Packet::tcp(Fam::V6, 1, 2, ACK).outbound();
    let err =
        Packet::icmp_error(Fam::V6, ROUTER6.into(), 1, 0, [0; 4], &quoted).v6_exts(&[DEST_OPTS]);
    fw.expect(
        "v6 error behind dest opts",
        &err.frame(),
        XDP_DROP,
        Reason::RejectSilent,
    );
    // NDP behind a hop-by-hop header.
    let mut na = Packet::icmp(Fam::V6, 136, 0, [0x60, 0, 0, 0], PEER6.octets().to_vec())
        .v6_exts(&[HOP_BY_HOP]);
    na.ttl = 255;
    fw.expect("ndp behind hop-by-hop", &na.frame(), XDP_PASS, Reason::Ndp);
}

#[test]
fn fragments_follow_their_first_fragment() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let later = |id: u32, offset: u16, more: bool| {
            let mut p = Packet::to_host(
                fam,
                L4::Raw {
                    proto: IPPROTO_TCP,
                    bytes: vec![0xab; 64],
                },
            );
            p = p.frag(Frag::Later { id, offset, more });
            p
        };
        // Accepted first fragment: its followers pass under its reason.
        // (A fragment with more to come holds a multiple of 8 bytes.)
        let first = Packet::tcp(fam, 43000, 80, ACK | PSH)
            .payload(60)
            .frag(Frag::First { id: 0x1001 });
        fw.expect(
            &format!("{fam:?} first fragment to 80"),
            &first.frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} middle fragment"),
            &later(0x1001, 11, true).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} last fragment"),
            &later(0x1001, 22, false).frame(),
            XDP_PASS,
            Reason::Port,
        );
        // Rejected first fragment: answered; its followers are dropped.
        let first = Packet::tcp(fam, 43001, 81, ACK | PSH)
            .payload(60)
            .frag(Frag::First { id: 0x1002 });
        expect_host_unreach(&fw, &format!("{fam:?} first fragment to 81"), &first);
        fw.expect(
            &format!("{fam:?} fragment after a rejected one"),
            &later(0x1002, 11, false).frame(),
            XDP_DROP,
            Reason::Fragment,
        );
        // Never saw the first fragment.
        fw.expect(
            &format!("{fam:?} fragment of unknown datagram"),
            &later(0x1003, 11, true).frame(),
            XDP_DROP,
            Reason::Fragment,
        );
        // Same id, another source: another datagram.
        let other = later(0x1001, 11, true).from(fam.router());
        fw.expect(
            &format!("{fam:?} fragment id reused by another source"),
            &other.frame(),
            XDP_DROP,
            Reason::Fragment,
        );
        // Established flow: fragments follow `established`.
        let syn = Packet::tcp(fam, 43002, 22, SYN);
        fw.expect(
            &format!("{fam:?} ssh syn"),
            &syn.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let first = Packet::tcp(fam, 43002, 22, ACK)
            .payload(60)
            .frag(Frag::First { id: 0x1004 });
        fw.expect(
            &format!("{fam:?} first fragment, established"),
            &first.frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} later fragment, established"),
            &later(0x1004, 9, false).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // A martian's fragments are martians.
        let m = later(0x1001, 11, true).from(match fam {
            Fam::V4 => IpAddr::from(Ipv4Addr::LOCALHOST),
            Fam::V6 => IpAddr::from(Ipv6Addr::LOCALHOST),
        });
        fw.expect(
            &format!("{fam:?} martian fragment"),
            &m.frame(),
            XDP_DROP,
            Reason::Martian,
        );
        // A later fragment of a rejected protocol is never answered.
        let first = Packet::udp(fam, 43003, 9)
            .payload(64)
            .frag(Frag::First { id: 0x1005 });
        expect_host_unreach(&fw, &format!("{fam:?} udp first fragment"), &first);
        let mut l = later(0x1005, 9, false);
        l.l4 = L4::Raw {
            proto: IPPROTO_UDP,
            bytes: vec![1; 16],
        };
        fw.expect(
            &format!("{fam:?} udp later fragment"),
            &l.frame(),
            XDP_DROP,
            Reason::Fragment,
        );
    }
    // IPv6 atomic fragment (offset 0, no more fragments): an ordinary packet.
    let atomic = Packet::tcp(Fam::V6, 43010, 80, SYN).frag(Frag::Later {
        id: 7,
        offset: 0,
        more: false,
    });
    fw.expect(
        "v6 atomic fragment",
        &atomic.frame(),
        XDP_PASS,
        Reason::Port,
    );
}

#[test]
fn reject_kinds() {
    for (with, v4, v6) in [
        (RejectWith::HostUnreachable, (3, 1), (1, 3)),
        (RejectWith::PortUnreachable, (3, 3), (1, 4)),
        (RejectWith::AdminProhibited, (3, 13), (1, 1)),
    ] {
        let fw = Fw::load(Config {
            reject_with: with,
            ..Config::default()
        });
        for (fam, (ty, code)) in [(Fam::V4, v4), (Fam::V6, v6)] {
            for pkt in [
                Packet::syn(fam, 23),
                Packet::udp(fam, 1, 23),
                Packet::echo_request(fam, 3),
            ] {
                let f = pkt.frame();
                let out = fw.expect(
                    &format!("{} {fam:?}", with.name()),
                    &f,
                    XDP_TX,
                    Reason::Reject,
                );
                assert_icmp_error(&f, &out, ty, code);
            }
        }
    }

    let fw = Fw::load(Config {
        reject_with: RejectWith::TcpReset,
        ..Config::default()
    });
    for fam in Fam::ALL {
        let tcp_cases = [
            ("syn", Packet::syn(fam, 23)),
            ("syn with payload", Packet::syn(fam, 23).payload(10)),
            ("ack", Packet::tcp(fam, 40000, 443, ACK)),
            (
                "ack+psh with data",
                Packet::tcp(fam, 40000, 443, ACK | PSH).payload(100),
            ),
            ("fin", Packet::tcp(fam, 40000, 443, FIN).payload(3)),
            ("fin+ack", Packet::tcp(fam, 40000, 443, FIN | ACK)),
            (
                "bare segment, no flags",
                Packet::tcp(fam, 40000, 443, 0).payload(7),
            ),
            (
                "seq wraps",
                Packet::tcp(fam, 40000, 443, SYN | FIN).seq_ack(0xffff_ffff, 0),
            ),
            ("behind a priority tag", Packet::syn(fam, 23).vlan(0)),
            (
                "padded frame",
                Packet::tcp(fam, 40000, 443, PSH).payload(1).trailer(9),
            ),
        ];
        for (what, pkt) in tcp_cases {
            let f = pkt.frame();
            let out = fw.expect(
                &format!("tcp-reset {fam:?} {what}"),
                &f,
                XDP_TX,
                Reason::Reject,
            );
            assert_tcp_reset(&f, &out);
        }
        let opts = match fam {
            Fam::V4 => Packet::syn(fam, 23).v4_options(&[1, 1, 1, 0]),
            Fam::V6 => Packet::syn(fam, 23).v6_exts(&[HOP_BY_HOP, DEST_OPTS]),
        };
        let f = opts.frame();
        let out = fw.expect(
            &format!("tcp-reset {fam:?} options"),
            &f,
            XDP_TX,
            Reason::Reject,
        );
        assert_tcp_reset(&f, &out);
        // No RST for a RST.
        fw.expect(
            &format!("tcp-reset {fam:?} rst"),
            &Packet::tcp(fam, 40000, 443, RST).frame(),
            XDP_DROP,
            Reason::RejectSilent,
        );
        fw.expect(
            &format!("tcp-reset {fam:?} rst+ack"),
            &Packet::tcp(fam, 40000, 443, RST | ACK).frame(),
            XDP_DROP,
            Reason::RejectSilent,
        );
        // Not TCP: the ICMP error of the seed.
        expect_host_unreach(
            &fw,
            &format!("tcp-reset {fam:?} udp"),
            &Packet::udp(fam, 1, 23),
        );
        expect_host_unreach(
            &fw,
            &format!("tcp-reset {fam:?} echo"),
            &Packet::echo_request(fam, 1),
        );
    }

    let fw = Fw::load(Config {
        reject_with: RejectWith::Drop,
        ..Config::default()
    });
    for fam in Fam::ALL {
        for pkt in [
            Packet::syn(fam, 23),
            Packet::udp(fam, 1, 23),
            Packet::echo_request(fam, 3),
        ] {
            fw.expect(
                &format!("drop {fam:?}"),
                &pkt.frame(),
                XDP_DROP,
                Reason::RejectSilent,
            );
        }
        fw.expect(
            &format!("drop {fam:?}: allowed still passes"),
            &Packet::syn(fam, 22).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
}

#[test]
fn rejects_are_rate_limited() {
    let fw = Fw::load(Config {
        reject_rate: 5,
        reject_burst: 5,
        ..Config::default()
    });
    // The bucket is global: spread the rejects over every CPU.
    let pin = CpuPin::save();
    let cpus = pin.allowed();
    let burst = 5;
    let start = now_ns();
    for i in 0..burst + 3 {
        pin.run_on(cpus[i % cpus.len()]);
        let fam = if i % 2 == 0 { Fam::V4 } else { Fam::V6 };
        let pkt = Packet::udp(fam, 1000 + i as u16, 9);
        if i < burst {
            expect_host_unreach(&fw, &format!("reject #{i} (within the burst)"), &pkt);
        } else {
            let what = format!("reject #{i} (over the burst)");
            fw.expect(&what, &pkt.frame(), XDP_DROP, Reason::RejectRatelimited);
        }
    }
    // Accepted and silently dropped packets take no token.
    fw.expect(
        "allowed while limited",
        &Packet::syn(Fam::V4, 22).frame(),
        XDP_PASS,
        Reason::Port,
    );
    // 5 per second: one token back after 200 ms.
    let elapsed = now_ns() - start;
    assert!(
        elapsed < 150_000_000,
        "test too slow to check the refill ({elapsed} ns)"
    );
    std::thread::sleep(std::time::Duration::from_millis(250));
    pin.run_on(cpus[cpus.len() - 1]);
    expect_host_unreach(&fw, "reject after a refill", &Packet::syn(Fam::V4, 23));
    pin.run_on(cpus[0]);
    let again = Packet::syn(Fam::V4, 24).frame();
    fw.expect(
        "reject right after",
        &again,
        XDP_DROP,
        Reason::RejectRatelimited,
    );
}

#[test]
fn dry_run_passes_what_it_would_reject() {
    let fw = Fw::load(Config {
        dry_run: true,
        ..Config::default()
    });
    for fam in Fam::ALL {
        fw.expect(
            &format!("{fam:?} allowed"),
            &Packet::syn(fam, 22).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} closed tcp"),
            &Packet::syn(fam, 23).frame(),
            XDP_PASS,
            Reason::WouldReject,
        );
        fw.expect(
            &format!("{fam:?} closed udp"),
            &Packet::udp(fam, 5, 53).frame(),
            XDP_PASS,
            Reason::WouldReject,
        );
        fw.expect(
            &format!("{fam:?} echo"),
            &Packet::echo_request(fam, 5).frame(),
            XDP_PASS,
            Reason::WouldReject,
        );
    }
    fw.expect(
        "malformed is still dropped",
        &malformed_frames()[1].1,
        XDP_DROP,
        Reason::Malformed,
    );
}

#[test]
fn source_restricted_ports() {
    let mut fw = Fw::seed();
    let mut p = Policy::seed();
    p.deny(Proto::Tcp, PortRange::single(22));
    let nets = [
        parse_prefix("198.51.100.0/24").unwrap(),
        parse_prefix("2001:db8:1::/48").unwrap(),
    ];
    p.allow(Proto::Tcp, PortRange::single(22), &nets);
    fw.set_policy(p);
    let ok4 = Packet::syn(Fam::V4, 22).from(Ipv4Addr::new(198, 51, 100, 7));
    fw.expect(
        "v4 ssh from the allowed prefix",
        &ok4.frame(),
        XDP_PASS,
        Reason::Port,
    );
    expect_host_unreach(&fw, "v4 ssh from elsewhere", &Packet::syn(Fam::V4, 22));
    let ok6 = Packet::syn(Fam::V6, 22).from("2001:db8:1:2::7".parse::<Ipv6Addr>().unwrap());
    fw.expect(
        "v6 ssh from the allowed prefix",
        &ok6.frame(),
        XDP_PASS,
        Reason::Port,
    );
    expect_host_unreach(&fw, "v6 ssh from elsewhere", &Packet::syn(Fam::V6, 22));
    let near6 = Packet::syn(Fam::V6, 22).from("2001:db8:2::7".parse::<Ipv6Addr>().unwrap());
    expect_host_unreach(&fw, "v6 ssh from just outside the prefix", &near6);
    // The restriction is per port and protocol: 80 stays open to all.
    fw.expect(
        "v4 http from anywhere",
        &Packet::syn(Fam::V4, 80).frame(),
        XDP_PASS,
        Reason::Port,
    );
    let udp22 = Packet::udp(Fam::V4, 5, 22).from(Ipv4Addr::new(198, 51, 100, 7));
    expect_host_unreach(
        &fw,
        "udp 22 from the allowed prefix is still closed",
        &udp22,
    );
    assert_eq!(fw.port_hits(Proto::Tcp, 22), 2);
}

#[test]
fn ports_share_source_sets_and_switch_between_them() {
    let mut fw = Fw::seed();
    let a = parse_prefix("198.51.100.0/24").unwrap();
    let b = parse_prefix("203.0.113.0/24").unwrap();
    let range = PortRange::new(10000, 19999, "10000-19999").unwrap();
    let mut p = Policy::seed();
    p.allow(Proto::Tcp, range, &[a]);
    p.allow(Proto::Udp, PortRange::single(5353), &[a]);
    p.allow(Proto::Tcp, PortRange::single(443), &[b]);
    fw.set_policy(p.clone());
    let layout = fw.maps.source_layout().unwrap();
    assert_eq!(layout.keys, 2, "one entry per prefix of each distinct list");
    assert_eq!(layout.sets_in_use(), 2);

    // Each probe comes from its own address: a new flow every time.
    let mut n = 0u8;
    let mut from = |net: &str| {
        n += 1;
        format!("{net}.{n}").parse::<Ipv4Addr>().unwrap()
    };
    let (in_a, in_b) = ("198.51.100", "203.0.113");
    // Each case passes as `port` or is answered host-unreachable.
    let judge = |fw: &Fw, cases: &[(&str, Packet, bool)]| {
        for (what, pkt, pass) in cases {
            if *pass {
                fw.expect(what, &pkt.frame(), XDP_PASS, Reason::Port);
            } else {
                expect_host_unreach(fw, what, pkt);
            }
        }
    };
    judge(
        &fw,
        &[
            (
                "tcp 10000 from a",
                Packet::syn(Fam::V4, 10000).from(from(in_a)),
                true,
            ),
            (
                "tcp 19999 from a",
                Packet::syn(Fam::V4, 19999).from(from(in_a)),
                true,
            ),
            (
                "tcp 19999 from b",
                Packet::syn(Fam::V4, 19999).from(from(in_b)),
                false,
            ),
            (
                "udp 5353 from a",
                Packet::udp(Fam::V4, 5, 5353).from(from(in_a)),
                true,
            ),
            (
                "tcp 443 from b",
                Packet::syn(Fam::V4, 443).from(from(in_b)),
                true,
            ),
            (
                "tcp 443 from a",
                Packet::syn(Fam::V4, 443).from(from(in_a)),
                false,
            ),
        ],
    );

    // The range moves to b; 443 widens to a and b; udp 5353 keeps a.
    let mut q = Policy::seed();
    q.allow(Proto::Tcp, range, &[b]);
    q.allow(Proto::Udp, PortRange::single(5353), &[a]);
    q.allow(Proto::Tcp, PortRange::single(443), &[a, b]);
    fw.set_policy(q.clone());
    assert_eq!(
        fw.maps.policy().unwrap(),
        q,
        "the kernel holds the new policy"
    );
    let layout = fw.maps.source_layout().unwrap();
    assert_eq!(layout.keys, 4, "{{a}}, {{b}} and {{a, b}}; nothing stale");
    assert_eq!(layout.sets_in_use(), 3);
    judge(
        &fw,
        &[
            (
                "tcp 10000 from a, after",
                Packet::syn(Fam::V4, 10000).from(from(in_a)),
                false,
            ),
            (
                "tcp 10000 from b, after",
                Packet::syn(Fam::V4, 10000).from(from(in_b)),
                true,
            ),
            (
                "udp 5353 from a, after",
                Packet::udp(Fam::V4, 5, 5353).from(from(in_a)),
                true,
            ),
            (
                "tcp 443 from a, after",
                Packet::syn(Fam::V4, 443).from(from(in_a)),
                true,
            ),
            (
                "tcp 443 from b, after",
                Packet::syn(Fam::V4, 443).from(from(in_b)),
                true,
            ),
        ],
    );
    // Back to the seed: no source entry left behind.
    fw.set_policy(Policy::seed());
    assert_eq!(fw.maps.source_layout().unwrap().keys, 0);
}

#[test]
fn outbound_flows_let_their_replies_in() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        // TCP: SYN out, SYN-ACK and data back.
        fw.egress(&Packet::tcp(fam, 443, 44000, SYN).outbound().frame());
        let synack = Packet::tcp(fam, 443, 44000, SYN | ACK);
        fw.expect(
            &format!("{fam:?} syn-ack"),
            &synack.frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.egress(&Packet::tcp(fam, 443, 44000, ACK).outbound().frame());
        let data = Packet::tcp(fam, 443, 44000, ACK | PSH).payload(500);
        fw.expect(
            &format!("{fam:?} data back"),
            &data.frame(),
            XDP_PASS,
            Reason::Established,
        );
        // Another peer port, or another peer: not this flow.
        expect_host_unreach(
            &fw,
            &format!("{fam:?} syn-ack from another port"),
            &Packet::tcp(fam, 444, 44000, SYN | ACK),
        );
        let other_peer = Packet::tcp(fam, 443, 44000, SYN | ACK).from(fam.router());
        expect_host_unreach(
            &fw,
            &format!("{fam:?} syn-ack from another peer"),
            &other_peer,
        );
        // The same 4-tuple as UDP is another flow.
        expect_host_unreach(
            &fw,
            &format!("{fam:?} udp on the tcp flow's ports"),
            &Packet::udp(fam, 443, 44000),
        );

        // UDP: query out, answer back.
        fw.egress(&Packet::udp(fam, 53, 44001).outbound().frame());
        fw.expect(
            &format!("{fam:?} dns answer"),
            &Packet::udp(fam, 53, 44001).frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} second answer"),
            &Packet::udp(fam, 53, 44001).payload(200).frame(),
            XDP_PASS,
            Reason::Established,
        );

        // ICMP echo: request out, reply back (by identifier).
        fw.egress(&Packet::echo_request(fam, 0x4242).outbound().frame());
        fw.expect(
            &format!("{fam:?} echo reply"),
            &Packet::echo_reply(fam, 0x4242).frame(),
            XDP_PASS,
            Reason::Established,
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} echo reply, other id"),
            &Packet::echo_reply(fam, 0x4243),
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} echo request reusing our id"),
            &Packet::echo_request(fam, 0x4242),
        );

        // In a VLAN, the same.
        fw.egress(&Packet::udp(fam, 123, 44002).outbound().vlan(12).frame());
        fw.expect(
            &format!("{fam:?} ntp answer in a vlan"),
            &Packet::udp(fam, 123, 44002).vlan(12).frame(),
            XDP_PASS,
            Reason::Established,
        );
    }
}

#[test]
fn accepted_inbound_flows_become_established() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let hits = fw.port_hits(Proto::Tcp, 80);
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &Packet::tcp(fam, 45000, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.egress(&Packet::tcp(fam, 45000, 80, SYN | ACK).outbound().frame());
        fw.expect(
            &format!("{fam:?} ack to 80"),
            &Packet::tcp(fam, 45000, 80, ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        let get = Packet::tcp(fam, 45000, 80, ACK | PSH).payload(300);
        fw.expect(
            &format!("{fam:?} request to 80"),
            &get.frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert_eq!(
            fw.port_hits(Proto::Tcp, 80),
            hits + 1,
            "{fam:?}: only the first packet is a port hit"
        );

        fw.expect(
            &format!("{fam:?} udp to 80"),
            &Packet::udp(fam, 45001, 80).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} udp to 80 again"),
            &Packet::udp(fam, 45001, 80).frame(),
            XDP_PASS,
            Reason::Established,
        );
    }
}

#[test]
fn icmp_errors_about_known_flows_are_related() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        // Flows the host opened (egress) and one it accepted (ingress).
        let tcp_out = Packet::tcp(fam, 443, 46000, SYN).outbound();
        fw.egress(&tcp_out.frame());
        let udp_out = Packet::udp(fam, 53, 46001).outbound().payload(40);
        fw.egress(&udp_out.frame());
        let echo_out = Packet::echo_request(fam, 0x777).outbound();
        fw.egress(&echo_out.frame());
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &Packet::tcp(fam, 46002, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        let synack_out = Packet::tcp(fam, 46002, 80, SYN | ACK).outbound();

        let errs: &[(u8, u8, [u8; 4])] = match fam {
            Fam::V4 => &[
                (3, 1, [0; 4]),
                (3, 4, [0, 0, 0x05, 0xdc]),
                (11, 0, [0; 4]),
                (12, 0, [20, 0, 0, 0]),
            ],
            Fam::V6 => &[
                (1, 3, [0; 4]),
                (2, 0, [0, 0, 0x05, 0x00]),
                (3, 0, [0; 4]),
                (4, 0, [0, 0, 0, 40]),
            ],
        };
        for &(ty, code, rest) in errs {
            for (what, q) in [
                ("tcp out", &tcp_out),
                ("udp out", &udp_out),
                ("echo out", &echo_out),
                ("tcp in", &synack_out),
            ] {
                let e = Packet::icmp_error(fam, fam.router(), ty, code, rest, q);
                fw.expect(
                    &format!("{fam:?} {ty}/{code} about {what}"),
                    &e.frame(),
                    XDP_PASS,
                    Reason::Related,
                );
                // From the peer itself, too (e.g. port unreachable).
                let e = Packet::icmp_error(fam, fam.peer(), ty, code, rest, q);
                fw.expect(
                    &format!("{fam:?} {ty}/{code} from the peer about {what}"),
                    &e.frame(),
                    XDP_PASS,
                    Reason::Related,
                );
            }
            // Quoting only the first 8 bytes after the IP header is enough.
            let mut short = Packet::icmp_error(fam, fam.router(), ty, code, rest, &tcp_out);
            if let L4::Icmp(Icmp { body: payload, .. }) = &mut short.l4 {
                let ip_hdr = if fam == Fam::V4 { 20 } else { 40 };
                payload.truncate(ip_hdr + 8);
            }
            fw.expect(
                &format!("{fam:?} {ty}/{code} short quote"),
                &short.frame(),
                XDP_PASS,
                Reason::Related,
            );
            // Unknown flows: silently dropped.
            let unknown = Packet::tcp(fam, 443, 46099, SYN).outbound();
            let e = Packet::icmp_error(fam, fam.router(), ty, code, rest, &unknown);
            fw.expect(
                &format!("{fam:?} {ty}/{code} about an unknown flow"),
                &e.frame(),
                XDP_DROP,
                Reason::RejectSilent,
            );
            // A quote of the flow in the wrong direction is not this flow.
            let reversed = Packet::tcp(fam, 443, 46000, SYN);
            let e = Packet::icmp_error(fam, fam.router(), ty, code, rest, &reversed);
            fw.expect(
                &format!("{fam:?} {ty}/{code} quoting the reply direction"),
                &e.frame(),
                XDP_DROP,
                Reason::RejectSilent,
            );
        }
    }
}

#[test]
fn deny_keeps_established_flows() {
    let mut fw = Fw::seed();
    for fam in Fam::ALL {
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &Packet::tcp(fam, 47000, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.egress(&Packet::tcp(fam, 47000, 80, SYN | ACK).outbound().frame());
        fw.expect(
            &format!("{fam:?} ack"),
            &Packet::tcp(fam, 47000, 80, ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} udp to 80"),
            &Packet::udp(fam, 47001, 80).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
    let mut p = fw.cfg.policy.clone();
    p.deny(Proto::Tcp, PortRange::single(80));
    p.deny(Proto::Udp, PortRange::single(80));
    fw.set_policy(p);
    for fam in Fam::ALL {
        let data = Packet::tcp(fam, 47000, 80, ACK | PSH).payload(100);
        fw.expect(
            &format!("{fam:?} data on the established flow"),
            &data.frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} udp flow"),
            &Packet::udp(fam, 47001, 80).frame(),
            XDP_PASS,
            Reason::Established,
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} new syn to 80"),
            &Packet::tcp(fam, 47002, 80, SYN),
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} new udp to 80"),
            &Packet::udp(fam, 47003, 80),
        );
        fw.expect(
            &format!("{fam:?} 22 still open"),
            &Packet::tcp(fam, 47004, 22, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
    // And `fw allow` opens it again.
    let mut p = fw.cfg.policy.clone();
    p.allow(Proto::Tcp, PortRange::single(80), &[]);
    fw.set_policy(p);
    fw.expect(
        "v4 syn to 80 after allow",
        &Packet::tcp(Fam::V4, 47005, 80, SYN).frame(),
        XDP_PASS,
        Reason::Port,
    );
}

#[test]
fn expired_conntrack_entries_count_as_absent() {
    let fw = Fw::seed();
    let now = now_ns();
    assert!(now > 200 * SEC, "uptime too short to fake old entries");
    let value = |state: u8, age: u64| FlowValue {
        created_ns: now - age,
        last_seen_ns: now - age,
        state,
        flags: CT_F_OUTBOUND,
        _pad: [0; 2],
        host_isn: 0,
    };
    for fam in Fam::ALL {
        // SYN sent 121 s ago (timeout 120 s): the SYN-ACK is not a reply any more.
        fw.ct_insert(
            &flow_key(fam, IPPROTO_TCP, 443, 48000),
            &value(CT_TCP_SYN_SENT, 121 * SEC),
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} syn-ack after expiry"),
            &Packet::tcp(fam, 443, 48000, SYN | ACK),
        );
        // 119 s: still live.
        fw.ct_insert(
            &flow_key(fam, IPPROTO_TCP, 443, 48001),
            &value(CT_TCP_SYN_SENT, 119 * SEC),
        );
        fw.expect(
            &format!("{fam:?} syn-ack before expiry"),
            &Packet::tcp(fam, 443, 48001, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // Established: idle for a day is fine (timeout 5 days).
        fw.ct_insert(
            &flow_key(fam, IPPROTO_TCP, 443, 48002),
            &value(CT_TCP_ESTABLISHED, 150 * SEC),
        );
        fw.expect(
            &format!("{fam:?} established, idle"),
            &Packet::tcp(fam, 443, 48002, ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // UDP without a reply: 30 s.
        fw.ct_insert(
            &flow_key(fam, IPPROTO_UDP, 53, 48003),
            &value(CT_UDP, 31 * SEC),
        );
        expect_host_unreach(
            &fw,
            &format!("{fam:?} udp after 31 s"),
            &Packet::udp(fam, 53, 48003),
        );
        fw.ct_insert(
            &flow_key(fam, IPPROTO_UDP, 53, 48004),
            &value(CT_UDP, 29 * SEC),
        );
        fw.expect(
            &format!("{fam:?} udp after 29 s"),
            &Packet::udp(fam, 53, 48004).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // An expired flow is not RELATED either.
        let quoted = Packet::tcp(fam, 443, 48000, SYN).outbound();
        let e = Packet::icmp_error(fam, fam.router(), fam.unreach(), 0, [0; 4], &quoted);
        fw.expect(
            &format!("{fam:?} icmp error about an expired flow"),
            &e.frame(),
            XDP_DROP,
            Reason::RejectSilent,
        );
        // Egress revives an expired flow as a new one.
        fw.egress(&Packet::tcp(fam, 443, 48000, SYN).outbound().frame());
        fw.expect(
            &format!("{fam:?} syn-ack after a new syn"),
            &Packet::tcp(fam, 443, 48000, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
    }
    // The refreshed entry has a fresh last_seen.
    let k = flow_key(Fam::V4, IPPROTO_TCP, 443, 48000);
    let (_, v) = fw
        .ct_entries()
        .into_iter()
        .find(|(key, _)| *key == k)
        .expect("entry present");
    assert!(v.last_seen_ns >= now, "egress refreshed the entry");
}

#[test]
fn counters_add_up() {
    let fw = Fw::seed();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for fam in Fam::ALL {
        frames.push(Packet::syn(fam, 22).frame());
        frames.push(Packet::syn(fam, 22).frame()); // established now
        frames.push(Packet::syn(fam, 23).frame());
        frames.push(Packet::udp(fam, 9, 80).payload(700).frame());
        frames.push(Packet::udp(fam, 9, 81).payload(1000).frame());
        frames.push(Packet::echo_request(fam, 1).vlan(0).frame());
        frames.push(
            Packet::syn(fam, 23)
                .from(fam.router())
                .l2_dst(BROADCAST_MAC)
                .to(match fam {
                    Fam::V4 => IpAddr::from(Ipv4Addr::BROADCAST),
                    Fam::V6 => "ff02::1".parse::<IpAddr>().unwrap(),
                })
                .frame(),
        );
        let mut l = Packet::to_host(
            fam,
            L4::Raw {
                proto: IPPROTO_TCP,
                bytes: vec![0; 40],
            },
        );
        l = l.frag(Frag::Later {
            id: 99,
            offset: 3,
            more: false,
        });
        frames.push(l.frame());
    }
    frames.push(arp_request(PEER_MAC, PEER4, HOST4));
    frames.extend(malformed_frames().into_iter().map(|(_, f)| f));
    frames.push(Packet::syn(Fam::V4, 22).from(Ipv4Addr::LOCALHOST).frame());
    let before = fw.totals();
    for f in &frames {
        fw.ingress(f);
    }
    let after = fw.totals();
    let packets: u64 = after
        .iter()
        .zip(before.iter())
        .map(|(a, b)| a.packets - b.packets)
        .sum();
    let bytes: u64 = after
        .iter()
        .zip(before.iter())
        .map(|(a, b)| a.bytes - b.bytes)
        .sum();
    assert_eq!(
        packets,
        frames.len() as u64,
        "every packet is counted exactly once"
    );
    assert_eq!(
        bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>(),
        "bytes are the frame lengths"
    );
    let got = |r: Reason| after[r as usize].packets - before[r as usize].packets;
    assert_eq!(got(Reason::Port), 4);
    assert_eq!(got(Reason::Established), 2);
    assert_eq!(got(Reason::Reject), 6);
    assert_eq!(got(Reason::RejectSilent), 2);
    assert_eq!(got(Reason::Fragment), 2);
    assert_eq!(got(Reason::NonIp), 1);
    assert_eq!(got(Reason::Martian), 1);
    assert_eq!(got(Reason::Malformed), malformed_frames().len() as u64);
}

#[test]
fn bad_ipv4_header_checksum_is_never_answered() {
    let fw = Fw::seed();
    // Linux drops these in ip_rcv, before the firewall: no ICMP error.
    let mut f = Packet::syn(Fam::V4, 23).frame();
    f[14 + 10] ^= 0x5a;
    fw.expect(
        "closed port, bad header checksum",
        &f,
        XDP_DROP,
        Reason::Malformed,
    );
    let mut f = Packet::syn(Fam::V4, 23)
        .v4_options(&[1, 1, 1, 0])
        .vlan(0)
        .frame();
    f[18 + 20] = 0; // an option byte, not covered by the checksum any more
    fw.expect(
        "closed port, bad checksum over the options",
        &f,
        XDP_DROP,
        Reason::Malformed,
    );
    let mut f = Packet::syn(Fam::V4, 23).frame();
    f[14 + 10] ^= 0x5a;
    let fw_drop = Fw::load(Config {
        reject_with: RejectWith::TcpReset,
        ..Config::default()
    });
    fw_drop.expect(
        "tcp-reset, bad header checksum",
        &f,
        XDP_DROP,
        Reason::Malformed,
    );
    // Accepted ones pass: the stack drops them, as without fw.
    let mut f = Packet::syn(Fam::V4, 22).frame();
    f[14 + 10] ^= 0x5a;
    fw.expect("open port, bad header checksum", &f, XDP_PASS, Reason::Port);
}

#[test]
fn closed_tcp_flows_go_back_to_the_policy() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        // Accepted on 80, then reset by the peer: the RST belongs to the flow,
        // a new SYN on the same ports is a new connection for the policy.
        let syn = Packet::tcp(fam, 49000, 80, SYN);
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &syn.frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.egress(&Packet::tcp(fam, 49000, 80, SYN | ACK).outbound().frame());
        let ack = Packet::tcp(fam, 49000, 80, ACK).frame();
        fw.expect(&format!("{fam:?} ack"), &ack, XDP_PASS, Reason::Established);
        let rst = Packet::tcp(fam, 49000, 80, RST).frame();
        fw.expect(&format!("{fam:?} rst"), &rst, XDP_PASS, Reason::Established);
        fw.expect(
            &format!("{fam:?} syn again"),
            &syn.frame(),
            XDP_PASS,
            Reason::Port,
        );

        // Opened by the host, reset by the peer: a SYN from the peer to the
        // host's ephemeral port afterwards is no reply.
        fw.egress(&Packet::tcp(fam, 443, 49001, SYN).outbound().frame());
        let rst = Packet::tcp(fam, 443, 49001, RST | ACK).frame();
        fw.expect(
            &format!("{fam:?} rst+ack"),
            &rst,
            XDP_PASS,
            Reason::Established,
        );
        let syn = Packet::tcp(fam, 443, 49001, SYN);
        expect_host_unreach(&fw, &format!("{fam:?} syn to the closed flow"), &syn);

        // FIN: the last packets of a closing flow still pass.
        fw.egress(&Packet::tcp(fam, 443, 49002, SYN).outbound().frame());
        for (what, flags) in [
            ("syn-ack", SYN | ACK),
            ("fin", FIN | ACK),
            ("last ack", ACK),
        ] {
            let f = Packet::tcp(fam, 443, 49002, flags).frame();
            fw.expect(
                &format!("{fam:?} {what}"),
                &f,
                XDP_PASS,
                Reason::Established,
            );
        }
    }
}

// Found by the conformance corpus (tests/conformance.rs): each differed from
// the seed iptables ruleset.

/// Changes a frame, given its L4 offset.
type EditAt = fn(&mut Vec<u8>, usize);

#[test]
fn broken_tcp_headers_are_judged_by_their_ports() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let (l3, len_at) = if fam == Fam::V4 { (14, 16) } else { (14, 18) };
        let l4 = l3 + if fam == Fam::V4 { 20 } else { 40 };
        // nftables' tcp dport reads the ports whatever follows; only
        // conntrack calls these invalid.
        let broken: [(&str, EditAt); 4] = [
            ("data offset beyond the segment", |f, l4| f[l4 + 12] = 0xf0),
            ("data offset 4", |f, l4| f[l4 + 12] = 0x40),
            ("data offset 0", |f, l4| f[l4 + 12] = 0),
            ("cut after 10 bytes", |f, l4| f.truncate(l4 + 10)),
        ];
        for (i, (what, edit)) in broken.into_iter().enumerate() {
            for port in [22, 23] {
                let mut f = Packet::tcp(fam, 40300 + i as u16, port, SYN).frame();
                edit(&mut f, l4);
                let ip_len = (f.len() - l3 - if fam == Fam::V4 { 0 } else { 40 }) as u16;
                f[len_at..len_at + 2].copy_from_slice(&ip_len.to_be_bytes());
                if fam == Fam::V4 {
                    fix_v4_header_checksum(&mut f, l3);
                }
                let name = format!("{fam:?} {what} to {port}");
                if port == 22 {
                    fw.expect(&name, &f, XDP_PASS, Reason::Port);
                } else {
                    let out = fw.expect(&name, &f, XDP_TX, Reason::Reject);
                    assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
                }
            }
        }
        // Never part of a flow: an established flow's port does not help.
        fw.egress(&Packet::tcp(fam, 443, 40310, SYN).outbound().frame());
        let mut f = Packet::tcp(fam, 443, 40310, SYN | ACK).frame();
        f[l4 + 12] = 0x40;
        let out = fw.expect(
            &format!("{fam:?} data offset 4 on a flow"),
            &f,
            XDP_TX,
            Reason::Reject,
        );
        assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
    }
}

#[test]
fn icmp_of_the_other_family_is_just_a_protocol_number() {
    let fw = Fw::seed();
    // An "ICMPv6 neighbor advertisement" inside IPv4, an "ICMP error" inside
    // IPv6: unknown protocols there, rejected like any.
    let mut na = Packet::to_host(
        Fam::V4,
        L4::Raw {
            proto: 58,
            bytes: vec![136, 0, 0, 0, 0, 0, 0, 0],
        },
    );
    na.ttl = 255;
    expect_host_unreach(&fw, "v4 protocol 58 type 136", &na);
    let err = Packet::to_host(
        Fam::V6,
        L4::Raw {
            proto: 1,
            bytes: vec![3, 1, 0, 0, 0, 0, 0, 0],
        },
    );
    expect_host_unreach(&fw, "v6 protocol 1 type 3", &err);
}

#[test]
fn the_authentication_header_is_the_transport_for_the_policy() {
    let fw = Fw::seed();
    // TCP to 22 behind AH: nftables (iptables-nft) sees protocol 51.
    let mut f = Packet::syn(Fam::V6, 22).frame();
    // Insert AH (24 bytes: next, len 4, reserved, SPI, sequence, 12-byte ICV).
    let mut ah = vec![6u8, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    ah.extend_from_slice(&[0; 12]);
    f.splice(54..54, ah);
    f[20] = 51;
    let plen = u16::from_be_bytes([f[18], f[19]]) + 24;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let out = fw.expect("tcp 22 behind AH", &f, XDP_TX, Reason::Reject);
    assert_icmp_error(&f, &out, 1, 3);
}

#[test]
fn a_source_equal_to_the_destination_is_martian() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        for port in [22, 23] {
            let p = Packet::syn(fam, port).from(fam.host());
            fw.expect(
                &format!("{fam:?} land to {port}"),
                &p.frame(),
                XDP_DROP,
                Reason::Martian,
            );
        }
    }
}

#[test]
fn options_the_stack_refuses_are_never_answered() {
    let fw = Fw::seed();
    let lsrr = [131u8, 7, 4, 192, 0, 2, 1, 1];
    let ssrr = [137u8, 7, 4, 192, 0, 2, 1, 1];
    let bad_len = [7u8, 1, 0, 0];
    let overrun = [7u8, 40, 4, 0];
    let cipso = [134u8, 10, 0, 0, 0, 1, 1, 4, 0, 0, 1, 1];
    for (i, (what, opts, reason)) in [
        ("loose source route", &lsrr[..], Reason::RejectSilent),
        ("strict source route", &ssrr[..], Reason::RejectSilent),
        ("option length 1", &bad_len[..], Reason::Malformed),
        ("option beyond the header", &overrun[..], Reason::Malformed),
        ("cipso", &cipso[..], Reason::Malformed),
    ]
    .into_iter()
    .enumerate()
    {
        let sport = 40100 + i as u16;
        let p = Packet::tcp(Fam::V4, sport, 23, SYN).v4_options(opts);
        fw.expect(&format!("v4 {what} to 23"), &p.frame(), XDP_DROP, reason);
        // Allowed: passed, the stack refuses them itself.
        let p = Packet::tcp(Fam::V4, sport, 22, SYN).v4_options(opts);
        fw.expect(
            &format!("v4 {what} to 22"),
            &p.frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
    // Options Linux takes: answered as usual.
    let rr = Packet::syn(Fam::V4, 23).v4_options(&[7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect_host_unreach(&fw, "v4 record route to 23", &rr);

    // IPv6 hop-by-hop: the built header holds one PadN(4) at bytes 2..8.
    let hbh = |opt: [u8; 2], port: u16| {
        let sport = 40200 + opt[0] as u16;
        let mut f = Packet::tcp(Fam::V6, sport, port, SYN)
            .v6_exts(&[HOP_BY_HOP])
            .frame();
        f[56..58].copy_from_slice(&opt);
        f
    };
    for (what, ty, reason) in [
        ("unknown option, skip", 0x1e, None),
        ("unknown option, discard", 0x5e, Some(Reason::RejectSilent)),
        (
            "unknown option, discard + ICMP",
            0x9e,
            Some(Reason::Malformed),
        ),
        (
            "unknown option, discard + ICMP unless multicast",
            0xde,
            Some(Reason::Malformed),
        ),
        ("router alert", 5, None),
    ] {
        let f = hbh([ty, 4], 23);
        match reason {
            Some(r) => {
                fw.expect(&format!("v6 {what} to 23"), &f, XDP_DROP, r);
            }
            None => {
                let out = fw.expect(&format!("v6 {what} to 23"), &f, XDP_TX, Reason::Reject);
                assert_icmp_error(&f, &out, 1, 3);
            }
        }
        fw.expect(
            &format!("v6 {what} to 22"),
            &hbh([ty, 4], 22),
            XDP_PASS,
            Reason::Port,
        );
    }
    // An option running past the header: the stack drops it silently.
    fw.expect(
        "v6 option overrun",
        &hbh([1, 9], 23),
        XDP_DROP,
        Reason::RejectSilent,
    );
}

#[test]
fn ipv6_without_a_transport_header_is_never_answered() {
    let fw = Fw::seed();
    // "No next header", directly and after a destination options header.
    for exts in [vec![], vec![DEST_OPTS]] {
        let p = Packet::to_host(
            Fam::V6,
            L4::Raw {
                proto: 59,
                bytes: vec![0; 16],
            },
        )
        .v6_exts(&exts);
        fw.expect(
            &format!("no next header after {exts:?}"),
            &p.frame(),
            XDP_DROP,
            Reason::RejectSilent,
        );
    }
}

#[test]
fn ipv6_fragments_of_odd_length_are_malformed() {
    let fw = Fw::seed();
    // More fragments follow, but 84 bytes is no multiple of 8 (RFC 8200 4.5).
    let p = Packet::tcp(Fam::V6, 43100, 80, ACK | PSH)
        .payload(64)
        .frag(Frag::First { id: 0x2001 });
    fw.expect(
        "v6 84-byte first fragment",
        &p.frame(),
        XDP_DROP,
        Reason::Malformed,
    );
}

#[test]
fn invalid_tcp_flags_are_never_part_of_a_flow() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        fw.egress(&Packet::tcp(fam, 443, 47000, SYN).outbound().frame());
        // Combinations conntrack calls INVALID: judged by the policy (port
        // 47000 is closed), as under iptables.
        for (i, flags) in [SYN | FIN, SYN | RST, 0, FIN, SYN | ACK | FIN]
            .into_iter()
            .enumerate()
        {
            expect_host_unreach(
                &fw,
                &format!("{fam:?} flags {flags:#x} on the flow"),
                &Packet::tcp(fam, 443, 47000, flags).seq_ack(i as u32, 0),
            );
        }
        fw.expect(
            &format!("{fam:?} syn-ack still belongs to it"),
            &Packet::tcp(fam, 443, 47000, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // On an open port an invalid packet passes, but opens no flow.
        fw.expect(
            &format!("{fam:?} syn+fin to 22"),
            &Packet::tcp(fam, 47001, 22, SYN | FIN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        assert!(
            !fw.ct_entries()
                .iter()
                .any(|(k, _)| k.sport == 47001 && k.dport == 22),
            "{fam:?}: no flow for an invalid packet"
        );
    }
}

#[test]
fn every_icmp_error_type_can_be_related() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let out = Packet::udp(fam, 53, 47100).outbound().payload(20);
        fw.egress(&out.frame());
        // Source quench and redirect (v4), an unassigned error type (v6).
        let types: &[u8] = match fam {
            Fam::V4 => &[4, 5],
            Fam::V6 => &[0, 5, 100, 127],
        };
        for &ty in types {
            let e = Packet::icmp_error(fam, fam.router(), ty, 0, [0; 4], &out);
            fw.expect(
                &format!("{fam:?} type {ty} about a known flow"),
                &e.frame(),
                XDP_PASS,
                Reason::Related,
            );
        }
    }
}

#[test]
fn tcp_transitions_netfilter_calls_invalid_go_to_the_policy() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        // The host's SYN is out; a FIN before the SYN-ACK is invalid.
        fw.egress(&Packet::tcp(fam, 443, 47200, SYN).outbound().frame());
        expect_host_unreach(
            &fw,
            &format!("{fam:?} fin+ack before the syn-ack"),
            &Packet::tcp(fam, 443, 47200, FIN | ACK),
        );
        // So is a bare ACK moving it on: the SYN-ACK still passes after one.
        fw.expect(
            &format!("{fam:?} bare ack"),
            &Packet::tcp(fam, 443, 47200, ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} syn-ack"),
            &Packet::tcp(fam, 443, 47200, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // Established: a new SYN from the peer is invalid.
        fw.egress(&Packet::tcp(fam, 443, 47200, ACK).outbound().frame());
        expect_host_unreach(
            &fw,
            &format!("{fam:?} syn on the established flow"),
            &Packet::tcp(fam, 443, 47200, SYN).seq_ack(7, 0),
        );
        // A flow the peer opened: a SYN-ACK from the peer is out of place
        // (on an open port the policy still passes it, as a new packet).
        fw.expect(
            &format!("{fam:?} syn to 22"),
            &Packet::tcp(fam, 47201, 22, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} syn-ack from the peer"),
            &Packet::tcp(fam, 47201, 22, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
}

#[test]
fn a_rst_as_the_first_answer_ends_the_flow() {
    let fw = Fw::seed();
    // In either table.
    let has = |fw: &Fw, fam: Fam, peer_port: u16, host_port: u16| {
        let mut all = fw.ct_entries();
        all.extend(fw.ct_unconfirmed());
        all.iter().any(|(k, _)| {
            k.proto == IPPROTO_TCP
                && k.family == if fam == Fam::V4 { 4 } else { 6 }
                && k.sport == peer_port
                && k.dport == host_port
        })
    };
    for fam in Fam::ALL {
        // The host connects out, the peer refuses: the RST passes, the flow
        // is gone, a late SYN-ACK is judged by the policy.
        fw.egress(&Packet::tcp(fam, 443, 47300, SYN).outbound().frame());
        fw.expect(
            &format!("{fam:?} rst+ack"),
            &Packet::tcp(fam, 443, 47300, RST | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert!(!has(&fw, fam, 443, 47300), "{fam:?}: outbound flow removed");
        expect_host_unreach(
            &fw,
            &format!("{fam:?} syn-ack after the rst"),
            &Packet::tcp(fam, 443, 47300, SYN | ACK),
        );
        // The peer connects in, the host refuses (nothing listens).
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &Packet::tcp(fam, 47301, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        assert!(has(&fw, fam, 47301, 80), "{fam:?}: inbound flow recorded");
        fw.egress(&Packet::tcp(fam, 47301, 80, RST | ACK).outbound().frame());
        assert!(!has(&fw, fam, 47301, 80), "{fam:?}: inbound flow removed");
        // Once answered, a RST only closes the flow.
        fw.egress(&Packet::tcp(fam, 443, 47302, SYN).outbound().frame());
        fw.expect(
            &format!("{fam:?} syn-ack"),
            &Packet::tcp(fam, 443, 47302, SYN | ACK).frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.expect(
            &format!("{fam:?} rst after the syn-ack"),
            &Packet::tcp(fam, 443, 47302, RST).frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert!(
            has(&fw, fam, 443, 47302),
            "{fam:?}: answered flow kept (closed)"
        );
    }
}

#[test]
fn a_cut_icmpv4_header_is_judged_by_its_type() {
    let fw = Fw::seed();
    // Four bytes of an echo request: REJECT answers it; of an error: not.
    for (ty, answered) in [(8u8, true), (3, false)] {
        let mut f = Packet::echo_request(Fam::V4, 9).frame();
        f.truncate(14 + 20 + 4);
        f[34] = ty;
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        fix_v4_header_checksum(&mut f, 14);
        if answered {
            let out = fw.expect("cut echo request", &f, XDP_TX, Reason::Reject);
            assert_icmp_error(&f, &out, 3, 1);
        } else {
            fw.expect("cut error", &f, XDP_DROP, Reason::RejectSilent);
        }
    }
}

/// A DHCPv4 server's reply (UDP 67 -> 68, about the size of a real one)
/// from the router to `dst`.
fn dhcp_reply(dst: Ipv4Addr) -> Packet {
    Packet::udp(Fam::V4, 67, 68)
        .from(ROUTER4)
        .to(dst)
        .payload(300)
}

#[test]
fn dhcp_client_replies_pass() {
    let fw = Fw::seed();
    // Behind the reference the client's packet socket gets each of these
    // (it reads before netfilter); fw passes them to the stack.
    let not_yet_mine = Ipv4Addr::new(198, 51, 100, 50);
    let ra = [0x94, 0x04, 0, 0];
    let cases = [
        (
            "broadcast offer",
            dhcp_reply(Ipv4Addr::BROADCAST).l2_dst(BROADCAST_MAC),
        ),
        (
            "unicast offer to an address the host lacks",
            dhcp_reply(not_yet_mine),
        ),
        ("unicast ack to the host's address", dhcp_reply(HOST4)),
        (
            "unicast address in an L2 broadcast",
            dhcp_reply(not_yet_mine).l2_dst(BROADCAST_MAC),
        ),
        (
            "with IPv4 options",
            dhcp_reply(not_yet_mine).v4_options(&ra),
        ),
        ("priority-tagged", dhcp_reply(not_yet_mine).vlan(0)),
        ("in VLAN 100", dhcp_reply(not_yet_mine).vlan(100)),
        (
            "QinQ broadcast",
            dhcp_reply(Ipv4Addr::BROADCAST)
                .l2_dst(BROADCAST_MAC)
                .qinq(200, 300),
        ),
    ];
    for (what, pkt) in cases {
        fw.expect(what, &pkt.frame(), XDP_PASS, Reason::Dhcp);
    }
    // A fragmented reply: the followers pass under the first's reason.
    let first = dhcp_reply(Ipv4Addr::BROADCAST)
        .l2_dst(BROADCAST_MAC)
        .payload(600)
        .frag(Frag::First { id: 0x6768 });
    fw.expect("first fragment", &first.frame(), XDP_PASS, Reason::Dhcp);
    let mut later = Packet::to_host(
        Fam::V4,
        L4::Raw {
            proto: IPPROTO_UDP,
            bytes: vec![0xab; 64],
        },
    )
    .from(ROUTER4)
    .to(Ipv4Addr::BROADCAST)
    .l2_dst(BROADCAST_MAC);
    later = later.frag(Frag::Later {
        id: 0x6768,
        offset: 76,
        more: false,
    });
    fw.expect("later fragment", &later.frame(), XDP_PASS, Reason::Dhcp);
}

#[test]
fn only_dhcp_client_replies_are_excepted() {
    let fw = Fw::seed();
    let bcast = Ipv4Addr::BROADCAST;
    let unicast = [
        ("udp 67 -> 69", Packet::udp(Fam::V4, 67, 69).from(ROUTER4)),
        ("udp 68 -> 68", Packet::udp(Fam::V4, 68, 68).from(ROUTER4)),
        (
            "udp 68 -> 67 (the host is no server)",
            Packet::udp(Fam::V4, 68, 67),
        ),
        ("udp 66 -> 68", Packet::udp(Fam::V4, 66, 68).from(ROUTER4)),
        (
            "tcp 67 -> 68",
            Packet::tcp(Fam::V4, 67, 68, SYN).from(ROUTER4),
        ),
        ("v6 udp 67 -> 68", Packet::udp(Fam::V6, 67, 68)),
        // DHCPv6 clients read through UDP sockets, which the reference
        // filters: its server's answer is rejected there too.
        ("v6 udp 547 -> 546", Packet::udp(Fam::V6, 547, 546)),
    ];
    for (what, pkt) in unicast {
        expect_host_unreach(&fw, what, &pkt.payload(300));
    }
    let silent = [
        (
            "broadcast udp 67 -> 69",
            Packet::udp(Fam::V4, 67, 69).from(ROUTER4).to(bcast),
        ),
        (
            "broadcast udp 68 -> 68",
            Packet::udp(Fam::V4, 68, 68).from(ROUTER4).to(bcast),
        ),
    ];
    for (what, pkt) in silent {
        fw.expect(
            what,
            &pkt.l2_dst(BROADCAST_MAC).frame(),
            XDP_DROP,
            Reason::RejectSilent,
        );
    }
}

#[test]
fn dhcp_client_replies_keep_the_reasons_of_earlier_rules() {
    let mut fw = Fw::seed();
    // A renewal: the client's UDP socket asks the server directly, so the
    // answer is ESTABLISHED, as under the reference.
    fw.egress(&dhcp_reply(HOST4).outbound().frame());
    fw.expect(
        "renewal answer",
        &dhcp_reply(HOST4).frame(),
        XDP_PASS,
        Reason::Established,
    );
    // The broadcast of a packet-socket client creates no flow the answer
    // could match: still `dhcp`.
    let discover = Packet::udp(Fam::V4, 68, 67)
        .from(Ipv4Addr::UNSPECIFIED)
        .to(Ipv4Addr::BROADCAST)
        .l2_dst(BROADCAST_MAC);
    fw.egress(&discover.payload(300).frame());
    fw.expect(
        "offer after a discover",
        &dhcp_reply(Ipv4Addr::BROADCAST)
            .l2_dst(BROADCAST_MAC)
            .frame(),
        XDP_PASS,
        Reason::Dhcp,
    );
    // An open udp 68 counts as a port hit.
    let mut policy = Policy::seed();
    policy.allow(Proto::Udp, PortRange::single(68), &[]);
    fw.set_policy(policy);
    let other = Packet::udp(Fam::V4, 67, 68).from(PEER4).payload(300);
    fw.expect("open udp 68", &other.frame(), XDP_PASS, Reason::Port);
    assert_eq!(fw.port_hits(Proto::Udp, 68), 1);
}

#[test]
fn dhcp_client_replies_are_rejected_when_turned_off() {
    let fw = Fw::load(Config {
        dhcp_client: false,
        ..Config::default()
    });
    expect_host_unreach(&fw, "unicast ack", &dhcp_reply(HOST4));
    fw.expect(
        "broadcast offer",
        &dhcp_reply(Ipv4Addr::BROADCAST)
            .l2_dst(BROADCAST_MAC)
            .frame(),
        XDP_DROP,
        Reason::RejectSilent,
    );
    // Dry run: what would be rejected passes as `would_reject`; the
    // exception, when on, still counts as `dhcp`.
    for (on, reason) in [(false, Reason::WouldReject), (true, Reason::Dhcp)] {
        let dry = Fw::load(Config {
            dhcp_client: on,
            dry_run: true,
            ..Config::default()
        });
        dry.expect(
            &format!("dry run, dhcp client {on}"),
            &dhcp_reply(HOST4).frame(),
            XDP_PASS,
            reason,
        );
    }
}

/// CT_STATS deltas, by name, of the counters that moved.
fn ct_delta(before: &[u64], after: &[u64]) -> Vec<(&'static str, u64)> {
    const NAMES: [&str; CT_STAT_ENTRIES as usize] = [
        "created",
        "deleted",
        "seeded",
        "u_created",
        "u_deleted",
        "promoted",
        "flushed",
        "u_flushed",
    ];
    NAMES
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a != b)
        .map(|(n, (b, a))| (*n, a - b))
        .collect()
}

#[test]
fn new_inbound_flows_stay_unconfirmed_until_the_peer_proves_it_sees_the_host() {
    const ISN: u32 = 0x7000_0000;
    let fw = Fw::seed();
    let get = |t, k: &FlowKey| fw.ct_get(t, k);
    for fam in Fam::ALL {
        // A SYN to an open port: recorded, unconfirmed.
        let key = flow_key(fam, IPPROTO_TCP, 45100, 80);
        let s0 = fw.ct_stats();
        fw.expect(
            &format!("{fam:?} syn to 80"),
            &Packet::tcp(fam, 45100, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        assert!(
            get(CtTable::Confirmed, &key).is_none(),
            "{fam:?}: a SYN confirms nothing"
        );
        let v = get(CtTable::Unconfirmed, &key).expect("the SYN's entry");
        assert_eq!((v.state, v.flags), (CT_TCP_SYN_RECV, 0), "{fam:?}");
        // The host's SYN-ACK answers any SYN, a spoofed one too.
        let synack = Packet::tcp(fam, 45100, 80, SYN | ACK).seq_ack(ISN, 0x1000_0001);
        fw.egress(&synack.outbound().frame());
        assert!(
            get(CtTable::Confirmed, &key).is_none(),
            "{fam:?}: a SYN-ACK confirms nothing"
        );
        let v = get(CtTable::Unconfirmed, &key).expect("entry after the SYN-ACK");
        assert_eq!(
            (v.flags, v.host_isn),
            (CT_F_REPLIED | CT_F_SYNACK, ISN),
            "{fam:?}: the SYN-ACK's sequence number is kept"
        );
        // A blind ACK (not of the SYN-ACK): part of the flow (fw tracks no
        // sequence numbers), but no proof.
        let blind = Packet::tcp(fam, 45100, 80, ACK).seq_ack(0x1000_0001, ISN ^ 0x5555);
        fw.expect(
            &format!("{fam:?} blind ack"),
            &blind.frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert!(
            get(CtTable::Confirmed, &key).is_none(),
            "{fam:?}: a blind ACK confirms nothing"
        );
        // The ACK of the SYN-ACK: confirmed.
        let ack = Packet::tcp(fam, 45100, 80, ACK).seq_ack(0x1000_0001, ISN.wrapping_add(1));
        fw.expect(
            &format!("{fam:?} ack"),
            &ack.frame(),
            XDP_PASS,
            Reason::Established,
        );
        let v = get(CtTable::Confirmed, &key).expect("confirmed by the ACK");
        assert_eq!(v.state, CT_TCP_ESTABLISHED, "{fam:?}");
        assert!(
            get(CtTable::Unconfirmed, &key).is_none(),
            "{fam:?}: moved, not copied"
        );
        let data = Packet::tcp(fam, 45100, 80, ACK | PSH)
            .seq_ack(0x1000_0001, ISN.wrapping_add(1))
            .payload(100);
        fw.expect(
            &format!("{fam:?} request"),
            &data.frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert_eq!(
            ct_delta(&s0, &fw.ct_stats()),
            [
                ("created", 1),
                ("u_created", 1),
                ("u_deleted", 1),
                ("promoted", 1)
            ],
            "{fam:?}: one flow, made unconfirmed and promoted"
        );

        // Data from the host confirms too (only a connected socket sends
        // it): the peer's ACK may have been lost, or a cookie answered it.
        let key = flow_key(fam, IPPROTO_TCP, 45101, 80);
        fw.expect(
            &format!("{fam:?} second syn"),
            &Packet::tcp(fam, 45101, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.egress(&Packet::tcp(fam, 45101, 80, SYN | ACK).outbound().frame());
        // A bare ACK from the host (a half-open connection answers a
        // segment outside its window so) proves nothing.
        fw.egress(&Packet::tcp(fam, 45101, 80, ACK).outbound().frame());
        assert!(
            get(CtTable::Confirmed, &key).is_none(),
            "{fam:?}: a bare ACK confirms nothing"
        );
        fw.egress(
            &Packet::tcp(fam, 45101, 80, ACK | PSH)
                .payload(200)
                .outbound()
                .frame(),
        );
        assert!(
            get(CtTable::Confirmed, &key).is_some(),
            "{fam:?}: the host's data confirms"
        );
        assert!(get(CtTable::Unconfirmed, &key).is_none(), "{fam:?}");

        // A datagram: unconfirmed until the host answers (UDP has no
        // handshake: an answer is all there is).
        let key = flow_key(fam, IPPROTO_UDP, 45102, 80);
        fw.expect(
            &format!("{fam:?} udp to 80"),
            &Packet::udp(fam, 45102, 80).frame(),
            XDP_PASS,
            Reason::Port,
        );
        let v = get(CtTable::Unconfirmed, &key).expect("the datagram's entry");
        assert_eq!(v.state, CT_UDP, "{fam:?}");
        fw.expect(
            &format!("{fam:?} udp again"),
            &Packet::udp(fam, 45102, 80).frame(),
            XDP_PASS,
            Reason::Established,
        );
        fw.egress(&Packet::udp(fam, 45102, 80).outbound().frame());
        let v = get(CtTable::Confirmed, &key).expect("confirmed by the answer");
        assert_eq!(v.flags, CT_F_REPLIED, "{fam:?}");
        assert!(get(CtTable::Unconfirmed, &key).is_none(), "{fam:?}");

        // What the host starts is confirmed at once.
        let s0 = fw.ct_stats();
        fw.egress(&Packet::tcp(fam, 443, 45103, SYN).outbound().frame());
        fw.egress(&Packet::udp(fam, 53, 45104).outbound().frame());
        fw.egress(&Packet::echo_request(fam, 0x4510).outbound().frame());
        for (what, key) in [
            ("syn", flow_key(fam, IPPROTO_TCP, 443, 45103)),
            ("udp", flow_key(fam, IPPROTO_UDP, 53, 45104)),
        ] {
            let v = get(CtTable::Confirmed, &key).unwrap_or_else(|| panic!("{fam:?} {what}"));
            assert_eq!(v.flags, CT_F_OUTBOUND, "{fam:?} {what}");
        }
        assert_eq!(
            ct_delta(&s0, &fw.ct_stats()),
            [("created", 3)],
            "{fam:?}: three host flows, straight into the confirmed table"
        );

        // A flow fw did not know (its SYN's entry displaced): the host's
        // SYN-ACK or bare ACK make an unconfirmed entry, its data a
        // confirmed one.
        fw.egress(
            &Packet::tcp(fam, 45105, 80, SYN | ACK)
                .seq_ack(ISN, 1)
                .outbound()
                .frame(),
        );
        let key = flow_key(fam, IPPROTO_TCP, 45105, 80);
        let v = get(CtTable::Unconfirmed, &key).expect("SYN-ACK of an unknown flow");
        assert_eq!(
            (v.flags, v.host_isn),
            (CT_F_OUTBOUND | CT_F_SYNACK, ISN),
            "{fam:?}"
        );
        let ack = Packet::tcp(fam, 45105, 80, ACK).seq_ack(2, ISN.wrapping_add(1));
        fw.expect(
            &format!("{fam:?} its ack"),
            &ack.frame(),
            XDP_PASS,
            Reason::Established,
        );
        assert!(
            get(CtTable::Confirmed, &key).is_some(),
            "{fam:?}: confirmed by the ACK"
        );
        fw.egress(&Packet::tcp(fam, 45106, 80, ACK).outbound().frame());
        assert!(get(CtTable::Unconfirmed, &flow_key(fam, IPPROTO_TCP, 45106, 80)).is_some());
        fw.egress(
            &Packet::tcp(fam, 45107, 80, ACK | PSH)
                .payload(10)
                .outbound()
                .frame(),
        );
        assert!(get(CtTable::Confirmed, &flow_key(fam, IPPROTO_TCP, 45107, 80)).is_some());

        // A new SYN over a closed confirmed flow replaces it.
        let key = flow_key(fam, IPPROTO_TCP, 45108, 80);
        let now = now_ns();
        let closed = FlowValue {
            created_ns: now,
            last_seen_ns: now,
            state: CT_TCP_CLOSED,
            flags: CT_F_REPLIED,
            _pad: [0; 2],
            host_isn: 0,
        };
        fw.ct_insert(&key, &closed);
        fw.expect(
            &format!("{fam:?} syn over a closed flow"),
            &Packet::tcp(fam, 45108, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        assert!(
            get(CtTable::Confirmed, &key).is_none(),
            "{fam:?}: the closed flow is gone"
        );
        let v = get(CtTable::Unconfirmed, &key).expect("the new flow");
        assert_eq!(v.state, CT_TCP_SYN_RECV, "{fam:?}");
    }
}

#[test]
fn out_of_state_tcp_records_nothing() {
    let fw = Fw::load(Config {
        conntrack_entries: 1024,
        conntrack_unconfirmed_entries: 1024,
        ..Config::default()
    });
    // A confirmed flow and an unconfirmed one, to see that nothing evicts them.
    let fam = Fam::V4;
    fw.egress(&Packet::tcp(fam, 443, 45200, SYN).outbound().frame());
    fw.expect(
        "syn to 80",
        &Packet::tcp(fam, 45201, 80, SYN).frame(),
        XDP_PASS,
        Reason::Port,
    );
    let confirmed = fw.ct_entries();
    let unconfirmed = fw.ct_unconfirmed();
    assert_eq!((confirmed.len(), unconfirmed.len()), (1, 1));
    let s0 = fw.ct_stats();
    let before = fw.totals();
    // Spoofed ACK, data, FIN, RST and SYN-ACK segments to open ports,
    // three times the unconfirmed table's size of them.
    let kinds: [(u8, usize); 6] = [
        (ACK, 0),
        (ACK | PSH, 64),
        (FIN | ACK, 0),
        (RST, 0),
        (RST | ACK, 0),
        (SYN | ACK, 0),
    ];
    let n = 3 * 1024;
    for i in 0..n {
        let (flags, payload) = kinds[i % kinds.len()];
        let fam = if i % 2 == 0 { Fam::V4 } else { Fam::V6 };
        let src: IpAddr = match fam {
            Fam::V4 => Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1).into(),
            Fam::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, i as u16).into(),
        };
        let port = if i % 3 == 0 { 22 } else { 80 };
        let pkt = Packet::tcp(fam, 20000 + (i / 250) as u16, port, flags)
            .from(src)
            .payload(payload);
        let (action, _) = fw.ingress(&pkt.frame());
        assert_eq!(action, XDP_PASS, "{fam:?} {} to {port}", flag_names(flags));
    }
    let after = fw.totals();
    for r in Reason::ALL {
        let d = after[r as usize].packets - before[r as usize].packets;
        let want = if r == Reason::Port { n as u64 } else { 0 };
        assert_eq!(d, want, "{} packets", r.name());
    }
    assert_eq!(
        ct_delta(&s0, &fw.ct_stats()),
        [],
        "no entry made, none deleted"
    );
    assert_eq!(
        fw.ct_entries(),
        confirmed,
        "the confirmed table is as it was"
    );
    assert_eq!(
        fw.ct_unconfirmed(),
        unconfirmed,
        "the unconfirmed table too"
    );
    assert_eq!(fw.census(CtTable::Confirmed), (1, 0));
    assert_eq!(fw.census(CtTable::Unconfirmed), (1, 0));
}

#[test]
fn a_flood_of_new_flows_evicts_only_unconfirmed_entries() {
    const ENTRIES: u32 = 1024;
    let fw = Fw::load(Config {
        conntrack_entries: ENTRIES,
        conntrack_unconfirmed_entries: ENTRIES,
        ..Config::default()
    });
    // Confirmed flows of every kind: the host's own, inbound ones whose
    // peer completed the handshake, seeded ones (to a closed port).
    let mut keys = Vec::new();
    for i in 0..100u16 {
        let fam = if i % 2 == 0 { Fam::V4 } else { Fam::V6 };
        fw.egress(&Packet::tcp(fam, 443, 40000 + i, SYN).outbound().frame());
        keys.push(flow_key(fam, IPPROTO_TCP, 443, 40000 + i));
        let sport = 41000 + i;
        fw.ingress(&Packet::tcp(fam, sport, 80, SYN).frame());
        fw.egress(
            &Packet::tcp(fam, sport, 80, SYN | ACK)
                .seq_ack(i as u32 * 7, 1)
                .outbound()
                .frame(),
        );
        fw.ingress(
            &Packet::tcp(fam, sport, 80, ACK)
                .seq_ack(1, i as u32 * 7 + 1)
                .frame(),
        );
        keys.push(flow_key(fam, IPPROTO_TCP, sport, 80));
    }
    let now = now_ns();
    let seeded: Vec<(FlowKey, FlowValue)> = (0..50u16)
        .map(|i| {
            let v = FlowValue {
                created_ns: now,
                last_seen_ns: now,
                state: CT_TCP_ESTABLISHED,
                flags: CT_F_SEEDED | CT_F_REPLIED,
                _pad: [0; 2],
                host_isn: 0,
            };
            (flow_key(Fam::V4, IPPROTO_TCP, 42000 + i, 5432), v)
        })
        .collect();
    fw.maps.conntrack_seed(&seeded).expect("seeding");
    keys.extend(seeded.iter().map(|(k, _)| *k));
    let confirmed = fw.ct_entries();
    assert_eq!(confirmed.len(), keys.len(), "every flow confirmed");
    assert!(fw.ct_unconfirmed().is_empty(), "{:?}", fw.ct_unconfirmed());

    // Ten times the table of spoofed SYNs to port 80, each answered by the
    // host's SYN-ACK as the stack does.
    let s0 = fw.ct_stats();
    let before = fw.totals();
    let n = 10 * ENTRIES as usize;
    for i in 0..n {
        let fam = if i % 2 == 0 { Fam::V4 } else { Fam::V6 };
        let src: IpAddr = match fam {
            Fam::V4 => Ipv4Addr::new(198, 51, 100, (i % 250) as u8 + 1).into(),
            Fam::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 0, (i % 250) as u16).into(),
        };
        let sport = 10000 + (i / 250) as u16;
        let syn = Packet::tcp(fam, sport, 80, SYN).from(src);
        let (action, _) = fw.ingress(&syn.frame());
        assert_eq!(action, XDP_PASS, "flood SYN {i}");
        let synack = Packet::tcp(fam, sport, 80, SYN | ACK)
            .from(src)
            .seq_ack(i as u32, 1);
        fw.egress(&synack.outbound().frame());
    }
    let after = fw.totals();
    assert_eq!(
        after[Reason::Port as usize].packets - before[Reason::Port as usize].packets,
        n as u64,
        "every flood SYN is a new flow"
    );
    let d = ct_delta(&s0, &fw.ct_stats());
    assert_eq!(
        d,
        [("u_created", n as u64)],
        "flood SYNs make unconfirmed entries only"
    );
    let (present, evicted) = fw.census(CtTable::Unconfirmed);
    assert!(present <= ENTRIES as u64, "{present} unconfirmed entries");
    assert_eq!(
        present + evicted,
        n as u64,
        "unconfirmed entries and evictions add up"
    );
    assert!(
        evicted >= (n - ENTRIES as usize) as u64,
        "evicted {evicted}"
    );
    assert_eq!(
        fw.census(CtTable::Confirmed),
        (keys.len() as u64, 0),
        "no confirmed entry evicted"
    );
    assert_eq!(
        fw.ct_entries(),
        confirmed,
        "the confirmed entries are untouched"
    );
    // And each confirmed flow's next packet is established.
    for k in &keys {
        let fam = if k.family == 4 { Fam::V4 } else { Fam::V6 };
        let pkt = Packet::tcp(fam, k.sport, k.dport, ACK).payload(1);
        let before = fw.totals()[Reason::Established as usize].packets;
        let (action, _) = fw.ingress(&pkt.frame());
        let after = fw.totals()[Reason::Established as usize].packets;
        assert_eq!((action, after - before), (XDP_PASS, 1), "{k:?}");
    }
}

/// The policy with ICMP echo open (to `from`, or everyone).
fn with_echo(from: &[ipnet::IpNet]) -> Policy {
    let mut p = Policy::seed();
    p.allow(Proto::Icmp, PortRange::single(ECHO), from);
    p
}

#[test]
fn icmp_echo_allowed_passes_counts_and_follows_the_ping() {
    let mut fw = Fw::seed();
    for fam in Fam::ALL {
        expect_host_unreach(
            &fw,
            &format!("{fam:?} seed: echo rejected"),
            &Packet::echo_request(fam, 0x5100),
        );
    }
    assert_eq!(fw.port_hits(Proto::Icmp, ECHO), 0, "a reject is no hit");
    fw.set_policy(with_echo(&[]));
    for (i, fam) in Fam::ALL.into_iter().enumerate() {
        let id = 0x5101 + i as u16;
        let hits = fw.port_hits(Proto::Icmp, ECHO);
        let req = Packet::echo_request(fam, id).frame();
        fw.expect(&format!("{fam:?} echo"), &req, XDP_PASS, Reason::Port);
        assert_eq!(
            fw.port_hits(Proto::Icmp, ECHO),
            hits + 1,
            "{fam:?}: one new flow on icmp echo"
        );
        // The kernel's answer goes out through egress.
        fw.egress(&Packet::echo_reply(fam, id).outbound().frame());
        let proto = if fam == Fam::V4 {
            IPPROTO_ICMP
        } else {
            IPPROTO_ICMPV6
        };
        let key = flow_key(fam, proto, id, 0);
        let v = fw
            .ct_entries()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{fam:?}: the peer's ping is tracked"));
        assert_eq!(
            (v.state, v.flags & CT_F_OUTBOUND, v.flags & CT_F_REPLIED),
            (CT_ICMP, 0, CT_F_REPLIED),
            "{fam:?}: inbound echo flow, answered"
        );
        fw.expect(
            &format!("{fam:?} the same ping's next request"),
            &req,
            XDP_PASS,
            Reason::Established,
        );
        assert_eq!(
            fw.port_hits(Proto::Icmp, ECHO),
            hits + 1,
            "{fam:?}: established, no new flow"
        );
        // A reply from the peer on its own ping's flow was never asked for.
        expect_host_unreach(
            &fw,
            &format!("{fam:?} unrequested echo reply"),
            &Packet::echo_reply(fam, id),
        );
        // Echo replies to the host's own pings still pass as established.
        fw.egress(&Packet::echo_request(fam, 0x5200).outbound().frame());
        fw.expect(
            &format!("{fam:?} reply to the host's ping"),
            &Packet::echo_reply(fam, 0x5200).frame(),
            XDP_PASS,
            Reason::Established,
        );
        // Other informational types stay closed.
        expect_host_unreach(
            &fw,
            &format!("{fam:?} timestamp"),
            &Packet::icmp(
                fam,
                if fam == Fam::V4 { 13 } else { 130 },
                0,
                [0; 4],
                vec![0; 12],
            ),
        );
    }
    // Denied again: a new ping (another id) is rejected as before.
    fw.set_policy(Policy::seed());
    for fam in Fam::ALL {
        expect_host_unreach(
            &fw,
            &format!("{fam:?} denied again"),
            &Packet::echo_request(fam, 0x5300),
        );
    }
}

#[test]
fn icmp_echo_from_admits_only_its_sources() {
    let v4 = parse_prefix("192.0.2.0/30").unwrap();
    let v6 = parse_prefix("2001:db8::/126").unwrap();
    let fw = Fw::load(Config {
        policy: with_echo(&[v4, v6]),
        ..Config::default()
    });
    for fam in Fam::ALL {
        fw.expect(
            &format!("{fam:?} echo from a listed source"),
            &Packet::echo_request(fam, 0x6100).frame(),
            XDP_PASS,
            Reason::Port,
        );
        let outside: IpAddr = match fam {
            Fam::V4 => Ipv4Addr::new(192, 0, 2, 9).into(),
            Fam::V6 => "2001:db8::9".parse::<Ipv6Addr>().unwrap().into(),
        };
        expect_host_unreach(
            &fw,
            &format!("{fam:?} echo from elsewhere"),
            &Packet::echo_request(fam, 0x6101).from(outside),
        );
    }
    assert_eq!(fw.port_hits(Proto::Icmp, ECHO), 2);
    // The other ports keep their own (unrestricted) entries.
    fw.expect(
        "tcp 22 from elsewhere",
        &Packet::syn(Fam::V4, 22)
            .from(Ipv4Addr::new(192, 0, 2, 9))
            .frame(),
        XDP_PASS,
        Reason::Port,
    );
}

/// Per-source limits (`[[limits]]`): the seed policy with `limits` in the
/// config.
fn limited(limits: &str) -> Fw {
    let text = format!("[ports]\ntcp = [22, 80]\nudp = [80]\n{limits}");
    Fw::load(
        Config::from_toml(&text, std::path::Path::new("limits.toml"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// Moves the limit stage's clock (the config's test offset) to 1 s into a
/// window of `window_ns`, or on by `by` windows: the windows a test counts
/// in are then its own, whatever the clock says.
fn limit_clock(fw: &Fw, window_ns: u64, by: u64) {
    let mut k = fw.maps.config().unwrap();
    let now = now_ns().wrapping_add(k.limit_clock_offset_ns);
    let to_start = window_ns - now % window_ns;
    k.limit_clock_offset_ns = k
        .limit_clock_offset_ns
        .wrapping_add(to_start + SEC + by * window_ns);
    fw.maps.set_config(&k).unwrap();
}

/// Another address in the peer's /24 (v4) or /64 (v6), and one outside it.
fn neighbours(fam: Fam) -> (IpAddr, IpAddr) {
    match fam {
        Fam::V4 => (
            Ipv4Addr::new(192, 0, 2, 77).into(),
            Ipv4Addr::new(198, 51, 100, 9).into(),
        ),
        Fam::V6 => (
            "2001:db8::77:1".parse::<Ipv6Addr>().unwrap().into(),
            "2001:db8:0:1::2".parse::<Ipv6Addr>().unwrap().into(),
        ),
    }
}

#[test]
fn a_limit_rejects_the_new_flow_over_its_rate_until_the_window_rolls_on() {
    const W: u64 = 10 * SEC;
    let fw = limited("[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"3/10s\"\nper = 24\n");
    for fam in Fam::ALL {
        limit_clock(&fw, W, 0);
        let (near, far) = neighbours(fam);
        for i in 0..3 {
            fw.expect(
                &format!("{fam:?} new connection {} of 3", i + 1),
                &Packet::tcp(fam, 40000 + i, 22, SYN).frame(),
                XDP_PASS,
                Reason::Port,
            );
        }
        let f = Packet::tcp(fam, 40003, 22, SYN).frame();
        let out = fw.expect(
            &format!("{fam:?} the 4th in the window"),
            &f,
            XDP_TX,
            Reason::Limited,
        );
        assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
        assert!(
            !fw.ct_unconfirmed()
                .iter()
                .any(|(k, _)| k.sport == 40003 && k.dport == 22),
            "{fam:?}: a limited SYN records no flow"
        );
        // The same /24 (/64) counts as one source.
        let f = Packet::tcp(fam, 40004, 22, SYN).from(near).frame();
        let out = fw.expect(
            &format!("{fam:?} a neighbour in the prefix"),
            &f,
            XDP_TX,
            Reason::Limited,
        );
        assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
        // Flows it has go on: a retransmitted SYN of an admitted flow and
        // the ACKs of an established one.
        fw.expect(
            &format!("{fam:?} retransmitted SYN of an admitted flow"),
            &Packet::tcp(fam, 40000, 22, SYN).frame(),
            XDP_PASS,
            Reason::Established,
        );
        let now = now_ns();
        fw.ct_insert(
            &flow_key(fam, IPPROTO_TCP, 39000, 22),
            &FlowValue {
                state: CT_TCP_ESTABLISHED,
                flags: CT_F_REPLIED,
                ..FlowValue {
                    created_ns: now,
                    last_seen_ns: now,
                    ..Default::default()
                }
            },
        );
        for _ in 0..3 {
            fw.expect(
                &format!("{fam:?} an established session's ACK"),
                &Packet::tcp(fam, 39000, 22, ACK).payload(10).frame(),
                XDP_PASS,
                Reason::Established,
            );
        }
        // Another source, and other ports, are not limited.
        fw.expect(
            &format!("{fam:?} a source outside the prefix"),
            &Packet::tcp(fam, 40005, 22, SYN).from(far).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.expect(
            &format!("{fam:?} port 80"),
            &Packet::tcp(fam, 40006, 80, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        // Limited attempts count: one window on, the previous window's
        // weight still holds it off; two on, it is in again.
        limit_clock(&fw, W, 0);
        expect_limited(&fw, fam, 40007);
        limit_clock(&fw, W, 1);
        fw.expect(
            &format!("{fam:?} two windows later"),
            &Packet::tcp(fam, 40008, 22, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
    assert_eq!(
        fw.port_hits(Proto::Tcp, 22),
        2 * 5,
        "limited SYNs hit no port"
    );
}

#[track_caller]
fn expect_limited(fw: &Fw, fam: Fam, sport: u16) {
    let f = Packet::tcp(fam, sport, 22, SYN).frame();
    let out = fw.expect(&format!("{fam:?} limited"), &f, XDP_TX, Reason::Limited);
    assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
}

#[test]
fn a_udp_limit_counts_first_datagrams_and_per_groups_sources() {
    const W: u64 = 60 * SEC;
    let fw = limited(
        "[reject]\nwith = \"port-unreachable\"\n[[limits]]\nproto = \"udp\"\nport = 80\nrate = \"2/1m\"\nper6 = 128\n",
    );
    for fam in Fam::ALL {
        limit_clock(&fw, W, 0);
        let (near, _) = neighbours(fam);
        for sport in [41000, 41001] {
            fw.expect(
                &format!("{fam:?} first datagram of flow {sport}"),
                &Packet::udp(fam, sport, 80).frame(),
                XDP_PASS,
                Reason::Port,
            );
        }
        // Further datagrams of a flow are established, never counted.
        for _ in 0..4 {
            fw.expect(
                &format!("{fam:?} more of flow 41000"),
                &Packet::udp(fam, 41000, 80).frame(),
                XDP_PASS,
                Reason::Established,
            );
        }
        let f = Packet::udp(fam, 41002, 80).frame();
        let out = fw.expect(
            &format!("{fam:?} a third flow"),
            &f,
            XDP_TX,
            Reason::Limited,
        );
        let code = match fam {
            Fam::V4 => 3,
            Fam::V6 => 4,
        };
        assert_icmp_error(&f, &out, fam.unreach(), code);
        // Default --per 32 for IPv4: the neighbour is a source of its own;
        // per6 = 128 here: so is the IPv6 one.
        fw.expect(
            &format!("{fam:?} a neighbour is its own source"),
            &Packet::udp(fam, 41003, 80).from(near).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
}

#[test]
fn a_flood_of_spoofed_sources_to_one_limit_leaves_anothers_state() {
    const W: u64 = 30 * SEC;
    let fw = limited(
        "[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"2/30s\"\n\
         [[limits]]\nproto = \"tcp\"\nport = 80\nrate = \"2/30s\"\n\
         [capacity]\nlimit_sources = 1024\n[conntrack]\nentries = 4096\n",
    );
    limit_clock(&fw, W, 0);
    // IPv6, so that 4096 spoofed sources of their own /64 fit in the
    // documentation prefix.
    let fam = Fam::V6;
    for sport in [42000, 42001] {
        fw.expect(
            "port 22 within its rate",
            &Packet::tcp(fam, sport, 22, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
    let slots = fw.maps.limits().unwrap();
    let slot = |port: u16| slots.iter().find(|(_, l)| l.ports.lo == port).unwrap().0;
    assert_eq!(fw.maps.limit_states(slot(22)).unwrap().len(), 1);
    // 4 x the state map's size of new sources to port 80.
    let n = 4 * 1024u16;
    for i in 0..n {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf100, i, 0, 0, 0, 1);
        let (action, _) = fw.ingress(&Packet::tcp(fam, 50000, 80, SYN).from(a).frame());
        assert_eq!(
            action, XDP_PASS,
            "flood SYN {i} from {a}: each source is new"
        );
    }
    let states80 = fw.maps.limit_states(slot(80)).unwrap().len();
    assert!(
        (1..=1024).contains(&states80),
        "port 80's map holds at most its size: {states80}"
    );
    assert_eq!(
        fw.maps.limit_states(slot(22)).unwrap().len(),
        1,
        "port 22's state survives the flood"
    );
    expect_limited(&fw, fam, 42002);
}
