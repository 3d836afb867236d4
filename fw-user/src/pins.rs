//! Where fw keeps its state: pinned maps, programs and links under one
//! directory of bpffs (default /sys/fs/bpf/fw).
use std::{
    fs, io,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/fw";
const BPFFS_MAGIC: i64 = 0xcafe4a11;

#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PinDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.root.join("maps").join(name)
    }

    pub fn prog(&self, name: &str) -> PathBuf {
        self.root.join("progs").join(name)
    }

    /// Links are named by ifindex: bpffs refuses names with a dot, which
    /// interface names (eth0.100) may have.
    pub fn xdp_link(&self, ifindex: u32) -> PathBuf {
        self.root.join("links").join(format!("xdp_{ifindex}"))
    }

    pub fn tc_link(&self, ifindex: u32) -> PathBuf {
        self.root.join("links").join(format!("tc_{ifindex}"))
    }

    /// fw is loaded here (its META map is pinned).
    pub fn is_loaded(&self) -> bool {
        self.map(fw_common::maps::META).exists()
    }

    /// Fails with a clear message when this user cannot see the pins at all
    /// (the pin dir is root-only), instead of reporting "not loaded".
    pub fn check_readable(&self) -> Result<()> {
        match fs::symlink_metadata(self.map(fw_common::maps::META)) {
            Err(e) if matches!(e.kind(), io::ErrorKind::PermissionDenied) => Err(Error::NoAccess {
                path: self.root.clone(),
                detail: e.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Something is under the pin dir at all (maybe a half-made load).
    pub fn has_anything(&self) -> bool {
        fs::read_dir(&self.root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Makes sure the pin dir sits on a mounted bpffs and exists (mode 0700:
    /// the pins are fw's control surface).
    pub fn prepare(&self) -> Result<()> {
        let parent = self.root.parent().ok_or_else(|| {
            Error::invalid(
                "pin dir",
                self.root.display().to_string(),
                "needs a parent directory on bpffs",
            )
        })?;
        if !is_bpffs(parent) {
            if parent == Path::new("/sys/fs/bpf") {
                mount_bpffs(parent)?;
            } else {
                return Err(Error::invalid(
                    "pin dir",
                    self.root.display().to_string(),
                    "its parent is not on a bpf filesystem (use a directory under /sys/fs/bpf)",
                ));
            }
        }
        for sub in ["", "maps", "progs", "links"] {
            let d = self.root.join(sub);
            match fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", d.display()), e)),
            }
        }
        Ok(())
    }

    /// Removes every pin and the directory itself. Unpinning a link that no
    /// process holds detaches it.
    pub fn remove_all(&self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", self.root.display()), e)),
        }
    }
}

fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == BPFFS_MAGIC
}

fn mount_bpffs(at: &Path) -> Result<()> {
    fs::create_dir_all(at).map_err(|e| Error::io(format!("creating {}", at.display()), e))?;
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid("pin dir", at.display().to_string(), "contains NUL"))?;
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!(
                "mounting bpffs at {} (needed to pin fw's state)",
                at.display()
            ),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
