//! The kernel side's clock, read from userspace: conntrack timestamps and
//! event times are `bpf_ktime_get_coarse_ns`, i.e. CLOCK_MONOTONIC_COARSE
//! (tick resolution is plenty for timeouts and rates, and it is cheaper per
//! packet than the precise clock).

/// Now, on the clock the kernel side stamps with.
pub fn kernel_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; the clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
