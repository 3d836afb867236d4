//! Summaries of rejected/dropped packets for `fw log`, rate-limited so a flood
//! cannot drown userspace (or the ring buffer).
use fw_common::{Config, Event, Reason, BUCKET_EVENTS};

use crate::{maps::EVENTS, parse::Pkt, ratelimit};

#[inline(always)]
pub fn emit(cfg: &Config, now: u64, ifindex: u32, len: u32, reason: Reason, p: Option<&Pkt>) {
    let rate = cfg.event_rate_per_cpu;
    if rate == 0 || !ratelimit::take(BUCKET_EVENTS, rate, rate, now) {
        return;
    }
    let Some(mut e) = EVENTS.reserve::<Event>(0) else {
        return;
    };
    // Filled in place: an Event on the stack would cost 72 of its 512 bytes.
    let ev = e.as_mut_ptr();
    unsafe {
        core::ptr::write_bytes(ev, 0, 1);
        (*ev).ts_ns = now;
        (*ev).ifindex = ifindex;
        (*ev).len = len;
        (*ev).reason = reason as u8;
        if let Some(p) = p {
            (*ev).family = p.family;
            (*ev).proto = p.proto;
            (*ev).icmp_type = p.icmp_type;
            (*ev).sport = p.sport;
            (*ev).dport = p.dport;
            (*ev).src = p.src;
            (*ev).dst = p.dst;
        }
    }
    e.submit(0);
}
