//! The TC egress program: every packet the host sends creates or refreshes
//! its flow's conntrack entry, so the replies are ESTABLISHED on ingress.
use aya_ebpf::{
    bindings::{
        BPF_TCP_CLOSE_WAIT, BPF_TCP_CLOSING, BPF_TCP_ESTABLISHED, BPF_TCP_FIN_WAIT1,
        BPF_TCP_FIN_WAIT2, BPF_TCP_LAST_ACK,
    },
    helpers::generated::{bpf_ktime_get_coarse_ns, bpf_sk_fullsock},
    programs::TcContext,
};

use crate::{
    conntrack,
    maps::{CONFIG, PKT},
    parse::{self, Parsed},
};

/// tcx: let the next program (or the stack) have the packet; the same value
/// means "no opinion" on a legacy clsact hook.
const TCX_NEXT: i32 = -1;
/// Headers fw reads: L2 with two tags, IPv6 with a few extension headers, L4.
const PULL_LEN: u32 = 192;

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    let len = ctx.len();
    let linear = ctx.data_end() - ctx.data();
    if (linear as u32) < PULL_LEN && len as usize > linear {
        let want = if len < PULL_LEN { len } else { PULL_LEN };
        let _ = ctx.pull_data(want);
    }
    let Some(p) = PKT.get_ptr_mut(0) else {
        return TCX_NEXT;
    };
    // SAFETY: the per-CPU scratch value, valid for the program run; no other reference to it.
    let p = unsafe { &mut *p };
    if let Parsed::Ip = parse::parse(ctx, p) {
        if p.has_l4() {
            if let Some(cfg) = CONFIG.get(0) {
                // SAFETY: a helper without arguments, always callable from TC.
                let now = unsafe { bpf_ktime_get_coarse_ns() };
                conntrack::egress(cfg, p, now, || connected_socket(ctx));
            }
        }
    }
    TCX_NEXT
}

/// Whether the packet comes from a connected TCP socket (established, or
/// closing after that): only a completed handshake makes one, so a spoofed
/// source never does. The SYN-ACK of a SYN cookie handshake leaves no trace
/// in conntrack; the host's first segment on the connection the client's
/// ACK made (a bare ACK too) confirms the flow this way. A request socket's
/// SYN-ACK or ACK (not a full socket) and the kernel's control socket's RSTs
/// and time-wait ACKs (never established) do not.
#[inline(always)]
fn connected_socket(ctx: &TcContext) -> bool {
    // SAFETY: ctx.skb is the kernel's __sk_buff for this run; `sk` is a
    // readable (possibly null) field of it.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return false;
    }
    // SAFETY: a non-null socket of the skb; the helper returns null for
    // request and time-wait sockets.
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        return false;
    }
    // SAFETY: a full socket the helper returned; `state` is readable.
    let state = unsafe { (*full).state };
    state == BPF_TCP_ESTABLISHED as u32
        || state == BPF_TCP_FIN_WAIT1 as u32
        || state == BPF_TCP_FIN_WAIT2 as u32
        || state == BPF_TCP_CLOSE_WAIT as u32
        || state == BPF_TCP_LAST_ACK as u32
        || state == BPF_TCP_CLOSING as u32
}
