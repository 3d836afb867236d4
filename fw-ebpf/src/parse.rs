//! Stage 1: L2 (up to two VLAN tags), IPv4 (IHL, options, fragments), IPv6
//! (bounded extension-header walk) and the L4 ports/flags fw decides on.
use fw_common::{icmp, icmpv6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

use crate::frame::{be16_at, read, u8_at, Frame};

pub const ETH_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLANS: usize = 2;
/// Largest L4 offset fw follows: bounds every offset read back from the
/// per-CPU `Pkt` (the verifier does not track values kept in maps).
pub const MAX_L4_OFF: usize = 4096;
/// Extension headers walked before giving up (as malformed).
const MAX_EXT_HEADERS: usize = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Fragment position of the packet.
pub const FRAG_NONE: u8 = 0;
pub const FRAG_FIRST: u8 = 1;
pub const FRAG_LATER: u8 = 2;

/// What the later stages need to know about an IP packet. Aligned so copies
/// of the addresses are word moves, not byte loops.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct Pkt {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Offset of the IP header (end of L2, VLAN tags included).
    pub l3_off: usize,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    pub l4_off: usize,
    /// Bytes of the IP packet according to its header.
    pub ip_len: usize,
    pub family: u8,
    pub proto: u8,
    pub frag: u8,
    pub tcp_flags: u8,
    /// Host order. ICMP echo: `sport` is the identifier.
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// L2 destination was broadcast/multicast.
    pub l2_multicast: bool,
    /// Tagged for a VLAN (an id other than 0, or two tags): the stack drops
    /// such frames unless it has an interface for that VLAN.
    pub vlan_tagged: bool,
    /// TCP header cut short, or a data offset below 20 or beyond the
    /// segment: judged by its ports, never part of a flow (conntrack calls
    /// it invalid).
    pub tcp_truncated: bool,
    pub frag_id: u32,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    /// TCP payload length (for the RST's ack number).
    pub tcp_payload: u32,
}

pub enum Parsed {
    NonIp,
    Ip,
    Malformed,
}

impl Pkt {
    /// Clears what a previous packet may have left (field by field: a
    /// whole-struct assignment becomes a memset call in BPF).
    #[inline(always)]
    fn reset(&mut self) {
        // Word stores LLVM cannot merge into a memset call (which BPF gets
        // as a byte loop in a subprogram). All-zero is a valid empty `Pkt`.
        let w = self as *mut Pkt as *mut u64;
        for i in 0..core::mem::size_of::<Pkt>() / 8 {
            // SAFETY: i < size_of::<Pkt>() / 8 and `Pkt` is align(8): an aligned
            // word inside `self`, which we hold mutably.
            unsafe { w.add(i).write_volatile(0) };
        }
    }

    #[inline(always)]
    pub fn has_l4(&self) -> bool {
        self.frag != FRAG_LATER
    }
}

/// Parses the frame into `p` (which lives in a per-CPU map: the stack is
/// too small to hold it next to everything else).
#[inline(always)]
pub fn parse<F: Frame>(f: &F, p: &mut Pkt) -> Parsed {
    match parse_inner(f, p) {
        Ok(k) => k,
        Err(()) => Parsed::Malformed,
    }
}

#[inline(always)]
fn parse_inner<F: Frame>(f: &F, p: &mut Pkt) -> Result<Parsed, ()> {
    let dst0 = u8_at(f, 0).ok_or(())?;
    let mut ethertype = be16_at(f, 12).ok_or(())?;
    let mut l3 = ETH_LEN;
    let mut tags = 0;
    let mut vid_set = false;
    for _ in 0..MAX_VLANS {
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            // TCI, then the inner ethertype.
            let tag: [u8; 4] = read(f, l3).ok_or(())?;
            vid_set |= u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff != 0;
            ethertype = u16::from_be_bytes([tag[2], tag[3]]);
            l3 += 4;
            tags += 1;
        }
    }
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return Ok(Parsed::NonIp);
    }
    p.reset();
    p.l3_off = l3;
    p.l2_multicast = dst0 & 1 != 0;
    // A single priority tag (VLAN 0) is taken as untagged, as Linux does.
    p.vlan_tagged = vid_set || tags > 1;
    // Offsets stay in registers here: read back from the map they would be
    // unbounded for the verifier.
    let (l4, ip_len) = if ethertype == ETH_P_IP {
        parse_ipv4(f, p, l3)?
    } else {
        parse_ipv6(f, p, l3)?
    };
    if p.has_l4() {
        parse_l4(f, p, l4, l3 + ip_len - l4)?;
    }
    Ok(Parsed::Ip)
}

