//! The TC egress program: every packet the host sends creates or refreshes
//! its flow's conntrack entry, so the replies are ESTABLISHED on ingress.
use aya_ebpf::{helpers::generated::bpf_ktime_get_coarse_ns, programs::TcContext};

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
                conntrack::egress(cfg, p, unsafe { bpf_ktime_get_coarse_ns() });
            }
        }
    }
    TCX_NEXT
}
