//! What to remove when the process is interrupted: every live [`Netns`](crate::Netns)
//! and [`PinDir`](crate::PinDir) registers itself here while it exists.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
};

#[derive(Default)]
struct Registry {
    netns: Vec<String>,
    pin_dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    netns: Vec::new(),
    pin_dirs: Vec::new(),
});
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER_INSTALLED: AtomicBool = AtomicBool::new(false);

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves the data intact: keep using it.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn register_netns(name: &str) {
    registry().netns.push(name.to_owned());
}

pub(crate) fn unregister_netns(name: &str) {
    registry().netns.retain(|n| n != name);
}

pub(crate) fn register_pin_dir(path: &Path) {
    registry().pin_dirs.push(path.to_owned());
}

pub(crate) fn unregister_pin_dir(path: &Path) {
    registry().pin_dirs.retain(|p| p != path);
}

/// True once Ctrl-C was pressed (after [`install_interrupt_cleanup`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Removes every namespace and pin dir that is still registered (processes in
/// the namespaces are killed first). Guards dropped later find nothing to do.
pub fn cleanup_registered() {
    let (netns, pin_dirs) = {
        let mut reg = registry();
        (
            std::mem::take(&mut reg.netns),
            std::mem::take(&mut reg.pin_dirs),
        )
    };
    for name in &netns {
        crate::netns::remove_netns(name);
    }
    for dir in &pin_dirs {
        crate::fw::remove_pin_dir(dir);
    }
}

/// Installs a SIGINT (Ctrl-C) handler that removes all registered namespaces
/// and pin dirs, then exits with status 130. Calling it again is a no-op.
///
/// Meant for interactive tools such as `cargo xtask demo`; tests rely on `Drop`.
pub fn install_interrupt_cleanup() -> Result<(), ctrlc::Error> {
    if HANDLER_INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let result = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            return; // already cleaning up
        }
        eprintln!("\ninterrupted: removing test namespaces and pin dirs");
        cleanup_registered();
        std::process::exit(130);
    });
    if result.is_err() {
        HANDLER_INSTALLED.store(false, Ordering::SeqCst);
    }
    result
}
