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

use crate::packet::{self as pk, Csum, Ext, Len, Packet, Tcp, Udp, L4, PEER_MAC};

const HOST_MAC: [u8; 6] = pk::HOST_MAC;
const HOST4: [u8; 4] = pk::HOST4.octets();
const PEER4: [u8; 4] = pk::PEER4.octets();
const ROUTER4: [u8; 4] = pk::ROUTER4.octets();
const HOST6: [u8; 16] = pk::HOST6.octets();
const PEER6: [u8; 16] = pk::PEER6.octets();
const ROUTER6: [u8; 16] = pk::ROUTER6.octets();
/// BPF_PROG_TEST_RUN takes no frame shorter than an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Nor a longer one than a page minus XDP headroom and skb_shared_info
/// (4096 - 256 - 320) unless the program takes multi-buffer frames.
pub const MAX_FRAME: usize = 3520;

/// Layer 4 and how its checksum is filled.
type Layer4 = (L4, Csum);

/// The network layer of a frame.
#[derive(Clone, Debug)]
enum Net {
    Ip(Box<Packet>),
    /// Some other ethertype (ARP, LLDP, ...) or garbage.
    Other {
        ethertype: u16,
        body: Vec<u8>,
    },
}

/// One step of a case: a frame the host sends (fw_egress) or receives (fw_ingress).
#[derive(Clone, Debug)]
pub enum Step {
    Egress(Vec<u8>),
    Ingress(Vec<u8>),
}

/// An IPv4 packet from `src` to `dst` (MACs set by the frame).
#[allow(clippy::too_many_arguments)]
fn v4_packet(
    (tos, id, frag, ttl): (u8, u16, u16, u8),
    (src, dst): ([u8; 4], [u8; 4]),
    options: Vec<u8>,
    ihl: Option<u8>,
    total_len: Len,
    sum: Csum,
    (l4, l4_csum): Layer4,
) -> Packet {
    let mut p = Packet::new(PEER_MAC, HOST_MAC, src.into(), dst.into(), l4);
    p.tos = tos;
    p.ip_id = id;
    p.frag = pk::Frag::Field(frag);
    p.ttl = ttl;
    p.v4_opts = options;
    p.ihl = ihl;
    p.ip_len = total_len;
    p.ip_csum = sum;
    p.l4_csum = l4_csum;
    p
}

/// An IPv6 packet; `tc_flow`: traffic class and flow label as in the
/// header's first word.
fn v6_packet(
    tc_flow: u32,
    hop: u8,
    (src, dst): ([u8; 16], [u8; 16]),
    exts: Vec<Ext>,
    payload_len: Len,
    (l4, l4_csum): Layer4,
) -> Packet {
    let mut p = Packet::new(PEER_MAC, HOST_MAC, src.into(), dst.into(), l4);
    p.tos = (tc_flow >> 20) as u8;
    p.flow = tc_flow & 0xf_ffff;
    p.ttl = hop;
    p.exts = exts;
    p.ip_len = payload_len;
    p.l4_csum = l4_csum;
    p
}

/// Cuts `f` to `cut` (or the largest size BPF_PROG_TEST_RUN takes) and pads
/// it to the smallest.
pub fn clamp_len(f: &mut Vec<u8>, cut: Option<usize>) {
    let max = cut.unwrap_or(MAX_FRAME).min(MAX_FRAME);
    f.truncate(max.max(MIN_FRAME));
    f.resize(f.len().max(MIN_FRAME), 0);
}

// ---- strategies ----

