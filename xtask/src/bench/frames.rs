//! The frames the benchmark sends, built with the test kit's packet
//! builder so every IP, TCP and ICMP checksum is valid (iptables' REJECT
//! stays silent on a bad one).

use std::net::IpAddr;

use anyhow::{bail, Result};
use fw_testkit::packet::{self as pk, Fam, Frag, Packet, ACK, HOST_MAC, L4, PEER_MAC, SYN};

/// A port the seed policy leaves closed (and nothing listens on).
pub const CLOSED_PORT: u16 = 8080;
/// A port the seed policy opens (the benchmark's listener).
pub const OPEN_PORT: u16 = 22;
/// The peer's port in the test_run frames.
pub const PEER_PORT: u16 = 40000;

/// Ethernet source and destination.
#[derive(Clone, Copy, Debug)]
pub struct L2 {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

/// Locally administered MACs for frames that never touch an interface.
pub const TEST_L2: L2 = L2 {
    src: PEER_MAC,
    dst: HOST_MAC,
};

fn fam(v6: bool) -> Fam {
    if v6 {
        Fam::V6
    } else {
        Fam::V4
    }
}

/// The peer (client) and this host (server), v4 or v6.
pub fn peer(v6: bool) -> IpAddr {
    fam(v6).peer()
}

pub fn host(v6: bool) -> IpAddr {
    fam(v6).host()
}

/// The TCP segment a frame carries.
#[derive(Clone, Copy, Debug)]
pub enum Tcp {
    Syn { seq: u32 },
    Ack { seq: u32, ack: u32 },
}

/// One TCP flow, as the sender sees it.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// A packet of `l4` from `src` to `dst` as a peer's stack sends it
/// (identification 0, DF set, TTL 64).
fn packet(l2: L2, src: IpAddr, dst: IpAddr, l4: L4) -> Packet {
    let mut p = Packet::new(l2.src, l2.dst, src, dst, l4);
    p.ip_id = 0;
    p.df = true;
    p
}

fn segment(flow: &Flow, l2: L2, seg: Tcp) -> Result<Packet> {
    if flow.src.is_ipv6() != flow.dst.is_ipv6() {
        bail!(
            "frame from {} to {}: mixed address families",
            flow.src,
            flow.dst
        );
    }
    let (seq, ack, flags) = match seg {
        Tcp::Syn { seq } => (seq, 0, SYN),
        Tcp::Ack { seq, ack } => (seq, ack, ACK),
    };
    let t = pk::Tcp {
        sport: flow.sport,
        dport: flow.dport,
        seq,
        ack,
        flags,
        ..pk::Tcp::default()
    };
    Ok(packet(l2, flow.src, flow.dst, L4::Tcp(t)))
}

/// An Ethernet frame carrying one TCP segment without payload.
pub fn tcp(l2: L2, flow: &Flow, seg: Tcp) -> Result<Vec<u8>> {
    Ok(segment(flow, l2, seg)?.frame())
}

/// A SYN from the peer's `sport` to this host's `dport` (v4 or v6).
pub fn syn(v6: bool, sport: u16, dport: u16) -> Result<Vec<u8>> {
    let flow = Flow {
        src: peer(v6),
        dst: host(v6),
        sport,
        dport,
    };
    tcp(TEST_L2, &flow, Tcp::Syn { seq: 1 })
}

/// A pure ACK of the flow peer:sport -> host:OPEN_PORT.
pub fn established_ack(v6: bool, sport: u16) -> Result<Vec<u8>> {
    let flow = Flow {
        src: peer(v6),
        dst: host(v6),
        sport,
        dport: OPEN_PORT,
    };
    tcp(
        TEST_L2,
        &flow,
        Tcp::Ack {
            seq: 1000,
            ack: 2000,
        },
    )
}

/// An ICMP (v4: 3/3, v6: 1/4 port unreachable) error from the peer quoting
/// a segment this host sent from OPEN_PORT to the peer's `quoted_dport`.
pub fn icmp_error(v6: bool, quoted_dport: u16) -> Result<Vec<u8>> {
    let sent = Flow {
        src: host(v6),
        dst: peer(v6),
        sport: OPEN_PORT,
        dport: quoted_dport,
    };
    let seg = Tcp::Ack {
        seq: 2000,
        ack: 1000,
    };
    let quote = segment(&sent, TEST_L2, seg)?.ip();
    let f = fam(v6);
    let err = L4::icmp(f.unreach(), f.port_unreach_code(), [0; 4], quote);
    Ok(packet(TEST_L2, peer(v6), host(v6), err).frame())
}

/// An IPv6 neighbor solicitation for this host's address, from the peer.
pub fn neighbor_solicitation() -> Result<Vec<u8>> {
    let target = host(true);
    let mut body = pk::octets(target);
    // Source link-layer address option (type 1, 8 bytes).
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&TEST_L2.src);
    let ns = L4::icmp(135, 0, [0; 4], body);
    let mut p = packet(TEST_L2, peer(true), target, ns);
    p.ttl = 255;
    Ok(p.frame())
}

