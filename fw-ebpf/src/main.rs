//! fw's kernel side: the XDP ingress policy and the TC egress conntrack feed.
//!
//! Stages live in their own modules, in the order a packet meets them:
//! `parse` -> `block` -> `frag` -> `conntrack` -> `policy` -> `limit` -> `syncookie` -> `reject`, with `counters`
//! and `events` recording the outcome.
#![no_std]
#![no_main]
// BPF's atomic add for the blocklist's hit counters (see block.rs).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod block;
mod checksum;
mod conntrack;
mod counters;
mod egress;
mod events;
mod frag;
mod frame;
mod ingress;
mod limit;
mod maps;
mod options;
mod parse;
mod policy;
mod ratelimit;
mod reject;
#[cfg(feature = "rig")]
mod rig;
mod syncookie;

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

#[xdp]
pub fn fw_ingress(ctx: XdpContext) -> u32 {
    ingress::run(&ctx)
}

#[classifier]
pub fn fw_egress(ctx: TcContext) -> i32 {
    egress::run(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// SAFETY: the object's only `license` section and only `LICENSE` symbol, as
// the kernel loader expects; no other item takes that name.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
