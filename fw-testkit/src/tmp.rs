//! Temporary directories for a test's files.
use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// A directory under the system temp dir, `fw-<what>-<pid>-<n>`, removed
/// (with its files) on drop, also while unwinding from a panic.
#[derive(Debug)]
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

    /// Writes `body` to `self/name` (the mode the umask gives); returns the path.
    pub fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, body).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// Writes `body` to `self/name` with `mode`; returns the path as a string.
    pub fn file(&self, name: &str, body: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(name, body);
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
