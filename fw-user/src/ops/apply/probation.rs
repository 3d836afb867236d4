//! `fw apply --confirm`: the new config on probation, rolled back unless
//! confirmed in time.
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    error::{Error, Result},
    kernel::{
        maps::FwMaps,
        pins::PinDir,
        rundir::{
            io_err, make_private_dir, parse_pid, pending_dir, write_private, CONFIRMED, EXPIRED,
            PENDING, PREVIOUS,
        },
        running,
        shutdown::Shutdown,
        sys::{isatty, pid_alive, require_root, wait_readable},
    },
    model::config::Config,
    ops::{
        apply::{journal::apply_locked, Plan, MAX_CONFIRM_SECS},
        reconfigure::apply_config,
    },
};

/// The probation marker this process holds.
struct Marker {
    dir: PathBuf,
}

impl Marker {
    fn create(pins: &PinDir, secs: u64, previous: &Config) -> Result<Marker> {
        let dir = pending_dir(pins);
        make_private_dir(&dir)?;
        let pending = dir.join(PENDING);
        let deadline = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() + secs)
            .unwrap_or(0);
        let body = format!(
            "pid={}\ndeadline={deadline}\npin_dir={}\n",
            std::process::id(),
            pins.root().display()
        );
        for attempt in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&pending)
            {
                Ok(mut f) => {
                    // Leftovers of an earlier round must not read as a decision.
                    for stale in [CONFIRMED, EXPIRED] {
                        let _ = fs::remove_file(dir.join(stale));
                    }
                    let prev = dir.join(PREVIOUS);
                    let header = "# The config fw ran before `fw apply --confirm`; restore it with `fw apply` on this file.\n";
                    write_private(&prev, &format!("{header}{}", previous.to_toml()))?;
                    f.write_all(body.as_bytes())
                        .map_err(io_err("writing", &pending))?;
                    return Ok(Marker { dir });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                    let text = fs::read_to_string(&pending).unwrap_or_default();
                    match parse_pid(&text) {
                        Some(pid) if pid_alive(pid) => return Err(Error::ApplyPending { pid }),
                        // Its process died: the marker means nothing now.
                        _ => {
                            let _ = fs::remove_file(&pending);
                        }
                    }
                }
                Err(e) => return Err(io_err("creating", &pending)(e)),
            }
        }
        Err(Error::io(
            format!("creating {}", pending.display()),
            io::ErrorKind::AlreadyExists.into(),
        ))
    }

    fn previous(&self) -> PathBuf {
        self.dir.join(PREVIOUS)
    }

    /// Whether someone (`fw confirm`) has claimed the decision.
    fn confirmed_elsewhere(&self) -> bool {
        !self.dir.join(PENDING).exists() && self.dir.join(CONFIRMED).exists()
    }

    /// Claims the decision as `to`; false when someone else decided first.
    fn claim(&self, to: &str) -> Result<bool> {
        match fs::rename(self.dir.join(PENDING), self.dir.join(to)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("renaming", &self.dir.join(PENDING))(e)),
        }
    }

    fn remove(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How a probation ended.
enum Verdict {
    Confirmed(&'static str),
    Expired,
    Interrupted,
}

/// Applies `plan` on probation for `secs` seconds, writing the countdown to
/// `out` (write errors are ignored: the terminal may be gone). Ok when
/// confirmed; after a rollback, `Error::NotConfirmed`.
pub fn apply_with_confirm(
    pins: &PinDir,
    plan: &Plan,
    secs: u64,
    out: &mut dyn Write,
) -> Result<()> {
    if secs == 0 || secs > MAX_CONFIRM_SECS {
        return Err(Error::invalid(
            "--confirm",
            secs.to_string(),
            format!("the time to confirm must be 1-{MAX_CONFIRM_SECS} seconds"),
        ));
    }
    let stop = Shutdown::for_probation()?;
    require_root("fw apply")?;
    // Failing here (another command holds fw) has changed nothing: no
    // rollback, which would undo that other command's work.
    let lock = crate::ops::lock::take()?;
    let marker = Marker::create(pins, secs, &plan.old)?;
    if let Err(e) = apply_locked(pins, plan) {
        // Half-applied is worse than either config: put the old one back.
        let rolled = roll_back(pins, plan);
        let saved = marker.previous();
        return Err(match rolled {
            Ok(()) => {
                marker.remove();
                e
            }
            Err(r) => {
                let _ = fs::remove_file(marker.dir.join(PENDING));
                Error::rollback_failed(saved)(r)
            }
        });
    }
    drop(lock);
    let verdict = countdown(&marker, &stop, secs, out)?;
    match verdict {
        Verdict::Confirmed(how) => {
            let _ = writeln!(out, "confirmed ({how}): the new config stays");
            marker.remove();
            Ok(())
        }
        Verdict::Expired | Verdict::Interrupted => {
            let why = match verdict {
                Verdict::Interrupted => "interrupted before confirmation".to_string(),
                _ => format!("not confirmed within {secs}s"),
            };
            let _ = writeln!(out, "{why}: rolling back");
            let _ = out.flush();
            match crate::ops::lock::take().and_then(|_lock| roll_back(pins, plan)) {
                Ok(()) => {
                    marker.remove();
                    Err(Error::NotConfirmed { why })
                }
                Err(e) => {
                    let _ = fs::remove_file(marker.dir.join(EXPIRED));
                    Err(Error::rollback_failed(marker.previous())(e))
                }
            }
        }
    }
}

/// Puts back the config and the config file record `plan` replaced.
fn roll_back(pins: &PinDir, plan: &Plan) -> Result<()> {
    apply_config(pins, &plan.old)?;
    running::set_recorded(&FwMaps::open(pins)?, plan.old_record.as_ref())
}

/// Polls for a confirmation until the deadline.
fn countdown(marker: &Marker, stop: &Shutdown, secs: u64, out: &mut dyn Write) -> Result<Verdict> {
    let tty_in = isatty(0);
    let tty_out = isatty(1);
    let mut stdin_open = tty_in;
    let how = if tty_in {
        "press Enter here, or run `fw confirm` from another shell"
    } else {
        "stdin is not a terminal: run `fw confirm` from another shell"
    };
    let _ = writeln!(
        out,
        "new config applied; it is rolled back in {secs}s unless confirmed ({how}; Ctrl-C rolls back now)"
    );
    let _ = out.flush();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut shown = u64::MAX;
    loop {
        if stop.requested() {
            if marker.claim(EXPIRED)? {
                return Ok(Verdict::Interrupted);
            }
            return Ok(Verdict::Confirmed("fw confirm"));
        }
        if marker.confirmed_elsewhere() {
            return Ok(Verdict::Confirmed("fw confirm"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Whoever renames `pending` first decides.
            if marker.claim(EXPIRED)? {
                return Ok(Verdict::Expired);
            }
            return Ok(Verdict::Confirmed("fw confirm"));
        }
        let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if whole != shown {
            shown = whole;
            if tty_out {
                let _ = write!(out, "\rrolling back in {whole:>4}s ");
            } else if whole <= 5 || whole.is_multiple_of(10) {
                let _ = writeln!(out, "rolling back in {whole}s unless confirmed");
            }
            let _ = out.flush();
        }
        let tick = left.min(Duration::from_millis(100));
        if stdin_open {
            match read_stdin(tick) {
                StdinEvent::Nothing => {}
                StdinEvent::Line => {
                    if tty_out {
                        let _ = writeln!(out);
                    }
                    // Enter claims like `fw confirm` does.
                    if marker.claim(CONFIRMED)? || marker.confirmed_elsewhere() {
                        return Ok(Verdict::Confirmed("Enter"));
                    }
                    return Ok(Verdict::Confirmed("fw confirm"));
                }
                StdinEvent::Closed => {
                    stdin_open = false;
                    let _ = writeln!(
                        out,
                        "\nend of input is not a confirmation: waiting for `fw confirm` from another shell"
                    );
                }
            }
        } else {
            std::thread::sleep(tick);
        }
    }
}

enum StdinEvent {
    Nothing,
    Line,
    Closed,
}

/// Waits up to `tick` for input on fd 0; a newline is a confirmation, end of
/// input (or a read error: the terminal hung up) is not.
fn read_stdin(tick: Duration) -> StdinEvent {
    if !wait_readable(0, tick).unwrap_or(false) {
        return StdinEvent::Nothing; // timeout, a signal, or poll failed
    }
    let mut buf = [0u8; 256];
    // SAFETY: reading into a local buffer of the given size.
    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINTR | libc::EAGAIN) => StdinEvent::Nothing,
            _ => StdinEvent::Closed,
        };
    }
    if r == 0 {
        return StdinEvent::Closed;
    }
    if buf[..r as usize].contains(&b'\n') || buf[..r as usize].contains(&b'\r') {
        StdinEvent::Line
    } else {
        StdinEvent::Nothing
    }
}
