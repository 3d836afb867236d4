//! One fw command at a time changes fw: `fw up`, `down`, `allow`, `deny`
//! and `apply` take an exclusive lock first. Without it two commands
//! interleave their read-modify-write of the maps, and two `fw up` at once
//! both load fw, the loser removing the winner's pins (which detaches it).
//!
//! The lock is flock(2) on /run/fw/lock, one for every pin dir (as
//! iptables has /run/xtables.lock): the kernel releases it when the holder
//! exits, however it exits, so a killed command never leaves it taken, and
//! the file is never removed (removing a lock file others wait on would let
//! two commands hold "the" lock).
use std::{
    fs::{self, File, OpenOptions},
    io::{Read as _, Seek as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::{
    apply::RUN_DIR,
    error::{Error, Result},
};

/// How long a command waits for another one to finish, unless
/// [`set_wait`] said otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

static WAIT_MS: AtomicU64 = AtomicU64::new(WAIT.as_millis() as u64);

/// Sets how long [`take`] waits (`fw --wait`).
pub fn set_wait(wait: Duration) {
    WAIT_MS.store(wait.as_millis() as u64, Ordering::Relaxed);
}

/// Held while it lives.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// The lock file.
pub fn path() -> PathBuf {
    Path::new(RUN_DIR).join("lock")
}

/// Takes the lock, waiting (up to [`WAIT`], or what [`set_wait`] set) for
/// a command holding it.
pub fn take() -> Result<Lock> {
    exclusive(Duration::from_millis(WAIT_MS.load(Ordering::Relaxed)))
}

/// Takes the lock, waiting up to `wait` for a command holding it (and
/// saying so on stderr when that takes a while).
pub fn exclusive(wait: Duration) -> Result<Lock> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(RUN_DIR)
        .map_err(|e| Error::io(format!("creating {RUN_DIR}"), e))?;
    let path = path();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let start = Instant::now();
    let mut said = false;
    loop {
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Error::io(format!("locking {}", path.display()), err));
        }
        let holder = holder(&mut file);
        if start.elapsed() >= wait {
            return Err(Error::Busy {
                holder: holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                waited: wait,
            });
        }
        if !said && start.elapsed() >= Duration::from_millis(500) {
            eprintln!(
                "fw: waiting for another fw command{} to finish ...",
                holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Name the holder for whoever waits next.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "pid={}", std::process::id());
    Ok(Lock { _file: file })
}

/// The pid the holder wrote into the lock file, if it got that far.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().strip_prefix("pid=")?.parse().ok()
}
