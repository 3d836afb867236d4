//! One packet builder for every test and the benchmark, layered like
//! Cilium's `bpf/tests/pktgen.h`: a [`Packet`] describes the layers
//! (Ethernet and VLAN tags in [`eth`], IPv4 with options or IPv6 with
//! extension headers and fragments in [`ip`], TCP/UDP/ICMP/ICMPv6 in
//! [`l4`]) and serializes them byte by byte, so that any field can be
//! wrong on purpose: a checksum ([`Csum`]), a length ([`Len`]), the IHL,
//! the TCP data offset, an extension header's length byte. The addresses
//! and MACs are named in [`names`], the checksum lives in [`checksum`].
//!
//! ```
//! use fw_testkit::packet::{Fam, Packet, SYN};
//!
//! // A SYN from the peer to the host's port 22, in VLAN 5.
//! let f = Packet::tcp(Fam::V4, 40000, 22, SYN).vlan(5).frame();
//! assert_eq!(f.len(), 14 + 4 + 20 + 20);
//! ```
pub mod checksum;
pub mod eth;
pub mod ip;
pub mod l4;
pub mod malformed;
pub mod names;

use std::net::IpAddr;

pub use checksum::Csum;
pub use eth::{arp_request, l2, l3_offset, other_ethertype};
pub use ip::{Ext, Len};
pub use l4::{Icmp, Tcp, Udp, L4};
pub use names::*;

/// Where the packet sits in a fragmented datagram, or how it is cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    #[default]
    None,
    /// One fragment at offset 0, more following, carrying all the L4 bytes.
    First { id: u32 },
    /// One fragment at `offset` 8-byte units (> 0) carrying all the L4
    /// bytes; `more`: not the last one.
    Later { id: u32, offset: u16, more: bool },
    /// IPv6: a fragment header with offset 0 and M clear (RFC 6946).
    Atomic { id: u32 },
    /// Pieces of the L4 bytes: (start, end) byte ranges (starts multiples
    /// of 8, ranges may overlap), sent in the order given; the last piece by
    /// offset has M clear unless `more_on_last`.
    Pieces {
        id: u32,
        ranges: Vec<(usize, usize)>,
        more_on_last: bool,
    },
    /// IPv4: the flags and fragment offset field as given (the
    /// identification is `ip_id`, `df` is not added).
    Field(u16),
}

impl Frag {
    /// `n` fragments of equal size (a multiple of 8), sent in `order`
    /// (indexes into the pieces; may repeat or leave out pieces).
    pub fn split(id: u32, total: usize, n: usize, order: &[usize]) -> Frag {
        let size = total.div_ceil(n).next_multiple_of(8);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < total {
            pieces.push((at, (at + size).min(total)));
            at += size;
        }
        Frag::Pieces {
            id,
            ranges: order.iter().map(|&i| pieces[i]).collect(),
            more_on_last: false,
        }
    }
}

/// `n` payload bytes of a fixed pattern (1, 2, ... 251, 1, ...).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

/// One packet: every field of every layer, serialized by [`Packet::frames`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// (TPID, TCI), outermost first.
    pub vlans: Vec<(u16, u16)>,
    /// Replaces the ethertype the IP version implies.
    pub ethertype: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// TOS / traffic class.
    pub tos: u8,
    /// IPv6 flow label (20 bits).
    pub flow: u32,
    pub df: bool,
    pub ip_id: u16,
    /// IPv4 options (padded with EOL to 4 bytes).
    pub v4_opts: Vec<u8>,
    /// IPv6 extension headers before L4 (a fragment header follows them).
    pub exts: Vec<Ext>,
    /// Replaces the IP version nibble.
    pub version: Option<u8>,
    /// Replaces the IPv4 header length (4-byte words).
    pub ihl: Option<u8>,
    /// IPv4 total length / IPv6 payload length.
    pub ip_len: Len,
    pub ip_csum: Csum,
    pub frag: Frag,
    pub l4: L4,
    pub l4_csum: Csum,
    /// Bytes after the IP packet (Ethernet padding).
    pub trailer: Vec<u8>,
}

impl Packet {
    /// A packet from `src` to `dst`: TTL 64, identification 0x4242, DF
    /// clear, checksums right.
    pub fn new(src_mac: [u8; 6], dst_mac: [u8; 6], src: IpAddr, dst: IpAddr, l4: L4) -> Packet {
        Packet {
            src_mac,
            dst_mac,
            vlans: Vec::new(),
            ethertype: None,
            src,
            dst,
            ttl: 64,
            tos: 0,
            flow: 0,
            df: false,
            ip_id: 0x4242,
            v4_opts: Vec::new(),
            exts: Vec::new(),
            version: None,
            ihl: None,
            ip_len: Len::Right,
            ip_csum: Csum::Good,
            frag: Frag::None,
            l4,
            l4_csum: Csum::Good,
            trailer: Vec::new(),
        }
    }

