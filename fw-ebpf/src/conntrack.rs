//! fw's own connection tracking (the seed's ESTABLISHED,RELATED rule), in
//! two tables so no inbound flood can displace a confirmed flow.
//!
//! Entries are keyed by the flow as seen on ingress (`src` = the peer).
//! `CONNTRACK` holds confirmed flows: the host started them (a SYN, a
//! datagram, an echo request going out), or the peer proved it sees the
//! host's answers (it acknowledged the host's SYN-ACK, or the host sent it
//! data, which only a connected socket does), or they were seeded at `fw
//! up`. `CT_UNCONFIRMED` holds the rest: a SYN or a first datagram the
//! policy accepted, the host's SYN-ACK or bare ACK on a flow fw did not
//! know. A flood of new flows (spoofed SYNs: the host answers each with a
//! SYN-ACK, but the spoofer never sees it) churns the unconfirmed table
//! only. Inbound TCP segments other than a SYN that match no flow record
//! nothing. An expired entry counts as absent. A lookup tries the
//! confirmed table first.
use fw_common::{
    ct_timeout_ns, Config, FlowKey, FlowValue, CT_F_OUTBOUND, CT_F_REPLIED, CT_F_SYNACK, CT_ICMP,
    CT_STAT_CREATED, CT_STAT_DELETED, CT_STAT_PROMOTED, CT_STAT_U_CREATED, CT_STAT_U_DELETED,
    CT_TCP_CLOSED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED, CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_UDP,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

use crate::{
    maps::{CONNTRACK, CT_STATS, CT_UNCONFIRMED},
    parse::{is_echo, is_echo_request, is_icmp, Pkt, Quoted, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

/// BPF_NOEXIST: create only, so new keys can be told from refreshed ones.
const BPF_NOEXIST: u64 = 1;

#[inline(always)]
fn bump(stat: u32) {
    if let Some(c) = CT_STATS.get_ptr_mut(stat) {
        // SAFETY: a per-CPU array value, valid for the program run; no
        // other writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Stores `v` under `key` in the confirmed table, counting the key if it
/// is new.
#[inline(always)]
fn store(key: &FlowKey, v: &FlowValue) {
    if CONNTRACK.insert(key, v, BPF_NOEXIST).is_ok() {
        bump(CT_STAT_CREATED);
    } else {
        // The key is there (an expired entry, or a flow starting over).
        let _ = CONNTRACK.insert(key, v, 0);
    }
}

/// Stores `v` under `key` in the unconfirmed table, counting new keys.
#[inline(always)]
fn store_unconfirmed(key: &FlowKey, v: &FlowValue) {
    if CT_UNCONFIRMED.insert(key, v, BPF_NOEXIST).is_ok() {
        bump(CT_STAT_U_CREATED);
    } else {
        let _ = CT_UNCONFIRMED.insert(key, v, 0);
    }
}

#[inline(always)]
fn delete(key: &FlowKey) {
    if CONNTRACK.remove(key).is_ok() {
        bump(CT_STAT_DELETED);
    }
}

#[inline(always)]
fn delete_unconfirmed(key: &FlowKey) {
    if CT_UNCONFIRMED.remove(key).is_ok() {
        bump(CT_STAT_U_DELETED);
    }
}

/// Moves an unconfirmed flow to the confirmed table, as `v`.
#[inline(always)]
fn promote(key: &FlowKey, v: &FlowValue) {
    store(key, v);
    delete_unconfirmed(key);
    bump(CT_STAT_PROMOTED);
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

/// Whether `key` is a live flow of either table (used for RELATED).
#[inline(always)]
pub fn known(cfg: &Config, key: &FlowKey, now: u64) -> bool {
    // SAFETY: the value is read at once, while the program runs.
    if let Some(v) = unsafe { CONNTRACK.get(key) } {
        if live(cfg, v, now) {
            return true;
        }
    }
    // SAFETY: as above.
    match unsafe { CT_UNCONFIRMED.get(key) } {
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

/// What an inbound packet does to the entry of its flow.
enum Inbound {
    /// Part of the flow (ESTABLISHED); the entry is updated.
    Pass,
    /// Part of the flow, which it ends: delete the entry.
    PassDelete,
    /// Not part of this flow: the policy decides.
    Decline,
}

/// An inbound packet on the live entry `v` of its flow.
#[inline(always)]
fn inbound(p: &Pkt, v: &mut FlowValue, now: u64) -> Inbound {
    let mut state = v.state;
    if p.proto == IPPROTO_TCP {
        let f = p.tcp_flags;
        // A fresh SYN on a closed flow is a new connection: policy decides.
        let pure_syn = f & (TCP_SYN | TCP_ACK) == TCP_SYN;
        if pure_syn && (state == CT_TCP_CLOSED || state == CT_TCP_CLOSING) {
            return Inbound::Decline;
        }
        if !tcp_transition_valid(v, f) {
            return Inbound::Decline;
        }
        // The first answer to the host's SYN is a RST: the flow is over
        // (netfilter deletes such an entry at once).
        if v.flags & (CT_F_OUTBOUND | CT_F_REPLIED) == CT_F_OUTBOUND && f & TCP_RST != 0 {
            return Inbound::PassDelete;
        }
        state = next_tcp_state(state, f, true);
    } else if is_echo(p.proto, p.icmp_type) {
        // An echo flow goes one way: the host's pings get replies, a
        // peer's pings (`fw allow icmp echo`) get requests. Our own echo
        // id reused by the peer as a request is no reply, a reply on the
        // peer's flow no request (netfilter's icmp tuples tell them apart
        // by type the same way).
        let outbound = v.flags & CT_F_OUTBOUND != 0;
        if is_echo_request(p.proto, p.icmp_type) == outbound {
            return Inbound::Decline;
        }
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
    Inbound::Pass
}

/// What the conntrack lookup made of an inbound packet.
pub enum Track {
    /// Part of a live flow: ESTABLISHED.
    Known,
    /// Not part of a flow; `shadowed`: the confirmed table holds an entry
    /// under its key all the same (expired, closed, or one the packet does
    /// not fit), which a new flow recorded for it replaces.
    New { shadowed: bool },
}

/// Ingress lookup: whether the packet belongs to a live flow (ESTABLISHED),
/// refreshing its entry. An inbound TCP segment that acknowledges the
/// host's SYN-ACK confirms its flow.
#[inline(always)]
pub fn ingress(cfg: &Config, p: &Pkt, now: u64) -> Track {
    if !tracked_proto(p) || (p.proto == IPPROTO_TCP && !tcp_valid(p)) {
        return Track::New { shadowed: false };
    }
    let key = ingress_key(p);
    let mut shadowed = false;
    if let Some(v) = CONNTRACK.get_ptr_mut(&key) {
        // SAFETY: a value of the map, valid while the program runs; the
        // fields written are plain integers (a racing CPU's write to the
        // same entry is as benign as netfilter's per-packet refreshes).
        let v = unsafe { &mut *v };
        if live(cfg, v, now) {
            match inbound(p, v, now) {
                Inbound::Pass => return Track::Known,
                Inbound::PassDelete => {
                    delete(&key);
                    return Track::Known;
                }
                Inbound::Decline => {}
            }
        }
        shadowed = true;
    }
    if let Some(v) = CT_UNCONFIRMED.get_ptr_mut(&key) {
        // SAFETY: as above.
        let v = unsafe { &mut *v };
        if live(cfg, v, now) {
            // The peer acknowledges the host's SYN-ACK: it sees the host's
            // answers, which a spoofed source does not.
            let confirms = p.proto == IPPROTO_TCP
                && v.flags & CT_F_SYNACK != 0
                && p.tcp_flags & (TCP_SYN | TCP_RST | TCP_ACK) == TCP_ACK
                && p.tcp_ack == v.host_isn.wrapping_add(1);
            match inbound(p, v, now) {
                Inbound::Pass => {
                    if confirms {
                        let mut c = *v;
                        c.last_seen_ns = now;
                        promote(&key, &c);
                    }
                    return Track::Known;
                }
                Inbound::PassDelete => {
                    delete_unconfirmed(&key);
                    return Track::Known;
                }
                Inbound::Decline => {}
            }
        }
    }
    Track::New { shadowed }
}

/// Records a new inbound flow the policy accepted, as unconfirmed: a SYN
/// or a UDP datagram. Any other TCP segment that matched no flow (an ACK,
/// FIN or RST out of state) records nothing: a flood of them costs no
/// entry. The host's own answer records such a flow if it is one.
#[inline(always)]
pub fn accept_new(p: &Pkt, now: u64, shadowed: bool) {
    let state = match p.proto {
        IPPROTO_TCP => {
            if !starts_flow(p) {
                return;
            }
            CT_TCP_SYN_RECV
        }
        IPPROTO_UDP => CT_UDP,
        // A peer's ping the policy let in (`fw allow icmp echo`): its
        // next requests of the same id are established, as netfilter's.
        IPPROTO_ICMP | IPPROTO_ICMPV6 if is_echo_request(p.proto, p.icmp_type) => CT_ICMP,
        _ => return,
    };
    let v = FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state,
        flags: 0,
        _pad: [0; 2],
        host_isn: 0,
    };
    let key = ingress_key(p);
    if shadowed {
        // The new flow replaces what the confirmed table held under its key.
        delete(&key);
    }
    store_unconfirmed(&key, &v);
}

/// Whether an inbound TCP/UDP packet that matched no flow starts one (and
/// so is recorded by [`accept_new`] when the policy lets it in): a SYN
/// without ACK, or any datagram.
#[inline(always)]
pub fn starts_flow(p: &Pkt) -> bool {
    match p.proto {
        // tcp_valid takes no SYN together with FIN or RST.
        IPPROTO_TCP => p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN && tcp_valid(p),
        IPPROTO_UDP => true,
        _ => false,
    }
}

/// What a host packet does to the entry of its flow.
enum Outbound {
    /// Updated.
    Done,
    /// The flow is over: delete the entry.
    Delete,
    /// Expired, or a new flow starting over it: make a fresh entry.
    Stale,
}

/// A host packet on the entry `v` of its flow.
#[inline(always)]
fn outbound(cfg: &Config, p: &Pkt, v: &mut FlowValue, now: u64) -> Outbound {
    // The host's first answer to the peer's SYN is a RST: the flow is
    // over (netfilter deletes such an entry at once).
    if p.proto == IPPROTO_TCP
        && p.tcp_flags & TCP_RST != 0
        && v.flags & (CT_F_OUTBOUND | CT_F_REPLIED) == 0
    {
        return Outbound::Delete;
    }
    let pure_syn = p.proto == IPPROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    if !live(cfg, v, now) || (pure_syn && matches!(v.state, CT_TCP_CLOSED | CT_TCP_CLOSING)) {
        return Outbound::Stale;
    }
    let state = if p.proto == IPPROTO_TCP {
        next_tcp_state(v.state, p.tcp_flags, false)
    } else {
        v.state
    };
    let mut flags = v.flags;
    if flags & CT_F_OUTBOUND == 0 {
        flags |= CT_F_REPLIED;
    }
    if state != v.state || flags != v.flags || now.saturating_sub(v.last_seen_ns) > REFRESH_NS {
        v.state = state;
        v.flags = flags;
        v.last_seen_ns = now;
    }
    Outbound::Done
}

/// Whether a host packet confirms its flow: a datagram (UDP has no
/// handshake: an answer is all there is), an echo request, or a TCP
/// segment only a connected socket sends (a SYN of its own, data, a FIN).
/// A SYN-ACK answers any SYN, spoofed ones too, and a bare ACK may be a
/// half-open connection's answer to a segment out of its window.
#[inline(always)]
fn host_confirms(p: &Pkt) -> bool {
    if p.proto != IPPROTO_TCP {
        return true;
    }
    let f = p.tcp_flags;
    if f & TCP_RST != 0 {
        return false;
    }
    if f & TCP_SYN != 0 {
        return f & TCP_ACK == 0;
    }
    p.tcp_payload != 0 || f & TCP_FIN != 0
}

/// Egress: create or refresh the entry of the flow a host packet belongs
/// to, confirming it when the packet says the flow is real: by itself
/// (`host_confirms`), or because `connected` (asked only when fw has no
/// confirmed entry) says a connected socket sent it.
#[inline(always)]
pub fn egress(cfg: &Config, p: &Pkt, now: u64, connected: impl Fn() -> bool) {
    if !tracked_proto(p) {
        return;
    }
    let key = egress_key(p);
    if let Some(v) = CONNTRACK.get_ptr_mut(&key) {
        // SAFETY: a value of the map, valid while the program runs.
        match outbound(cfg, p, unsafe { &mut *v }, now) {
            Outbound::Done => return,
            Outbound::Delete => {
                delete(&key);
                return;
            }
            Outbound::Stale => {}
        }
    }
    let synack = p.proto == IPPROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK;
    if let Some(v) = CT_UNCONFIRMED.get_ptr_mut(&key) {
        // SAFETY: as above.
        let v = unsafe { &mut *v };
        match outbound(cfg, p, v, now) {
            Outbound::Done => {
                if synack {
                    v.flags |= CT_F_SYNACK;
                    v.host_isn = p.tcp_seq;
                }
                if host_confirms(p) || (p.proto == IPPROTO_TCP && connected()) {
                    let mut c = *v;
                    c.last_seen_ns = now;
                    promote(&key, &c);
                }
                return;
            }
            Outbound::Delete => {
                delete_unconfirmed(&key);
                return;
            }
            Outbound::Stale => {}
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
    let mut v = FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state,
        flags: CT_F_OUTBOUND,
        _pad: [0; 2],
        host_isn: 0,
    };
    // A connected socket's segment without an entry: a SYN cookie
    // connection (fw's or the kernel's own cookie kept no SYN in conntrack).
    if host_confirms(p) || (p.proto == IPPROTO_TCP && connected()) {
        store(&key, &v);
    } else {
        // A SYN-ACK or a bare ACK of a flow fw does not know (its
        // unconfirmed entry was displaced, or it began before fw).
        if synack {
            v.flags |= CT_F_SYNACK;
            v.host_isn = p.tcp_seq;
        }
        store_unconfirmed(&key, &v);
    }
}
