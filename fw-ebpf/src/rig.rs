//! Tiny programs for test and benchmark rigs, never attached by fw itself:
//! `rig_pass` gives a veth peer the NAPI context that XDP_TX frames need to
//! reach its stack; `rig_drop` is the empty-program baseline of benchmarks.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn rig_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn rig_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}
