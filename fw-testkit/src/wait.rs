//! Waiting: polling for a condition, timing a call, killing a command at a
//! (seeded, random) moment.
use std::{
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns
/// whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Wall time of `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Spawns `cmd`, SIGKILLs it after `delay` (if still running), and returns
/// whether it had finished by itself, with its output.
pub fn kill_after(mut cmd: Command, delay: Duration) -> (bool, Output) {
    let mut child = cmd.spawn().expect("spawn fw");
    let pid = child.id() as libc::pid_t;
    thread::sleep(delay);
    let finished = child.try_wait().expect("try_wait").is_some();
    if !finished {
        // SAFETY: kill(2) on our own child (nsenter exec'd fw: same pid).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    (finished, child.wait_with_output().expect("wait"))
}

/// A small deterministic generator for kill delays (seed printed by tests).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `$var` (printed), else `default`.
    pub fn from_env(var: &str, default: u64) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default);
        eprintln!("{var}={seed}");
        Rng(seed.max(1))
    }

    /// A number below `n` (xorshift64*).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
