//! Frames for the verdict tests, built with etherparse's header types: a
//! `Pkt` describes one packet (addresses, L4, VLAN tags, IPv4 options, IPv6
//! extension headers, fragment position) and serializes to an Ethernet frame.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ethernet2Header, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpFragOffset,
    IpNumber, Ipv4Header, Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, UdpHeader,
    VlanId,
};

pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

pub const HOST4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A router on the path (sends ICMP errors about the host's packets).
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// IPv6 extension header numbers.
pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const DEST_OPTS: u8 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    pub const ALL: [Fam; 2] = [Fam::V4, Fam::V6];

    pub fn host(self) -> IpAddr {
        match self {
            Fam::V4 => HOST4.into(),
            Fam::V6 => HOST6.into(),
        }
    }

    pub fn peer(self) -> IpAddr {
        match self {
            Fam::V4 => PEER4.into(),
            Fam::V6 => PEER6.into(),
        }
    }

    pub fn router(self) -> IpAddr {
        match self {
            Fam::V4 => ROUTER4.into(),
            Fam::V6 => ROUTER6.into(),
        }
    }

    /// The family's ICMP protocol number.
    pub fn icmp_proto(self) -> u8 {
        match self {
            Fam::V4 => 1,
            Fam::V6 => 58,
        }
    }

    pub fn echo_request(self) -> u8 {
        match self {
            Fam::V4 => 8,
            Fam::V6 => 128,
        }
    }

    pub fn echo_reply(self) -> u8 {
        match self {
            Fam::V4 => 0,
            Fam::V6 => 129,
        }
    }

    /// Destination unreachable type.
    pub fn unreach(self) -> u8 {
        match self {
            Fam::V4 => 3,
            Fam::V6 => 1,
        }
    }

    /// The seed's reject code: host unreachable (v4 1, v6 "address unreachable" 3).
    pub fn host_unreach_code(self) -> u8 {
        match self {
            Fam::V4 => 1,
            Fam::V6 => 3,
        }
    }
}

/// Layer 4 of a packet. `Icmp` is ICMP or ICMPv6 after the address family.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: usize,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: usize,
    },
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        payload: Vec<u8>,
    },
    /// Bytes as they are, after the IP header(s) (no checksum fixing).
    Raw { proto: u8, bytes: Vec<u8> },
}

impl L4 {
    pub fn proto(&self, fam: Fam) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => fam.icmp_proto(),
            L4::Raw { proto, .. } => *proto,
        }
    }
}

/// Where the packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    None,
    /// Offset 0, more fragments follow.
    First {
        id: u32,
    },
    /// Offset in 8-byte units (> 0); `more`: not the last one.
    Later {
        id: u32,
        offset: u16,
        more: bool,
    },
}

/// One packet, by default from the peer to the host.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// (TPID, VLAN id), outermost first.
    pub vlans: Vec<(u16, u16)>,
    pub l4: L4,
    /// IPv4 options (a multiple of 4 bytes).
    pub v4_options: Vec<u8>,
    /// IPv6 extension headers before L4 (HOP_BY_HOP, ROUTING, DEST_OPTS), in order.
    pub v6_exts: Vec<u8>,
    pub frag: Frag,
    pub ttl: u8,
    /// Ethernet padding after the IP packet.
    pub trailer: usize,
}

fn payload_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

impl Pkt {
    pub fn new(fam: Fam, l4: L4) -> Pkt {
        Pkt {
            src: fam.peer(),
            dst: fam.host(),
            src_mac: PEER_MAC,
            dst_mac: HOST_MAC,
            vlans: Vec::new(),
            l4,
            v4_options: Vec::new(),
            v6_exts: Vec::new(),
            frag: Frag::None,
            ttl: 64,
            trailer: 0,
        }
    }

    pub fn tcp(fam: Fam, sport: u16, dport: u16, flags: u8) -> Pkt {
        let ack = if flags & ACK != 0 { 0x5000_0001 } else { 0 };
        Pkt::new(
            fam,
            L4::Tcp {
                sport,
                dport,
                flags,
                seq: 0x1000_0000,
                ack,
                payload: 0,
            },
        )
    }

