//! Stopping long-running commands (`fw log`, `fw top`, `fw exporter`,
//! `fw up --foreground`) cleanly on Ctrl-C (SIGINT) or SIGTERM.
//!
//! The signal only raises a flag; each command checks it between two waits
//! of at most a fraction of a second and then undoes what it set up. A second
//! signal while the first is still being handled exits at once (status 130),
//! so a stuck cleanup can always be interrupted. (Except during `fw apply
//! --confirm`'s countdown: see [`Shutdown::for_probation`].)
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// Raised by SIGINT/SIGTERM once [`Shutdown::on_signals`] ran.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag nothing raises except [`Shutdown::request`] (for tests and
    /// library callers with their own signal handling).
    pub fn manual() -> Shutdown {
        Shutdown::default()
    }

    /// A flag raised by SIGINT and SIGTERM. May be called more than once.
    pub fn on_signals() -> Result<Shutdown> {
        let s = Shutdown::default();
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it only sees the flag already raised by an
            // earlier signal: the second signal exits.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&s.flag))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&s.flag)))
                .map_err(|e| Error::io("installing the SIGINT/SIGTERM handlers", e))?;
        }
        Ok(s)
    }

    /// For `fw apply --confirm`'s countdown: SIGINT/SIGTERM raise the flag
    /// (each time: a second one does not exit, the rollback must run), and
    /// SIGHUP (the terminal or SSH session went away) is ignored, so the
    /// countdown goes on.
    pub fn for_probation() -> Result<Shutdown> {
        // SAFETY: setting SIGHUP's disposition to SIG_IGN runs no code in
        // the handler context.
        unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
        let s = Shutdown::default();
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&s.flag))
                .map_err(|e| Error::io("installing the SIGINT/SIGTERM handlers", e))?;
        }
        Ok(s)
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Resolves once the flag is raised (checked every 100 ms).
    pub async fn wait(&self) {
        while !self.requested() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_flag() {
        let s = Shutdown::manual();
        let t = s.clone();
        assert!(!t.requested());
        s.request();
        assert!(t.requested());
    }
}
