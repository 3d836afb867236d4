//! Structured random frames: Ethernet with 0-3 VLAN tags, IPv4 with options
//! or IPv6 with extension-header chains, TCP/UDP/ICMP with random fields,
//! every length and checksum either right or wrong, truncations, trailers.
//!
//! Addresses and ports come from small pools most of the time, so flows
//! repeat across cases and the deep paths (established, related, fragments
//! following their first) are reached; a fully random value now and then.
use proptest::{
    collection::vec,
    prelude::*,
    sample::select,
    strategy::{BoxedStrategy, Just, Strategy},
};

use crate::common::check::{ones_sum, pseudo_sum};

pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const HOST4: [u8; 4] = [192, 0, 2, 1];
pub const PEER4: [u8; 4] = [192, 0, 2, 2];
pub const ROUTER4: [u8; 4] = [198, 51, 100, 1];
pub const HOST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const PEER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const ROUTER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];
/// BPF_PROG_TEST_RUN takes no frame shorter than an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Nor a longer one than a page minus XDP headroom and skb_shared_info
/// (4096 - 256 - 320) unless the program takes multi-buffer frames.
pub const MAX_FRAME: usize = 3520;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMP6: u8 = 58;

/// A checksum field: computed, or computed and then spoiled.
#[derive(Clone, Copy, Debug)]
pub enum Sum {
    Right,
    /// XORed into the right value (never 0).
    Wrong(u16),
    /// 0: "no checksum" for UDP over IPv4, wrong elsewhere.
    Zero,
}

/// A length field: computed, off by a little, or any value.
#[derive(Clone, Copy, Debug)]
pub enum Len {
    Right,
    Delta(i16),
    Value(u16),
}