    /// A SYN from the peer's port 40000.
    pub fn syn(fam: Fam, dport: u16) -> Pkt {
        Pkt::tcp(fam, 40000, dport, SYN)
    }

    pub fn udp(fam: Fam, sport: u16, dport: u16) -> Pkt {
        Pkt::new(
            fam,
            L4::Udp {
                sport,
                dport,
                payload: 16,
            },
        )
    }

    pub fn icmp(fam: Fam, ty: u8, code: u8, rest: [u8; 4], payload: Vec<u8>) -> Pkt {
        Pkt::new(
            fam,
            L4::Icmp {
                ty,
                code,
                rest,
                payload,
            },
        )
    }

    pub fn echo_request(fam: Fam, id: u16) -> Pkt {
        let [a, b] = id.to_be_bytes();
        Pkt::icmp(fam, fam.echo_request(), 0, [a, b, 0, 1], payload_bytes(32))
    }

    pub fn echo_reply(fam: Fam, id: u16) -> Pkt {
        let [a, b] = id.to_be_bytes();
        Pkt::icmp(fam, fam.echo_reply(), 0, [a, b, 0, 1], payload_bytes(32))
    }

    /// An ICMP error from `from` to the host quoting `quoted` (an IP packet).
    pub fn icmp_error(
        fam: Fam,
        from: IpAddr,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        quoted: &Pkt,
    ) -> Pkt {
        let mut p = Pkt::icmp(fam, ty, code, rest, quoted.ip());
        p.src = from;
        p
    }

    pub fn fam(&self) -> Fam {
        match self.src {
            IpAddr::V4(_) => Fam::V4,
            IpAddr::V6(_) => Fam::V6,
        }
    }

    pub fn from(mut self, a: impl Into<IpAddr>) -> Pkt {
        self.src = a.into();
        self
    }

    pub fn to(mut self, a: impl Into<IpAddr>) -> Pkt {
        self.dst = a.into();
        self
    }

    pub fn l2_dst(mut self, m: [u8; 6]) -> Pkt {
        self.dst_mac = m;
        self
    }

