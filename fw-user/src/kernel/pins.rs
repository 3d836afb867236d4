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

    /// The link pins present, with the ifindex each is named after.
    pub fn link_pins(&self) -> Vec<(PathBuf, u32)> {
        let Ok(dir) = fs::read_dir(self.root.join("links")) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, u32)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                let idx = name
                    .strip_prefix("xdp_")
                    .or_else(|| name.strip_prefix("tc_"))?;
                Some((e.path(), idx.parse().ok()?))
            })
            .collect();
        out.sort();
        out
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
        check_parent(parent)?;
        for sub in ["", "maps", "progs", "links"] {
            let d = self.root.join(sub);
            match fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", d.display()), e)),
            }
            check_private_dir(&d)?;
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

/// Whoever can write to a directory of pins can unlink them, and unlinking
/// a link pin detaches fw: on a bpffs mounted world-writable (its default
/// mode is 1777) any user could make the pin dir before root runs `fw up`.
/// So each directory must be a real one, this user's, closed to others.
fn check_private_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let md =
        fs::symlink_metadata(d).map_err(|e| Error::io(format!("reading {}", d.display()), e))?;
    let refuse = |why: String| {
        Error::invalid(
            "pin dir",
            d.display().to_string(),
            format!(
                "{why}: whoever controls it could remove fw's pins and so detach fw; \
                 remove it (`rm -r {}` as root) and run fw again",
                d.display()
            ),
        )
    };
    if !md.file_type().is_dir() {
        return Err(refuse("is not a directory (a symlink?)".into()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me {
        return Err(refuse(format!(
            "is owned by uid {}, not by uid {me}",
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        // Ours but open to others (made under a loose umask): close it.
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("making {} private (mode 0700)", d.display()), e))?;
    }
    Ok(())
}

/// The pin dir's parent must not let others rename or replace the pin dir:
/// owned by root or this user, and if others may write to it, sticky.
fn check_parent(parent: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let md =
        fs::metadata(parent).map_err(|e| Error::io(format!("reading {}", parent.display()), e))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let open_to_others = md.mode() & 0o022 != 0 && md.mode() & 0o1000 == 0;
    if (md.uid() != 0 && md.uid() != me) || open_to_others {
        return Err(Error::invalid(
            "pin dir parent",
            parent.display().to_string(),
            format!(
                "is owned by uid {} with mode {:o}: others could replace fw's pin dir; \
                 use a pin dir whose parent only root can change",
                md.uid(),
                md.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain old data; all zeroes is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` lives across the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == BPFFS_MAGIC
}

fn mount_bpffs(at: &Path) -> Result<()> {
    fs::create_dir_all(at).map_err(|e| Error::io(format!("creating {}", at.display()), e))?;
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid("pin dir", at.display().to_string(), "contains NUL"))?;
    // SAFETY: every pointer is a NUL-terminated string living across the call.
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
