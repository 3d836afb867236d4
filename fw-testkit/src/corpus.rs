//! The conformance corpus: thousands of crafted probes, each from its own
//! (source address, port/identifier) so that every answer names its probe.
//! The families live in `corpus_l4` (TCP flags, UDP, ICMP types, protocols)
//! and `corpus_ip` (VLAN, options, extension headers, fragments, odd
//! addresses); this module holds what they share.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{SRV_V4, SRV_V6};

use crate::packet::{Icmp, Packet, Tcp, ACK, L4};

/// Probe source addresses per family: on the server's subnet, not owned by
/// the client (its stack stays silent), each with a permanent neighbor entry
/// on the server pointing at the client veth.
const POOL: u32 = 200;

pub fn pool_v4(i: u32) -> IpAddr {
    Ipv4Addr::new(192, 0, 2, 20 + (i % POOL) as u8).into()
}

pub fn pool_v6(i: u32) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xa, (i % POOL) as u16).into()
}

/// A router on the server's link that reports errors about its packets.
pub fn router(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe).into()
    } else {
        Ipv4Addr::new(192, 0, 2, 254).into()
    }
}

/// A link-local peer (IPv6 allows it as a source; it is on-link).
pub fn link_local_peer() -> IpAddr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x77).into()
}

/// Every address the server needs a neighbor entry for.
pub fn neighbors() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = (0..POOL).flat_map(|i| [pool_v4(i), pool_v6(i)]).collect();
    v.extend([router(false), router(true), link_local_peer()]);
    v
}

pub fn server(v6: bool) -> IpAddr {
    if v6 {
        SRV_V6.into()
    } else {
        SRV_V4.into()
    }
}

/// One probe: frames sent back to back, compared by what comes back.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// A named difference this case is expected to show (see the test's
    /// list), if any.
    pub tag: Option<&'static str>,
    pub frames: Vec<Vec<u8>>,
}

/// The MACs of the rig the frames are for.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    pub cli_mac: [u8; 6],
    pub srv_mac: [u8; 6],
}

/// Builds the cases; hands out a fresh (source, port) to each probe.
pub struct Gen {
    pub env: Env,
    pub long: bool,
    next: [u32; 2],
    pub cases: Vec<Case>,
}

impl Gen {
    pub fn new(env: Env, long: bool) -> Gen {
        Gen {
            env,
            long,
            next: [0, 0],
            cases: Vec::new(),
        }
    }

    /// A fresh source address and port (or ICMP identifier) of the family.
    pub fn src(&mut self, v6: bool) -> (IpAddr, u16) {
        let n = &mut self.next[v6 as usize];
        let i = *n;
        *n += 1;
        let port = 1024 + (i / POOL) as u16;
        let addr = if v6 { pool_v6(i) } else { pool_v4(i) };
        (addr, port)
    }

    /// A packet from `src` to the server's address.
    pub fn to_server(&self, src: IpAddr, l4: L4) -> Packet {
        Packet::new(
            self.env.cli_mac,
            self.env.srv_mac,
            src,
            server(src.is_ipv6()),
            l4,
        )
    }

    pub fn push(&mut self, name: String, tag: Option<&'static str>, frames: Vec<Vec<u8>>) {
        self.cases.push(Case { name, tag, frames });
    }

    pub fn push_pkt(&mut self, name: String, tag: Option<&'static str>, p: &Packet) {
        self.push(name, tag, p.frames());
    }
}

pub fn fam(v6: bool) -> &'static str {
    if v6 {
        "v6"
    } else {
        "v4"
    }
}

pub fn tcp(sport: u16, dport: u16, flags: u8) -> L4 {
    L4::Tcp(Tcp {
        sport,
        dport,
        seq: 0x1000_0000 | sport as u32,
        ack: if flags & ACK != 0 { 77 } else { 0 },
        flags,
        options: Vec::new(),
        payload: Vec::new(),
        ..Tcp::default()
    })
}

pub fn udp(sport: u16, dport: u16, len: usize) -> L4 {
    L4::udp(sport, dport, fill(len, sport))
}

/// ICMP with identifier `id` and sequence 1 in the second word.
pub fn icmp(ty: u8, code: u8, id: u16, body: Vec<u8>) -> L4 {
    let [a, b] = id.to_be_bytes();
    L4::Icmp(Icmp {
        ty,
        code,
        rest: [a, b, 0, 1],
        body,
    })
}

pub fn echo(v6: bool, id: u16) -> L4 {
    icmp(if v6 { 128 } else { 8 }, 0, id, fill(32, id))
}

/// `len` payload bytes that differ per `seed` (so fragments of different
/// probes never start alike).
pub fn fill(len: usize, seed: u16) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize).wrapping_mul(31).wrapping_add(i * 7) as u8)
        .collect()
}

/// A UDP packet the server might have sent to `peer:pport` from `sport`:
/// the quote of an ICMP error about a flow nobody opened.
pub fn unknown_flow_quote(env: &Env, peer: IpAddr, sport: u16, pport: u16) -> Vec<u8> {
    Packet::new(
        env.srv_mac,
        env.cli_mac,
        server(peer.is_ipv6()),
        peer,
        udp(sport, pport, 12),
    )
    .ip_packet()
}

/// The whole corpus, in a fixed order (the same for both rigs).
pub fn corpus(env: Env, long: bool) -> Vec<Case> {
    let mut g = Gen::new(env, long);
    crate::corpus_l4::add(&mut g);
    crate::corpus_ip::add(&mut g);
    for v6 in [false, true] {
        crate::corpus_frag::add(&mut g, v6);
    }
    let mut seen = std::collections::HashMap::new();
    for c in &mut g.cases {
        let n = seen.entry(c.name.clone()).or_insert(0u32);
        *n += 1;
        if *n > 1 {
            c.name = format!("{} #{n}", c.name);
        }
    }
    g.cases
}