    /// The same flow in the other direction: sent by the host to the peer
    /// (addresses, MACs and ports swapped).
    pub fn outbound(mut self) -> Pkt {
        std::mem::swap(&mut self.src, &mut self.dst);
        std::mem::swap(&mut self.src_mac, &mut self.dst_mac);
        match &mut self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => {
                std::mem::swap(sport, dport)
            }
            _ => {}
        }
        self
    }

    pub fn vlan(mut self, vid: u16) -> Pkt {
        self.vlans = vec![(TPID_8021Q, vid)];
        self
    }

    pub fn qinq(mut self, outer: u16, inner: u16) -> Pkt {
        self.vlans = vec![(TPID_8021AD, outer), (TPID_8021Q, inner)];
        self
    }

    pub fn v4_options(mut self, opts: &[u8]) -> Pkt {
        self.v4_options = opts.to_vec();
        self
    }

    pub fn v6_exts(mut self, exts: &[u8]) -> Pkt {
        self.v6_exts = exts.to_vec();
        self
    }

    pub fn frag(mut self, f: Frag) -> Pkt {
        self.frag = f;
        self
    }

    pub fn trailer(mut self, n: usize) -> Pkt {
        self.trailer = n;
        self
    }

    pub fn payload(mut self, n: usize) -> Pkt {
        match &mut self.l4 {
            L4::Tcp { payload, .. } | L4::Udp { payload, .. } => *payload = n,
            L4::Icmp { payload, .. } => *payload = payload_bytes(n),
            L4::Raw { bytes, .. } => *bytes = payload_bytes(n),
        }
        self
    }

    pub fn seq_ack(mut self, s: u32, a: u32) -> Pkt {
        if let L4::Tcp { seq, ack, .. } = &mut self.l4 {
            *seq = s;
            *ack = a;
        }
        self
    }

    fn v4_addrs(&self) -> ([u8; 4], [u8; 4]) {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets(), d.octets()),
            _ => panic!("mixed address families in {self:?}"),
        }
    }

    fn v6_addrs(&self) -> ([u8; 16], [u8; 16]) {
        match (self.src, self.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets(), d.octets()),
            _ => panic!("mixed address families in {self:?}"),
        }
    }

    /// The L4 header and payload, checksums filled in.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let fam = self.fam();
        let mut out = Vec::new();
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                payload,
            } => {
                let data = payload_bytes(*payload);
                let mut h = TcpHeader::new(*sport, *dport, *seq, 64240);
                h.fin = flags & FIN != 0;
                h.syn = flags & SYN != 0;
                h.rst = flags & RST != 0;
                h.psh = flags & PSH != 0;
                h.ack = flags & ACK != 0;
                h.acknowledgment_number = *ack;
                h.checksum = match fam {
                    Fam::V4 => {
                        let (s, d) = self.v4_addrs();
                        h.calc_checksum_ipv4_raw(s, d, &data).unwrap()
                    }
                    Fam::V6 => {
                        let (s, d) = self.v6_addrs();
                        h.calc_checksum_ipv6_raw(s, d, &data).unwrap()
                    }
                };
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(&data);
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let data = payload_bytes(*payload);
                let h = match fam {
                    Fam::V4 => {
                        let (s, d) = self.v4_addrs();
                        let ip = Ipv4Header::new(0, 64, IpNumber::UDP, s, d).unwrap();
                        UdpHeader::with_ipv4_checksum(*sport, *dport, &ip, &data).unwrap()
                    }
                    Fam::V6 => {
                        let (s, d) = self.v6_addrs();
                        let ip = Ipv6Header {
                            source: s,
                            destination: d,
                            next_header: IpNumber::UDP,
                            ..Default::default()
                        };
                        UdpHeader::with_ipv6_checksum(*sport, *dport, &ip, &data).unwrap()
                    }
                };
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(&data);
            }
            L4::Icmp {
                ty,
                code,
                rest,
                payload,
            } => {
                match fam {
                    Fam::V4 => {
                        let t = Icmpv4Type::Unknown {
                            type_u8: *ty,
                            code_u8: *code,
                            bytes5to8: *rest,
                        };
                        out.extend_from_slice(&Icmpv4Header::with_checksum(t, payload).to_bytes());
                    }
                    Fam::V6 => {
                        let (s, d) = self.v6_addrs();
                        let t = Icmpv6Type::Unknown {
                            type_u8: *ty,
                            code_u8: *code,
                            bytes5to8: *rest,
                        };
                        let h = Icmpv6Header::with_checksum(t, s, d, payload).unwrap();
                        out.extend_from_slice(&h.to_bytes());
                    }
                }
                out.extend_from_slice(payload);
            }
            L4::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
        out
    }

    /// The IP packet (header, options / extension headers, L4).
    pub fn ip(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let proto = self.l4.proto(self.fam());
        let mut out = Vec::new();
        match self.fam() {
            Fam::V4 => {
                let (s, d) = self.v4_addrs();
                let mut h = Ipv4Header::new(0, self.ttl, IpNumber(proto), s, d).unwrap();
                h.options = self.v4_options.as_slice().try_into().unwrap();
                h.identification = 0x4242;
                match self.frag {
                    Frag::None => {}
                    Frag::First { id } => {
                        h.identification = id as u16;
                        h.dont_fragment = false;
                        h.more_fragments = true;
                    }
                    Frag::Later { id, offset, more } => {
                        h.identification = id as u16;
                        h.dont_fragment = false;
                        h.more_fragments = more;
                        h.fragment_offset = IpFragOffset::try_new(offset).unwrap();
                    }
                }
                h.set_payload_len(l4.len()).unwrap();
                h.header_checksum = h.calc_header_checksum();
                out.extend_from_slice(&h.to_bytes());
            }
            Fam::V6 => {
                let (s, d) = self.v6_addrs();
                let mut chain = self.v6_exts.clone();
                if self.frag != Frag::None {
                    chain.push(FRAGMENT);
                }
                let mut exts = Vec::new();
                for (i, &ty) in chain.iter().enumerate() {
                    let next = IpNumber(chain.get(i + 1).copied().unwrap_or(proto));
                    match ty {
                        FRAGMENT => {
                            let (id, offset, more) = match self.frag {
                                Frag::First { id } => (id, 0, true),
                                Frag::Later { id, offset, more } => (id, offset, more),
                                Frag::None => unreachable!(),
                            };
                            // By hand: etherparse 0.16's Ipv6FragmentHeader::to_bytes
                            // puts the M flag in bit 7 and the offset's low bits in
                            // 0..5 of the 4th byte (RFC 8200: offset << 3 | M).
                            let fo = (offset << 3) | more as u16;
                            exts.push(next.0);
                            exts.push(0);
                            exts.extend_from_slice(&fo.to_be_bytes());
                            exts.extend_from_slice(&id.to_be_bytes());
                        }
                        ROUTING => {
                            // Type 4 (segment routing) with no segments left:
                            // nodes skip it, as they must.
                            let h = Ipv6RawExtHeader::new_raw(next, &[4, 0, 0, 0, 0, 0]).unwrap();
                            exts.extend_from_slice(&h.to_bytes());
                        }
                        _ => {
                            // Options area: one PadN option filling 6 bytes.
                            let h = Ipv6RawExtHeader::new_raw(next, &[1, 4, 0, 0, 0, 0]).unwrap();
                            exts.extend_from_slice(&h.to_bytes());
                        }
                    }
                }
                let first = chain.first().copied().unwrap_or(proto);
                let h = Ipv6Header {
                    payload_length: (exts.len() + l4.len()) as u16,
                    next_header: IpNumber(first),
                    hop_limit: self.ttl,
                    source: s,
                    destination: d,
                    ..Default::default()
                };
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(&exts);
            }
        }
        out.extend_from_slice(&l4);
        out
    }

    /// The whole Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let ethertype = match self.fam() {
            Fam::V4 => 0x0800,
            Fam::V6 => 0x86dd,
        };
        let mut f = l2(self.src_mac, self.dst_mac, &self.vlans, ethertype);
        f.extend_from_slice(&self.ip());
        f.extend(std::iter::repeat_n(0u8, self.trailer));
        f
    }
}

