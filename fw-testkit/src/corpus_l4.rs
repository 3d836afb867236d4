//! Corpus families about layer 4: TCP flag combinations and shapes, UDP,
//! every ICMP/ICMPv6 type, neighbor discovery, every IP protocol number.
use crate::packet::{flag_names, Csum, Icmp, Tcp, ACK, L4, PSH, SYN, URG};

use crate::{
    corpus::{echo, fam, fill, icmp, tcp, udp, unknown_flow_quote, Gen},
    twin::Ports,
};

/// How the rigs treat a port, for case names.
pub fn tcp_port(p: u16) -> String {
    let what = match p {
        22 | 80 => "open",
        Ports::TCP_OPEN_IDLE => "open, idle",
        Ports::TCP_CLOSED_LISTENING => "closed, listening",
        _ => "closed",
    };
    format!("{p} ({what})")
}

pub fn udp_port(p: u16) -> String {
    let what = match p {
        Ports::UDP_OPEN => "open",
        Ports::UDP_OPEN_IDLE => "open, idle",
        Ports::UDP_CLOSED_LISTENING => "closed, listening",
        _ => "closed",
    };
    format!("{p} ({what})")
}

pub fn add(g: &mut Gen) {
    for v6 in [false, true] {
        tcp_flags(g, v6);
        tcp_shapes(g, v6);
        udp_cases(g, v6);
        dhcp_ports(g, v6);
        icmp_types(g, v6);
        protocols(g, v6);
    }
    ndp(g);
}

fn tcp_flags(g: &mut Gen, v6: bool) {
    // Every combination of SYN/ACK/FIN/RST/PSH/URG (the long run adds
    // ECE/CWR); the ECN bits on a few common shapes in the normal run.
    let all: Vec<u8> = if g.long {
        (0..=255).collect()
    } else {
        let mut v: Vec<u8> = (0..64).collect();
        v.extend([0x42, 0x82, 0xc2, 0x52, 0x90]);
        v
    };
    // Each bare and carrying 20 bytes of data.
    for port in Ports::tcp_all() {
        for &flags in &all {
            for data in [0, 20] {
                let (src, sport) = g.src(v6);
                let mut l4 = tcp(sport, port, flags);
                with_tcp(&mut l4, |_, d, _| d.extend(fill(data, sport)));
                let p = g.to_server(src, l4);
                let with = if data > 0 { " with data" } else { "" };
                let name = format!(
                    "{} tcp {}{with} -> {}",
                    fam(v6),
                    flag_names(flags),
                    tcp_port(port)
                );
                g.push_pkt(name, None, &p);
            }
        }
    }
}

fn with_tcp(l4: &mut L4, f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>, &mut u32)) {
    if let L4::Tcp(Tcp {
        options,
        payload,
        ack,
        ..
    }) = l4
    {
        f(options, payload, ack);
    }
}