impl Len {
    fn apply(self, right: usize) -> u16 {
        match self {
            Len::Right => right as u16,
            Len::Delta(d) => (right as i64 + d as i64).clamp(0, 0xffff) as u16,
            Len::Value(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        /// Option bytes, padded to a multiple of 4 (at most 40).
        options: Vec<u8>,
        /// Data offset in words; `None`: right.
        doff: Option<u8>,
        payload: Vec<u8>,
        sum: Sum,
    },
    Udp {
        sport: u16,
        dport: u16,
        len: Len,
        payload: Vec<u8>,
        sum: Sum,
    },
    /// ICMP or ICMPv6 after the address family.
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        /// Arbitrary bytes, or (for errors) a quoted IP packet.
        body: Vec<u8>,
        sum: Sum,
    },
    /// Another protocol, bytes as they are.
    Raw { proto: u8, bytes: Vec<u8> },
}

#[derive(Clone, Debug)]
pub struct V4 {
    pub tos: u8,
    pub id: u16,
    /// Flags and fragment offset as on the wire.
    pub frag: u16,
    pub ttl: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub options: Vec<u8>,
    /// IHL in words; `None`: right.
    pub ihl: Option<u8>,
    pub total_len: Len,
    pub sum: Sum,
    pub l4: L4,
}

/// One IPv6 extension header: hop-by-hop (0), routing (43), fragment (44),
/// destination options (60) or authentication (51).
#[derive(Clone, Debug)]
pub struct Ext {
    pub kind: u8,
    /// The header's length field (units after the kind's rules).
    pub len: u8,
    /// Fill bytes; cut or repeated to the declared length unless `short`.
    pub body: Vec<u8>,
    /// Emit only `body` as it is (a header shorter than it claims).
    pub short: bool,
    /// Fragment header: offset (13 bits), M flag, identification.
    pub frag: (u16, bool, u32),
}

#[derive(Clone, Debug)]
pub struct V6 {
    pub tc_flow: u32,
    pub hop: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub exts: Vec<Ext>,
    pub payload_len: Len,
    pub l4: L4,
}

#[derive(Clone, Debug)]
pub enum Net {
    V4(V4),
    V6(V6),
    /// Some other ethertype (ARP, LLDP, ...) or garbage.
    Other {
        ethertype: u16,
        body: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// (TPID, TCI), outermost first.
    pub tags: Vec<(u16, u16)>,
    /// Replaces the ethertype the network layer implies.
    pub ethertype: Option<u16>,
    pub net: Net,
    pub trailer: Vec<u8>,
    /// Cut the frame to this many bytes (at least [`MIN_FRAME`]).
    pub cut: Option<u16>,
}

/// One step of a case: a frame the host sends (fw_egress) or receives (fw_ingress).
#[derive(Clone, Debug)]
pub enum Step {
    Egress(Vec<u8>),
    Ingress(Vec<u8>),
}

// ---- serialization ----

fn finish(sum: u16, how: Sum) -> [u8; 2] {
    let right = !sum;
    match how {
        Sum::Right => right.to_be_bytes(),
        Sum::Wrong(x) => (right ^ x.max(1)).to_be_bytes(),
        Sum::Zero => [0, 0],
    }
}

fn pad4(b: &[u8], max: usize) -> Vec<u8> {
    let mut v = b[..b.len().min(max)].to_vec();
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

impl L4 {
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => TCP,
            L4::Udp { .. } => UDP,
            L4::Icmp { .. } => {
                if v6 {
                    ICMP6
                } else {
                    ICMP
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }

    /// The L4 bytes, checksums over the pseudo-header of `src`/`dst`.
    pub fn bytes(&self, src: &[u8], dst: &[u8]) -> Vec<u8> {
        let v6 = src.len() == 16;
        let proto = self.proto(v6);
        match self {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options,
                doff,
                payload,
                sum,
            } => {
                let opts = pad4(options, 40);
                let doff = doff.unwrap_or(((20 + opts.len()) / 4) as u8);
                let mut t = Vec::with_capacity(20 + opts.len() + payload.len());
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.push(doff << 4);
                t.push(*flags);
                t.extend_from_slice(&window.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]);
                t.extend_from_slice(&opts);
                t.extend_from_slice(payload);
                let s = ones_sum(&t, pseudo_sum(src, dst, proto, t.len()));
                t[16..18].copy_from_slice(&finish(s, *sum));
                t
            }
            L4::Udp {
                sport,
                dport,
                len,
                payload,
                sum,
            } => {
                let mut u = Vec::with_capacity(8 + payload.len());
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&len.apply(8 + payload.len()).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u.extend_from_slice(payload);
                let s = ones_sum(&u, pseudo_sum(src, dst, proto, u.len()));
                let mut c = finish(s, *sum);
                if matches!(sum, Sum::Right) && c == [0, 0] {
                    c = [0xff, 0xff];
                }
                u[6..8].copy_from_slice(&c);
                u
            }
            L4::Icmp {
                ty,
                code,
                rest,
                body,
                sum,
            } => {
                let mut m = vec![*ty, *code, 0, 0];
                m.extend_from_slice(rest);
                m.extend_from_slice(body);
                let init = if v6 {
                    pseudo_sum(src, dst, proto, m.len())
                } else {
                    0
                };
                let s = ones_sum(&m, init);
                m[2..4].copy_from_slice(&finish(s, *sum));
                m
            }
            L4::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

fn ext_bytes(e: &Ext, next: u8) -> Vec<u8> {
    let size = match e.kind {
        44 => 8,
        51 => (e.len as usize + 2) * 4,
        _ => (e.len as usize + 1) * 8,
    };
    let mut h = vec![next, e.len];
    if e.kind == 44 {
        let (off, more, id) = e.frag;
        h[1] = 0;
        h.extend_from_slice(&(((off & 0x1fff) << 3) | more as u16).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        return h;
    }
    if e.short {
        h.extend_from_slice(&e.body);
        return h;
    }
    let fill = if e.body.is_empty() {
        vec![0u8]
    } else {
        e.body.clone()
    };
    while h.len() < size {
        h.push(fill[h.len() % fill.len()]);
    }
    h
}

impl V4 {
    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4.bytes(&self.src, &self.dst);
        let opts = pad4(&self.options, 40);
        let hlen = 20 + opts.len();
        let mut h = Vec::with_capacity(hlen + l4.len());
        h.push(0x40 | self.ihl.unwrap_or((hlen / 4) as u8) & 0x0f);
        h.push(self.tos);
        h.extend_from_slice(&self.total_len.apply(hlen + l4.len()).to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&self.frag.to_be_bytes());
        h.push(self.ttl);
        h.push(self.l4.proto(false));
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&opts);
        let s = ones_sum(&h, 0);
        h[10..12].copy_from_slice(&finish(s, self.sum));
        h.extend_from_slice(&l4);
        h
    }
}

impl V6 {
    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4.bytes(&self.src, &self.dst);
        let proto = self.l4.proto(true);
        let mut exts = Vec::new();
        for (i, e) in self.exts.iter().enumerate() {
            let next = self.exts.get(i + 1).map(|n| n.kind).unwrap_or(proto);
            exts.extend_from_slice(&ext_bytes(e, next));
        }
        let first = self.exts.first().map(|e| e.kind).unwrap_or(proto);
        let mut h = Vec::with_capacity(40 + exts.len() + l4.len());
        h.extend_from_slice(&((6u32 << 28) | (self.tc_flow & 0x0fff_ffff)).to_be_bytes());
        h.extend_from_slice(&self.payload_len.apply(exts.len() + l4.len()).to_be_bytes());
        h.push(first);
        h.push(self.hop);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&exts);
        h.extend_from_slice(&l4);
        h
    }
}

impl Frame {
    pub fn bytes(&self) -> Vec<u8> {
        let (ethertype, body) = match &self.net {
            Net::V4(v) => (0x0800, v.bytes()),
            Net::V6(v) => (0x86dd, v.bytes()),
            Net::Other { ethertype, body } => (*ethertype, body.clone()),
        };
        let ethertype = self.ethertype.unwrap_or(ethertype);
        let mut f = Vec::with_capacity(18 + 4 * self.tags.len() + body.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        // On the wire each tag's TPID sits where the ethertype would.
        for &(tpid, tci) in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&body);
        f.extend_from_slice(&self.trailer);
        clamp_len(&mut f, self.cut.map(usize::from));
        f
    }
}

/// Cuts `f` to `cut` (or the largest size BPF_PROG_TEST_RUN takes) and pads
/// it to the smallest.
pub fn clamp_len(f: &mut Vec<u8>, cut: Option<usize>) {
    let max = cut.unwrap_or(MAX_FRAME).min(MAX_FRAME);
    f.truncate(max.max(MIN_FRAME));
    f.resize(f.len().max(MIN_FRAME), 0);
}

// ---- strategies ----

fn sum() -> impl Strategy<Value = Sum> {
    prop_oneof![
        12 => Just(Sum::Right),
        1 => any::<u16>().prop_map(Sum::Wrong),
        1 => Just(Sum::Zero),
    ]
}

fn len() -> impl Strategy<Value = Len> {
    prop_oneof![
        14 => Just(Len::Right),
        1 => (-16i16..=16).prop_map(Len::Delta),
        1 => any::<u16>().prop_map(Len::Value),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..=max.min(32)),
        1 => vec(any::<u8>(), 0..=max),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        // 67 and 68: DHCP, whose server -> client direction passes as `dhcp`.
        6 => select(vec![22u16, 80, 53, 67, 68, 443, 2222, 8000, 8100, 8101, 40000, 40001, 40002]),
        1 => 7990u16..=8110,
        1 => any::<u16>(),
    ]
}

fn tcp_flags() -> impl Strategy<Value = u8> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    prop_oneof![
        4 => select(vec![SYN, SYN | ACK, ACK, ACK | 0x08, 0x01 | ACK, 0x04, 0x04 | ACK, 0x01, 0]),
        1 => any::<u8>(),
    ]
}

