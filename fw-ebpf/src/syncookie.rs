//! Stage: SYN cookies for open TCP ports. A SYN the port policy accepted
//! is answered from XDP while the kernel says its listener is flooded: fw
//! looks the listener up, asks the kernel for a cookie
//! (`bpf_tcp_gen_syncookie`, which says no unless the listen queue is full
//! or `net.ipv4.tcp_syncookies = 2`) and turns the frame into the SYN-ACK.
//! No flow is recorded: the client's ACK carries the cookie to the kernel,
//! which checks it and makes the connection; the host's first segment on
//! it confirms the flow (egress, see conntrack).
use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_tuple, BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN},
    helpers::generated::{
        bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_gen_syncookie, bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use fw_common::{Config, CFG_DRY_RUN, IPPROTO_TCP, SYNCOOKIE_OFF};

use crate::{
    frame::{ptr_at, read},
    maps::SCRATCH,
    parse::{
        dst_not_unicast, src_unanswerable, Pkt, FRAG_NONE, MAX_L4_OFF, TCP_ACK, TCP_FIN, TCP_RST,
        TCP_SYN,
    },
    reject::{tcp_answer, MAX_L2},
};

/// What became of a SYN.
pub enum Cookie {
    /// No cookie (mode off, listener not flooded, no listener): the SYN
    /// goes on as before.
    Pass,
    /// The SYN-ACK is built: XDP_TX.
    Sent,
    /// The kernel gave a cookie but the frame could not be rewritten
    /// (half-written): dropped, the client retransmits.
    Lost,
}

/// Answers `p` with a SYN cookie SYN-ACK when it is a SYN fw may answer and
/// the kernel hands out a cookie for it.
#[inline(always)]
pub fn answer(ctx: &XdpContext, p: &Pkt, cfg: &Config) -> Cookie {
    if cfg.syncookie_mode == SYNCOOKIE_OFF
        || cfg.flags & CFG_DRY_RUN != 0
        || p.proto != IPPROTO_TCP
        || p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) != TCP_SYN
        || p.tcp_truncated
        || p.frag != FRAG_NONE
        // The stack drops TCP to broadcast/multicast and from unspecified
        // sources (tcp_v4_rcv, tcp_v4_conn_request): never answered here.
        || dst_not_unicast(p)
        || src_unanswerable(p)
    {
        return Cookie::Pass;
    }
    let r = cookie(ctx, p);
    // -ENOENT: not flooded (or syncookies off in this namespace); other
    // errors: a SYN the kernel will not cookie (an IPv6-only listener).
    if r < 0 {
        return Cookie::Pass;
    }
    let (seq, mss) = (r as u32, (r >> 32) as u16);
    let flags_mss = (TCP_SYN | TCP_ACK) as u32 | (mss as u32) << 8;
    match tcp_answer(ctx, p, seq, p.tcp_seq.wrapping_add(1), flags_mss) {
        Some(()) => Cookie::Sent,
        None => Cookie::Lost,
    }
}

/// What `bpf_tcp_gen_syncookie` says: the cookie (our ISN) in the low 32
/// bits and the MSS it encodes above, or a negative errno (also when there
/// is no listener). One scalar: what a BPF subprogram can return.
#[inline(never)]
fn cookie(ctx: &XdpContext, p: &Pkt) -> i64 {
    cookie_inner(ctx, p).unwrap_or(-1)
}

#[inline(always)]
fn cookie_inner(ctx: &XdpContext, p: &Pkt) -> Option<i64> {
    let l3 = p.l3_off;
    let l4 = p.l4_off;
    if l3 > MAX_L2 || l4 > MAX_L4_OFF {
        return None;
    }
    let doff: [u8; 1] = read(ctx, l4 + 12)?;
    let th_len = ((doff[0] >> 4) as u32) * 4;
    if th_len < 20 {
        return None;
    }
    // The verifier wants a length it can bound below by more than 0: LLVM
    // folds the check above into the shift, so the value is reloaded (the
    // compiler forgets its range, the verifier keeps it) and bounded again
    // in a form that cannot be folded: 20 + (len - 20) % 64 == len here.
    // SAFETY: a plain read of a local.
    let th_len = unsafe { core::ptr::read_volatile(&th_len) };
    let th_len = 20 + (th_len.wrapping_sub(20) & 63);
    // The TCP header, options included, goes to the scratch buffer: the
    // helper reads `th_len` bytes, and the verifier bounds a map value of a
    // variable length where it cannot bound packet memory.
    let th = SCRATCH.get_ptr_mut(0)? as *mut u8;
    // SAFETY: SCRATCH holds far more than 60 bytes; the helper checks the
    // packet range itself.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, l4 as u32, th as *mut _, th_len) } != 0 {
        return None;
    }
    // SAFETY: an all-zero tuple is valid; both families' fields are filled below.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let (iph, iph_len, tuple_len) = if p.family == 4 {
        // SAFETY: writing the ipv4 member of the union (plain integers).
        unsafe {
            let t = &mut tuple.__bindgen_anon_1.ipv4;
            t.saddr = u32::from_ne_bytes([p.src[0], p.src[1], p.src[2], p.src[3]]);
            t.daddr = u32::from_ne_bytes([p.dst[0], p.dst[1], p.dst[2], p.dst[3]]);
            t.sport = p.sport.to_be();
            t.dport = p.dport.to_be();
        }
        (ptr_at::<[u8; 20], _>(ctx, l3)? as *mut u8, 20, 12)
    } else {
        // SAFETY: writing the ipv6 member of the union (plain integers).
        unsafe {
            let t = &mut tuple.__bindgen_anon_1.ipv6;
            for i in 0..4 {
                let j = i * 4;
                t.saddr[i] =
                    u32::from_ne_bytes([p.src[j], p.src[j + 1], p.src[j + 2], p.src[j + 3]]);
                t.daddr[i] =
                    u32::from_ne_bytes([p.dst[j], p.dst[j + 1], p.dst[j + 2], p.dst[j + 3]]);
            }
            t.sport = p.sport.to_be();
            t.dport = p.dport.to_be();
        }
        (ptr_at::<[u8; 40], _>(ctx, l3)? as *mut u8, 40, 36)
    };
    // SAFETY: the tuple lives on our stack for the call; the helper takes
    // a reference on the socket it returns, released below on every path.
    let sk: *mut bpf_sock = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut _,
            &mut tuple,
            tuple_len,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return None;
    }
    // SAFETY: a non-null socket from the lookup; `state` is readable on
    // any sock_common.
    let listening = unsafe { (*sk).state } == BPF_TCP_LISTEN as u32;
    let r = if listening {
        // SAFETY: the listener from the lookup; `iph` is the fixed IP
        // header (checked above), `th` the `th_len` bytes copied above.
        unsafe { bpf_tcp_gen_syncookie(sk as *mut _, iph as *mut _, iph_len, th as *mut _, th_len) }
    } else {
        -1
    };
    // SAFETY: releases the reference the lookup took.
    unsafe { bpf_sk_release(sk as *mut _) };
    Some(r)
}
