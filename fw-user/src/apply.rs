//! `fw apply FILE [--confirm SECS]` and `fw confirm`: swap the running
//! config for a file's, optionally on probation: unless confirmed in time
//! (Enter on the terminal, or `fw confirm` from another shell), the old
//! config comes back.
//!
//! The probation state is a small directory under /run/fw (tmpfs, gone at
//! reboot, when fw is gone too): `pending` names the waiting process and
//! `previous.toml` holds the config to return to. Whoever renames `pending`
//! first decides: `fw confirm` (or Enter) renames it to `confirmed`, the
//! waiting process at its deadline to `expired`; rename is atomic, so a
//! confirmation racing the deadline is either in time or not, never both.
use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    config::Config,
    error::{Error, Result},
    guard, iface,
    loader::{self, require_root},
    maps::FwMaps,
    persist::{Record, Source},
    pins::PinDir,
    policy::{collapse, Proto},
};

/// Where probation state lives, one directory per pin dir.
pub const RUN_DIR: &str = "/run/fw";
/// Longest probation fw accepts.
pub const MAX_CONFIRM_SECS: u64 = 3600;
const PENDING: &str = "pending";
const CONFIRMED: &str = "confirmed";
const EXPIRED: &str = "expired";
const PREVIOUS: &str = "previous.toml";
/// Present while an apply writes the maps (`pid=`, `file=`): left behind,
/// with a dead pid, when the apply was killed halfway.
const APPLYING: &str = "applying";
/// The config running before that apply (to restore the whole of it).
const APPLYING_OLD: &str = "applying-old.toml";

/// A validated apply: the file's config and the running one it replaces.
#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub new: Config,
    pub old: Config,
    /// The file, as fw records it once applied (None: not a regular file).
    pub record: Option<Record>,
    /// The file fw ran before (restored with `old` on a rollback).
    pub old_record: Option<Record>,
    /// Things the apply does not change, said aloud.
    pub notes: Vec<String>,
}

/// Validates everything before anything is touched: the file (syntax,
/// values, interfaces), the running fw (loaded, same layout), for `confirm`
/// that no other apply is on probation, and, unless `force`, the lockout
/// guard for ports the file closes.
pub fn plan(pins: &PinDir, path: &Path, force: bool, confirm: Option<u64>) -> Result<Plan> {
    require_root("fw apply")?;
    let source = read_checked(path)?;
    let maps = FwMaps::open(pins)?;
    if confirm.is_some() {
        if let Some(pid) = pending_pid(pins) {
            return Err(Error::ApplyPending { pid });
        }
    }
    let refused = guard::Refused::Apply {
        file: path,
        confirm,
    };
    plan_on(&maps, path, source, (!force).then_some(refused))
}

/// The file, parsed and validated on its own (syntax, values, its own
/// capacity, its interfaces in this network namespace).
fn read_checked(path: &Path) -> Result<Source> {
    let source = Source::read(path)?;
    for name in &source.config.interfaces {
        iface::resolve(name)?;
    }
    Ok(source)
}

/// The checks of [`plan`] that need the running fw: the lockout guard
/// (unless `guard` is None) and the fit into the running maps. Reads only.
fn plan_on(
    maps: &FwMaps,
    path: &Path,
    source: Source,
    guard: Option<guard::Refused<'_>>,
) -> Result<Plan> {
    let pins = maps.pins();
    let record = source.record();
    let new = source.config;
    let old = Config::from_running(maps)?;
    let old_record = crate::persist::recorded(maps)?;
    if let Some(refused) = guard {
        guard::guard(maps, &old.policy, &new.policy, refused)?;
    }
    let mut notes = Vec::new();
    if let Some(i) = interrupted(pins) {
        notes.push(format!(
            "{i}. This apply sets the whole config from {}",
            path.display()
        ));
    }
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (
        old.interfaces.iter().collect(),
        new.interfaces.iter().collect(),
    );
    if !new.interfaces.is_empty() && a != b {
        notes.push(format!(
            "interfaces in the file ({}) differ from where fw is up ({}): `fw apply` does not \
             attach or detach; use `fw up IFACE` / `fw down IFACE`",
            join(&new.interfaces),
            join(&old.interfaces)
        ));
    }
    // Refused here, before the summary says what would change.
    maps.check_policy_fits(&new.policy)?;
    if new.source_prefixes != old.source_prefixes {
        notes.push(format!(
            "[capacity] source_prefixes = {} takes effect at the next load (`fw down`, `fw up`); \
             the running map keeps {}",
            new.source_prefixes, old.source_prefixes
        ));
    }
    if new.conntrack_entries != old.conntrack_entries {
        notes.push(format!(
            "[conntrack] entries = {} takes effect at the next load (`fw down`, `fw up`); \
             the running table keeps {}",
            new.conntrack_entries, old.conntrack_entries
        ));
    }
    if record.is_none() {
        notes.push(crate::persist::unrecorded_note(path));
    }
    Ok(Plan {
        path: path.to_path_buf(),
        new,
        old,
        record,
        old_record,
        notes,
    })
}

