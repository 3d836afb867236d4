//! The frames the benchmark sends, built with etherparse so every IP, TCP
//! and ICMP checksum is valid (iptables' REJECT stays silent on a bad one).

use std::net::IpAddr;

use anyhow::{Context, Result};
use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions,
    Ipv6FragmentHeader, Ipv6Header, PacketBuilder, PacketBuilderStep,
};
use fw_testkit::{CLI_V4, CLI_V6, SRV_V4, SRV_V6};

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
    src: [0x02, 0, 0, 0, 0, 2],
    dst: [0x02, 0, 0, 0, 0, 1],
};

/// The peer (client) and this host (server), v4 or v6.
pub fn peer(v6: bool) -> IpAddr {
    if v6 {
        CLI_V6.into()
    } else {
        CLI_V4.into()
    }
}

pub fn host(v6: bool) -> IpAddr {
    if v6 {
        SRV_V6.into()
    } else {
        SRV_V4.into()
    }
}

fn loopback(v6: bool) -> IpAddr {
    if v6 {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    }
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

/// Starts a packet from `src` to `dst` (same family), without L2 when `l2`
/// is `None` (the quote inside an ICMP error).
fn ip_step(l2: Option<L2>, src: IpAddr, dst: IpAddr) -> Result<PacketBuilderStep<IpHeaders>> {
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IpHeaders::Ipv4(
            Ipv4Header::new(0, 64, IpNumber::TCP, s.octets(), d.octets()).context("IPv4 header")?,
            Ipv4Extensions::default(),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                next_header: IpNumber::TCP,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
                ..Default::default()
            },
            Ipv6Extensions::default(),
        ),
        _ => anyhow::bail!("frame from {src} to {dst}: mixed address families"),
    };
    Ok(match l2 {
        Some(l2) => PacketBuilder::ethernet2(l2.src, l2.dst).ip(ip),
        None => PacketBuilder::ip(ip),
    })
}

fn tcp_bytes(l2: Option<L2>, flow: &Flow, seg: Tcp) -> Result<Vec<u8>> {
    let step = ip_step(l2, flow.src, flow.dst)?;
    let (seq, ack) = match seg {
        Tcp::Syn { seq } => (seq, None),
        Tcp::Ack { seq, ack } => (seq, Some(ack)),
    };
    let tcp = step.tcp(flow.sport, flow.dport, seq, 64240);
    let tcp = match ack {
        Some(a) => tcp.ack(a),
        None => tcp.syn(),
    };
    let mut out = Vec::with_capacity(tcp.size(0));
    tcp.write(&mut out, &[]).context("building a TCP frame")?;
    Ok(out)
}

/// An Ethernet frame carrying one TCP segment without payload.
pub fn tcp(l2: L2, flow: &Flow, seg: Tcp) -> Result<Vec<u8>> {
    tcp_bytes(Some(l2), flow, seg)
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
    let quote = tcp_bytes(
        None,
        &sent,
        Tcp::Ack {
            seq: 2000,
            ack: 1000,
        },
    )?;
    let l2 = PacketBuilder::ethernet2(TEST_L2.src, TEST_L2.dst);
    let mut out = Vec::new();
    match (peer(v6), host(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => l2
            .ipv4(s.octets(), d.octets(), 64)
            .icmpv4_raw(3, 3, [0; 4])
            .write(&mut out, &quote),
        (IpAddr::V6(s), IpAddr::V6(d)) => l2
            .ipv6(s.octets(), d.octets(), 64)
            .icmpv6_raw(1, 4, [0; 4])
            .write(&mut out, &quote),
        _ => unreachable!("peer() and host() share a family"),
    }
    .context("building an ICMP error frame")?;
    Ok(out)
}

/// An IPv6 neighbor solicitation for this host's address, from the peer.
pub fn neighbor_solicitation() -> Result<Vec<u8>> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (peer(true), host(true)) else {
        unreachable!("v6 addresses")
    };
    let mut payload = d.octets().to_vec();
    // Source link-layer address option (type 1, 8 bytes).
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(&TEST_L2.src);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(TEST_L2.src, TEST_L2.dst)
        .ipv6(s.octets(), d.octets(), 255)
        .icmpv6_raw(135, 0, [0; 4])
        .write(&mut out, &payload)
        .context("building a neighbor solicitation")?;
    Ok(out)
}

/// An ARP request (fw's non_ip path).
pub fn arp_request() -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&TEST_L2.src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&TEST_L2.src);
    f.extend_from_slice(&CLI_V4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&SRV_V4.octets());
    f
}

/// A SYN to CLOSED_PORT from the loopback address (a martian).
pub fn martian(v6: bool) -> Result<Vec<u8>> {
    let flow = Flow {
        src: loopback(v6),
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
    let payload = [0u8; 64];
    let offset = IpFragOffset::try_new(185).context("fragment offset")?;
    let ip = match (peer(v6), host(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, s.octets(), d.octets())
                .context("IPv4 header")?;
            h.dont_fragment = false;
            h.identification = 0x1234;
            h.fragment_offset = offset;
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
                ..Default::default()
            },
            Ipv6Extensions {
                fragment: Some(Ipv6FragmentHeader::new(
                    IpNumber::UDP,
                    offset,
                    false,
                    0x1234,
                )),
                ..Default::default()
            },
        ),
        _ => unreachable!("peer() and host() share a family"),
    };
    let mut out = Vec::new();
    PacketBuilder::ethernet2(TEST_L2.src, TEST_L2.dst)
        .ip(ip)
        .write(&mut out, IpNumber::UDP, &payload)
        .context("building a fragment")?;
    Ok(out)
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
