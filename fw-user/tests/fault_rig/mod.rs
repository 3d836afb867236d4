//! The rig of the fault tests: a namespace pair, a pin dir, config files,
//! and ways to look at what the kernel holds (programs alive, links).
#![allow(dead_code)]

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use fw_common::{PROG_EGRESS, PROG_INGRESS};
use fw_testkit::{command, fw_bin, fw_cmd, require_root, Netns, Pair, PinDir};
use fw_user::kernel::maps::FwMaps;

pub const PREFIX: &str = "fwflt";

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A namespace pair and a pin dir; nothing is up until a test says so.
pub struct Rig {
    pub pair: Pair,
    pub pins: PinDir,
    tmp: PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

impl Rig {
    pub fn new() -> Rig {
        require_root();
        Rig::with_pins(PinDir::new())
    }

    /// A rig whose pin dir is `pins` (e.g. on a [`fw_testkit::Bpffs`]).
    pub fn with_pins(pins: PinDir) -> Rig {
        require_root();
        let pair = Netns::pair(PREFIX);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let tmp = std::env::temp_dir().join(format!("fw-faults-{}-{n}", std::process::id()));
        fs::create_dir_all(&tmp).expect("temp dir");
        Rig { pair, pins, tmp }
    }

    /// `fw up <server veth>` plus `args`, asserting success.
    pub fn up(&self, args: &[&str]) -> String {
        let mut a = vec!["up", self.pair.srv_veth()];
        a.extend_from_slice(args);
        self.ok(&a)
    }

    pub fn veth(&self) -> &str {
        self.pair.srv_veth()
    }

    pub fn fw<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        fw_cmd(self.pair.srv_path(), &self.pins, args)
    }

    /// Runs fw, asserts success, returns stdout.
    #[track_caller]
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.fw(args);
        assert!(
            out.status.success(),
            "fw {}: exit {:?}: {}{}",
            show(args),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs fw, asserts it fails with `code` and `needle` in stderr.
    #[track_caller]
    pub fn refused<S: AsRef<OsStr>>(&self, args: &[S], code: i32, needle: &str) -> String {
        let out = self.fw(args);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "fw {}: exit code; stdout {} stderr {err}",
            show(args),
            text(&out.stdout)
        );
        assert!(
            err.contains(needle),
            "fw {}: expected {needle:?} in: {err}",
            show(args)
        );
        err
    }

