//! One fw command at a time changes fw: `fw up`, `down`, `allow`, `deny`
//! and `apply` take an exclusive lock first. Without it two commands
//! interleave their read-modify-write of the maps, and two `fw up` at once
//! both load fw, the loser removing the winner's pins (which detaches it).
//!
//! The lock is flock(2) on /run/fw/lock, one shared by all pin dirs (as
//! iptables has /run/xtables.lock): the kernel releases it when the holder
//! exits, however it exits, so a killed command never leaves it taken, and
//! the file is never removed (removing a lock file others wait on would let
//! two commands hold "the" lock).
use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    kernel::rundir::{make_private_dir, RUN_DIR},
};

/// How long a command waits for another one to finish, unless
/// [`set_wait`] said otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

static WAIT_MS: AtomicU64 = AtomicU64::new(WAIT.as_millis() as u64);

/// Sets how long [`take`] waits (`fw --wait`).
pub fn set_wait(wait: Duration) {
    WAIT_MS.store(wait.as_millis() as u64, Ordering::Relaxed);
}

/// Threads of one process (a program using this library) queue here
/// first: a blocked mutex waiter is woken at once, where polling flock lets
/// a thread that releases and retakes it starve the others. (This wait has
/// no deadline: another thread's command is bounded by its own.)
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Held while it lives.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    _thread: MutexGuard<'static, ()>,
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
    // A thread that panicked while holding it left nothing half-done here.
    let thread = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    make_private_dir(Path::new(RUN_DIR))?;
    let path = path();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let start = Instant::now();
    let mut said = false;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Error::io(format!("locking {}", path.display()), err));
        }
        let holder = || {
            holder(&file)
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default()
        };
        if start.elapsed() >= wait {
            return Err(Error::Busy {
                holder: holder(),
                waited: wait,
            });
        }
        if !said && start.elapsed() >= Duration::from_millis(500) {
            // A closed stderr is no reason to fail.
            let _ = writeln!(
                std::io::stderr(),
                "fw: waiting for another fw command{} to finish ...",
                holder()
            );
            said = true;
        }
        // Most holders are done within milliseconds: poll soon, then less.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(Lock {
        _file: file,
        _thread: thread,
    })
}

/// The pid holding the lock, as /proc/locks tells (nothing is written into
/// the file: rewriting it on every command made ext4 flush it on close,
/// milliseconds each under load).
fn holder(file: &File) -> Option<u32> {
    let ino = file.metadata().ok()?.ino();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, ino)
}

/// In /proc/locks text, the pid of the FLOCK on inode `ino`. A line reads
/// `1: FLOCK  ADVISORY  WRITE 1626 fd:00:1234567 0 EOF`.
fn holder_in(locks: &str, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, id) = (f.get(1)?, f.get(4)?, f.get(5)?);
        let on = id.rsplit(':').next()?.parse::<u64>().ok()?;
        (*kind == "FLOCK" && on == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let text = "1: POSIX  ADVISORY  WRITE 77 fd:00:42 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1626 fd:00:42 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 99 fd:00:43 0 EOF\n";
        assert_eq!(holder_in(text, 42), Some(1626));
        assert_eq!(holder_in(text, 43), Some(99));
        assert_eq!(holder_in(text, 44), None);
        assert_eq!(holder_in("", 42), None);
    }
}