fn tcp() -> impl Strategy<Value = L4> {
    (
        (port(), port(), any::<u32>(), any::<u32>(), tcp_flags()),
        any::<u16>(),
        prop_oneof![4 => Just(vec![]), 1 => bytes(40)],
        prop_oneof![12 => Just(None), 1 => (0u8..16).prop_map(Some)],
        bytes(1400),
        sum(),
    )
        .prop_map(
            |((sport, dport, seq, ack, flags), window, options, doff, payload, sum)| L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options,
                doff,
                payload,
                sum,
            },
        )
}

fn udp() -> impl Strategy<Value = L4> {
    (port(), port(), len(), bytes(1400), sum()).prop_map(|(sport, dport, len, payload, sum)| {
        L4::Udp {
            sport,
            dport,
            len,
            payload,
            sum,
        }
    })
}

fn icmp_type(v6: bool) -> BoxedStrategy<u8> {
    if v6 {
        prop_oneof![
            6 => select(vec![128u8, 129, 1, 2, 3, 4, 133, 134, 135, 136, 137, 130, 143]),
            1 => any::<u8>(),
        ]
        .boxed()
    } else {
        prop_oneof![
            6 => select(vec![8u8, 0, 3, 11, 12, 4, 5, 9, 10, 13, 14, 17]),
            1 => any::<u8>(),
        ]
        .boxed()
    }
}

