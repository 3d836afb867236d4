//! Which load of fw the pins hold, for the commands that watch it (`fw log`,
//! `fw top`, `fw stats --watch`) and must follow it across `fw down; fw up`
//! rather than keep reading maps nobody writes any more.
//!
//! A load is told by the kernel id of its META map: every `fw up` onto an
//! empty pin dir makes new maps, and the kernel does not hand out an id again
//! while anything holds the old map (the watcher does).
use std::{fmt, path::PathBuf};

use aya::maps::MapInfo;

use crate::{
    error::{Error, Result},
    kernel::pins::PinDir,
};

/// One load of fw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance(u32);

/// What changed since the last [`Tracker::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The same load as before.
    Same,
    /// fw was unloaded since the last check.
    Unloaded,
    /// Still not loaded.
    Waiting,
    /// A new load is there: reopen its maps.
    Reloaded,
}

/// What a watcher tells its user when fw goes away or comes back (on
/// stderr, or in `fw top`'s header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Unloaded(PathBuf),
    Reloaded(PathBuf),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Unloaded(p) => write!(
                f,
                "fw was unloaded (nothing pinned under {}); waiting for it to be loaded again",
                p.display()
            ),
            Note::Reloaded(p) => write!(
                f,
                "fw was loaded again under {}: following the new instance (its counters start at zero)",
                p.display()
            ),
        }
    }
}

/// The current load of fw under `pins`, if any.
pub fn current(pins: &PinDir) -> Result<Option<Instance>> {
    if !pins.is_loaded() {
        return Ok(None);
    }
    match MapInfo::from_pin(pins.map(fw_common::maps::META)) {
        Ok(info) => Ok(Some(Instance(info.id()))),
        // Unpinned between the two looks: a `fw down` is under way.
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::map(fw_common::maps::META)(e)),
    }
}

/// Follows the loads of fw under one pin dir.
#[derive(Debug)]
pub struct Tracker {
    pins: PinDir,
    seen: Option<Instance>,
}

impl Tracker {
    /// Starts from the load there is now (fw must be loaded).
    pub fn new(pins: &PinDir) -> Result<Tracker> {
        let seen = current(pins)?;
        if seen.is_none() {
            return Err(Error::NotLoaded(pins.root().to_path_buf()));
        }
        Ok(Tracker {
            pins: pins.clone(),
            seen,
        })
    }

    pub fn pins(&self) -> &PinDir {
        &self.pins
    }

    /// Looks again. After [`Change::Reloaded`] the caller reopens the maps
    /// (if that fails, the next check says `Reloaded` again).
    pub fn check(&mut self) -> Result<Change> {
        let now = current(&self.pins)?;
        let change = match (self.seen, now) {
            (Some(a), Some(b)) if a == b => Change::Same,
            (_, Some(_)) => Change::Reloaded,
            (Some(_), None) => Change::Unloaded,
            (None, None) => Change::Waiting,
        };
        self.seen = now;
        Ok(change)
    }

    /// Forgets the current load, so the next [`Tracker::check`] that finds
    /// one says `Reloaded` (a reopen failed halfway).
    pub fn forget(&mut self) {
        self.seen = None;
    }

    /// The note for a change, if it deserves one.
    pub fn note(&self, change: Change) -> Option<Note> {
        let dir = self.pins.root().to_path_buf();
        match change {
            Change::Unloaded => Some(Note::Unloaded(dir)),
            Change::Reloaded => Some(Note::Reloaded(dir)),
            Change::Same | Change::Waiting => None,
        }
    }
}
