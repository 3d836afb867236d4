//! `fw top`: a live terminal view of fw (ratatui on crossterm), refreshed
//! every second: rates per reason, top ports, top rejected sources (from the
//! event stream), and sparklines of accepted vs rejected packets per second.
//! q, Esc or Ctrl-C quits; the terminal is restored on exit, on error and on
//! panic (ratatui's panic hook).
//!
//! [`model`] turns snapshots into rows (pure data); [`view`] draws them.
//! `fw top` reads the `EVENTS` ring buffer, so a `fw log` running at the
//! same time sees only part of the events (and so does `fw top`).
pub mod model;
pub mod view;

use std::{
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::{
    error::{Error, Result},
    events::EventReader,
    maps::FwMaps,
    shutdown::Shutdown,
    stats::Stats,
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

/// Runs the view until a quit key or `stop`.
pub fn run(maps: &FwMaps, stop: &Shutdown) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::Terminal(std::io::Error::other(
            "standard output is not a terminal (use `fw stats --watch` in scripts)",
        )));
    }
    let mut events = EventReader::open(maps, false)?;
    let mut model = TopModel::new();
    model.observe(Stats::collect(maps)?, REFRESH.as_secs_f64());
    let mut last = Instant::now();
    let mut terminal = ratatui::try_init().map_err(Error::Terminal)?;
    let _restore = Restore;
    loop {
        if stop.requested() {
            return Ok(());
        }
        for ev in events.drain(EVENTS_PER_TICK) {
            model.observe_event(&ev);
        }
        if last.elapsed() >= REFRESH {
            let now = Stats::collect(maps)?;
            model.observe(now, last.elapsed().as_secs_f64());
            last = Instant::now();
        }
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
