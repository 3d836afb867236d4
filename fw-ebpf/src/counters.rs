//! Per-CPU counters: packets and bytes per (interface slot, reason), hits per
//! allowed (proto, port). Summed in userspace.
use fw_common::{Reason, MAX_IFINDEX, REASON_SLOTS};

use crate::maps::{COUNTERS, IFACE_SLOT, PORT_HITS};

/// The counter slot userspace gave this interface (0 when unknown).
#[inline(always)]
pub fn iface_slot(ifindex: u32) -> u32 {
    if ifindex >= MAX_IFINDEX {
        return 0;
    }
    IFACE_SLOT.get(ifindex).copied().unwrap_or(0)
}

#[inline(always)]
pub fn count(slot: u32, reason: Reason, bytes: u64) {
    let idx = slot * REASON_SLOTS + reason as u32;
    if let Some(c) = COUNTERS.get_ptr_mut(idx) {
        // Per-CPU value: no other writer, plain adds are exact.
        // SAFETY: a per-CPU array value, valid for the program run.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn count_port(port_index: u32) {
    if let Some(c) = PORT_HITS.get_ptr_mut(port_index) {
        // SAFETY: a per-CPU array value, valid for the program run.
        unsafe { *c += 1 };
    }
}