/// Ethernet header plus VLAN tags, ending with `ethertype`.
pub fn l2(src: [u8; 6], dst: [u8; 6], vlans: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let first = vlans.first().map(|v| v.0).unwrap_or(ethertype);
    let eth = Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: EtherType(first),
    };
    let mut out = eth.to_bytes().to_vec();
    for (i, &(_, vid)) in vlans.iter().enumerate() {
        let next = vlans.get(i + 1).map(|v| v.0).unwrap_or(ethertype);
        let tag = SingleVlanHeader {
            vlan_id: VlanId::try_new(vid).unwrap(),
            ether_type: EtherType(next),
            ..Default::default()
        };
        out.extend_from_slice(&tag.to_bytes());
    }
    out
}

/// An ARP request from the peer for the host's address (broadcast).
pub fn arp_request() -> Vec<u8> {
    let mut f = l2(PEER_MAC, BROADCAST_MAC, &[], 0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&PEER4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&HOST4.octets());
    f
}

/// A frame of some other ethertype (LLDP-like), addressed to the host.
pub fn other_ethertype(ethertype: u16) -> Vec<u8> {
    let mut f = l2(PEER_MAC, HOST_MAC, &[], ethertype);
    f.extend_from_slice(&[0u8; 46]);
    f
}

/// The offset of the IP header in `frame` (after up to two VLAN tags).
pub fn l3_offset(frame: &[u8]) -> usize {
    let mut off = 12;
    for _ in 0..2 {
        let t = u16::from_be_bytes([frame[off], frame[off + 1]]);
        if t == TPID_8021Q || t == TPID_8021AD {
            off += 4;
        }
    }
    off + 2
}

/// IPv6 solicited-node multicast address of `a` and its MAC.
pub fn solicited_node(a: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = a.octets();
    let ip = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    );
    let mac = [0x33, 0x33, 0xff, o[13], o[14], o[15]];
    (ip, mac)
}
