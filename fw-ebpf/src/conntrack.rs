//! fw's own connection tracking (the seed's ESTABLISHED,RELATED rule).
//!
//! Entries are keyed by the flow as seen on ingress (`src` = the peer). The
//! egress program creates them for flows the host starts; the ingress program
//! for new flows its policy accepts. An expired entry counts as absent.
use fw_common::{
    ct_timeout_ns, Config, FlowKey, FlowValue, CT_F_OUTBOUND, CT_F_REPLIED, CT_ICMP,
    CT_STAT_CREATED, CT_STAT_DELETED, CT_TCP_CLOSED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED,
    CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP,
};

use crate::{
    maps::{CONNTRACK, CT_STATS},
    parse::{is_echo, is_echo_request, is_icmp, Pkt, Quoted, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

/// BPF_NOEXIST: create only, so new keys can be told from refreshed ones.
const BPF_NOEXIST: u64 = 1;

#[inline(always)]
fn bump(stat: u32) {
    if let Some(c) = CT_STATS.get_ptr_mut(stat) {
        // Per-CPU value: no other writer.
        // SAFETY: a per-CPU array value, valid for the program run.
        unsafe { *c += 1 };
    }
}

/// Stores `v` under `key`, counting the key if it is new.
#[inline(always)]
fn store(key: &FlowKey, v: &FlowValue) {
    if CONNTRACK.insert(key, v, BPF_NOEXIST).is_ok() {
        bump(CT_STAT_CREATED);
    } else {
        // The key is there (an expired entry, or a flow starting over).
        let _ = CONNTRACK.insert(key, v, 0);
    }
}

#[inline(always)]
fn delete(key: &FlowKey) {
    if CONNTRACK.remove(key).is_ok() {
        bump(CT_STAT_DELETED);
    }
}

/// Refresh `last_seen` at most this often: saves a cache-line write per packet.
const REFRESH_NS: u64 = 1_000_000_000;

#[inline(always)]
fn tracked_proto(p: &Pkt) -> bool {
    match p.proto {
        IPPROTO_TCP | IPPROTO_UDP => true,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => is_icmp(p) && is_echo(p.proto, p.icmp_type),
        _ => false,
    }
}

const TCP_URG: u8 = 0x20;

/// The TCP flag combinations netfilter's conntrack takes (tcp_valid_flags,
/// PSH/ECE/CWR aside); a packet with any other is INVALID there: never part
/// of a flow, judged by the port policy alone. A data offset beyond the
/// segment is invalid too.
#[inline(always)]
fn tcp_valid(p: &Pkt) -> bool {
    const S: u8 = TCP_SYN;
    const A: u8 = TCP_ACK;
    const F: u8 = TCP_FIN;
    const R: u8 = TCP_RST;
    const U: u8 = TCP_URG;
    let f = p.tcp_flags & (S | A | F | R | U);
    let valid = f == S
        || f == S | U
        || f == S | A
        || f == R
        || f == R | A
        || f == F | A
        || f == F | A | U
        || f == A
        || f == A | U;
    valid && !p.tcp_truncated
}

/// A 16-byte address as two word loads (a plain copy becomes a call to a
/// byte-loop memmove in BPF). `a` is 8-byte aligned: a field of `Pkt`.
#[inline(always)]
fn addr(a: &[u8; 16]) -> [u8; 16] {
    let w = a.as_ptr() as *const u64;
    // SAFETY: `a` is 16 readable bytes, 8-byte aligned (a field of the
    // align(8) `Pkt`): two aligned u64 loads stay inside it.
    let words = unsafe { [w.read_volatile(), w.add(1).read_volatile()] };
    // SAFETY: [u64; 2] and [u8; 16] have the same size; every bit pattern is a valid [u8; 16].
    unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(words) }
}

/// Key of an ingress packet: as it is.
#[inline(always)]
pub fn ingress_key(p: &Pkt) -> FlowKey {
    FlowKey {
        src: addr(&p.src),
        dst: addr(&p.dst),
        sport: p.sport,
        dport: if is_echo(p.proto, p.icmp_type) {
            0
        } else {
            p.dport
        },
        proto: p.proto,
        family: p.family,
        _pad: [0; 2],
    }
}

/// Key of an egress packet: its reply as ingress would see it.
#[inline(always)]
fn egress_key(p: &Pkt) -> FlowKey {
    let echo = is_echo(p.proto, p.icmp_type);
    FlowKey {
        src: addr(&p.dst),
        dst: addr(&p.src),
        sport: if echo { p.sport } else { p.dport },
        dport: if echo { 0 } else { p.sport },
        proto: p.proto,
        family: p.family,
        _pad: [0; 2],
    }
}

/// Key of the flow an ICMP error quotes (a packet this host sent).
#[inline(always)]
pub fn quoted_key(q: &Quoted, family: u8) -> FlowKey {
    let echo = q.proto == IPPROTO_ICMP || q.proto == IPPROTO_ICMPV6;
    FlowKey {
        src: q.dst,
        dst: q.src,
        sport: if echo { q.sport } else { q.dport },
        dport: if echo { 0 } else { q.sport },
        proto: q.proto,
        family,
        _pad: [0; 2],
    }
}

#[inline(always)]
fn live(cfg: &Config, v: &FlowValue, now: u64) -> bool {
    now.saturating_sub(v.last_seen_ns) <= ct_timeout_ns(cfg, v.state, v.flags)
}

/// Whether `key` is a live flow (used for RELATED).
#[inline(always)]
pub fn known(cfg: &Config, key: &FlowKey, now: u64) -> bool {
    // SAFETY: the reference is only read within this run, before any update of the entry.
    match unsafe { CONNTRACK.get(key) } {
        Some(v) => live(cfg, v, now),
        None => false,
    }
}

/// The TCP state after a packet with `flags`, `inbound` telling its direction.
#[inline(always)]
fn next_tcp_state(state: u8, flags: u8, inbound: bool) -> u8 {
    if flags & TCP_RST != 0 {
        return CT_TCP_CLOSED;
    }
    if flags & TCP_FIN != 0 {
        return if state == CT_TCP_CLOSED {
            state
        } else {
            CT_TCP_CLOSING
        };
    }
    let syn = flags & TCP_SYN != 0;
    let ack = flags & TCP_ACK != 0;
    match state {
        // Only the SYN-ACK answers a SYN (a bare ACK is ignored there).
        CT_TCP_SYN_SENT if inbound && syn && ack => CT_TCP_ESTABLISHED,
        CT_TCP_SYN_RECV if inbound && ack && !syn => CT_TCP_ESTABLISHED,
        _ => state,
    }
}

/// Whether netfilter's TCP state table lets an inbound segment with `f`
/// through on flow `v`: the reply direction of a flow the host started, the
/// original one of a flow the peer started. What it calls invalid goes to
/// the port policy instead.
#[inline(always)]
fn tcp_transition_valid(v: &FlowValue, f: u8) -> bool {
    let syn_ack = f & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK;
    if v.flags & CT_F_OUTBOUND != 0 {
        let pure_syn = f & (TCP_SYN | TCP_ACK) == TCP_SYN;
        // A FIN before the SYN-ACK; a new SYN on an established flow.
        !((v.state == CT_TCP_SYN_SENT && f & TCP_FIN != 0)
            || (v.state == CT_TCP_ESTABLISHED && pure_syn))
    } else {
        // The peer opened it: a SYN-ACK from the peer is out of place.
        !syn_ack
    }
}

/// Ingress lookup: true when the packet belongs to a live flow (ESTABLISHED),
/// refreshing the entry.
#[inline(always)]
pub fn ingress(cfg: &Config, p: &Pkt, now: u64) -> bool {
    if !tracked_proto(p) || (p.proto == IPPROTO_TCP && !tcp_valid(p)) {
        return false;
    }
    let key = ingress_key(p);
    let Some(v) = CONNTRACK.get_ptr_mut(&key) else {
        return false;
    };
    // SAFETY: a map value pointer from a successful lookup, valid for the program run.
    let v = unsafe { &mut *v };
    if !live(cfg, v, now) {
        return false;
    }
    let mut state = v.state;
    if p.proto == IPPROTO_TCP {
        let f = p.tcp_flags;
        // A fresh SYN on a closed flow is a new connection: policy decides.
        let pure_syn = f & (TCP_SYN | TCP_ACK) == TCP_SYN;
        if pure_syn && (state == CT_TCP_CLOSED || state == CT_TCP_CLOSING) {
            return false;
        }
        if !tcp_transition_valid(v, f) {
            return false;
        }
        // The first answer to the host's SYN is a RST: the flow is over
        // (netfilter deletes such an entry at once).
        if v.flags & (CT_F_OUTBOUND | CT_F_REPLIED) == CT_F_OUTBOUND && f & TCP_RST != 0 {
            delete(&key);
            return true;
        }
        state = next_tcp_state(state, f, true);
    } else if is_echo_request(p.proto, p.icmp_type) {
        // Our own echo id reused by the peer as a request: not a reply.
        return false;
    }
    let mut flags = v.flags;
    if flags & CT_F_OUTBOUND != 0 {
        flags |= CT_F_REPLIED;
    }
    if state != v.state || flags != v.flags || now.saturating_sub(v.last_seen_ns) > REFRESH_NS {
        v.state = state;
        v.flags = flags;
        v.last_seen_ns = now;
    }
    true
}

/// Records a new inbound flow the policy accepted.
#[inline(always)]
pub fn accept_new(p: &Pkt, now: u64) {
    let state = match p.proto {
        IPPROTO_TCP => {
            if p.tcp_flags & TCP_RST != 0 || !tcp_valid(p) {
                return;
            }
            if p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
                CT_TCP_SYN_RECV
            } else {
                CT_TCP_ESTABLISHED
            }
        }
        IPPROTO_UDP => CT_UDP,
        _ => return,
    };
    let v = FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state,
        flags: 0,
        _pad: [0; 6],
    };
    store(&ingress_key(p), &v);
}

