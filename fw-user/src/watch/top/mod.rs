//! `fw top`: a live terminal view of fw (ratatui on crossterm), refreshed
//! every second: rates per reason, top ports, top rejected sources (from the
//! event stream), and sparklines of accepted vs rejected packets per second.
//! q, Esc or Ctrl-C quits; the terminal is restored on exit, on error and on
//! panic (ratatui's panic hook).
//!
//! [`model`] turns snapshots into rows (pure data); [`view`] draws them.
//! `fw top` reads the `EVENTS` ring buffer, so a `fw log` running at the
//! same time sees only part of the events (and so does `fw top`). Across
//! `fw down; fw up` it follows the new load of fw, saying so in its header
//! ([`Feed`]).
pub mod model;
pub mod view;

use std::{
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::{
    error::{Error, Result},
    kernel::{maps::FwMaps, shutdown::Shutdown},
    watch::{
        events::EventReader,
        instance::{Change, Tracker},
        stats::Stats,
    },
};
pub use model::TopModel;

/// Between two counter snapshots.
const REFRESH: Duration = Duration::from_secs(1);
/// Longest wait for a key: the bound on reacting to q or SIGTERM.
const TICK: Duration = Duration::from_millis(100);
/// Events taken from the ring buffer per tick (the kernel side limits them anyway).
const EVENTS_PER_TICK: usize = 4096;

/// q, Esc and Ctrl-C (raw mode turns Ctrl-C into a key, not a signal).
pub fn is_quit(k: &KeyEvent) -> bool {
    k.kind != KeyEventKind::Release
        && match k.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Restores the terminal however `run` ends (the panic hook covers panics).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What feeds the model: the maps and events of the load of fw it follows.
pub struct Feed {
    tracker: Tracker,
    maps: FwMaps,
    events: EventReader,
    last: Instant,
    /// When `model.notice` was set.
    noticed: Option<Instant>,
}

/// How long a "loaded again" notice stays in the header.
const NOTICE: Duration = Duration::from_secs(10);

impl Feed {
    /// Starts on the load of fw there is now, with a first snapshot in `model`.
    pub fn open(maps: &FwMaps, model: &mut TopModel) -> Result<Feed> {
        let feed = Feed {
            tracker: Tracker::new(maps.pins())?,
            maps: maps.clone(),
            events: EventReader::open(maps, false)?,
            last: Instant::now(),
            noticed: None,
        };
        model.observe(Stats::collect(maps)?, REFRESH.as_secs_f64());
        Ok(feed)
    }

    /// Brings `model` up to date: new events, a counter snapshot once per
    /// [`REFRESH`], and fw going away or coming back (`model.notice`).
    pub fn update(&mut self, model: &mut TopModel) -> Result<()> {
        for ev in self.events.drain(EVENTS_PER_TICK) {
            model.observe_event(&ev);
        }
        if self.last.elapsed() < REFRESH {
            return Ok(());
        }
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let change = self.tracker.check()?;
        if let Some(n) = self.tracker.note(change) {
            model.notice = Some(n.to_string());
            self.noticed = Some(Instant::now());
        } else if change == Change::Same && self.noticed.is_some_and(|t| t.elapsed() >= NOTICE) {
            model.notice = None;
            self.noticed = None;
        }
        let snapshot = match change {
            Change::Unloaded | Change::Waiting => return Ok(()),
            Change::Reloaded => FwMaps::open(self.tracker.pins()).and_then(|maps| {
                self.events.reopen(&maps)?;
                self.maps = maps;
                // Its counters start at zero: no rate spans the two loads.
                model.restart();
                Stats::collect(&self.maps)
            }),
            Change::Same => Stats::collect(&self.maps),
        };
        match snapshot {
            Ok(now) => model.observe(now, secs),
            // Unloaded while we read: the next look tells.
            Err(_) if !self.tracker.pins().is_loaded() => self.tracker.forget(),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// Refuses a standard output that is no terminal (a pipe, a file).
fn require_terminal() -> Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::NotATerminal(
            "standard output is not a terminal (use `fw stats --watch` in scripts)",
        ));
    }
    Ok(())
}

/// Runs the view until a quit key or `stop`.
pub fn run(maps: &FwMaps, stop: &Shutdown) -> Result<()> {
    require_terminal()?;
    let mut model = TopModel::new();
    let mut feed = Feed::open(maps, &mut model)?;
    let mut terminal = ratatui::try_init().map_err(Error::Terminal)?;
    let _restore = Restore;
    loop {
        if stop.requested() {
            return Ok(());
        }
        feed.update(&mut model)?;
        terminal
            .draw(|f| view::draw(f, &model))
            .map_err(Error::Terminal)?;
        if event::poll(TICK).map_err(Error::Terminal)? {
            if let Event::Key(k) = event::read().map_err(Error::Terminal)? {
                if is_quit(&k) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_keys() {
        let k = |code, m| KeyEvent::new(code, m);
        assert!(is_quit(&k(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&k(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&k(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&k(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_quit(&k(KeyCode::Char('x'), KeyModifiers::NONE)));
    }
}