/// An ARP request (fw's non_ip path).
pub fn arp_request() -> Vec<u8> {
    pk::arp_request(TEST_L2.src, pk::PEER4, pk::HOST4)
}

/// A SYN to CLOSED_PORT from the loopback address (a martian).
pub fn martian(v6: bool) -> Result<Vec<u8>> {
    let flow = Flow {
        src: fam(v6).loopback(),
        dst: host(v6),
        sport: PEER_PORT,
        dport: CLOSED_PORT,
    };
    tcp(TEST_L2, &flow, Tcp::Syn { seq: 1 })
}

/// A SYN whose IP length field claims more bytes than the frame has.
pub fn malformed(v6: bool) -> Result<Vec<u8>> {
    let mut f = syn(v6, PEER_PORT, CLOSED_PORT)?;
    // Total length (v4) or payload length (v6), 14 + 2 or 14 + 4 bytes in.
    let at = if v6 { 18 } else { 16 };
    f[at..at + 2].copy_from_slice(&1400u16.to_be_bytes());
    Ok(f)
}

/// A later (non-first) UDP fragment whose first fragment was never seen.
pub fn later_fragment(v6: bool) -> Result<Vec<u8>> {
    let data = L4::Raw {
        proto: pk::PROTO_UDP,
        bytes: vec![0; 64],
    };
    let p = packet(TEST_L2, peer(v6), host(v6), data).frag(Frag::Later {
        id: 0x1234,
        offset: 185,
        more: false,
    });
    Ok(p.frame())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    #[test]
    fn tcp_frames_parse_with_valid_checksums() {
        for v6 in [false, true] {
            let f = syn(v6, PEER_PORT, CLOSED_PORT).unwrap();
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("no TCP in {f:?}")
            };
            assert!(t.syn() && !t.ack());
            assert_eq!(t.destination_port(), CLOSED_PORT);
            let sum = match p.net {
                Some(NetSlice::Ipv4(ip)) => {
                    assert!(
                        ip.header().to_header().calc_header_checksum()
                            == ip.header().header_checksum()
                    );
                    t.to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
                        .unwrap()
                }
                Some(NetSlice::Ipv6(ip)) => t
                    .to_header()
                    .calc_checksum_ipv6(&ip.header().to_header(), t.payload())
                    .unwrap(),
                _ => panic!("no IP"),
            };
            assert_eq!(sum, t.checksum());
        }
    }

    #[test]
    fn special_frames_have_the_expected_shape() {
        assert_eq!(arp_request().len(), 42);
        assert_eq!(neighbor_solicitation().unwrap().len(), 14 + 40 + 8 + 24);
        for v6 in [false, true] {
            let e = icmp_error(v6, PEER_PORT).unwrap();
            // L2 + outer IP + ICMP + quoted IP + TCP header.
            let ip = if v6 { 40 } else { 20 };
            assert_eq!(e.len(), 14 + ip + 8 + ip + 20);
            assert!(SlicedPacket::from_ethernet(&later_fragment(v6).unwrap()).is_ok());
            assert!(SlicedPacket::from_ethernet(&malformed(v6).unwrap()).is_err());
        }
    }
}