/// An IP packet the host sent, to quote in an ICMP error (the host is the
/// source; TCP/UDP/echo request on pooled ports, so conntrack may know it).
fn quoted(v6: bool) -> BoxedStrategy<Vec<u8>> {
    let l4 = prop_oneof![
        2 => tcp(),
        2 => udp(),
        1 => (any::<u16>(), bytes(16)).prop_map(move |(id, body)| {
            let [a, b] = id.to_be_bytes();
            L4::Icmp {
                ty: if v6 { 128 } else { 8 },
                code: 0,
                rest: [a, b, 0, 1],
                body,
                sum: Sum::Right,
            }
        }),
    ];
    // How much of it is quoted: all, or the IP header + 8 bytes of L4 (RFC 792).
    let keep =
        prop_oneof![2 => Just(None), 2 => Just(Some(8usize)), 1 => (0usize..64).prop_map(Some)];
    (l4, keep, any::<bool>())
        .prop_map(move |(l4, keep, peer_first)| {
            let mut ip = if v6 {
                let (s, d) = if peer_first {
                    (PEER6, HOST6)
                } else {
                    (HOST6, PEER6)
                };
                V6 {
                    tc_flow: 0,
                    hop: 64,
                    src: s,
                    dst: d,
                    exts: vec![],
                    payload_len: Len::Right,
                    l4,
                }
                .bytes()
            } else {
                let (s, d) = if peer_first {
                    (PEER4, HOST4)
                } else {
                    (HOST4, PEER4)
                };
                V4 {
                    tos: 0,
                    id: 1,
                    frag: 0x4000,
                    ttl: 64,
                    src: s,
                    dst: d,
                    options: vec![],
                    ihl: None,
                    total_len: Len::Right,
                    sum: Sum::Right,
                    l4,
                }
                .bytes()
            };
            if let Some(k) = keep {
                ip.truncate(if v6 { 40 } else { 20 } + k);
            }
            ip
        })
        .boxed()
}

fn icmp(v6: bool) -> impl Strategy<Value = L4> {
    (
        icmp_type(v6),
        prop_oneof![4 => 0u8..=4, 1 => any::<u8>()],
        prop_oneof![2 => any::<[u8; 4]>(), 1 => select(vec![[0u8, 1, 0, 1], [0, 2, 0, 1], [0, 0, 5, 0xdc]])],
        prop_oneof![1 => bytes(64), 2 => quoted(v6)],
        sum(),
    )
        .prop_map(|(ty, code, rest, body, sum)| L4::Icmp {
            ty,
            code,
            rest,
            body,
            sum,
        })
}

