//! The rig of the namespace tests: a [`Pair`], a pin dir and a temp dir
//! for config files; `fw` runs in the server namespace with that pin dir.
//! Nothing is up until a test says so ([`Rig::up`]); on drop fw is taken
//! down and every file it left is removed.
use std::{
    ffi::OsStr,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use fw_common::{PROG_EGRESS, PROG_INGRESS};
use fw_user::kernel::maps::FwMaps;

use crate::{
    cmd::{command, run_ok, show, text},
    fw::{fw_cmd, fw_command, PinDir},
    netns::{Netns, Pair},
    probe::in_netns,
    require_root,
    tmp::TempDir,
};

/// A namespace pair, a pin dir and a temp dir.
pub struct Rig {
    pub pair: Pair,
    pub pins: PinDir,
    pub tmp: TempDir,
}

impl Rig {
    /// A fresh pair named after `prefix` (its leftovers swept first).
    pub fn new(prefix: &str) -> Rig {
        Rig::with_pins(prefix, PinDir::new())
    }

    /// A rig whose pin dir is `pins` (e.g. on a [`crate::Bpffs`]).
    pub fn with_pins(prefix: &str, pins: PinDir) -> Rig {
        require_root();
        Rig {
            pair: Netns::pair(prefix),
            pins,
            tmp: TempDir::new(prefix),
        }
    }

    /// `fw up <server veth>` plus `args`, asserting success.
    #[track_caller]
    pub fn up(&self, args: &[&str]) -> String {
        let mut a = vec!["up", self.pair.srv_veth()];
        a.extend_from_slice(args);
        self.ok(&a)
    }

    /// The server veth (the interface fw runs on).
    pub fn veth(&self) -> &str {
        self.pair.srv_veth()
    }

    /// The server's IPv4 address.
    pub fn srv(&self) -> IpAddr {
        self.pair.srv_v4().into()
    }

    /// The server's IPv6 address.
    pub fn srv6(&self) -> IpAddr {
        self.pair.srv_v6().into()
    }

    /// Runs fw with `args`, whatever its exit status.
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

    /// Runs fw (asserting success) and parses its stdout as JSON.
    #[track_caller]
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("fw {}: not JSON: {e}: {out}", show(args)))
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

    /// fw with `args` in the server namespace, to spawn (and kill), stdin
    /// closed, stdout and stderr piped.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        self.command_as(&[], args)
    }

    /// Like [`Rig::command`], run through `setpriv` with `setpriv`'s
    /// arguments (another user, fewer capabilities).
    pub fn command_as<S: AsRef<OsStr>>(&self, setpriv: &[&str], args: &[S]) -> Command {
        let mut c = fw_command(self.pair.srv_path(), self.pins.path(), setpriv);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Writes `body` to `name` in the rig's temp dir; returns the path.
    pub fn file(&self, name: &str, body: &str) -> PathBuf {
        self.tmp.write(name, body)
    }

    /// The pin dir as fw-user's library names it.
    pub fn lib_pins(&self) -> fw_user::kernel::pins::PinDir {
        fw_user::kernel::pins::PinDir::new(self.pins.path())
    }

    pub fn maps(&self) -> FwMaps {
        FwMaps::open(&self.lib_pins()).unwrap_or_else(|e| panic!("opening fw's maps: {e}"))
    }

    /// Ids of the programs pinned right now (none when nothing is pinned).
    pub fn prog_ids(&self) -> Vec<u32> {
        let pins = self.lib_pins();
        [PROG_INGRESS, PROG_EGRESS]
            .into_iter()
            .filter_map(|p| fw_user::kernel::load::program_id(&pins, p).ok())
            .collect()
    }

    /// The id of the one BPF link that holds program `prog`.
    pub fn link_of(&self, prog: u32) -> u32 {
        let out = run_ok(command("bpftool").args(["link", "show"]));
        let want = format!("prog {prog}");
        out.lines()
            .filter(|l| l.split("  ").any(|f| f.trim() == want) || l.trim_end().ends_with(&want))
            .find_map(|l| l.split(':').next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no link holds program {prog}:\n{out}"))
    }

    /// Another interface in the server namespace (one end of a veth pair
    /// whose both ends stay there; this kernel has no dummy driver).
    pub fn extra_iface(&self, tag: &str) -> String {
        let id = std::process::id() % 10000;
        let (name, peer) = (format!("fwfx{id}{tag}"), format!("fwfy{id}{tag}"));
        let ns = self.pair.srv_ns();
        run_ok(command("ip").args([
            "-n", ns, "link", "add", &name, "type", "veth", "peer", "name", &peer,
        ]));
        for dev in [&name, &peer] {
            run_ok(command("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        name
    }

    pub fn del_link(&self, name: &str) {
        run_ok(command("ip").args(["-n", self.pair.srv_ns(), "link", "del", name]));
    }

    /// The interface's XDP program id as `ip link` shows it.
    pub fn xdp_prog(&self, dev: &str) -> Option<u32> {
        let out = run_ok(command("ip").args([
            "-n",
            self.pair.srv_ns(),
            "-d",
            "link",
            "show",
            "dev",
            dev,
        ]));
        let at = out.find("prog/xdp id ")?;
        out[at + 12..].split_whitespace().next()?.parse().ok()
    }

    /// Program ids on `dev`'s tcx egress hook (Debian's bpftool predates tcx).
    pub fn tcx_egress(&self, dev: &str) -> Vec<u32> {
        let dev = dev.to_string();
        in_netns(self.pair.srv_path(), move || {
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
        // Best effort; the pin dir, temp dir and namespaces are removed by
        // their guards.
        let _ = self.fw(&["down"]);
        // What a killed `fw apply` of this (unique) pin dir left under /run/fw.
        let _ = std::fs::remove_dir_all(fw_user::kernel::rundir::pending_dir(&self.lib_pins()));
    }
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

/// `p` as a string, for command lines.
pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
