//! Security: everything fw leaves on the system (pins, the state of
//! `fw apply --confirm` under /run/fw, the exporter's socket) is root's
//! alone, a pin dir someone else prepared is refused, and every command that
//! changes something refuses a non-root user with a clear message before it
//! touches anything. (control.rs covers allow/deny/apply/up/down/confirm and
//! ports/status/stats as nobody; the rest is here.)
//!
//! Run as root: `cargo test --release -p fw-user --test security -- --test-threads=1`.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use fw_testkit::{
    command, fw_bin, output_with_timeout, path_str, run_ok, text, Bpffs, PinDir, Rig,
};

const PREFIX: &str = "fwflt";
use fw_user::kernel::rundir::pending_dir;

const NOBODY: u32 = 65534;

/// `fw` in the server namespace as nobody (`setpriv`, groups cleared).
fn as_nobody(rig: &Rig, args: &[&str]) -> Command {
    let mut c = rig.pair.srv().command("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(fw_bin())
        .arg("--pin-dir")
        .arg(rig.pins.path())
        .args(args);
    c
}

/// Runs a shell command line as nobody (outside fw, to probe permissions).
fn nobody_sh(line: &str) -> std::process::Output {
    output_with_timeout(
        command("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            line,
        ]),
        Duration::from_secs(20),
    )
    .expect("setpriv runs")
}