/// What `fw check FILE` found (the file passed every check).
#[derive(Debug)]
pub struct Checked {
    /// What `fw apply FILE` would change, when fw is loaded.
    pub summary: Option<String>,
    /// What was checked against, and what an apply would not change.
    pub notes: Vec<String>,
}

/// `fw check FILE`: every check `fw apply FILE` makes (syntax, values,
/// interfaces, the lockout guard unless `force`, the fit into the running
/// maps), reading only: no map, file or lock is touched, like `nft -c`.
/// Without a running fw it can read, the file is checked as `fw up
/// --config FILE` would load it (its own `[capacity]`).
pub fn check(pins: &PinDir, path: &Path, force: bool) -> Result<Checked> {
    let source = read_checked(path)?;
    let maps = match FwMaps::open(pins) {
        Ok(maps) => maps,
        Err(e @ (Error::NotLoaded(_) | Error::NoAccess { .. })) => {
            let cfg = &source.config;
            crate::source_sets::plan(
                &crate::source_sets::Layout::empty(cfg.source_prefixes),
                &cfg.policy,
            )?;
            let why = match e {
                Error::NotLoaded(_) => format!("fw is not loaded under {}", pins.root().display()),
                _ => format!(
                    "the running fw under {} is not readable (not root?)",
                    pins.root().display()
                ),
            };
            return Ok(Checked {
                summary: None,
                notes: vec![format!(
                    "{why}: checked on its own, as `fw up --config {}` would load it \
                     ([capacity] source_prefixes = {})",
                    path.display(),
                    cfg.source_prefixes
                )],
            });
        }
        Err(e) => return Err(e),
    };
    let refused = guard::Refused::Check { file: path };
    let plan = plan_on(&maps, path, source, (!force).then_some(refused))?;
    Ok(Checked {
        summary: Some(plan.summary()),
        notes: plan.notes,
    })
}

fn join(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Plan {
    /// What the apply changes, one line per item; "no change" when none.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (o, n) = (&self.old, &self.new);
        for proto in Proto::ALL {
            let opened = collapse(
                n.policy
                    .ports(proto)
                    .filter(|&p| !o.policy.is_open(proto, p)),
            );
            let closed = collapse(
                o.policy
                    .ports(proto)
                    .filter(|&p| !n.policy.is_open(proto, p)),
            );
            let resourced = collapse(n.policy.ports(proto).filter(|&p| {
                o.policy.is_open(proto, p)
                    && o.policy.sources(proto, p) != n.policy.sources(proto, p)
            }));
            let list = |v: &[crate::policy::PortRange]| {
                v.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if !opened.is_empty() {
                let _ = writeln!(out, "opened {proto} {}", list(&opened));
            }
            if !closed.is_empty() {
                let _ = writeln!(out, "closed {proto} {}", list(&closed));
            }
            if !resourced.is_empty() {
                let _ = writeln!(out, "new source list for {proto} {}", list(&resourced));
            }
        }
        if o.reject_with != n.reject_with {
            let _ = writeln!(
                out,
                "reject with {} (was {})",
                n.reject_with.name(),
                o.reject_with.name()
            );
        }
        if (o.reject_rate, o.reject_burst) != (n.reject_rate, n.reject_burst) {
            let _ = writeln!(
                out,
                "reject rate {}/s burst {} (was {}/s burst {})",
                n.reject_rate, n.reject_burst, o.reject_rate, o.reject_burst
            );
        }
        if o.dry_run != n.dry_run {
            let _ = writeln!(out, "dry run {}", if n.dry_run { "on" } else { "off" });
        }
        if o.dhcp_client != n.dhcp_client {
            let _ = writeln!(
                out,
                "dhcp client replies {}",
                if n.dhcp_client {
                    "passed"
                } else {
                    "no longer passed"
                }
            );
        }
        if out.is_empty() {
            out.push_str("no change to the running config\n");
        }
        out
    }
}

/// Applies `plan` for good. A journal entry under [`RUN_DIR`] marks the
/// time the maps are being written, so that an apply killed halfway (its
/// policy a mix of old and new) is detected and reported afterwards.
pub fn apply(pins: &PinDir, plan: &Plan) -> Result<()> {
    require_root("fw apply")?;
    let _lock = crate::lock::take()?;
    apply_locked(pins, plan)
}

/// [`apply`], for a caller that holds [`crate::lock`].
fn apply_locked(pins: &PinDir, plan: &Plan) -> Result<()> {
    let dir = pending_dir(pins);
    make_private_dir(&dir)?;
    let old = dir.join(APPLYING_OLD);
    let header = "# The config fw ran before an `fw apply` that was interrupted; restore it with `fw apply` on this file.\n";
    write_private(&old, &format!("{header}{}", plan.old.to_toml()))?;
    let journal = dir.join(APPLYING);
    let body = format!("pid={}\nfile={}\n", std::process::id(), plan.path.display());
    write_private(&journal, &body)?;
    if let Err(e) = loader::apply_config(pins, &plan.new) {
        // A policy refused or undone whole left nothing half-written: no
        // interrupted apply to report later.
        if matches!(
            e,
            Error::PolicyWrite { .. }
                | Error::SourceCapacity { .. }
                | Error::TooManySourceSets { .. }
        ) {
            let _ = fs::remove_file(&journal);
            let _ = fs::remove_file(&old);
            let _ = fs::remove_dir(&dir);
        }
        return Err(e);
    }
    // From now on fw runs this file: changes are written back to it.
    crate::persist::set_recorded(&FwMaps::open(pins)?, plan.record.as_ref())?;
    // Done: nothing half-written to report any more, and an earlier
    // `--confirm` that died undecided is superseded by this config.
    let _ = fs::remove_file(&journal);
    let _ = fs::remove_file(&old);
    if let Some(Interrupted::Probation { .. }) = interrupted(pins) {
        let _ = fs::remove_file(dir.join(PENDING));
        let _ = fs::remove_file(dir.join(PREVIOUS));
    }
    // The probation directory is removed by its owner; an empty one here is ours.
    let _ = fs::remove_dir(&dir);
    Ok(())
}

/// Writes `body` to `path`, readable by root only.
fn write_private(path: &Path, body: &str) -> Result<()> {
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
pub(crate) fn make_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("creating", dir))
}