#[inline(always)]
fn parse_ipv4<F: Frame>(f: &F, p: &mut Pkt, l3: usize) -> Result<(usize, usize), ()> {
    let vihl = u8_at(f, l3).ok_or(())?;
    if vihl >> 4 != 4 {
        return Err(());
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(());
    }
    let total = be16_at(f, l3 + 2).ok_or(())? as usize;
    if total < ihl || l3 + total > f.len() {
        return Err(());
    }
    let frag = be16_at(f, l3 + 6).ok_or(())?;
    p.frag_id = be16_at(f, l3 + 4).ok_or(())? as u32;
    p.proto = u8_at(f, l3 + 9).ok_or(())?;
    let addrs: [u8; 8] = read(f, l3 + 12).ok_or(())?;
    p.src[..4].copy_from_slice(&addrs[..4]);
    p.dst[..4].copy_from_slice(&addrs[4..]);
    p.family = 4;
    p.ip_len = total;
    p.l4_off = l3 + ihl;
    if l3 + ihl > MAX_L4_OFF {
        return Err(());
    }
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    p.frag = if offset != 0 {
        FRAG_LATER
    } else if more {
        FRAG_FIRST
    } else {
        FRAG_NONE
    };
    Ok((l3 + ihl, total))
}

#[inline(always)]
fn parse_ipv6<F: Frame>(f: &F, p: &mut Pkt, l3: usize) -> Result<(usize, usize), ()> {
    let v = u8_at(f, l3).ok_or(())?;
    if v >> 4 != 6 {
        return Err(());
    }
    let payload = be16_at(f, l3 + 4).ok_or(())? as usize;
    let total = payload + 40;
    if l3 + total > f.len() {
        return Err(());
    }
    let mut next = u8_at(f, l3 + 6).ok_or(())?;
    let addrs: [u8; 32] = read(f, l3 + 8).ok_or(())?;
    p.src.copy_from_slice(&addrs[..16]);
    p.dst.copy_from_slice(&addrs[16..]);
    p.family = 6;
    p.ip_len = total;
    let mut off = l3 + 40;
    let mut walked = 0;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            // hop-by-hop, routing, destination options
            0 | 43 | 60 => {
                let h: [u8; 2] = read(f, off).ok_or(())?;
                next = h[0];
                off += (h[1] as usize + 1) * 8;
            }
            // fragment
            44 => {
                let h: [u8; 8] = read(f, off).ok_or(())?;
                next = h[0];
                let fo = u16::from_be_bytes([h[2], h[3]]);
                p.frag_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                // A fragment that is not the last must carry a multiple of 8
                // bytes (RFC 8200 4.5); the stack would answer it, netfilter
                // drops it.
                if fo & 1 != 0 && (l3 + total - (off + 8)) & 7 != 0 {
                    return Err(());
                }
                p.frag = if fo & 0xfff8 != 0 {
                    FRAG_LATER
                } else if fo & 1 != 0 {
                    FRAG_FIRST
                } else {
                    FRAG_NONE
                };
                off += 8;
            }
            // The authentication header (51) is where nftables (and so
            // iptables-nft) stops looking for the transport protocol: AH
            // is the protocol the policy sees.
            _ => break,
        }
        walked += 1;
    }
    if walked == MAX_EXT_HEADERS && matches!(next, 0 | 43 | 60 | 44) {
        return Err(());
    }
    if off > l3 + total || off > MAX_L4_OFF {
        return Err(());
    }
    p.proto = next;
    p.l4_off = off;
    Ok((off, total))
}

