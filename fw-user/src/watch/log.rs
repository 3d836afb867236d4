//! `fw log`: follows the event stream and prints one line (or one JSON
//! object, shape in [`crate::watch::events`]) per rejected or dropped packet, until
//! Ctrl-C/SIGTERM, `--count N` events or `--timeout SECS`. Across `fw down;
//! fw up` it follows the new load of fw (see [`crate::watch::instance`]), saying so.
use std::{
    io::{self, Write},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    kernel::{maps::FwMaps, shutdown::Shutdown},
    watch::{
        events::EventReader,
        instance::{Change, Note, Tracker},
    },
};

/// How long one wait for events lasts: the bound on noticing Ctrl-C or the
/// end of `--timeout`.
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub json: bool,
    /// Exit after this many events.
    pub count: Option<u64>,
    /// Exit after this long; with `count`, having fewer events by then is an error.
    pub timeout: Option<Duration>,
    /// Also show events that were waiting in the buffer before we started.
    pub backlog: bool,
}

/// Why `follow` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Count,
    Timeout,
    Signal,
    /// The reader of our output went away (`fw log | head`).
    OutputClosed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSummary {
    pub shown: u64,
    pub stopped: Stopped,
}

/// An open `fw log`: the ring buffer is being read from the moment this
/// exists, so a caller can announce readiness and then [`Log::follow`].
pub struct Log {
    reader: EventReader,
    tracker: Tracker,
    /// When the tracker last looked (at most once per [`POLL`]).
    looked: Option<Instant>,
    opts: LogOptions,
}

impl Log {
    pub fn open(maps: &FwMaps, opts: &LogOptions) -> Result<Log> {
        if opts.count == Some(0) {
            return Err(Error::invalid("--count", "0", "give at least 1 event"));
        }
        Ok(Log {
            tracker: Tracker::new(maps.pins())?,
            looked: None,
            reader: EventReader::open(maps, opts.backlog)?,
            opts: opts.clone(),
        })
    }

    /// Prints events to `out` until one of the stop conditions; `notes`
    /// hears when fw is unloaded or loaded again meanwhile.
    pub fn follow(
        &mut self,
        stop: &Shutdown,
        out: &mut dyn Write,
        notes: &mut dyn FnMut(&Note),
    ) -> Result<LogSummary> {
        let start = Instant::now();
        let mut shown = 0u64;
        let done = |shown: u64, stopped| Ok(LogSummary { shown, stopped });
        loop {
            if stop.requested() {
                return done(shown, Stopped::Signal);
            }
            self.follow_reloads(notes)?;
            let left = match self.opts.timeout {
                Some(t) => match t.checked_sub(start.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return self.timed_out(shown),
                },
                None => POLL,
            };
            if !self.reader.wait(left.min(POLL))? {
                continue;
            }
            let max = self.opts.count.map_or(usize::MAX, |c| (c - shown) as usize);
            for ev in self.reader.drain(max) {
                let written = if self.opts.json {
                    serde_json::to_writer(&mut *out, &ev)
                        .map_err(io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                } else {
                    writeln!(out, "{}", ev.line())
                };
                match written {
                    Ok(()) => shown += 1,
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return done(shown, Stopped::OutputClosed)
                    }
                    Err(e) => return Err(Error::io("writing events", e)),
                }
            }
            match out.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return done(shown, Stopped::OutputClosed)
                }
                Err(e) => return Err(Error::io("writing events", e)),
            }
            if self.opts.count.is_some_and(|c| shown >= c) {
                return done(shown, Stopped::Count);
            }
        }
    }

    /// Moves to the ring buffer of a new load of fw, if there is one.
    fn follow_reloads(&mut self, notes: &mut dyn FnMut(&Note)) -> Result<()> {
        if self.looked.is_some_and(|t| t.elapsed() < POLL) {
            return Ok(());
        }
        self.looked = Some(Instant::now());
        let change = self.tracker.check()?;
        if change == Change::Reloaded {
            let reopened =
                FwMaps::open(self.tracker.pins()).and_then(|maps| self.reader.reopen(&maps));
            match reopened {
                Ok(()) => {}
                // Gone again already: the next look tells.
                Err(_) if !self.tracker.pins().is_loaded() => {
                    self.tracker.forget();
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(n) = self.tracker.note(change) {
            notes(&n);
        }
        Ok(())
    }

    fn timed_out(&self, shown: u64) -> Result<LogSummary> {
        match (self.opts.count, self.opts.timeout) {
            (Some(wanted), Some(t)) if shown < wanted => Err(Error::TooFewEvents {
                shown,
                wanted,
                secs: t.as_secs_f64(),
            }),
            _ => Ok(LogSummary {
                shown,
                stopped: Stopped::Timeout,
            }),
        }
    }
}