    /// From the peer to the host (named addresses and MACs), DF set.
    pub fn to_host(fam: Fam, l4: L4) -> Packet {
        let mut p = Packet::new(PEER_MAC, HOST_MAC, fam.peer(), fam.host(), l4);
        p.df = true;
        p
    }

    /// TCP from the peer to the host (see [`L4::tcp`]).
    pub fn tcp(fam: Fam, sport: u16, dport: u16, flags: u8) -> Packet {
        Packet::to_host(fam, L4::tcp(sport, dport, flags))
    }

    /// A SYN from the peer's port 40000.
    pub fn syn(fam: Fam, dport: u16) -> Packet {
        Packet::tcp(fam, 40000, dport, SYN)
    }

    /// UDP from the peer with 16 bytes of [`pattern`].
    pub fn udp(fam: Fam, sport: u16, dport: u16) -> Packet {
        Packet::to_host(fam, L4::udp(sport, dport, pattern(16)))
    }

    pub fn icmp(fam: Fam, ty: u8, code: u8, rest: [u8; 4], body: Vec<u8>) -> Packet {
        Packet::to_host(fam, L4::icmp(ty, code, rest, body))
    }

    /// An echo request with identifier `id`, sequence 1, 32 bytes.
    pub fn echo_request(fam: Fam, id: u16) -> Packet {
        let [a, b] = id.to_be_bytes();
        Packet::icmp(fam, fam.echo_request(), 0, [a, b, 0, 1], pattern(32))
    }

    pub fn echo_reply(fam: Fam, id: u16) -> Packet {
        let [a, b] = id.to_be_bytes();
        Packet::icmp(fam, fam.echo_reply(), 0, [a, b, 0, 1], pattern(32))
    }

    /// An ICMP error from `from` to the host quoting `quoted` (its IP packet).
    pub fn icmp_error(
        fam: Fam,
        from: IpAddr,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        quoted: &Packet,
    ) -> Packet {
        Packet::icmp(fam, ty, code, rest, quoted.ip()).from(from)
    }

    pub fn fam(&self) -> Fam {
        Fam::of(self.src)
    }

    pub fn v6(&self) -> bool {
        self.src.is_ipv6()
    }

    pub fn from(mut self, a: impl Into<IpAddr>) -> Packet {
        self.src = a.into();
        self
    }

    pub fn to(mut self, a: impl Into<IpAddr>) -> Packet {
        self.dst = a.into();
        self
    }

    pub fn l2_dst(mut self, m: [u8; 6]) -> Packet {
        self.dst_mac = m;
        self
    }

    /// The same flow in the other direction (addresses, MACs and ports swapped).
    pub fn outbound(mut self) -> Packet {
        std::mem::swap(&mut self.src, &mut self.dst);
        std::mem::swap(&mut self.src_mac, &mut self.dst_mac);
        if let Some((sport, dport)) = self.l4.ports_mut() {
            std::mem::swap(sport, dport);
        }
        self
    }

    /// One 802.1Q tag.
    pub fn vlan(mut self, vid: u16) -> Packet {
        self.vlans = vec![(TPID_8021Q, vid)];
        self
    }

    /// An 802.1ad tag around an 802.1Q one.
    pub fn qinq(mut self, outer: u16, inner: u16) -> Packet {
        self.vlans = vec![(TPID_8021AD, outer), (TPID_8021Q, inner)];
        self
    }

    pub fn v4_options(mut self, opts: &[u8]) -> Packet {
        self.v4_opts = opts.to_vec();
        self
    }

    /// The smallest harmless extension header of each type, in order
    /// (see [`Ext::plain`]).
    pub fn v6_exts(mut self, types: &[u8]) -> Packet {
        self.exts = types.iter().map(|&t| Ext::plain(t)).collect();
        self
    }

    /// A fragment (DF clear).
    pub fn frag(mut self, f: Frag) -> Packet {
        self.frag = f;
        self.df = false;
        self
    }

    /// `n` zero bytes of Ethernet padding.
    pub fn trailer(mut self, n: usize) -> Packet {
        self.trailer = vec![0; n];
        self
    }

    /// `n` bytes of [`pattern`] as the payload (ICMP body, raw bytes).
    pub fn payload(mut self, n: usize) -> Packet {
        match &mut self.l4 {
            L4::Tcp(Tcp { payload, .. }) | L4::Udp(Udp { payload, .. }) => *payload = pattern(n),
            L4::Icmp(Icmp { body, .. }) => *body = pattern(n),
            L4::Raw { bytes, .. } | L4::Summed { bytes, .. } => *bytes = pattern(n),
        }
        self
    }