#[inline(always)]
fn parse_l4<F: Frame>(f: &F, p: &mut Pkt, l4: usize, l4_len: usize) -> Result<(), ()> {
    match p.proto {
        IPPROTO_TCP => {
            // nftables (iptables-nft) matches the ports of whatever TCP
            // header is there: a header cut short (or a first fragment too
            // small for it) or a bad data offset is judged by its ports,
            // and never part of a flow (conntrack calls it invalid).
            if l4_len < 4 {
                return Err(());
            }
            let ports: [u8; 4] = read(f, l4).ok_or(())?;
            p.sport = u16::from_be_bytes([ports[0], ports[1]]);
            p.dport = u16::from_be_bytes([ports[2], ports[3]]);
            if l4_len < 20 {
                p.tcp_truncated = true;
                return Ok(());
            }
            let h: [u8; 20] = read(f, l4).ok_or(())?;
            let doff = ((h[12] >> 4) as usize) * 4;
            p.tcp_truncated = doff < 20 || (p.frag == FRAG_NONE && doff > l4_len);
            p.tcp_seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            p.tcp_ack = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            p.tcp_flags = h[13];
            p.tcp_payload = l4_len.saturating_sub(doff) as u32;
        }
        IPPROTO_UDP => {
            if l4_len < 8 {
                return Err(());
            }
            p.sport = be16_at(f, l4).ok_or(())?;
            p.dport = be16_at(f, l4 + 2).ok_or(())?;
        }
        // ICMP of the packet's own family only: ICMPv6 inside IPv4 is just
        // an unknown protocol there.
        IPPROTO_ICMP | IPPROTO_ICMPV6 if (p.proto == IPPROTO_ICMP) == (p.family == 4) => {
            if l4_len < 8 {
                // IPv4's REJECT still goes by the type of a cut header.
                if p.proto == IPPROTO_ICMP && l4_len >= 4 {
                    let h: [u8; 4] = read(f, l4).ok_or(())?;
                    p.icmp_type = h[0];
                    p.icmp_code = h[1];
                    return Ok(());
                }
                return Err(());
            }
            let h: [u8; 8] = read(f, l4).ok_or(())?;
            p.icmp_type = h[0];
            p.icmp_code = h[1];
            if is_echo(p.proto, h[0]) {
                p.sport = u16::from_be_bytes([h[4], h[5]]);
            }
        }
        _ => {}
    }
    Ok(())
}

/// ICMP of the packet's own family (ICMPv6 in IPv4, or ICMP in IPv6, is
/// just another protocol number: its type was not parsed).
#[inline(always)]
pub fn is_icmp(p: &Pkt) -> bool {
    (p.proto == IPPROTO_ICMP && p.family == 4) || (p.proto == IPPROTO_ICMPV6 && p.family == 6)
}

/// ICMP echo request or reply (the types conntrack follows by identifier).
#[inline(always)]
pub fn is_echo(proto: u8, ty: u8) -> bool {
    match proto {
        IPPROTO_ICMP => ty == icmp::ECHO_REPLY || ty == icmp::ECHO_REQUEST,
        IPPROTO_ICMPV6 => ty == icmpv6::ECHO_REQUEST || ty == icmpv6::ECHO_REPLY,
        _ => false,
    }
}

#[inline(always)]
pub fn is_echo_request(proto: u8, ty: u8) -> bool {
    (proto == IPPROTO_ICMP && ty == icmp::ECHO_REQUEST)
        || (proto == IPPROTO_ICMPV6 && ty == icmpv6::ECHO_REQUEST)
}

/// ICMP error messages (never answered; may be RELATED to a known flow).
#[inline(always)]
pub fn is_icmp_error(proto: u8, ty: u8) -> bool {
    match proto {
        // Informational types are answered like any packet; everything else,
        // including unknown types, is treated as an error, as Linux's
        // icmp_pointers[] does: router advertisement (9) and solicitation
        // (10) count as errors there too, so they get no answer.
        IPPROTO_ICMP => !matches!(
            ty,
            icmp::ECHO_REPLY | icmp::ECHO_REQUEST | icmp::TIMESTAMP..=icmp::ADDRESS_MASK_REPLY
        ),
        IPPROTO_ICMPV6 => ty < icmpv6::ECHO_REQUEST,
        _ => false,
    }
}

/// The error types whose quoted packet can make them RELATED.
#[inline(always)]
pub fn is_related_candidate(proto: u8, ty: u8) -> bool {
    match proto {
        // unreachable, source quench, redirect, time exceeded, parameter
        // problem (the kernel's icmp_is_err)
        IPPROTO_ICMP => matches!(
            ty,
            icmp::DEST_UNREACH
                | icmp::SOURCE_QUENCH
                | icmp::REDIRECT
                | icmp::TIME_EXCEEDED
                | icmp::PARAM_PROBLEM
        ),
        // every error type, known or not (nf_conntrack_icmpv6)
        IPPROTO_ICMPV6 => ty < icmpv6::ECHO_REQUEST,
        _ => false,
    }
}

/// Neighbor discovery: router/neighbor solicitation/advertisement, redirect.
#[inline(always)]
pub fn is_ndp(p: &Pkt) -> bool {
    p.proto == IPPROTO_ICMPV6
        && p.family == 6
        && matches!(p.icmp_type, icmpv6::ROUTER_SOLICIT..=icmpv6::NDP_REDIRECT)
}

