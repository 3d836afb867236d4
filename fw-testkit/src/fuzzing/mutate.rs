//! Byte-level mutations of valid frames: bit flips, interesting values in
//! single bytes and 16-bit fields, insertions, deletions, duplications,
//! truncation. Mostly aimed at the headers (the first 96 bytes).
use proptest::{collection::vec, prelude::*, sample::Index};

use super::gen::{self, clamp_len};
use crate::packet::*;

#[derive(Clone, Debug)]
pub enum Mutation {
    FlipBit(u8),
    SetByte(u8),
    Set16(u16),
    Insert(Vec<u8>),
    Delete(u8),
    Duplicate(u8),
    Truncate,
}

/// Where a mutation lands: in the headers, or anywhere.
#[derive(Clone, Debug)]
pub struct At {
    head: bool,
    i: Index,
}

impl At {
    fn pos(&self, len: usize) -> usize {
        let span = if self.head { len.min(96) } else { len };
        self.i.index(span.max(1))
    }
}

fn interesting8() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => proptest::sample::select(vec![0u8, 1, 4, 5, 6, 0x0f, 0x10, 0x40, 0x45, 0x46, 0x4f, 0x60, 0x7f, 0x80, 0xfe, 0xff]),
        1 => any::<u8>(),
    ]
}

fn interesting16() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => proptest::sample::select(vec![0u16, 1, 0x0800, 0x86dd, 0x8100, 0x88a8, 0x7fff, 0x8000, 0xfffe, 0xffff, 20, 28, 40, 1500, 2000]),
        1 => any::<u16>(),
    ]
}

fn at() -> impl Strategy<Value = At> {
    (
        prop_oneof![3 => Just(true), 1 => Just(false)],
        any::<Index>(),
    )
        .prop_map(|(head, i)| At { head, i })
}

fn mutation() -> impl Strategy<Value = (At, Mutation)> {
    let m = prop_oneof![
        4 => (0u8..8).prop_map(Mutation::FlipBit),
        4 => interesting8().prop_map(Mutation::SetByte),
        3 => interesting16().prop_map(Mutation::Set16),
        1 => vec(any::<u8>(), 1..=16).prop_map(Mutation::Insert),
        1 => (1u8..=32).prop_map(Mutation::Delete),
        1 => (1u8..=32).prop_map(Mutation::Duplicate),
        1 => Just(Mutation::Truncate),
    ];
    (at(), m)
}

/// Applies `m` to `f` at the position `at` picks.
pub fn apply(f: &mut Vec<u8>, at: &At, m: &Mutation) {
    if f.is_empty() {
        return;
    }
    let p = at.pos(f.len());
    match m {
        Mutation::FlipBit(b) => f[p] ^= 1 << b,
        Mutation::SetByte(v) => f[p] = *v,
        Mutation::Set16(v) => {
            let p = p.min(f.len().saturating_sub(2));
            let n = f.len().min(p + 2);
            f[p..n].copy_from_slice(&v.to_be_bytes()[..n - p]);
        }
        Mutation::Insert(b) => {
            let tail = f.split_off(p);
            f.extend_from_slice(b);
            f.extend_from_slice(&tail);
        }
        Mutation::Delete(n) => {
            let end = f.len().min(p + *n as usize);
            f.drain(p..end);
        }
        Mutation::Duplicate(n) => {
            let end = f.len().min(p + *n as usize);
            let copy = f[p..end].to_vec();
            let tail = f.split_off(end);
            f.extend_from_slice(&copy);
            f.extend_from_slice(&tail);
        }
        Mutation::Truncate => f.truncate(p),
    }
}

/// Valid frames of every shape fw parses, built by the verdict tests' builder.
pub fn corpus() -> Vec<Vec<u8>> {
    let mut out = vec![
        arp_request(PEER_MAC, PEER4, HOST4),
        other_ethertype(PEER_MAC, HOST_MAC, 0x88cc),
    ];
    for fam in Fam::ALL {
        let syn_out = Packet::syn(fam, 443).outbound();
        let udp_out = Packet::udp(fam, 40000, 53).outbound();
        let pkts = [
            Packet::syn(fam, 22),
            Packet::syn(fam, 23),
            Packet::tcp(fam, 40000, 80, ACK | PSH).payload(64),
            Packet::udp(fam, 40000, 80),
            Packet::udp(fam, 40000, 81),
            Packet::echo_request(fam, 7),
            Packet::echo_reply(fam, 7),
            Packet::icmp_error(fam, fam.router(), fam.unreach(), 4, [0; 4], &syn_out),
            Packet::icmp_error(fam, fam.router(), fam.unreach(), 3, [0; 4], &udp_out),
            Packet::syn(fam, 22).vlan(5),
            Packet::syn(fam, 23).qinq(10, 20),
            Packet::udp(fam, 40000, 81)
                .frag(Frag::First { id: 9 })
                .payload(200),
            Packet::udp(fam, 40000, 81)
                .frag(Frag::Later {
                    id: 9,
                    offset: 26,
                    more: false,
                })
                .payload(200),
            Packet::syn(fam, 23).trailer(10),
        ];
        out.extend(pkts.iter().map(Packet::frame));
    }
    out.push(Packet::syn(Fam::V4, 23).v4_options(&[1, 1, 1, 0]).frame());
    out.push(
        Packet::syn(Fam::V6, 23)
            .v6_exts(&[HOP_BY_HOP, ROUTING, DEST_OPTS])
            .frame(),
    );
    let (sn, sn_mac) = solicited_node(HOST6);
    let mut ns = Packet::icmp(Fam::V6, 135, 0, [0; 4], HOST6.octets().to_vec())
        .to(sn)
        .l2_dst(sn_mac);
    ns.ttl = 255;
    out.push(ns.frame());
    out
}

/// A valid frame (the corpus or a generated one) with 1-8 mutations.
pub fn frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        1 => proptest::sample::select(corpus()),
        2 => gen::frame(),
    ];
    (base, vec(mutation(), 1..=8)).prop_map(|(mut f, ms)| {
        for (at, m) in &ms {
            apply(&mut f, at, m);
        }
        clamp_len(&mut f, None);
        f
    })
}
