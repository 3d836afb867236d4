//! Summaries of rejected/dropped packets for `fw log`, rate-limited so a flood
//! cannot drown userspace (or the ring buffer).
use aya_ebpf::{macros::map, maps::PerCpuArray};
use fw_common::{Config, Event, Reason, BUCKET_EVENTS};

use crate::{maps::EVENTS, parse::Pkt, ratelimit};

/// Events that found the ring buffer full, per CPU. Only `lost` uses it, so
/// it lives here rather than with the pinned maps.
#[map]
static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn emit(cfg: &Config, now: u64, ifindex: u32, len: u32, reason: Reason, p: Option<&Pkt>) {
    let rate = cfg.event_rate_per_cpu;
    if rate == 0 || !ratelimit::take(BUCKET_EVENTS, rate, rate, now) {
        return;
    }
    let Some(mut e) = EVENTS.reserve::<Event>(0) else {
        lost();
        return;
    };
    // Filled in place: an Event on the stack would cost 72 of its 512 bytes.
    let ev = e.as_mut_ptr();
    // SAFETY: `ev` is the reserved ring-buffer slot of one Event, ours until
    // submit.
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

/// Counts an event the full ring buffer refused, and tells `fw up
/// --foreground` (aya-log) at the 1st, 2nd, 4th, 8th... loss on each CPU: a
/// full buffer is normal while nobody runs `fw log`, so this must not log per
/// packet. Never inlined, so its instructions stay off the hot path. (The
/// call costs `fw_ingress` 48 bytes of stack: 296 instead of 248 on the tree
/// this was written against. Not `#[cold]`: that moves the function to
/// `.text.unlikely`, and aya's call relocation then lands in the wrong one.)
#[inline(never)]
fn lost() {
    let Some(n) = EVENTS_LOST.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU array value, valid for the program run.
    let n = unsafe {
        *n += 1;
        *n
    };
    if n & (n - 1) == 0 {
        aya_log_ebpf::warn!(
            &(),
            "event ring buffer full, events lost: is `fw log` reading? (said at the 1st, 2nd, 4th... loss per CPU)"
        );
    }
}
