//! Daemons a test runs inside its namespaces (dnsmasq, DHCP clients), with
//! their files in a temporary directory; both go away on drop, also while
//! unwinding from a panic.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use fw_testkit::Netns;

/// A directory under the system temp dir, removed (with its files) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("fw-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        TempDir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `self/name`, as a string for command lines.
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// Writes `body` to `self/name` with `mode`; returns the path.
    pub fn file(&self, name: &str, body: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        fs::write(&p, body).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        p.to_string_lossy().into_owned()
    }

    /// The file's text, empty if it does not exist (yet).
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

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

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns
/// whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