/// Every directory and file under `root`, with its metadata.
fn walk(root: &Path) -> Vec<(String, fs::Metadata)> {
    let mut out = vec![(path_str(root), fs::symlink_metadata(root).expect("stat"))];
    if out[0].1.is_dir() {
        for e in fs::read_dir(root).expect("read_dir").flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[track_caller]
fn assert_root_only(root: &Path) {
    for (p, md) in walk(root) {
        assert_eq!(md.uid(), 0, "{p} is root's");
        let want = if md.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            md.mode() & 0o7777,
            want,
            "{p}: mode {:o}",
            md.mode() & 0o7777
        );
    }
}

#[test]
fn pins_are_root_only_even_under_a_loose_umask() {
    // A bpffs of the test's own, world-writable (bpffs's default mode), so
    // that only the modes fw gives its pins keep others out.
    let bpffs = Bpffs::mount(0o1777).expect("a bpffs of the test's own");
    let rig = Rig::with_pins(PREFIX, PinDir::under(bpffs.path()));
    // umask 000: fw must not rely on the caller's umask. And a /run of its
    // own (a tmpfs in a private mount namespace), so fw makes /run/fw and
    // its lock afresh, as on a fresh machine, while the lock that other fw
    // commands share is left alone.
    let script = "mount -t tmpfs -o mode=0755 fwtest /run && umask 000 && \"$@\" && \
                  stat -c '%u %a %n' /run/fw /run/fw/lock";
    let mut c = rig.pair.srv().command("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(fw_bin())
    .arg("--pin-dir")
    .arg(rig.pins.path())
    .args(["up", rig.veth()]);
    let out = run_ok(&mut c);
    let modes: Vec<&str> = out.lines().filter(|l| l.contains(" /run/fw")).collect();
    assert_eq!(
        modes,
        ["0 700 /run/fw", "0 600 /run/fw/lock"],
        "/run/fw and its lock as fw made them: {out}"
    );
    assert_root_only(rig.pins.path());
    let n = walk(rig.pins.path()).len();
    assert!(
        n >= 1 + 3 + 11 + 2 + 2,
        "pins of maps, programs and links ({n} entries)"
    );
    // And nobody can look inside or use them.
    let pins = path_str(rig.pins.path());
    for probe in [
        format!("ls {pins}"),
        format!("ls {pins}/maps"),
        format!("bpftool map dump pinned {pins}/maps/CONFIG"),
        format!("rm -f {pins}/links/*"),
    ] {
        let out = nobody_sh(&probe);
        assert!(
            !out.status.success(),
            "as nobody, `{probe}` worked: {}",
            text(&out.stdout)
        );
    }
    assert_root_only(rig.pins.path());
    // (The rig, declared last, goes first: `fw down`, then the bpffs.)
}

#[test]
fn a_pin_dir_someone_else_made_is_refused() {
    // bpffs is world-writable (mode 1777) unless mounted otherwise (fw and
    // systemd mount /sys/fs/bpf 0700): on such a mount any user can make
    // the pin dir first and would own what fw pins in it. The test makes
    // that mount itself.
    let bpffs = Bpffs::mount(0o1777).expect("a bpffs of the test's own");
    let rig = Rig::with_pins(PREFIX, PinDir::under(bpffs.path()));
    let pins = path_str(rig.pins.path());
    let out = nobody_sh(&format!("mkdir -m 0777 {pins}"));
    assert!(
        out.status.success(),
        "as nobody, mkdir {pins}: {}",
        text(&out.stderr)
    );
    assert_eq!(fs::metadata(&pins).expect("made").uid(), NOBODY);
    let err = rig.refused(&["up", rig.veth()], 1, "is owned by uid 65534");
    assert!(err.contains("could remove fw's pins"), "{err}");
    assert_eq!(rig.xdp_prog(rig.veth()), None, "nothing attached");
    assert!(rig.tcx_egress(rig.veth()).is_empty(), "nothing attached");
    assert!(
        fs::read_dir(&pins).expect("still there").next().is_none(),
        "nothing pinned in nobody's directory"
    );
    fs::remove_dir(&pins).expect("remove nobody's dir");

    // A symlink in its place (to a directory nobody controls) likewise.
    let decoy = format!("{pins}-decoy");
    let out = nobody_sh(&format!("mkdir -m 0777 {decoy} && ln -s {decoy} {pins}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    rig.refused(&["up", rig.veth()], 1, "pin dir");
    assert!(
        fs::read_dir(&decoy).expect("decoy").next().is_none(),
        "nothing pinned through the link"
    );
    fs::remove_file(&pins).expect("remove the symlink");
    fs::remove_dir(&decoy).expect("remove the decoy");

    // Root's own pin dir with a loose mode is closed, not refused.
    fs::create_dir(&pins).expect("mkdir");
    fs::set_permissions(&pins, fs::Permissions::from_mode(0o777)).expect("chmod");
    rig.up(&[]);
    assert_root_only(rig.pins.path());
}

#[test]
fn apply_confirm_state_is_root_only() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let cfg = rig.file("open.toml", "[ports]\ntcp = [22, 80, 9999]\nudp = [80]\n");
    let child = rig
        .command(&["apply", &path_str(&cfg), "--confirm", "60"])
        .spawn()
        .expect("spawn apply --confirm");
    let dir = pending_dir(&rig.lib_pins());
    let until = Instant::now() + Duration::from_secs(20);
    while !dir.join("pending").exists() {
        assert!(
            Instant::now() < until,
            "no probation state under {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_root_only(&dir);
    let run_dir = fs::metadata(fw_user::kernel::rundir::RUN_DIR).expect("/run/fw");
    assert_eq!(
        run_dir.mode() & 0o022,
        0,
        "/run/fw is not writable by others"
    );
    rig.ok(&["confirm"]);
    let out = child.wait_with_output().expect("apply exits");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !dir.exists(),
        "probation state removed after the confirmation"
    );
}

#[test]
fn the_exporter_listens_on_loopback_by_default() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let mut child = rig.command(&["exporter"]).spawn().expect("spawn exporter");
    let stderr = child.stderr.take().expect("stderr");
    let line = BufReader::new(stderr)
        .lines()
        .next()
        .expect("a line")
        .expect("read");
    let sockets = run_ok(rig.pair.srv().command("ss").arg("-Htlnp"));
    child.kill().expect("stop the exporter");
    child.wait().expect("wait");
    assert!(line.contains("serving http://127.0.0.1:"), "{line}");
    let fw_sockets: Vec<&str> = sockets.lines().filter(|l| l.contains("\"fw\"")).collect();
    assert_eq!(fw_sockets.len(), 1, "one listening socket: {sockets}");
    assert!(fw_sockets[0].contains("127.0.0.1:9788"), "{sockets}");
}

/// One command as nobody: what it must say.
struct Case {
    args: Vec<String>,
    needle: &'static str,
}

fn case(args: &[&str], needle: &'static str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        needle,
    }
}

#[test]
fn non_root_is_refused_before_anything_changes() {
    let rig = Rig::new(PREFIX);
    let cfg = path_str(&rig.file("open.toml", "[ports]\ntcp = [22, 80, 9999]\n"));
    let veth = rig.veth().to_string();
    let needs_root = "needs root";
    let view = "run as root";
    // Nothing loaded yet: refusing must not even make the pin dir.
    for c in [
        case(&["up", &veth], needs_root),
        case(&["up", &veth, "--foreground"], needs_root),
        case(&["up", &veth, "--dry-run", "--config", &cfg], needs_root),
    ] {
        let out = output_with_timeout(
            &mut as_nobody(&rig, &to_refs(&c.args)),
            Duration::from_secs(30),
        )
        .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "fw {:?}: {}",
            c.args,
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(c.needle),
            "fw {:?}: {}",
            c.args,
            text(&out.stderr)
        );
        assert!(
            !rig.pins.path().exists(),
            "fw {:?} as nobody made the pin dir",
            c.args
        );
    }
    rig.up(&[]);
    let ports = rig.ok(&["ports", "--json"]);
    let status = rig.status();
    let pending = pending_dir(&rig.lib_pins());
    let saved = path_str(&rig.file("saved.toml", "[ports]\n"));
    let table = [
        case(&["up", &veth], needs_root),
        case(&["down", &veth], needs_root),
        case(
            &["allow", "udp", "53", "--from", "198.51.100.0/24"],
            needs_root,
        ),
        case(&["deny", "tcp", "80", "--force"], needs_root),
        case(&["apply", &cfg, "--confirm", "30"], needs_root),
        case(&["apply", &cfg, "--force"], needs_root),
        case(&["allow", "tcp", "9999", "--runtime"], needs_root),
        case(&["save", &saved], needs_root),
        case(&["save"], view),
        case(&["conntrack"], view),
        case(&["conntrack", "--json"], view),
        case(&["log", "--count", "1", "--timeout", "1"], view),
        case(&["stats", "--json"], view),
        case(&["stats", "--watch", "1"], view),
        case(&["ports", "--json"], view),
        case(&["status", "--json"], view),
        case(&["status", "--verbose"], view),
        case(&["top"], view),
    ];
    for c in &table {
        let out = output_with_timeout(
            &mut as_nobody(&rig, &to_refs(&c.args)),
            Duration::from_secs(30),
        )
        .expect("runs");
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "fw {} (as nobody): exit code; {err}",
            c.args.join(" ")
        );
        assert!(
            err.contains(c.needle),
            "fw {} (as nobody): want {:?} in: {err}",
            c.args.join(" "),
            c.needle
        );
        assert!(
            text(&out.stdout).is_empty(),
            "fw {} (as nobody) printed {}",
            c.args.join(" "),
            text(&out.stdout)
        );
        assert_eq!(
            rig.ok(&["ports", "--json"]),
            ports,
            "fw {} left the policy",
            c.args.join(" ")
        );
        assert!(
            !pending.exists(),
            "fw {} made probation state",
            c.args.join(" ")
        );
    }
    assert_eq!(
        std::fs::read_to_string(&saved).expect("saved.toml"),
        "[ports]\n",
        "fw save as nobody wrote nothing"
    );
    let after = rig.status();
    for k in [
        "interfaces",
        "ingress_prog_id",
        "reject_with",
        "dry_run",
        "config",
    ] {
        assert_eq!(after[k], status[k], "{k}");
    }
    rig.assert_attached_once(&veth, "after the non-root attempts");
    // What needs no state works for anyone.
    let out = output_with_timeout(
        &mut as_nobody(&rig, &["completions", "bash"]),
        Duration::from_secs(30),
    )
    .expect("runs");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_non_root_exporter_says_it_cannot_read_fw() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let out = output_with_timeout(
        &mut as_nobody(&rig, &["exporter", "--listen", "127.0.0.1:0"]),
        Duration::from_secs(10),
    )
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("run as root"),
        "{}",
        text(&out.stderr)
    );
}

fn to_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