/// The flow an ICMP error quotes, as the inner packet's header says it.
#[repr(C, align(8))]
pub struct Quoted {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// Parses the packet quoted by the ICMP error at `p.l4_off`.
#[inline(always)]
pub fn quoted<F: Frame>(f: &F, p: &Pkt) -> Option<Quoted> {
    let l4 = p.l4_off;
    if l4 > MAX_L4_OFF {
        return None;
    }
    let inner = l4 + 8;
    let mut q = Quoted {
        src: [0; 16],
        dst: [0; 16],
        proto: 0,
        sport: 0,
        dport: 0,
    };
    // Whole headers are read at once: single-byte reads at a variable offset
    // get compiled into a bounds check the verifier cannot follow.
    let l4 = if p.family == 4 {
        let h: [u8; 20] = read(f, inner)?;
        let ihl = ((h[0] & 0x0f) as usize) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return None;
        }
        q.proto = h[9];
        q.src[..4].copy_from_slice(&h[12..16]);
        q.dst[..4].copy_from_slice(&h[16..20]);
        inner + ihl
    } else {
        let h: [u8; 40] = read(f, inner)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        q.proto = h[6];
        q.src.copy_from_slice(&h[8..24]);
        q.dst.copy_from_slice(&h[24..40]);
        inner + 40
    };
    let h: [u8; 8] = read(f, l4)?;
    match q.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            q.sport = u16::from_be_bytes([h[0], h[1]]);
            q.dport = u16::from_be_bytes([h[2], h[3]]);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if !is_echo_request(q.proto, h[0]) {
                return None;
            }
            q.sport = u16::from_be_bytes([h[4], h[5]]);
        }
        _ => return None,
    }
    Some(q)
}

/// Word `i` (0..4) of an address, in memory order.
#[inline(always)]
pub fn word(a: &[u8; 16], i: usize) -> u32 {
    u32::from_ne_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]])
}

const V4_LBCAST: u32 = u32::from_ne_bytes([255, 255, 255, 255]);

/// Martian source or destination: never legitimate on a real interface.
#[inline(always)]
pub fn is_martian(p: &Pkt) -> bool {
    if p.family == 4 {
        let s = p.src[0];
        let d = p.dst[0];
        let src_lbcast = word(&p.src, 0) == V4_LBCAST;
        let dst_lbcast = word(&p.dst, 0) == V4_LBCAST;
        // 0.0.0.0/8 is only a valid source towards the limited broadcast (DHCP).
        // As a destination it is a martian for Linux (ip_route_input_slow);
        // answering it would make it the source of the reply.
        // A source equal to the destination (a LAND attack) is one of the
        // host's own addresses: Linux refuses those (fib_validate_source).
        s == 127
            || (s & 0xf0) == 0xe0
            || src_lbcast
            || (s == 0 && !dst_lbcast)
            || d == 127
            || d == 0
            || word(&p.src, 0) == word(&p.dst, 0)
    } else {
        let s_loop = is_v6_loopback(&p.src);
        let d_high = word(&p.dst, 0) | word(&p.dst, 1) | word(&p.dst, 2);
        let d_low = word(&p.dst, 3);
        // ::1 or :: as destination (the latter is nobody's address).
        let d_bad = d_high == 0 && (d_low == u32::from_ne_bytes([0, 0, 0, 1]) || d_low == 0);
        let s_mcast = p.src[0] == 0xff;
        let s_mapped = word(&p.src, 0) == 0
            && word(&p.src, 1) == 0
            && word(&p.src, 2) == u32::from_ne_bytes([0, 0, 0xff, 0xff]);
        // Source = destination: Linux would answer itself over loopback.
        let same = word(&p.src, 0) == word(&p.dst, 0)
            && word(&p.src, 1) == word(&p.dst, 1)
            && word(&p.src, 2) == word(&p.dst, 2)
            && word(&p.src, 3) == word(&p.dst, 3);
        s_loop || d_bad || s_mcast || s_mapped || same
    }
}

#[inline(always)]
fn is_v6_loopback(a: &[u8; 16]) -> bool {
    word(a, 0) == 0
        && word(a, 1) == 0
        && word(a, 2) == 0
        && word(a, 3) == u32::from_ne_bytes([0, 0, 0, 1])
}

/// Destination (L2 or L3) is not a single host: no ICMP error may answer it.
#[inline(always)]
pub fn dst_not_unicast(p: &Pkt) -> bool {
    if p.l2_multicast {
        return true;
    }
    if p.family == 4 {
        (p.dst[0] & 0xf0) == 0xe0 || word(&p.dst, 0) == V4_LBCAST
    } else {
        p.dst[0] == 0xff
    }
}

/// Source that cannot be answered (unspecified).
#[inline(always)]
pub fn src_unanswerable(p: &Pkt) -> bool {
    if p.family == 4 {
        word(&p.src, 0) == 0
    } else {
        (word(&p.src, 0) | word(&p.src, 1) | word(&p.src, 2) | word(&p.src, 3)) == 0
    }
}
