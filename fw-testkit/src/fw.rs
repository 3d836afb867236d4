//! Running the `fw` binary inside a namespace, with its own pin directory.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{
    cleanup,
    cmd::{command, describe, output_with_timeout},
    error::Result,
    netns::pid_alive,
};

/// Where bpffs is (or will be) mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Name prefix of the temporary pin dirs under [`BPFFS`].
const PIN_DIR_PREFIX: &str = "fwtest-";
/// A `fw` call that takes longer than this is killed.
pub const FW_CMD_TIMEOUT: Duration = Duration::from_secs(60);

static PIN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The workspace root (the parent of fw-testkit), fixed at compile time.
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The fw binary: `$FW_BIN` if set, else `<workspace>/target/release/fw`.
pub fn fw_bin() -> PathBuf {
    fw_bin_from(std::env::var_os("FW_BIN"))
}

fn fw_bin_from(env: Option<OsString>) -> PathBuf {
    match env {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => workspace_dir().join("target/release/fw"),
    }
}

/// Runs `nsenter --net=<ns_path> <fw> --pin-dir <pin_dir> <args>` and returns
/// its output, whatever the exit status. Killed after [`FW_CMD_TIMEOUT`].
pub fn try_fw_cmd<I, S>(
    ns_path: impl AsRef<Path>,
    pin_dir: impl AsRef<Path>,
    args: I,
) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = fw_command(ns_path.as_ref(), pin_dir.as_ref(), &[]);
    cmd.args(args);
    output_with_timeout(&mut cmd, FW_CMD_TIMEOUT)
}

/// `nsenter --net=<ns_path> -- [setpriv <setpriv>...] <fw> --pin-dir <pin_dir>`,
/// to add arguments, environment or stdio to.
pub fn fw_command(ns_path: &Path, pin_dir: &Path, setpriv: &[&str]) -> Command {
    let mut c = command("nsenter");
    c.arg(format!("--net={}", ns_path.display())).arg("--");
    if !setpriv.is_empty() {
        c.arg("setpriv").args(setpriv);
    }
    c.arg(fw_bin()).arg("--pin-dir").arg(pin_dir);
    c
}

/// Like [`try_fw_cmd`], for tests.
///
/// # Panics
/// If the command cannot be run at all (e.g. no fw binary) or times out;
/// a non-zero exit is returned, not a panic.
pub fn fw_cmd<I, S>(ns_path: impl AsRef<Path>, pin_dir: impl AsRef<Path>, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    try_fw_cmd(ns_path, pin_dir, args).unwrap_or_else(|e| {
        panic!(
            "{e}\n(fw binary: {}; build it with `cargo build --release` or set FW_BIN)",
            fw_bin().display()
        )
    })
}

/// Like [`fw_cmd`], asserting fw succeeded; returns its stdout.
#[track_caller]
pub fn fw_ok<I, S>(ns_path: impl AsRef<Path>, pin_dir: impl AsRef<Path>, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let out = fw_cmd(ns_path, pin_dir, &args);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "fw {}: exit {:?}: {}",
        shown.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `fw up <server veth> <extra>...` on `pair` with a fresh pin dir.
#[track_caller]
pub fn fw_up(pair: &crate::Pair, extra: &[&str]) -> PinDir {
    let pins = PinDir::new();
    let mut args = vec!["up", pair.srv_veth()];
    args.extend_from_slice(extra);
    fw_ok(pair.srv_path(), &pins, args);
    pins
}

/// `fw stats --json`, parsed.
#[track_caller]
pub fn fw_stats(ns_path: impl AsRef<Path>, pin_dir: impl AsRef<Path>) -> serde_json::Value {
    let out = fw_ok(ns_path, pin_dir, ["stats", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("fw stats --json: {e}: {out}"))
}

/// The packets `fw stats --json` counted under `reason`.
#[track_caller]
pub fn reason_packets(stats: &serde_json::Value, reason: &str) -> u64 {
    stats["reasons"][reason]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no reason {reason} in {stats}"))
}

/// A pin directory for one fw instance, `/sys/fs/bpf/fwtest-<pid>-<n>`,
/// removed (recursively) on drop. It is not created here: `fw up` creates it
/// (and mounts bpffs if needed).
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// Reserves a fresh pin dir path, first removing those left by dead processes.
    pub fn new() -> PinDir {
        sweep_pin_dirs();
        Self::under(Path::new(BPFFS))
    }

    /// Reserves a fresh pin dir path in `dir` (e.g. a [`Bpffs`] of the test's own).
    pub fn under(dir: &Path) -> PinDir {
        let n = PIN_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(format!("{PIN_DIR_PREFIX}{}-{n}", std::process::id()));
        cleanup::register_pin_dir(&path);
        PinDir { path }
    }

    /// The directory to pass as `--pin-dir`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<Path> for PinDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for PinDir {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        cleanup::unregister_pin_dir(&self.path);
        remove_pin_dir(&self.path);
    }
}

pub(crate) fn remove_pin_dir(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("fw-testkit: cleanup: removing {}: {e}", path.display()),
    }
}

fn parse_pin_dir_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix(PIN_DIR_PREFIX)?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Removes `/sys/fs/bpf/fwtest-<pid>-*` dirs whose process is gone.
pub fn sweep_pin_dirs() {
    let Ok(entries) = std::fs::read_dir(BPFFS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(pid) = parse_pin_dir_pid(&name.to_string_lossy()) {
            if !pid_alive(pid) {
                remove_pin_dir(&entry.path());
            }
        }
    }
}