/// The probation directory of a pin dir: /run/fw/<hash of its path>.
pub fn pending_dir(pins: &PinDir) -> PathBuf {
    let root = fs::canonicalize(pins.root()).unwrap_or_else(|_| pins.root().to_path_buf());
    let h = crate::persist::fnv1a(root.as_os_str().as_encoded_bytes());
    Path::new(RUN_DIR).join(format!("{h:016x}"))
}

/// The pid of a live `fw apply --confirm` waiting on `pins`, if any.
pub fn pending_pid(pins: &PinDir) -> Option<u32> {
    let text = fs::read_to_string(pending_dir(pins).join(PENDING)).ok()?;
    let pid = parse_pid(&text)?;
    pid_alive(pid).then_some(pid)
}

fn parse_pid(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("pid=")?.trim().parse().ok())
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |e| Error::io(what, e)
}

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

/// Set by SIGINT/SIGTERM while a probation runs: roll back at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGHUP (the terminal or SSH session went away) must not stop the
/// countdown: ignore it. SIGINT/SIGTERM roll back at once.
fn install_signals() {
    // SAFETY: plain sigaction calls; the handler only stores to an atomic,
    // which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_interrupt as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
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
    install_signals();
    require_root("fw apply")?;
    // Failing here (another command holds fw) has changed nothing: no
    // rollback, which would undo that other command's work.
    let lock = crate::lock::take()?;
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
                Error::RollbackFailed {
                    saved,
                    source: Box::new(r),
                }
            }
        });
    }
    drop(lock);
    let verdict = countdown(&marker, secs, out)?;
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
            match crate::lock::take().and_then(|_lock| roll_back(pins, plan)) {
                Ok(()) => {
                    marker.remove();
                    Err(Error::NotConfirmed { why })
                }
                Err(e) => {
                    let _ = fs::remove_file(marker.dir.join(EXPIRED));
                    Err(Error::RollbackFailed {
                        saved: marker.previous(),
                        source: Box::new(e),
                    })
                }
            }
        }
    }
}

/// Puts back the config and the config file record `plan` replaced.
fn roll_back(pins: &PinDir, plan: &Plan) -> Result<()> {
    loader::apply_config(pins, &plan.old)?;
    crate::persist::set_recorded(&FwMaps::open(pins)?, plan.old_record.as_ref())
}

/// Polls for a confirmation until the deadline.
fn countdown(marker: &Marker, secs: u64, out: &mut dyn Write) -> Result<Verdict> {
    // SAFETY: isatty on fd 0 has no preconditions.
    let tty_in = unsafe { libc::isatty(0) } == 1;
    let tty_out = unsafe { libc::isatty(1) } == 1;
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
        if INTERRUPTED.load(Ordering::SeqCst) {
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
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, tick.as_millis() as libc::c_int) };
    if n <= 0 {
        return StdinEvent::Nothing; // timeout or EINTR
    }
    if pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
        return StdinEvent::Nothing;
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