/// A checksum field: right, or spoiled (0 is "no checksum" for UDP over
/// IPv4, wrong elsewhere).
fn sum() -> impl Strategy<Value = Csum> {
    prop_oneof![
        12 => Just(Csum::Good),
        1 => any::<u16>().prop_map(Csum::Xor),
        1 => Just(Csum::Zero),
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

fn tcp() -> impl Strategy<Value = Layer4> {
    (
        (port(), port(), any::<u32>(), any::<u32>(), tcp_flags()),
        any::<u16>(),
        prop_oneof![4 => Just(vec![]), 1 => bytes(40)],
        prop_oneof![12 => Just(None), 1 => (0u8..16).prop_map(Some)],
        bytes(1400),
        sum(),
    )
        .prop_map(
            |((sport, dport, seq, ack, flags), window, options, doff, payload, sum)| {
                let t = Tcp {
                    sport,
                    dport,
                    seq,
                    ack,
                    flags,
                    window,
                    options,
                    doff,
                    payload,
                };
                (L4::Tcp(t), sum)
            },
        )
}

fn udp() -> impl Strategy<Value = Layer4> {
    (port(), port(), len(), bytes(1400), sum()).prop_map(|(sport, dport, len, payload, sum)| {
        let u = Udp {
            sport,
            dport,
            len,
            payload,
        };
        (L4::Udp(u), sum)
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
            let ty = if v6 { 128 } else { 8 };
            (L4::icmp(ty, 0, [a, b, 0, 1], body), Csum::Good)
        }),
    ];
    // How much of it is quoted: all, or the IP header + 8 bytes of L4 (RFC 792).
    let keep =
        prop_oneof![2 => Just(None), 2 => Just(Some(8usize)), 1 => (0usize..64).prop_map(Some)];
    (l4, keep, any::<bool>())
        .prop_map(move |(l4, keep, peer_first)| {
            let mut ip = if v6 {
                let ends = if peer_first {
                    (PEER6, HOST6)
                } else {
                    (HOST6, PEER6)
                };
                v6_packet(0, 64, ends, vec![], Len::Right, l4).ip()
            } else {
                let ends = if peer_first {
                    (PEER4, HOST4)
                } else {
                    (HOST4, PEER4)
                };
                let fields = (0, 1, 0x4000, 64);
                v4_packet(fields, ends, vec![], None, Len::Right, Csum::Good, l4).ip()
            };
            if let Some(k) = keep {
                ip.truncate(if v6 { 40 } else { 20 } + k);
            }
            ip
        })
        .boxed()
}

fn icmp(v6: bool) -> impl Strategy<Value = Layer4> {
    (
        icmp_type(v6),
        prop_oneof![4 => 0u8..=4, 1 => any::<u8>()],
        prop_oneof![2 => any::<[u8; 4]>(), 1 => select(vec![[0u8, 1, 0, 1], [0, 2, 0, 1], [0, 0, 5, 0xdc]])],
        prop_oneof![1 => bytes(64), 2 => quoted(v6)],
        sum(),
    )
        .prop_map(|(ty, code, rest, body, sum)| (L4::icmp(ty, code, rest, body), sum))
}

fn raw() -> impl Strategy<Value = Layer4> {
    (
        prop_oneof![
            select(vec![0u8, 2, 4, 41, 47, 50, 51, 132, 253, 255]),
            any::<u8>()
        ],
        bytes(64),
    )
        .prop_map(|(proto, bytes)| (L4::Raw { proto, bytes }, Csum::Good))
}

fn l4(v6: bool) -> BoxedStrategy<Layer4> {
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

fn v4() -> impl Strategy<Value = Packet> {
    (
        (any::<u8>(), prop_oneof![Just(0x4242u16), any::<u16>()], v4_frag(), any::<u8>()),
        v4_pair(),
        prop_oneof![6 => Just(vec![]), 1 => select(vec![vec![1u8, 1, 1, 0], vec![0x94, 4, 0, 0]]), 1 => bytes(40)],
        prop_oneof![14 => Just(None), 1 => (0u8..16).prop_map(Some)],
        len(),
        sum(),
        l4(false),
    )
        .prop_map(|(fields, ends, options, ihl, total_len, sum, l4)| {
            v4_packet(fields, ends, options, ihl, total_len, sum, l4)
        })
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
        .prop_map(|(kind, len, body, short, frag)| ext_header(kind, len, body, short, frag))
}

/// Extension header `kind` with length byte `len`: a fragment header
/// (offset, M flag, identification), or `body` as it is when `short` (a
/// header shorter than it claims), or `body` repeated to the length `len`
/// declares.
fn ext_header(kind: u8, len: u8, body: Vec<u8>, short: bool, frag: (u16, bool, u32)) -> Ext {
    let body = if kind == pk::FRAGMENT {
        let (off, more, id) = frag;
        let mut b = (((off & 0x1fff) << 3) | more as u16).to_be_bytes().to_vec();
        b.extend_from_slice(&id.to_be_bytes());
        return Ext {
            ty: kind,
            body: b,
            len: Some(0),
        };
    } else if short {
        body
    } else {
        let size = match kind {
            pk::AUTH => (len as usize + 2) * 4,
            _ => (len as usize + 1) * 8,
        };
        let fill = if body.is_empty() { vec![0u8] } else { body };
        (2..size).map(|i| fill[i % fill.len()]).collect()
    };
    Ext {
        ty: kind,
        body,
        len: Some(len),
    }
}

fn v6() -> impl Strategy<Value = Packet> {
    (
        prop_oneof![Just(0u32), any::<u32>()],
        any::<u8>(),
        v6_pair(),
        prop_oneof![6 => vec(ext(), 0..=0), 4 => vec(ext(), 1..=3), 1 => vec(ext(), 4..=8)],
        len(),
        l4(true),
    )
        .prop_map(|(tc_flow, hop, ends, exts, payload_len, l4)| {
            v6_packet(tc_flow, hop, ends, exts, payload_len, l4)
        })
}

fn net() -> impl Strategy<Value = Net> {
    prop_oneof![
        8 => v4().prop_map(|p| Net::Ip(Box::new(p))),
        8 => v6().prop_map(|p| Net::Ip(Box::new(p))),
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
            let mut f = match net {
                Net::Ip(mut p) => {
                    p.dst_mac = dst_mac;
                    p.src_mac = src_mac;
                    p.vlans = tags;
                    p.ethertype = ethertype;
                    p.trailer = trailer;
                    p.frame()
                }
                Net::Other { ethertype: et, body } => {
                    let mut f = pk::l2(src_mac, dst_mac, &tags, ethertype.unwrap_or(et));
                    f.extend_from_slice(&body);
                    f.extend_from_slice(&trailer);
                    f
                }
            };
            clamp_len(&mut f, cut.map(usize::from));
            f
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