/// Egress: create or refresh the entry of the flow a host packet belongs to.
#[inline(always)]
pub fn egress(cfg: &Config, p: &Pkt, now: u64) {
    if !tracked_proto(p) {
        return;
    }
    let key = egress_key(p);
    if let Some(v) = CONNTRACK.get_ptr_mut(&key) {
        // SAFETY: a map value pointer from a successful lookup, valid for the program run.
        let v = unsafe { &mut *v };
        // The host's first answer to the peer's SYN is a RST: the flow is
        // over (netfilter deletes such an entry at once).
        if p.proto == IPPROTO_TCP
            && p.tcp_flags & TCP_RST != 0
            && v.flags & (CT_F_OUTBOUND | CT_F_REPLIED) == 0
        {
            delete(&key);
            return;
        }
        let pure_syn = p.proto == IPPROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        if live(cfg, v, now) && !(pure_syn && matches!(v.state, CT_TCP_CLOSED | CT_TCP_CLOSING)) {
            let state = if p.proto == IPPROTO_TCP {
                next_tcp_state(v.state, p.tcp_flags, false)
            } else {
                v.state
            };
            let mut flags = v.flags;
            if flags & CT_F_OUTBOUND == 0 {
                flags |= CT_F_REPLIED;
            }
            if state != v.state
                || flags != v.flags
                || now.saturating_sub(v.last_seen_ns) > REFRESH_NS
            {
                v.state = state;
                v.flags = flags;
                v.last_seen_ns = now;
            }
            return;
        }
    }
    let state = match p.proto {
        IPPROTO_TCP => {
            let f = p.tcp_flags;
            if f & TCP_RST != 0 {
                return;
            }
            if f & (TCP_SYN | TCP_ACK) == TCP_SYN {
                CT_TCP_SYN_SENT
            } else if f & TCP_SYN != 0 {
                CT_TCP_SYN_RECV
            } else if f & TCP_FIN != 0 {
                CT_TCP_CLOSING
            } else {
                // Mid-stream pickup, like nf_conntrack_tcp_loose.
                CT_TCP_ESTABLISHED
            }
        }
        IPPROTO_UDP => CT_UDP,
        _ => {
            if !is_echo_request(p.proto, p.icmp_type) {
                return;
            }
            CT_ICMP
        }
    };
    let v = FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state,
        flags: CT_F_OUTBOUND,
        _pad: [0; 6],
    };
    store(&key, &v);
}