fn raw() -> impl Strategy<Value = L4> {
    (
        prop_oneof![
            select(vec![0u8, 2, 4, 41, 47, 50, 51, 132, 253, 255]),
            any::<u8>()
        ],
        bytes(64),
    )
        .prop_map(|(proto, bytes)| L4::Raw { proto, bytes })
}

fn l4(v6: bool) -> BoxedStrategy<L4> {
    prop_oneof![5 => tcp(), 3 => udp(), 3 => icmp(v6), 1 => raw()].boxed()
}

fn v4_addr() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        1 => any::<u8>().prop_map(|b| [192, 0, 2, b]),
        1 => select(vec![
            [127, 0, 0, 1],
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [224, 0, 0, 1],
            [239, 255, 255, 250],
            [192, 0, 2, 255],
            [0, 1, 2, 3],
        ]),
        1 => any::<[u8; 4]>(),
    ]
}

fn v4_pair() -> impl Strategy<Value = ([u8; 4], [u8; 4])> {
    prop_oneof![
        8 => Just((PEER4, HOST4)),
        3 => Just((HOST4, PEER4)),
        2 => Just((ROUTER4, HOST4)),
        2 => (v4_addr(), v4_addr()),
        1 => (v4_addr(), Just(HOST4)),
    ]
}

fn v6_addr() -> impl Strategy<Value = [u8; 16]> {
    let mut special = Vec::new();
    let mut a = [0u8; 16];
    a[15] = 1;
    special.push(a); // ::1
    special.push([0u8; 16]); // ::
    let mut a = [0u8; 16];
    a[0] = 0xff;
    a[1] = 0x02;
    a[15] = 1;
    special.push(a); // ff02::1
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[15] = 1;
    special.push(a); // fe80::1
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&PEER4);
    special.push(a); // ::ffff:192.0.2.2
    prop_oneof![
        1 => any::<u8>().prop_map(|b| {
            let mut a = HOST6;
            a[15] = b;
            a
        }),
        1 => select(special),
        1 => any::<[u8; 16]>(),
    ]
}

fn v6_pair() -> impl Strategy<Value = ([u8; 16], [u8; 16])> {
    prop_oneof![
        8 => Just((PEER6, HOST6)),
        3 => Just((HOST6, PEER6)),
        2 => Just((ROUTER6, HOST6)),
        2 => (v6_addr(), v6_addr()),
        1 => (v6_addr(), Just(HOST6)),
    ]
}

fn v4_frag() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(0u16),
        4 => Just(0x4000u16),
        2 => Just(0x2000u16),
        2 => (1u16..=0x1fff, any::<bool>()).prop_map(|(o, more)| o | (more as u16) << 13),
        1 => (1u16..=8, any::<bool>()).prop_map(|(o, more)| o | (more as u16) << 13),
        1 => any::<u16>(),
    ]
}

fn v4() -> impl Strategy<Value = V4> {
    (
        (any::<u8>(), prop_oneof![Just(0x4242u16), any::<u16>()], v4_frag(), any::<u8>()),
        v4_pair(),
        prop_oneof![6 => Just(vec![]), 1 => select(vec![vec![1u8, 1, 1, 0], vec![0x94, 4, 0, 0]]), 1 => bytes(40)],
        prop_oneof![14 => Just(None), 1 => (0u8..16).prop_map(Some)],
        len(),
        sum(),
        l4(false),
    )
        .prop_map(
            |((tos, id, frag, ttl), (src, dst), options, ihl, total_len, sum, l4)| V4 {
                tos,
                id,
                frag,
                ttl,
                src,
                dst,
                options,
                ihl,
                total_len,
                sum,
                l4,
            },
        )
}