    pub fn seq_ack(mut self, s: u32, a: u32) -> Packet {
        if let L4::Tcp(t) = &mut self.l4 {
            t.seq = s;
            t.ack = a;
        }
        self
    }

    /// The L4 header and payload, its checksum as `l4_csum` says.
    pub fn l4_bytes(&self) -> Vec<u8> {
        self.l4
            .bytes(&octets(self.src), &octets(self.dst), self.l4_csum)
    }

    /// The Ethernet frames of this packet (one per fragment), in send order.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let l4 = self.l4_bytes();
        let one = |frag| vec![self.build(&l4, frag)];
        match &self.frag {
            Frag::None | Frag::Field(_) => one(None),
            Frag::First { id } => one(Some((*id, 0, true))),
            Frag::Later { id, offset, more } => one(Some((*id, *offset as usize * 8, *more))),
            Frag::Atomic { id } => one(Some((*id, 0, false))),
            Frag::Pieces {
                id,
                ranges,
                more_on_last,
            } => {
                let last_end = ranges.iter().map(|r| r.1).max().unwrap_or(0);
                ranges
                    .iter()
                    .map(|&(a, b)| {
                        let b = b.min(l4.len());
                        let more = b < last_end || *more_on_last;
                        self.build(&l4[a..b], Some((*id, a, more)))
                    })
                    .collect()
            }
        }
    }

    /// The one frame of an unfragmented packet or a single fragment.
    #[track_caller]
    pub fn frame(&self) -> Vec<u8> {
        let mut f = self.frames();
        assert_eq!(f.len(), 1, "a packet cut in pieces has several frames");
        f.remove(0)
    }

    /// The IP packet of [`Packet::frame`] (no L2 header, no trailer).
    #[track_caller]
    pub fn ip(&self) -> Vec<u8> {
        let mut p = self.clone();
        p.vlans.clear();
        p.trailer.clear();
        p.frame().split_off(14)
    }

    /// The whole IP packet as the sender's stack would have sent it
    /// unfragmented (what an ICMP error about it quotes).
    pub fn ip_packet(&self) -> Vec<u8> {
        let mut p = self.clone();
        p.frag = Frag::None;
        p.ip()
    }

    /// One frame carrying `data` (all or a piece of the L4 bytes);
    /// `frag`: (id, byte offset, more fragments).
    fn build(&self, data: &[u8], frag: Option<(u32, usize, bool)>) -> Vec<u8> {
        let v6 = self.v6();
        let mut f = Vec::with_capacity(64 + data.len() + self.trailer.len());
        let implied = if v6 { ETH_IPV6 } else { ETH_IPV4 };
        eth::push_eth(
            &mut f,
            self.src_mac,
            self.dst_mac,
            &self.vlans,
            self.ethertype.unwrap_or(implied),
        );
        if v6 {
            self.push_v6(&mut f, data, frag);
        } else {
            self.push_v4(&mut f, data, frag);
        }
        f.extend_from_slice(data);
        f.extend_from_slice(&self.trailer);
        f
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    /// etherparse reads every built shape back with the fields set and
    /// checksums it computes itself.
    #[test]
    fn built_frames_parse_with_valid_checksums() {
        for fam in Fam::ALL {
            let tcp = Packet::tcp(fam, 40000, 22, SYN | ACK).payload(5).vlan(7);
            let udp = Packet::udp(fam, 53, 40000).outbound();
            let echo = Packet::echo_request(fam, 9);
            for p in [tcp, udp, echo] {
                let f = p.frame();
                let s = SlicedPacket::from_ethernet(&f).unwrap_or_else(|e| panic!("{p:?}: {e}"));
                let (src, dst) = match &s.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        let h = ip.header().to_header();
                        assert_eq!(h.calc_header_checksum(), h.header_checksum);
                        assert_eq!(h.dont_fragment, p.df);
                        (IpAddr::from(h.source), IpAddr::from(h.destination))
                    }
                    Some(NetSlice::Ipv6(ip)) => {
                        let h = ip.header().to_header();
                        (IpAddr::from(h.source), IpAddr::from(h.destination))
                    }
                    None => panic!("no IP in {f:02x?}"),
                };
                assert_eq!((src, dst), (p.src, p.dst));
                let payload = s.transport.as_ref().map(|t| match t {
                    TransportSlice::Tcp(t) => {
                        let h = t.to_header();
                        let want = match (src, dst) {
                            (IpAddr::V4(a), IpAddr::V4(b)) => h
                                .calc_checksum_ipv4_raw(a.octets(), b.octets(), t.payload())
                                .unwrap(),
                            (IpAddr::V6(a), IpAddr::V6(b)) => h
                                .calc_checksum_ipv6_raw(a.octets(), b.octets(), t.payload())
                                .unwrap(),
                            _ => unreachable!(),
                        };
                        assert_eq!(h.checksum, want, "TCP checksum");
                        assert!(h.syn && h.ack && h.acknowledgment_number == 0x5000_0001);
                        t.payload().to_vec()
                    }
                    TransportSlice::Udp(u) => {
                        assert_eq!((u.source_port(), u.destination_port()), (40000, 53));
                        u.payload().to_vec()
                    }
                    TransportSlice::Icmpv4(i) => {
                        assert!(checksum::sum_ok(i.slice()), "ICMP checksum");
                        i.payload().to_vec()
                    }
                    TransportSlice::Icmpv6(i) => {
                        let h = i.header();
                        let (IpAddr::V6(a), IpAddr::V6(b)) = (src, dst) else {
                            unreachable!()
                        };
                        let want = h
                            .icmp_type
                            .calc_checksum(a.octets(), b.octets(), i.payload())
                            .unwrap();
                        assert_eq!(h.checksum, want, "ICMPv6 checksum");
                        i.payload().to_vec()
                    }
                });
                assert!(payload.is_some(), "{p:?}: no L4");
            }
        }
    }

    #[test]
    fn fragment_headers_carry_offset_and_more_flag() {
        let p = Packet::udp(Fam::V6, 1, 2)
            .payload(100)
            .frag(Frag::split(7, 108, 2, &[1, 0]));
        let f = p.frames();
        assert_eq!(f.len(), 2);
        // Sent second piece first: offset 56 bytes (7 units), M clear.
        let fh = &f[0][14 + 40..14 + 48];
        assert_eq!(fh[0], PROTO_UDP);
        assert_eq!(u16::from_be_bytes([fh[2], fh[3]]), 7 << 3);
        assert_eq!(u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]), 7);
        let fh = &f[1][14 + 40..14 + 48];
        assert_eq!(u16::from_be_bytes([fh[2], fh[3]]), 1, "offset 0, M set");
        let v4 = Packet::udp(Fam::V4, 1, 2).frag(Frag::Later {
            id: 0x1234,
            offset: 185,
            more: false,
        });
        let h = &v4.frame()[14..34];
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 0x1234);
        assert_eq!(u16::from_be_bytes([h[6], h[7]]), 185, "DF and MF clear");
    }

    #[test]
    fn spoiled_fields_are_spoiled() {
        let good = Packet::tcp(Fam::V4, 1, 2, SYN);
        let mut bad = good.clone();
        bad.l4_csum = Csum::Bad;
        bad.ip_csum = Csum::Zero;
        bad.ip_len = Len::Delta(-2);
        let (g, b) = (good.frame(), bad.frame());
        let csum = |f: &[u8]| u16::from_be_bytes([f[14 + 20 + 16], f[14 + 20 + 17]]);
        assert_eq!(csum(&b), csum(&g).wrapping_add(1).max(1));
        assert_eq!(b[14 + 10..14 + 12], [0, 0]);
        assert_eq!(u16::from_be_bytes([b[16], b[17]]), 38);
        assert!(checksum::sum_ok(&g[14..34]));
        let mut x = good.clone();
        x.l4_csum = Csum::Xor(0);
        assert_eq!(csum(&x.frame()), csum(&g) ^ 1);
    }

    #[test]
    fn extension_headers_are_padded_to_eight_bytes() {
        let p = Packet::syn(Fam::V6, 22);
        let mut p2 = p.clone();
        p2.exts = vec![
            Ext::hbh(&[5, 2, 0, 0]),
            Ext::routing(0, 0, &[]),
            Ext::dest(&[]),
        ];
        let f = p2.frame();
        assert_eq!(f.len(), p.frame().len() + 24);
        assert_eq!(f[14 + 6], HOP_BY_HOP);
        assert_eq!(&f[54..62], &[ROUTING, 0, 5, 2, 0, 0, 1, 0]);
        assert_eq!(&f[62..70], &[DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&f[70..72], &[PROTO_TCP, 0]);
    }

    #[test]
    fn outbound_swaps_both_ends() {
        let p = Packet::udp(Fam::V4, 53, 40000).outbound();
        assert_eq!((p.src, p.dst), (Fam::V4.host(), Fam::V4.peer()));
        assert_eq!((p.src_mac, p.dst_mac), (HOST_MAC, PEER_MAC));
        let L4::Udp(u) = &p.l4 else { panic!() };
        assert_eq!((u.sport, u.dport), (40000, 53));
    }
}