fn tcp_shapes(g: &mut Gen, v6: bool) {
    type Shape = (&'static str, u8, fn(&mut Vec<u8>, &mut Vec<u8>, &mut u32));
    let shapes: [Shape; 8] = [
        ("SYN with MSS/SACK/TS/WS options", SYN, |o, _, _| {
            o.extend([
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
            ])
        }),
        ("SYN with 40 bytes of NOP options", SYN, |o, _, _| {
            o.extend([1u8; 40])
        }),
        ("SYN with a zero-length option", SYN, |o, _, _| {
            o.extend([2, 0, 1, 1])
        }),
        ("SYN with 100 bytes of data", SYN, |_, d, _| {
            d.extend(fill(100, 9))
        }),
        ("PSH+ACK with 100 bytes of data", PSH | ACK, |_, d, _| {
            d.extend(fill(100, 10))
        }),
        ("URG+ACK with data", URG | ACK, |_, d, _| {
            d.extend(fill(10, 11))
        }),
        ("ACK acking 0", ACK, |_, _, a| *a = 0),
        ("SYN with MSS only", SYN, |o, _, _| {
            o.extend([2, 4, 5, 0xb4])
        }),
    ];
    for port in [22, 80, Ports::TCP_OPEN_IDLE, 8080, 443] {
        for (what, flags, f) in shapes {
            let (src, sport) = g.src(v6);
            let mut l4 = tcp(sport, port, flags);
            with_tcp(&mut l4, f);
            let p = g.to_server(src, l4);
            g.push_pkt(
                format!("{} tcp {what} -> {}", fam(v6), tcp_port(port)),
                None,
                &p,
            );
        }
        // Broken L4 checksum: a difference DESIGN.md names.
        for flags in [SYN, ACK] {
            let (src, sport) = g.src(v6);
            let mut p = g.to_server(src, tcp(sport, port, flags));
            p.l4_csum = Csum::Bad;
            g.push_pkt(
                format!(
                    "{} tcp {} bad checksum -> {}",
                    fam(v6),
                    flag_names(flags),
                    tcp_port(port)
                ),
                Some("l4-checksum"),
                &p,
            );
        }
        // Broken headers (checksums right, so REJECT would answer): data
        // offsets below 5 words or beyond the segment; a cut header.
        for (what, len, doff) in [
            ("data offset 4", 20usize, 4u8),
            ("data offset 0", 20, 0),
            ("data offset 15 in 20 bytes", 20, 15),
            ("cut at 12 bytes", 12, 5),
            ("cut at 16 bytes", 16, 5),
        ] {
            let (src, sport) = g.src(v6);
            let mut b = vec![0u8; len];
            b[..2].copy_from_slice(&sport.to_be_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            if len > 13 {
                b[12] = doff << 4;
                b[13] = SYN;
            }
            let p = g.to_server(src, L4::Summed { proto: 6, bytes: b });
            g.push_pkt(
                format!("{} tcp SYN {what} -> {}", fam(v6), tcp_port(port)),
                None,
                &p,
            );
        }
    }
    // Port zero on either side.
    for (what, sp, dp) in [("from port 0", 0, 80), ("to port 0", 0, 0)] {
        let (src, sport) = g.src(v6);
        let sp = if what == "to port 0" { sport } else { sp };
        let p = g.to_server(src, tcp(sp, dp, SYN));
        g.push_pkt(format!("{} tcp S {what} -> {dp}", fam(v6)), None, &p);
    }
}

fn udp_cases(g: &mut Gen, v6: bool) {
    for port in Ports::udp_all() {
        for len in [0, 8, 1000] {
            for csum in [Csum::Good, Csum::Bad, Csum::Zero] {
                let (src, sport) = g.src(v6);
                let mut p = g.to_server(src, udp(sport, port, len));
                p.l4_csum = csum;
                // IPv4 UDP may omit its checksum; IPv6 UDP may not.
                let tag =
                    (csum == Csum::Bad || (csum == Csum::Zero && v6)).then_some("l4-checksum");
                g.push_pkt(
                    format!(
                        "{} udp {len} bytes checksum {csum:?} -> {}",
                        fam(v6),
                        udp_port(port)
                    ),
                    tag,
                    &p,
                );
            }
        }
        // The UDP length field disagreeing with the IP length.
        for (what, field) in [
            ("length field too big", 200u16),
            ("length field below 8", 4),
        ] {
            let (src, sport) = g.src(v6);
            let mut b = Vec::new();
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&field.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend(fill(12, sport));
            let p = g.to_server(
                src,
                L4::Summed {
                    proto: 17,
                    bytes: b,
                },
            );
            g.push_pkt(
                format!("{} udp {what} -> {}", fam(v6), udp_port(port)),
                None,
                &p,
            );
        }
    }
}

/// DHCP's ports, unicast and (IPv4) to the limited broadcast. fw passes a
/// DHCPv4 server's reply (UDP 67 -> 68) to the stack, so that a client's
/// packet socket gets it; the reference rejects it in INPUT, after packet
/// sockets had it. With nothing on port 68 (as here) the stack answers a
/// unicast one with port unreachable: named "dhcp".
fn dhcp_ports(g: &mut Gen, v6: bool) {
    let ports: &[(u16, u16)] = if v6 {
        &[(547, 546), (546, 547), (67, 68)]
    } else {
        &[(67, 68), (67, 69), (68, 68), (68, 67), (66, 68)]
    };
    for &(sport, dport) in ports {
        let tag = (!v6 && (sport, dport) == (67, 68)).then_some("dhcp");
        // A fresh source address; the fixed source port names the probe.
        let (src, _) = g.src(v6);
        let p = g.to_server(src, udp(sport, dport, 300));
        g.push_pkt(
            format!("{} udp {sport} -> {dport} (dhcp ports)", fam(v6)),
            tag,
            &p,
        );
        if !v6 {
            let (src, _) = g.src(v6);
            let mut p = g.to_server(src, udp(sport, dport, 300));
            p.dst = std::net::Ipv4Addr::BROADCAST.into();
            p.dst_mac = [0xff; 6];
            g.push_pkt(
                format!(
                    "{} udp {sport} -> {dport} (dhcp ports) to the limited broadcast",
                    fam(v6)
                ),
                None,
                &p,
            );
        }
    }
}

fn is_error(v6: bool, ty: u8) -> bool {
    if v6 {
        ty < 128
    } else {
        !matches!(ty, 0 | 8 | 13..=18)
    }
}

fn icmp_types(g: &mut Gen, v6: bool) {
    let codes: Vec<u8> = if g.long {
        (0..16).chain([255]).collect()
    } else {
        vec![0, 1]
    };
    for ty in 0..=255u8 {
        for &code in &codes {
            let (src, id) = g.src(v6);
            let body = if is_error(v6, ty) {
                // An error about a flow nobody opened.
                unknown_flow_quote(&g.env, src, 33000 + id % 1000, id)
            } else {
                fill(32, id)
            };
            let p = g.to_server(src, icmp(ty, code, id, body));
            g.push_pkt(format!("{} icmp type {ty} code {code}", fam(v6)), None, &p);
        }
    }
    // Echo shapes.
    for (what, code, len) in [
        ("code 1", 1u8, 32usize),
        ("1400 bytes", 0, 1400),
        ("empty", 0, 0),
    ] {
        let (src, id) = g.src(v6);
        let mut l4 = echo(v6, id);
        if let L4::Icmp(Icmp {
            code: c, body: b, ..
        }) = &mut l4
        {
            *c = code;
            *b = fill(len, id);
        }
        let p = g.to_server(src, l4);
        g.push_pkt(format!("{} icmp echo request {what}", fam(v6)), None, &p);
    }
    let (src, id) = g.src(v6);
    let mut p = g.to_server(src, echo(v6, id));
    p.l4_csum = Csum::Bad;
    g.push_pkt(
        format!("{} icmp echo request bad checksum", fam(v6)),
        Some("l4-checksum"),
        &p,
    );
    // ICMP cut below its 8-byte header.
    let (src, _) = g.src(v6);
    let proto = if v6 { 58 } else { 1 };
    let ty = if v6 { 128 } else { 8 };
    let p = g.to_server(
        src,
        L4::Summed {
            proto,
            bytes: vec![ty, 0, 0, 0],
        },
    );
    g.push_pkt(format!("{} icmp echo cut at 4 bytes", fam(v6)), None, &p);
}

fn protocols(g: &mut Gen, v6: bool) {
    for proto in 0..=255u8 {
        let (src, id) = g.src(v6);
        let p = g.to_server(
            src,
            L4::Summed {
                proto,
                bytes: fill(24, id),
            },
        );
        g.push_pkt(
            format!("{} ip protocol {proto} (24 bytes)", fam(v6)),
            None,
            &p,
        );
    }
}

/// Neighbor discovery (RFC 4861): only NS for the server's own address with
/// hop limit 255 gets an answer (NA).
fn ndp(g: &mut Gen) {
    let srv: std::net::Ipv6Addr = crate::SRV_V6;
    let o = srv.octets();
    let sol_ip: std::net::IpAddr = std::net::Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
    .into();
    let sol_mac = [0x33, 0x33, 0xff, o[13], o[14], o[15]];
    let all_nodes: std::net::IpAddr = "ff02::1".parse().expect("addr");
    let cli_mac = g.env.cli_mac;
    let ns_body = |target: std::net::Ipv6Addr| {
        let mut b = target.octets().to_vec();
        b.extend([1, 1]);
        b.extend(cli_mac);
        b
    };
    let other: std::net::Ipv6Addr = "2001:db8::99".parse().expect("addr");
    let na_body = {
        let mut b = srv.octets().to_vec();
        b.extend([2, 1]);
        b.extend(cli_mac);
        b
    };
    type Ndp = (&'static str, u8, u8, Vec<u8>, bool, u8);
    let cases: Vec<Ndp> = vec![
        (
            "NS for the server, unicast, hop limit 255",
            135,
            0,
            ns_body(srv),
            false,
            255,
        ),
        (
            "NS for the server, solicited-node, hop limit 255",
            135,
            0,
            ns_body(srv),
            true,
            255,
        ),
        (
            "NS for the server, hop limit 64",
            135,
            0,
            ns_body(srv),
            false,
            64,
        ),
        ("NS for another address", 135, 0, ns_body(other), false, 255),
        ("NA unsolicited", 136, 0, na_body, false, 255),
        ("RS", 133, 0, vec![1, 1, 0, 0, 0, 0, 0, 0], false, 255),
        ("RA", 134, 0, vec![0; 8], false, 255),
        ("redirect", 137, 0, vec![0; 32], false, 255),
        ("NS code 1", 135, 1, ns_body(srv), false, 255),
    ];
    for (what, ty, code, body, multicast, hlim) in cases {
        let (src, _) = g.src(true);
        let mut p = g.to_server(
            src,
            L4::Icmp(Icmp {
                ty,
                code,
                rest: [0; 4],
                body,
            }),
        );
        p.ttl = hlim;
        if multicast {
            p.dst = sol_ip;
            p.dst_mac = sol_mac;
        }
        if ty == 136 {
            p.dst = all_nodes;
            p.dst_mac = [0x33, 0x33, 0, 0, 0, 1];
        }
        g.push_pkt(format!("v6 ndp {what}"), None, &p);
    }
}
