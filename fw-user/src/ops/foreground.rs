//! `fw up --foreground`: bring fw up, stay attached while this process runs,
//! and forward the kernel side's aya-log messages (rare events only, such as
//! the event ring buffer overflowing) through `tracing` to stderr. Ctrl-C or
//! SIGTERM detaches what this call attached (and unloads fw when nothing is
//! left), as `fw down <IFACE>...` would. Suits a service manager that wants
//! a process to supervise.
use std::{io::IsTerminal as _, os::fd::AsRawFd as _, time::Duration};

use aya_log::EbpfLogger;
use fw_common::PROG_INGRESS;

use crate::{
    error::Result,
    kernel::{hooks::entry, load::program_id},
    kernel::{maps::FwMaps, pins::PinDir, shutdown::Shutdown},
    ops::up_down::{self, DownReport, Given, Hooks, UpReport},
};

/// Longest wait for a kernel message: the bound on noticing Ctrl-C.
const POLL: Duration = Duration::from_millis(250);
/// `tracing` target of messages from the kernel side.
pub const KERNEL_TARGET: &str = "fw::kernel";

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `info`).
/// Does nothing when a subscriber is already installed.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// aya-log's records (a `log::Log`) re-emitted as `tracing` events.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, r: &log::Record) {
        let module = r.module_path().unwrap_or("fw_ebpf");
        let msg = r.args();
        match r.level() {
            log::Level::Error => tracing::error!(target: KERNEL_TARGET, module, "{msg}"),
            log::Level::Warn => tracing::warn!(target: KERNEL_TARGET, module, "{msg}"),
            log::Level::Info => tracing::info!(target: KERNEL_TARGET, module, "{msg}"),
            log::Level::Debug => tracing::debug!(target: KERNEL_TARGET, module, "{msg}"),
            log::Level::Trace => tracing::trace!(target: KERNEL_TARGET, module, "{msg}"),
        }
    }

    fn flush(&self) {}
}

/// Waits up to `timeout` for `fd` to be readable.
fn readable(fd: i32, timeout: Duration) -> bool {
    crate::kernel::sys::wait_readable(fd, timeout).unwrap_or(false)
}

/// Brings fw up on `ifaces` (see [`up_down::up`]), calls `on_up`, then stays
/// until `stop`; returns what the final detach did.
pub fn run(
    pins: &PinDir,
    ifaces: &[String],
    hooks: Hooks,
    given: Option<Given<'_>>,
    stop: &Shutdown,
    on_up: impl FnOnce(&UpReport),
) -> Result<DownReport> {
    let report = up_down::up(pins, ifaces, hooks, given)?;
    on_up(&report);
    let mine: Vec<String> = report.attached.iter().map(|a| a.name.clone()).collect();
    // The aya-log buffer is not pinned: find it through the loaded program.
    let mut logger = match program_id(pins, PROG_INGRESS)
        .map_err(|e| e.to_string())
        .and_then(|id| {
            EbpfLogger::init_from_id_with_logger(id, ToTracing).map_err(|e| e.to_string())
        }) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("kernel-side log messages unavailable: {e}");
            None
        }
    };
    tracing::info!(interfaces = %mine.join(","), "fw up in the foreground; Ctrl-C detaches");
    while !stop.requested() {
        match logger.as_mut() {
            Some(l) => {
                if readable(l.as_raw_fd(), POLL) {
                    l.flush();
                }
            }
            None => std::thread::sleep(POLL),
        }
        if !pins.is_loaded() {
            tracing::warn!("fw was unloaded by another process (fw down?); exiting");
            return Ok(DownReport::default());
        }
    }
    if let Some(l) = logger.as_mut() {
        l.flush();
    }
    // Detach only what this call attached and is still up (another shell
    // may have taken some down meanwhile).
    let still_up: Vec<String> = {
        let meta = FwMaps::open(pins)?.meta()?;
        mine.into_iter()
            .filter(|n| entry(&meta, n).is_some())
            .collect()
    };
    if still_up.is_empty() {
        return Ok(DownReport::default());
    }
    tracing::info!(interfaces = %still_up.join(","), "detaching");
    up_down::down(pins, &still_up)
}
