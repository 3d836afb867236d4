//! `fw confirm`: keeping what an `fw apply --confirm` put on probation.
use std::{
    fs, io,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    kernel::{
        pins::PinDir,
        rundir::{io_err, parse_pid, pending_dir, pending_pid, CONFIRMED, PENDING},
        sys::{pid_alive, require_root},
    },
};

/// What `fw confirm` did.
#[derive(Debug)]
pub struct ConfirmReport {
    /// The `fw apply --confirm` process that was waiting.
    pub pid: u32,
    /// It had died: the config it applied was already staying.
    pub waiter_gone: bool,
}

/// Confirms a pending `fw apply --confirm` on `pins`.
pub fn confirm(pins: &PinDir) -> Result<ConfirmReport> {
    require_root("fw confirm")?;
    let dir = pending_dir(pins);
    let pending = dir.join(PENDING);
    let nothing = || Error::NothingPending(pins.root().to_path_buf());
    let text = match fs::read_to_string(&pending) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(nothing()),
        Err(e) => return Err(io_err("reading", &pending)(e)),
    };
    let pid = parse_pid(&text).unwrap_or(0);
    match fs::rename(&pending, dir.join(CONFIRMED)) {
        Ok(()) => {}
        // The waiting process decided first (its deadline passed).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(nothing()),
        Err(e) => return Err(io_err("renaming", &pending)(e)),
    }
    if !pid_alive(pid) {
        let _ = fs::remove_dir_all(&dir);
        return Ok(ConfirmReport {
            pid,
            waiter_gone: true,
        });
    }
    // Give the waiting process a moment to see it, so its "confirmed" line
    // comes before our exit.
    let until = Instant::now() + Duration::from_secs(3);
    while dir.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(ConfirmReport {
        pid,
        waiter_gone: false,
    })
}

/// A warning for commands that change the policy while an apply waits for
/// confirmation: its rollback would undo their change too.
pub fn pending_warning(pins: &PinDir) -> Option<String> {
    pending_pid(pins).map(|pid| {
        format!(
            "note: `fw apply --confirm` (pid {pid}) is waiting for confirmation; if it rolls \
             back, this change is undone too"
        )
    })
}
