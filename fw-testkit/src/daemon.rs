//! Daemons a test runs inside its namespaces (dnsmasq, DHCP clients), with
//! their files in a [`crate::TempDir`]; both go away on drop, also while
//! unwinding from a panic.
use std::{
    fs,
    path::PathBuf,
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::Netns;

/// A process started in a namespace with `nsenter --net=... PROGRAM`
/// (nsenter execs it: the child's pid is the daemon's own), its stdout and
/// stderr in `log`. Killed and reaped on drop.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, program: &str, args: &[&str], log: &str) -> Daemon {
        let out = fs::File::create(log).unwrap_or_else(|e| panic!("creating {log}: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("dup of {log}: {e}"));
        let child = ns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {}: {e}", ns.name()));
        Daemon {
            name: program.to_owned(),
            child,
            log: log.into(),
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// Sends `sig` (e.g. `libc::SIGUSR1`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, which is not reaped before drop.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "signal {sig} to {}", self.name);
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit code once it ended within `limit` (`None`: still running,
    /// or killed by a signal).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(50)),
                Ok(None) => return None,
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
