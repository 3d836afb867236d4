//! Internet checksums. Words are read and the result stored in memory order,
//! which is what one's-complement sums allow on any endianness.
use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_load_bytes},
    programs::XdpContext,
};

use crate::{
    frame::read,
    maps::{SCRATCH, SCRATCH_LEN},
};

/// Adds the bytes of `b` (zero-padded to even length) to `sum`.
#[inline(always)]
pub fn add<const N: usize>(sum: u64, b: &[u8; N]) -> u64 {
    let mut s = sum;
    let mut i = 0;
    while i + 1 < N {
        s += u16::from_ne_bytes([b[i], b[i + 1]]) as u64;
        i += 2;
    }
    if N % 2 == 1 {
        s += u16::from_ne_bytes([b[N - 1], 0]) as u64;
    }
    s
}

/// Folds a sum to 16 bits and complements it: the value to store.
#[inline(always)]
pub fn finish(sum: u64) -> [u8; 2] {
    let mut s = sum;
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    (!(s as u16)).to_ne_bytes()
}

/// Largest packet excerpt `packet_sum` handles.
pub const MAX_SUM_LEN: usize = 1280;
/// bpf_csum_diff handles at most this much per call on older kernels.
const CHUNK: usize = 512;

/// Sum of `len` packet bytes at `off`, copied to a per-CPU scratch buffer
/// first: the verifier cannot bound a variable-length read of packet memory.
#[inline(always)]
pub fn packet_sum(ctx: &XdpContext, off: usize, len: usize) -> Option<u64> {
    if len == 0 || len > MAX_SUM_LEN {
        return None;
    }
    let buf = SCRATCH.get_ptr_mut(0)?;
    let base = buf as *mut u8;
    // SAFETY: SCRATCH holds SCRATCH_LEN bytes and len <= MAX_SUM_LEN fits in it; the
    // helper checks `off + len` against the frame itself.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, off as u32, base as *mut _, len as u32) };
    if rc != 0 {
        return None;
    }
    // Zero up to the next multiple of 4 (csum_diff works on 32-bit words).
    for i in 0..3 {
        let j = len + i;
        if j < SCRATCH_LEN {
            // SAFETY: j < SCRATCH_LEN, checked on the line above.
            unsafe { *base.add(j) = 0 };
        }
    }
    let padded = (len + 3) & !3;
    let mut sum = 0u64;
    let mut done = 0usize;
    for _ in 0..MAX_SUM_LEN.div_ceil(CHUNK) {
        if done >= padded {
            break;
        }
        let n = if padded - done > CHUNK {
            CHUNK
        } else {
            padded - done
        };
        if done > MAX_SUM_LEN || n > CHUNK {
            return None;
        }
        // SAFETY: done + n <= padded <= MAX_SUM_LEN + 3 < SCRATCH_LEN: the words read lie
        // inside SCRATCH.
        let r = unsafe {
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                base.add(done) as *mut u32,
                n as u32,
                0,
            )
        };
        if r < 0 {
            return None;
        }
        sum += r as u32 as u64;
        done += n;
    }
    Some(sum)
}

/// Whether the IPv4 header at `l3` (options included) has a valid checksum:
/// its words sum to 0xffff. `l3` must be bounded by the caller.
#[inline(always)]
pub fn ipv4_header_ok(ctx: &XdpContext, l3: usize) -> bool {
    let Some(h) = read::<[u8; 20], _>(ctx, l3) else {
        return false;
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    let mut sum = add(0, &h);
    if ihl > 20 {
        // Options: 4..=40 bytes, through the scratch buffer.
        match packet_sum(ctx, l3 + 20, ihl - 20) {
            Some(s) => sum += s,
            None => return false,
        }
    }
    finish(sum) == [0, 0]
}
