//! The crafted packets the differential tests send, v4 and v6.
use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};

use super::raw::Probe;

/// Addresses and MACs of a rig, from the client's side.
#[derive(Clone, Copy, Debug)]
pub struct Ends {
    pub cli_mac: [u8; 6],
    pub srv_mac: [u8; 6],
    pub cli: IpAddr,
    pub srv: IpAddr,
}

/// What to send.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Syn(u16),
    /// A bare ACK (no connection).
    Ack(u16),
    Rst(u16),
    Udp(u16),
    Echo,
    /// TCP SYN carrying IPv4 options / an IPv6 hop-by-hop header.
    SynWithOptions(u16),
    /// A UDP datagram in two fragments, in order.
    FragmentedUdp(u16),
    /// An ICMP port-unreachable quoting a flow nobody opened.
    IcmpErrorUnknown,
    /// UDP to the server's address but the broadcast MAC.
    L2BroadcastUdp(u16),
    /// UDP from 127.0.0.1 / ::1.
    LoopbackSource(u16),
}

pub fn describe(kind: Kind, v6: bool) -> String {
    format!("{} {kind:?}", if v6 { "v6" } else { "v4" })
}

fn ip_pair(e: &Ends) -> (Vec<u8>, Vec<u8>) {
    let b = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    (b(e.cli), b(e.srv))
}

fn base(e: &Ends, src: Option<IpAddr>) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(e.cli_mac, e.srv_mac);
    let (c, s) = ip_pair(e);
    let c = match src {
        Some(IpAddr::V4(v)) => v.octets().to_vec(),
        Some(IpAddr::V6(v)) => v.octets().to_vec(),
        None => c,
    };
    if s.len() == 4 {
        eth.ipv4(
            c[..4].try_into().expect("v4"),
            s[..4].try_into().expect("v4"),
            64,
        )
    } else {
        eth.ipv6(
            c[..16].try_into().expect("v6"),
            s[..16].try_into().expect("v6"),
            64,
        )
    }
}

fn build(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("frame builds");
    out
}

/// Frames for `kind` from source port `sport`, and how to recognise answers.
pub fn frames(e: &Ends, kind: Kind, sport: u16) -> (Vec<Vec<u8>>, Probe) {
    let v6 = e.srv.is_ipv6();
    let probe = |proto: u8, dport: u16| Probe {
        server: e.srv,
        proto,
        sport,
        dport,
    };
    match kind {
        Kind::Syn(p) => (
            vec![build(base(e, None).tcp(sport, p, 1000, 64240).syn(), &[])],
            probe(6, p),
        ),
        Kind::Ack(p) => (
            vec![build(base(e, None).tcp(sport, p, 1000, 64240).ack(77), &[])],
            probe(6, p),
        ),
        Kind::Rst(p) => (
            vec![build(base(e, None).tcp(sport, p, 1000, 0).rst(), &[])],
            probe(6, p),
        ),
        Kind::Udp(p) => {
            let b = base(e, None).udp(sport, p);
            let mut out = Vec::new();
            b.write(&mut out, b"probe").expect("frame builds");
            (vec![out], probe(17, p))
        }
        Kind::Echo => {
            let mut out = Vec::new();
            if v6 {
                base(e, None)
                    .icmpv6_echo_request(sport, 1)
                    .write(&mut out, b"ping")
                    .expect("frame");
            } else {
                base(e, None)
                    .icmpv4_echo_request(sport, 1)
                    .write(&mut out, b"ping")
                    .expect("frame");
            }
            (vec![out], probe(if v6 { 58 } else { 1 }, 0))
        }
        Kind::SynWithOptions(p) => (vec![syn_with_options(e, sport, p)], probe(6, p)),
        Kind::FragmentedUdp(p) => (fragmented_udp(e, sport, p), probe(17, p)),
        Kind::IcmpErrorUnknown => (vec![icmp_error_unknown(e, sport)], probe(17, 9)),
        Kind::L2BroadcastUdp(p) => {
            let mut f = frames(e, Kind::Udp(p), sport).0.remove(0);
            f[..6].copy_from_slice(&[0xff; 6]);
            (vec![f], probe(17, p))
        }
        Kind::LoopbackSource(p) => {
            let lo: IpAddr = if v6 {
                "::1".parse().expect("addr")
            } else {
                "127.0.0.1".parse().expect("addr")
            };
            let b = base(e, Some(lo)).udp(sport, p);
            let mut out = Vec::new();
            b.write(&mut out, b"martian").expect("frame builds");
            (vec![out], probe(17, p))
        }
    }
}

fn eth_header(e: &Ends, v6: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&e.srv_mac);
    f.extend_from_slice(&e.cli_mac);
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f
}

