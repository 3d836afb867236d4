//! /run/fw: fw's state between commands that is not in the kernel (tmpfs,
//! gone at reboot, when fw is gone too). The lock file, and per pin dir a
//! directory with the journal of an apply under way and the probation
//! state of `fw apply --confirm`.
use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    kernel::{pins::PinDir, sys::pid_alive},
    model::record::fnv1a,
};

/// Where probation state lives, one directory per pin dir.
pub const RUN_DIR: &str = "/run/fw";
pub const PENDING: &str = "pending";
pub const CONFIRMED: &str = "confirmed";
pub const EXPIRED: &str = "expired";
pub const PREVIOUS: &str = "previous.toml";
/// Present while an apply writes the maps (`pid=`, `file=`): left behind,
/// with a dead pid, when the apply was killed halfway.
pub const APPLYING: &str = "applying";
/// The config running before that apply (to restore the whole of it).
pub const APPLYING_OLD: &str = "applying-old.toml";

/// Writes `body` to `path`, readable by root only.
pub fn write_private(path: &Path, body: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("writing", path))?;
    f.write_all(body.as_bytes())
        .map_err(io_err("writing", path))
}

/// An `fw apply` killed while it wrote the maps, or an `fw apply --confirm`
/// killed before its decision: the half state the next command reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The running policy may be part old, part new.
    Apply {
        pid: u32,
        file: String,
        previous: PathBuf,
    },
    /// The new config is live and was never confirmed, nor rolled back.
    Probation { pid: u32, previous: PathBuf },
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupted::Apply {
                pid,
                file,
                previous,
            } => write!(
                f,
                "`fw apply {file}` (pid {pid}) was interrupted while changing the policy: the \
                 running policy may be part old, part new. Run `fw apply {file}` again to \
                 finish it, or `fw apply {}` to go back to the config before it",
                previous.display()
            ),
            Interrupted::Probation { pid, previous } => write!(
                f,
                "`fw apply --confirm` (pid {pid}) died before its deadline: the config it \
                 applied is live, unconfirmed and will not be rolled back. Run `fw confirm` to \
                 keep it, or `fw apply {}` to go back to the config before it",
                previous.display()
            ),
        }
    }
}

/// What an interrupted `fw apply` left on `pins`, if anything.
pub fn interrupted(pins: &PinDir) -> Option<Interrupted> {
    let dir = pending_dir(pins);
    if let Ok(text) = fs::read_to_string(dir.join(APPLYING)) {
        let pid = parse_pid(&text)?;
        if !pid_alive(pid) {
            let file = text
                .lines()
                .find_map(|l| l.strip_prefix("file="))
                .unwrap_or("FILE")
                .to_string();
            return Some(Interrupted::Apply {
                pid,
                file,
                previous: dir.join(APPLYING_OLD),
            });
        }
    }
    let text = fs::read_to_string(dir.join(PENDING)).ok()?;
    let pid = parse_pid(&text)?;
    (!pid_alive(pid)).then(|| Interrupted::Probation {
        pid,
        previous: dir.join(PREVIOUS),
    })
}

/// Makes `dir` (and missing parents, such as [`RUN_DIR`]) root-only.
pub fn make_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("creating", dir))
}

/// The probation directory of a pin dir: /run/fw/<hash of its path>.
pub fn pending_dir(pins: &PinDir) -> PathBuf {
    let root = fs::canonicalize(pins.root()).unwrap_or_else(|_| pins.root().to_path_buf());
    let h = fnv1a(root.as_os_str().as_encoded_bytes());
    Path::new(RUN_DIR).join(format!("{h:016x}"))
}

/// The pid of a live `fw apply --confirm` waiting on `pins`, if any.
pub fn pending_pid(pins: &PinDir) -> Option<u32> {
    let text = fs::read_to_string(pending_dir(pins).join(PENDING)).ok()?;
    let pid = parse_pid(&text)?;
    pid_alive(pid).then_some(pid)
}

pub fn parse_pid(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("pid=")?.trim().parse().ok())
}

pub fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |e| Error::io(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_dirs_differ_per_pin_dir() {
        let a = pending_dir(&PinDir::new("/sys/fs/bpf/fw"));
        let b = pending_dir(&PinDir::new("/sys/fs/bpf/fwtest-1-0"));
        assert_ne!(a, b);
        assert!(a.starts_with(RUN_DIR));
        assert_eq!(a, pending_dir(&PinDir::new("/sys/fs/bpf/fw")));
    }

    #[test]
    fn parses_pid() {
        assert_eq!(parse_pid("pid=42\ndeadline=1\n"), Some(42));
        assert_eq!(parse_pid("deadline=1\n"), None);
    }
}