/// Where [`Bpffs`] mounts its instances: searchable by every user (a test
/// may give other users a way in on purpose), and not under /run, which a
/// test may cover with a tmpfs of its own in a private mount namespace.
const PRIVATE_BPFFS_DIR: &str = "/tmp";
/// Name prefix of the [`Bpffs`] mount points.
const PRIVATE_BPFFS_PREFIX: &str = "fwtest-bpffs-";

/// A bpffs instance of the test's own, mounted with the given mode on a
/// fresh directory (`/tmp/fwtest-bpffs-<pid>-<n>`), so a test about how fw
/// treats its bpffs creates that condition instead of relying on how (or
/// whether) the machine mounted `/sys/fs/bpf`. Unmounted and removed on drop
/// (also while unwinding from a panic); those of dead test processes are
/// swept when the next one is made.
#[derive(Debug)]
pub struct Bpffs {
    path: PathBuf,
}

impl Bpffs {
    /// Mounts a new bpffs instance with `mode` (e.g. `0o1777`, bpffs's own
    /// default, which fw's `mode=0700` mount and systemd's avoid).
    pub fn mount(mode: u32) -> Result<Bpffs> {
        sweep_private_bpffs();
        let n = PIN_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = Path::new(PRIVATE_BPFFS_DIR)
            .join(format!("{PRIVATE_BPFFS_PREFIX}{}-{n}", std::process::id()));
        let io = |what: &str, source| crate::Error::Io {
            what: format!("{what} {}", path.display()),
            source,
        };
        std::fs::create_dir(&path).map_err(|e| io("creating", e))?;
        let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| io("naming", std::io::Error::other(e)))?;
        let data = std::ffi::CString::new(format!("mode={mode:o}"))
            .map_err(|e| io("mount options for", std::io::Error::other(e)))?;
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&path);
            return Err(io("mounting bpffs at", e));
        }
        Ok(Bpffs { path })
    }

    /// The mount point (the root of this bpffs).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        unmount_private_bpffs(&self.path);
    }
}

fn unmount_private_bpffs(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: a NUL-terminated path. MNT_DETACH: pins still open
        // elsewhere do not keep the mount point busy.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    match std::fs::remove_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("fw-testkit: cleanup: removing {}: {e}", path.display()),
    }
}

/// Unmounts the [`Bpffs`] instances of dead test processes.
fn sweep_private_bpffs() {
    let Ok(entries) = std::fs::read_dir(PRIVATE_BPFFS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_string_lossy()
            .strip_prefix(PRIVATE_BPFFS_PREFIX)
            .map(str::to_owned)
        else {
            continue;
        };
        let pid = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !pid_alive(p)) {
            unmount_private_bpffs(&entry.path());
        }
    }
}

/// The command line [`try_fw_cmd`] would run, for messages.
pub fn fw_cmd_line<I, S>(ns_path: impl AsRef<Path>, pin_dir: impl AsRef<Path>, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = fw_command(ns_path.as_ref(), pin_dir.as_ref(), &[]);
    cmd.args(args);
    describe(&cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fw_bin_defaults_to_the_release_build() {
        let bin = fw_bin_from(None);
        assert!(bin.ends_with("target/release/fw"), "{}", bin.display());
        assert!(bin.starts_with(workspace_dir()));
        assert!(workspace_dir().join("fw-testkit").is_dir());
        assert_eq!(fw_bin_from(Some("".into())), bin);
        assert_eq!(fw_bin_from(Some("/x/fw".into())), PathBuf::from("/x/fw"));
    }

    #[test]
    fn pin_dirs_are_unique_and_parse_back() {
        let a = PinDir::new();
        let b = PinDir::new();
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().expect("has a name").to_string_lossy();
        assert_eq!(parse_pin_dir_pid(&name), Some(std::process::id()));
        assert_eq!(parse_pin_dir_pid("fw"), None);
        assert_eq!(parse_pin_dir_pid("fwtest-12-x"), None);
    }

    #[test]
    fn a_private_bpffs_has_its_mode_and_goes_away() {
        use std::os::unix::fs::MetadataExt as _;
        if crate::missing_privileges().is_some() {
            panic!("needs root: run as root, e.g. `sudo cargo xtask test`");
        }
        let fs = Bpffs::mount(0o1777).expect("mount a bpffs");
        let path = fs.path().to_path_buf();
        let md = std::fs::metadata(&path).expect("stat");
        assert_eq!(md.mode() & 0o7777, 0o1777);
        let pins = PinDir::under(&path);
        assert!(pins.path().starts_with(&path));
        std::fs::create_dir(pins.path()).expect("mkdir on the private bpffs");
        drop(pins);
        drop(fs);
        assert!(!path.exists(), "{} unmounted and removed", path.display());
    }

    #[test]
    fn fw_cmd_line_shape() {
        let line = fw_cmd_line("/run/netns/x", "/sys/fs/bpf/p", ["up", "v0"]);
        assert!(line.starts_with("nsenter --net=/run/netns/x -- "), "{line}");
        assert!(line.ends_with("fw --pin-dir /sys/fs/bpf/p up v0"), "{line}");
    }
}
