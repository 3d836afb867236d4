//! IPv4 options and IPv6 hop-by-hop options the stack refuses before the
//! firewall would see the packet (ip_rcv_options, ipv6_parse_hopopts): a
//! rejected packet carrying them is dropped, not answered, as under
//! iptables. Read only on the reject path; the accept path leaves them to
//! the stack, which drops them itself.
use crate::{frame::read, frame::Frame, parse::Pkt};

/// The stack would drop the packet silently (a source route while
/// accept_source_route is off; a broken hop-by-hop TLV; an unknown option
/// whose type says "discard").
pub const REFUSED_SILENTLY: u8 = 1;
/// The stack would drop it with a parameter problem (broken IPv4 options,
/// CIPSO without a CIPSO configuration, IPv6 unknown options that ask for
/// an error, a jumbo payload option on a normal packet).
pub const REFUSED_MALFORMED: u8 = 2;

const MAX_V4_OPTS: usize = 40;
/// Hop-by-hop headers longer than this are not inspected (answered as usual).
const MAX_HBH: usize = 64;
/// Options looked at per packet (each one multiplies the paths the verifier
/// explores); packets with more are answered as usual.
const MAX_OPTS: usize = 8;
/// The copy both walks read from: a power of two, see `at`.
const BUF: usize = 64;

/// Byte `i` of `o`. The verifier follows a mask, not a comparison the
/// compiler may have placed elsewhere: `black_box` keeps the mask in.
#[inline(always)]
fn at(o: &[u8; BUF], i: usize) -> u8 {
    o[core::hint::black_box(i) & (BUF - 1)]
}

const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
const IPOPT_CIPSO: u8 = 134;
const IPOPT_SSRR: u8 = 137;

/// What the stack makes of the packet's IPv4 options (0: nothing wrong).
/// The walk is ip_options_compile's, reduced to what decides the outcome
/// (length errors, source routes, CIPSO): few branches per option, so the
/// verifier's state count stays small.
#[inline(always)]
pub fn v4_refused<F: Frame>(f: &F, p: &Pkt, l3: usize) -> u8 {
    let n = p.l4_off.wrapping_sub(l3).wrapping_sub(20);
    if n == 0 || n > MAX_V4_OPTS {
        return 0;
    }
    let mut o = [0u8; BUF];
    for w in 0..MAX_V4_OPTS / 4 {
        if w * 4 >= n {
            break;
        }
        let Some(b) = read::<[u8; 4], F>(f, l3 + 20 + w * 4) else {
            return 0;
        };
        o[w * 4..w * 4 + 4].copy_from_slice(&b);
    }
    v4_walk(&o, n)
}

/// The walk over a copy (a subprogram that never touches the packet).
/// Every finding returns at once: flags carried across iterations would
/// multiply the verifier's states.
#[inline(never)]
fn v4_walk(o: &[u8; BUF], n: usize) -> u8 {
    let mut i = 0usize;
    for _ in 0..MAX_OPTS {
        if i >= n {
            return 0;
        }
        let t = at(o, i);
        if t == IPOPT_END {
            return 0;
        }
        if t == IPOPT_NOOP {
            i += 1;
            continue;
        }
        let len = at(o, i + 1) as usize;
        if i + 1 >= n || len < 2 || len > n - i || t == IPOPT_CIPSO {
            return REFUSED_MALFORMED;
        }
        // A later broken option would make Linux add a parameter problem;
        // dropped either way.
        if t == IPOPT_LSRR || t == IPOPT_SSRR {
            return REFUSED_SILENTLY;
        }
        i += len;
    }
    0
}

/// Hop-by-hop option types the kernel knows (router alert, CALIPSO, IOAM,
/// jumbo payload); unknown ones act after their two top bits.
const TLV_PAD1: u8 = 0;
const TLV_PADN: u8 = 1;
const TLV_ROUTER_ALERT: u8 = 5;
const TLV_CALIPSO: u8 = 7;
const TLV_IOAM: u8 = 0x31;
const TLV_JUMBO: u8 = 0xc2;

/// What the stack makes of a hop-by-hop header right after the IPv6 header
/// at `l3` (0: nothing wrong, or not inspected).
#[inline(always)]
pub fn hbh_refused<F: Frame>(f: &F, l3: usize) -> u8 {
    let Some(h) = read::<[u8; 8], F>(f, l3 + 40) else {
        return 0;
    };
    let len = (h[1] as usize + 1) * 8;
    if len > MAX_HBH {
        return 0;
    }
    let mut o = [0u8; BUF];
    for w in 0..MAX_HBH / 8 {
        if w * 8 >= len {
            break;
        }
        let Some(b) = read::<[u8; 8], F>(f, l3 + 40 + w * 8) else {
            return 0;
        };
        o[w * 8..w * 8 + 8].copy_from_slice(&b);
    }
    hbh_walk(&o, len)
}

#[inline(never)]
fn hbh_walk(o: &[u8; BUF], len: usize) -> u8 {
    // As ip6_parse_tlv walks it, from after next-header/length (its
    // padding rules aside: they would multiply the verifier's states).
    let mut i = 2usize;
    for _ in 0..MAX_OPTS {
        if i >= len {
            break;
        }
        let t = at(o, i);
        if t == TLV_PAD1 {
            i += 1;
            continue;
        }
        let olen = at(o, i + 1) as usize + 2;
        if i + 1 >= len || olen > len - i {
            return REFUSED_SILENTLY;
        }
        // A jumbo payload option only fits a payload length of 0, which fw
        // already drops as malformed.
        if t == TLV_JUMBO {
            return REFUSED_MALFORMED;
        }
        let known = t == TLV_PADN || t == TLV_ROUTER_ALERT || t == TLV_CALIPSO || t == TLV_IOAM;
        if !known && t >> 6 != 0 {
            return if t >> 6 == 1 {
                REFUSED_SILENTLY
            } else {
                REFUSED_MALFORMED
            };
        }
        i += olen;
    }
    0
}