fn ext() -> impl Strategy<Value = Ext> {
    (
        prop_oneof![3 => Just(0u8), 2 => Just(60u8), 2 => Just(43u8), 2 => Just(44u8), 1 => Just(51u8)],
        prop_oneof![8 => 0u8..=2, 1 => any::<u8>()],
        vec(any::<u8>(), 0..=16),
        prop_oneof![20 => Just(false), 1 => Just(true)],
        (
            prop_oneof![3 => Just(0u16), 2 => 1u16..=0x1fff],
            any::<bool>(),
            prop_oneof![Just(7u32), any::<u32>()],
        ),
    )
        .prop_map(|(kind, len, body, short, frag)| Ext {
            kind,
            len,
            body,
            short,
            frag,
        })
}

fn v6() -> impl Strategy<Value = V6> {
    (
        prop_oneof![Just(0u32), any::<u32>()],
        any::<u8>(),
        v6_pair(),
        prop_oneof![6 => vec(ext(), 0..=0), 4 => vec(ext(), 1..=3), 1 => vec(ext(), 4..=8)],
        len(),
        l4(true),
    )
        .prop_map(|(tc_flow, hop, (src, dst), exts, payload_len, l4)| V6 {
            tc_flow,
            hop,
            src,
            dst,
            exts,
            payload_len,
            l4,
        })
}

fn net() -> impl Strategy<Value = Net> {
    prop_oneof![
        8 => v4().prop_map(Net::V4),
        8 => v6().prop_map(Net::V6),
        1 => (
            prop_oneof![select(vec![0x0806u16, 0x88cc, 0x8100, 0x88a8, 0x0800, 0x86dd]), any::<u16>()],
            bytes(64),
        )
            .prop_map(|(ethertype, body)| Net::Other { ethertype, body }),
    ]
}

fn mac() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        12 => Just(HOST_MAC),
        1 => Just([0xff; 6]),
        1 => Just([0x01, 0, 0x5e, 0, 0, 1]),
        1 => Just([0x33, 0x33, 0, 0, 0, 1]),
        1 => any::<[u8; 6]>(),
    ]
}

fn tags() -> impl Strategy<Value = Vec<(u16, u16)>> {
    // TCI: a priority tag (VLAN id 0, the only kind fw answers), or any.
    let tag = (
        prop_oneof![3 => Just(0x8100u16), 2 => Just(0x88a8u16), 1 => Just(0x9100u16)],
        prop_oneof![1 => (0u16..8).prop_map(|pcp| pcp << 13), 1 => any::<u16>()],
    );
    prop_oneof![10 => Just(vec![]), 2 => vec(tag.clone(), 1..=2), 1 => vec(tag, 3..=3)]
}

/// A random frame, mostly well-formed, with any field possibly wrong.
pub fn frame() -> impl Strategy<Value = Vec<u8>> {
    (
        mac(),
        prop_oneof![4 => Just(PEER_MAC), 1 => any::<[u8; 6]>()],
        tags(),
        prop_oneof![30 => Just(None), 1 => any::<u16>().prop_map(Some)],
        net(),
        prop_oneof![10 => Just(vec![]), 1 => bytes(64)],
        prop_oneof![10 => Just(None), 1 => any::<u16>().prop_map(|c| Some(c % 200)), 1 => any::<u16>().prop_map(Some)],
    )
        .prop_map(|(dst_mac, src_mac, tags, ethertype, net, trailer, cut)| {
            Frame {
                dst_mac,
                src_mac,
                tags,
                ethertype,
                net,
                trailer,
                cut,
            }
            .bytes()
        })
}

/// A case: 1-4 frames, each sent by the host (egress) or to it (ingress).
pub fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        1 => frame().prop_map(Step::Egress),
        3 => frame().prop_map(Step::Ingress),
    ];
    vec(step, 1..=4)
}