/// A TCP segment (header + payload) with a valid checksum for `e`'s addresses.
fn tcp_segment(e: &Ends, sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = etherparse::TcpHeader::new(sport, dport, 1000, 64240);
    tcp.syn = true;
    tcp.checksum = match (e.cli, e.srv) {
        (IpAddr::V4(c), IpAddr::V4(s)) => tcp
            .calc_checksum_ipv4_raw(c.octets(), s.octets(), &[])
            .expect("csum"),
        (IpAddr::V6(c), IpAddr::V6(s)) => tcp
            .calc_checksum_ipv6_raw(c.octets(), s.octets(), &[])
            .expect("csum"),
        _ => unreachable!("one family"),
    };
    tcp.to_bytes().to_vec()
}

fn syn_with_options(e: &Ends, sport: u16, dport: u16) -> Vec<u8> {
    let seg = tcp_segment(e, sport, dport);
    let (c, s) = ip_pair(e);
    let mut f = eth_header(e, e.srv.is_ipv6());
    if e.srv.is_ipv6() {
        let mut ip = Ipv6Header {
            payload_length: (8 + seg.len()) as u16,
            next_header: IpNumber::IPV6_HEADER_HOP_BY_HOP,
            hop_limit: 64,
            source: c[..16].try_into().expect("v6"),
            destination: s[..16].try_into().expect("v6"),
            ..Default::default()
        };
        ip.traffic_class = 0;
        f.extend_from_slice(&ip.to_bytes());
        // Hop-by-hop: next = TCP, length 0 (8 bytes), PadN of 4 bytes + Pad1 x2.
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    } else {
        let mut ip = Ipv4Header::new(
            seg.len() as u16,
            64,
            IpNumber::TCP,
            c[..4].try_into().expect("v4"),
            s[..4].try_into().expect("v4"),
        )
        .expect("header");
        // Four NOPs: a harmless option that makes IHL 6.
        ip.options = [1u8, 1, 1, 1][..].try_into().expect("options");
        ip.total_len = (ip.header_len() + seg.len()) as u16;
        ip.header_checksum = ip.calc_header_checksum();
        f.extend_from_slice(&ip.to_bytes());
    }
    f.extend_from_slice(&seg);
    f
}

fn fragmented_udp(e: &Ends, sport: u16, dport: u16) -> Vec<Vec<u8>> {
    // A full datagram first (for its checksum), then cut after 64 bytes.
    let payload = vec![0x5a; 120];
    let full = {
        let b = base(e, None).udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, &payload).expect("frame builds");
        out
    };
    let v6 = e.srv.is_ipv6();
    let l4 = &full[14 + if v6 { 40 } else { 20 }..];
    let (first, rest) = l4.split_at(64);
    let (c, s) = ip_pair(e);
    let id = sport as u32 | 0x4000;
    let mut out = Vec::new();
    for (chunk, offset, more) in [(first, 0u16, true), (rest, 8u16, false)] {
        let mut f = eth_header(e, v6);
        if v6 {
            let ip = Ipv6Header {
                payload_length: (8 + chunk.len()) as u16,
                next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
                hop_limit: 64,
                source: c[..16].try_into().expect("v6"),
                destination: s[..16].try_into().expect("v6"),
                ..Default::default()
            };
            f.extend_from_slice(&ip.to_bytes());
            // By hand: offset in 8-byte units in the top 13 bits, M in bit 0.
            let field = (offset << 3) | more as u16;
            f.extend_from_slice(&[17, 0]);
            f.extend_from_slice(&field.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        } else {
            let mut ip = Ipv4Header::new(
                chunk.len() as u16,
                64,
                IpNumber::UDP,
                c[..4].try_into().expect("v4"),
                s[..4].try_into().expect("v4"),
            )
            .expect("header");
            ip.identification = id as u16;
            ip.more_fragments = more;
            ip.fragment_offset = offset.try_into().expect("offset");
            ip.header_checksum = ip.calc_header_checksum();
            f.extend_from_slice(&ip.to_bytes());
        }
        f.extend_from_slice(chunk);
        out.push(f);
    }
    out
}

fn icmp_error_unknown(e: &Ends, sport: u16) -> Vec<u8> {
    // Quoted: a UDP packet "the server sent" from port 9 to the client's sport.
    let (c, s) = ip_pair(e);
    let mut quote = Vec::new();
    if e.srv.is_ipv6() {
        let ip = Ipv6Header {
            payload_length: 8,
            next_header: IpNumber::UDP,
            hop_limit: 64,
            source: s[..16].try_into().expect("v6"),
            destination: c[..16].try_into().expect("v6"),
            ..Default::default()
        };
        quote.extend_from_slice(&ip.to_bytes());
    } else {
        let ip = Ipv4Header::new(
            8,
            64,
            IpNumber::UDP,
            s[..4].try_into().expect("v4"),
            c[..4].try_into().expect("v4"),
        )
        .expect("header");
        quote.extend_from_slice(&ip.to_bytes());
    }
    quote.extend_from_slice(&9u16.to_be_bytes());
    quote.extend_from_slice(&sport.to_be_bytes());
    quote.extend_from_slice(&[0, 8, 0, 0]);
    let mut out = Vec::new();
    if e.srv.is_ipv6() {
        base(e, None)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut out, &quote)
            .expect("frame");
    } else {
        base(e, None)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut out, &quote)
            .expect("frame");
    }
    out
}
