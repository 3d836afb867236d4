//! Stage 0: blocklists. A source in a block set is dropped (or answered as
//! `[block] with` says) before anything else, established flows included,
//! as a ban at the top of iptables' INPUT cuts a banned source's sessions.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{helpers::bpf_map_lookup_elem, maps::lpm_trie::Key};
use fw_common::{BlockValue, BLOCK_EXPIRED_HOPS};

use crate::{
    maps::{BLOCK_V4, BLOCK_V6},
    parse::Pkt,
};

/// Whether the packet's source is blocked at `now`: the longest prefix
/// holding it that has not expired. An expired entry counts as absent: the
/// lookup goes on with a prefix one bit shorter than the entry's, so a
/// timed ban that ran out inside a blocked range leaves the range's block.
/// Counts a hit on the entry that blocks.
#[inline(always)]
pub fn blocked(p: &Pkt, now: u64) -> bool {
    let mut len: u32 = if p.family == 4 { 32 } else { 128 };
    let mut hop = 0;
    while hop < BLOCK_EXPIRED_HOPS {
        let Some(v) = lookup(p, len) else {
            return false;
        };
        // SAFETY: `v` points at the value of a live trie element (RCU keeps
        // it while this program runs); the fields are plain integers.
        let (expires, prefix_len) = unsafe { ((*v).expires_ns, (*v).prefix_len) };
        if expires == 0 || now < expires {
            // SAFETY: as above; `hits` is 8-byte aligned (offset 8 of a
            // repr(C) value the kernel allocates 8-byte aligned), and every
            // CPU adds atomically (BPF's atomic add: core's atomics offer
            // only loads and stores on a target without compare-and-swap).
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*v).hits, 1) };
            return true;
        }
        if prefix_len == 0 || prefix_len > len {
            return false;
        }
        len = prefix_len - 1;
        hop += 1;
    }
    false
}

/// The value of the longest prefix of at most `len` bits holding the source.
#[inline(always)]
fn lookup(p: &Pkt, len: u32) -> Option<*mut BlockValue> {
    // SAFETY: the map pointers are the maps themselves (repr(transparent)
    // over their definitions); the keys live on the stack for the call.
    let v = unsafe {
        if p.family == 4 {
            let key = Key::new(len, [p.src[0], p.src[1], p.src[2], p.src[3]]);
            bpf_map_lookup_elem(
                (&raw const BLOCK_V4).cast_mut().cast(),
                (&raw const key).cast(),
            )
        } else {
            let key = Key::new(len, p.src);
            bpf_map_lookup_elem(
                (&raw const BLOCK_V6).cast_mut().cast(),
                (&raw const key).cast(),
            )
        }
    };
    if v.is_null() {
        None
    } else {
        Some(v as *mut BlockValue)
    }
}