    /// `fw status --json`, parsed. It exits 0, or 3 exactly when it says
    /// fw is degraded.
    #[track_caller]
    pub fn status(&self) -> serde_json::Value {
        let out = self.fw(&["status", "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status JSON: {e}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        let want = if st["health"] == "degraded" { 3 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "fw status --json exit code: {st}"
        );
        st
    }

    /// `fw status` as text. It exits 0, or 3 exactly when its headline says
    /// fw is degraded.
    #[track_caller]
    pub fn status_text(&self) -> String {
        let out = self.fw(&["status"]);
        let shown = text(&out.stdout);
        let want = if shown.starts_with("fw is DEGRADED") || shown.contains("\nbut ") {
            3
        } else {
            0
        };
        assert_eq!(
            out.status.code(),
            Some(want),
            "fw status exit code: {shown}{}",
            text(&out.stderr)
        );
        shown
    }

    /// The id of the one BPF link that holds program `prog`.
    pub fn link_of(&self, prog: u32) -> u32 {
        let out = run(command("bpftool").args(["link", "show"]));
        let want = format!("prog {prog}");
        out.lines()
            .filter(|l| l.split("  ").any(|f| f.trim() == want) || l.trim_end().ends_with(&want))
            .find_map(|l| l.split(':').next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no link holds program {prog}:\n{out}"))
    }

    /// A command running fw in the server namespace (to spawn and kill).
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = command("nsenter");
        c.arg(format!("--net={}", self.pair.srv_path().display()))
            .arg("--")
            .arg(fw_bin())
            .arg("--pin-dir")
            .arg(self.pins.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn lib_pins(&self) -> fw_user::kernel::pins::PinDir {
        fw_user::kernel::pins::PinDir::new(self.pins.path())
    }

    pub fn maps(&self) -> FwMaps {
        FwMaps::open(&self.lib_pins()).unwrap_or_else(|e| panic!("opening fw's maps: {e}"))
    }

    pub fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.tmp.join(name);
        fs::write(&p, body).expect("write file");
        p
    }

    /// Ids of the programs pinned right now (none when nothing is pinned).
    pub fn prog_ids(&self) -> Vec<u32> {
        let pins = self.lib_pins();
        [PROG_INGRESS, PROG_EGRESS]
            .into_iter()
            .filter_map(|p| fw_user::kernel::load::program_id(&pins, p).ok())
            .collect()
    }

    /// Another interface in the server namespace (one end of a veth pair
    /// whose both ends stay there; this kernel has no dummy driver).
    pub fn extra_iface(&self, tag: &str) -> String {
        let id = std::process::id() % 10000;
        let (name, peer) = (format!("fwfx{id}{tag}"), format!("fwfy{id}{tag}"));
        let ns = self.pair.srv_ns();
        run(command("ip").args([
            "-n", ns, "link", "add", &name, "type", "veth", "peer", "name", &peer,
        ]));
        for dev in [&name, &peer] {
            run(command("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        name
    }

    pub fn del_link(&self, name: &str) {
        run(command("ip").args(["-n", self.pair.srv_ns(), "link", "del", name]));
    }

    /// The interface's XDP program id as `ip link` shows it.
    pub fn xdp_prog(&self, dev: &str) -> Option<u32> {
        let out =
            run(command("ip").args(["-n", self.pair.srv_ns(), "-d", "link", "show", "dev", dev]));
        let at = out.find("prog/xdp id ")?;
        out[at + 12..].split_whitespace().next()?.parse().ok()
    }

    /// Program ids on `dev`'s tcx egress hook (Debian's bpftool predates tcx).
    pub fn tcx_egress(&self, dev: &str) -> Vec<u32> {
        let dev = dev.to_string();
        fw_testkit::in_netns(self.pair.srv_path(), move || {
            aya::programs::SchedClassifier::query_tcx(&dev, aya::programs::tc::TcAttachType::Egress)
                .map(|(_, progs)| progs.iter().map(|p| p.id()).collect::<Vec<u32>>())
                .unwrap_or_default()
        })
        .expect("setns")
    }

    /// Asserts `dev` runs exactly fw's pinned programs, once each.
    #[track_caller]
    pub fn assert_attached_once(&self, dev: &str, what: &str) {
        let ids = self.prog_ids();
        assert_eq!(ids.len(), 2, "{what}: fw's programs are pinned");
        assert_eq!(
            self.xdp_prog(dev),
            Some(ids[0]),
            "{what}: XDP on {dev} is fw_ingress"
        );
        assert_eq!(
            self.tcx_egress(dev),
            vec![ids[1]],
            "{what}: tcx egress on {dev} is fw_egress, once"
        );
        assert_eq!(links_to(ids[0]), 1, "{what}: one link holds fw_ingress");
        assert_eq!(links_to(ids[1]), 1, "{what}: one link holds fw_egress");
    }

    /// Asserts fw is fully gone: no pin dir, and every program in `ids`
    /// freed (nothing, no link either, holds it any more).
    #[track_caller]
    pub fn assert_gone(&self, ids: &[u32], what: &str) {
        assert!(
            !self.pins.path().exists(),
            "{what}: pin dir {} still exists",
            self.pins.path().display()
        );
        let until = Instant::now() + Duration::from_secs(5);
        for &id in ids {
            while prog_alive(id) {
                assert!(
                    Instant::now() < until,
                    "{what}: program {id} is still loaded ({} links hold it)",
                    links_to(id)
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Best effort; the pin dir and namespaces are removed by their guards.
        let _ = self.fw(&["down"]);
        let _ = fs::remove_dir_all(&self.tmp);
        // What a killed `fw apply` of this (unique) pin dir left under /run/fw.
        let _ = fs::remove_dir_all(fw_user::kernel::rundir::pending_dir(&self.lib_pins()));
    }
}

pub fn show<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let out = fw_testkit::output_with_timeout(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The program `id` is still loaded.
pub fn prog_alive(id: u32) -> bool {
    command("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How many BPF links (any namespace) hold the program `id`.
pub fn links_to(id: u32) -> usize {
    let out = command("bpftool")
        .args(["link", "show"])
        .output()
        .expect("bpftool link show");
    let want = format!("prog {id}");
    text(&out.stdout)
        .lines()
        .filter(|l| l.split("  ").any(|f| f.trim() == want) || l.trim_end().ends_with(&want))
        .count()
}

/// Spawns `cmd`, SIGKILLs it after `delay` (if still running), and returns
/// whether it had finished by itself, with its output.
pub fn kill_after(mut cmd: Command, delay: Duration) -> (bool, Output) {
    let child: Child = cmd.spawn().expect("spawn fw");
    let pid = child.id() as libc::pid_t;
    thread::sleep(delay);
    let mut child = child;
    let finished = child.try_wait().expect("try_wait").is_some();
    if !finished {
        // SAFETY: kill(2) on our own child (nsenter exec'd fw: same pid).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    (finished, child.wait_with_output().expect("wait"))
}

/// A small deterministic generator for kill delays (seed printed by tests).
pub struct Rng(u64);

impl Rng {
    pub fn from_env(var: &str, default: u64) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default);
        eprintln!("{var}={seed}");
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Wall time of `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
