//! Per-CPU token buckets: userspace splits the global rate over the CPUs, so
//! the hot path needs no atomics.
use fw_common::Bucket;

use crate::maps::RATE_STATE;

const NS: u64 = 1_000_000_000;
/// Idle time after which the bucket is full anyway; keeps the product below
/// u64 overflow for any rate userspace accepts (<= 10^7/s).
const MAX_ELAPSED_NS: u64 = 100 * NS;

/// Takes one token from bucket `idx`; false when it is empty.
#[inline(always)]
pub fn take(idx: u32, rate: u64, burst: u64, now: u64) -> bool {
    let Some(b) = RATE_STATE.get_ptr_mut(idx) else {
        return false;
    };
    let b: &mut Bucket = unsafe { &mut *b };
    let elapsed = now.wrapping_sub(b.last_ns);
    let elapsed = if elapsed > MAX_ELAPSED_NS { MAX_ELAPSED_NS } else { elapsed };
    let cap = burst * NS;
    let mut tokens = b.tokens + elapsed * rate;
    if tokens > cap {
        tokens = cap;
    }
    b.last_ns = now;
    if tokens >= NS {
        b.tokens = tokens - NS;
        true
    } else {
        b.tokens = tokens;
        false
    }
}
