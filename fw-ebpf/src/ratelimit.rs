//! Token buckets: per CPU for events (no sharing at all), one shared by all
//! CPUs for reject answers (the configured rate is a global rate).
use fw_common::Bucket;

use crate::maps::{RATE_STATE, REJECT_BUCKET};

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
    // SAFETY: a per-CPU array value: only this CPU touches it, and the map outlives
    // the program run.
    let b: &mut Bucket = unsafe { &mut *b };
    let elapsed = now.wrapping_sub(b.last_ns);
    let elapsed = if elapsed > MAX_ELAPSED_NS {
        MAX_ELAPSED_NS
    } else {
        elapsed
    };
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

/// Takes one token from the reject bucket shared by all CPUs; false when it
/// is empty. Updates race between CPUs the way the kernel's
/// icmp_global_allow accepts: two CPUs taking the last token at once both
/// succeed. An empty bucket is only read, so a reject flood on many CPUs does
/// not bounce its cache line.
#[inline(always)]
pub fn take_shared(rate: u64, burst: u64, now: u64) -> bool {
    let Some(b) = REJECT_BUCKET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `b` points into the one-entry array, valid for the program run; the
    // volatile reads tolerate other CPUs writing it (a race the design allows).
    let (tokens, last) = unsafe {
        (
            core::ptr::read_volatile(&(*b).tokens),
            core::ptr::read_volatile(&(*b).last_ns),
        )
    };
    // Another CPU may have stamped a later `now` than ours.
    let elapsed = now.saturating_sub(last);
    let elapsed = if elapsed > MAX_ELAPSED_NS {
        MAX_ELAPSED_NS
    } else {
        elapsed
    };
    let cap = burst * NS;
    let mut avail = tokens + elapsed * rate;
    if avail > cap {
        avail = cap;
    }
    if avail < NS {
        return false;
    }
    // SAFETY: as above: a valid array value; a concurrent writer only costs a token.
    unsafe {
        core::ptr::write_volatile(&mut (*b).tokens, avail - NS);
        core::ptr::write_volatile(&mut (*b).last_ns, now);
    }
    true
}
