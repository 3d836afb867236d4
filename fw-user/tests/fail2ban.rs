//! fail2ban as a real client of fw: Debian's fail2ban-server runs in the
//! test's server namespace (never as a system service: its config, socket,
//! pid file and database in a temp dir) with a jail on a log file the test
//! writes and `contrib/fail2ban/action.d/fw.conf` (the shipped file, linked
//! in) as its action. Failed logins from one peer address ban it: its SYNs
//! to 22 are dropped and counted `blocked`, exactly; another peer still
//! connects; after the bantime fail2ban's unban removes the entry (an ended
//! ban alone would keep it) and the peer connects again; fail2ban stopping
//! flushes the jail's set.
//!
//! Run as root: `cargo test --release -p fw-user --test fail2ban -- --test-threads=1`
//! (fail2ban from `cargo xtask setup`).
use std::{
    fs::OpenOptions,
    io::Write,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use fw_testkit::{
    command, fw_bin, output_with_timeout, reason_packets, spawn_tcp_listener, tcp_connect_from,
    text, wait_until, workspace_dir, Outcome, Rig, CMD_TIMEOUT,
};

/// The jail (so the set is `f2b-fwtest`, the action's default `f2b-<name>`).
const JAIL: &str = "fwtest";
const SET: &str = "f2b-fwtest";
/// fail2ban's bantime, seconds (the action bans `--for` as long).
const BANTIME: u64 = 6;
/// A second peer on the client: failed logins below maxretry, never banned.
const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
/// A connect that gets no answer in this long was dropped.
const T: Duration = Duration::from_millis(1500);

/// fail2ban-server in the foreground, its files in `dir`; stopped (SIGTERM,
/// then SIGKILL) on drop, also on a panic.
struct Fail2ban {
    child: Child,
    dir: PathBuf,
}

impl Fail2ban {
    /// Writes the config into `dir` (the action for `fw` pointed at the
    /// rig's binary and pin dir) and starts the server in `rig`'s server
    /// namespace; returns once the jail runs.
    fn start(rig: &Rig, dir: &Path) -> Fail2ban {
        let d = dir.display();
        for sub in ["filter.d", "action.d"] {
            std::fs::create_dir_all(dir.join(sub)).expect("fail2ban conf dirs");
        }
        write(
            &dir.join("fail2ban.conf"),
            &format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {d}/fail2ban.log\n\
                 syslogsocket = auto\nsocket = {d}/f2b.sock\npidfile = {d}/f2b.pid\n\
                 dbfile = {d}/f2b.sqlite3\ndbpurgeage = 1d\nallowipv6 = auto\n"
            ),
        );
        write(
            &dir.join("filter.d/fwtest.conf"),
            "[Definition]\nfailregex = ^fwtest: failed login from <HOST>$\ndatepattern = {NONE}\n",
        );
        let action = workspace_dir().join("contrib/fail2ban/action.d/fw.conf");
        assert!(action.exists(), "{} is missing", action.display());
        std::os::unix::fs::symlink(&action, dir.join("action.d/fw.conf")).expect("link fw.conf");
        write(&dir.join("auth.log"), "");
        let fw = format!(
            "{} --pin-dir {}",
            fw_bin().display(),
            rig.pins.path().display()
        );
        write(
            &dir.join("jail.conf"),
            &format!(
                "[{JAIL}]\nenabled = true\nfilter = fwtest\nlogpath = {d}/auth.log\n\
                 backend = polling\nfindtime = 60\nmaxretry = 3\nbantime = {BANTIME}\n\
                 action = fw[fw=\"{fw}\"]\n"
            ),
        );
        let child = rig
            .pair
            .srv()
            .command("fail2ban-server")
            .args(["-f", "-x", "-c"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.err")).expect("server.err"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting fail2ban-server (install it: `cargo xtask setup`): {e}")
            });
        let f2b = Fail2ban {
            child,
            dir: dir.to_owned(),
        };
        assert!(
            wait_until(Duration::from_secs(20), || f2b
                .client(&["status", JAIL])
                .is_ok()),
            "fail2ban's jail did not start within 20 s: {}",
            f2b.logs()
        );
        f2b
    }

    /// `fail2ban-client` on this server's socket: stdout, or the failure.
    fn client(&self, args: &[&str]) -> Result<String, String> {
        let mut c = command("fail2ban-client");
        c.arg("-c")
            .arg(&self.dir)
            .arg("-s")
            .arg(self.dir.join("f2b.sock"))
            .args(args);
        let out = output_with_timeout(&mut c, CMD_TIMEOUT).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(format!("{}{}", text(&out.stdout), text(&out.stderr)))
        }
    }

    /// The jail's "Currently banned" count.
    fn banned(&self) -> Option<u64> {
        let out = self.client(&["status", JAIL]).ok()?;
        out.lines()
            .find_map(|l| l.split("Currently banned:").nth(1))?
            .trim()
            .parse()
            .ok()
    }

    /// Appends `n` failed logins from `ip` to the jail's log.
    fn fail(&self, ip: IpAddr, n: usize) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.dir.join("auth.log"))
            .expect("auth.log");
        for _ in 0..n {
            writeln!(f, "fwtest: failed login from {ip}").expect("write auth.log");
        }
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "fail2ban.log:\n{}\nserver stderr:\n{}",
            read("fail2ban.log"),
            read("server.err")
        )
    }

    /// `fail2ban-client stop`, waiting (bounded) for the server to exit.
    fn stop(mut self) -> String {
        let said = self.client(&["stop"]);
        let gone = wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            said.is_ok() && gone,
            "fail2ban did not stop: {said:?}\n{}",
            self.logs()
        );
        self.logs()
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on our own child's pid, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let exited = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write(p: &Path, body: &str) {
    std::fs::write(p, body).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
}

/// TCP segments the client namespace has sent, retransmissions included
/// (`Tcp: OutSegs` counts new segments only; `RetransSegs` the rest).
fn tcp_segments_sent(rig: &Rig) -> u64 {
    let snmp = rig.pair.cli().sh(&["cat", "/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().expect("Tcp header"), tcp.next().expect("Tcp"));
    let field = |name: &str| -> u64 {
        let i = names
            .split_whitespace()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no {name} in {names}"));
        values
            .split_whitespace()
            .nth(i)
            .expect("value")
            .parse()
            .expect("number")
    };
    field("OutSegs") + field("RetransSegs")
}

fn blocked(rig: &Rig) -> u64 {
    reason_packets(&rig.json(&["stats", "--json"]), "blocked")
}

/// Entries in the v4 trie (an ended ban is still one until removed).
fn entry_count(rig: &Rig) -> usize {
    rig.maps()
        .block_entries(false)
        .unwrap_or_else(|e| panic!("reading the v4 trie: {e}"))
        .len()
}

#[test]
fn fail2ban_bans_through_fw_and_unbans_after_the_bantime() {
    let started = Instant::now();
    let rig = Rig::new("fwf2b");
    rig.pair.add_client_addr(OTHER.into()).expect("second peer");
    let _ssh = spawn_tcp_listener(rig.pair.srv(), "::".parse().unwrap(), 22).unwrap();
    rig.up(&[]);
    let (cli, srv) = (rig.pair.cli_path(), rig.srv());
    let (a, b): (IpAddr, IpAddr) = (rig.pair.cli_v4().into(), OTHER.into());
    for p in [a, b] {
        assert_eq!(
            tcp_connect_from(cli, p, srv, 22, T),
            Outcome::Connected,
            "{p} before"
        );
    }
    let tmp = fw_testkit::TempDir::new("fwf2b-conf");
    let f2b = Fail2ban::start(&rig, tmp.path());

    // Two failures of B (below maxretry), three of A: A alone is banned.
    f2b.fail(b, 2);
    f2b.fail(a, 3);
    let banned = wait_until(Duration::from_secs(15), || {
        text(&rig.fw(&["blocks", "--set", SET]).stdout).contains(&format!("{a}/32"))
    });
    assert!(
        banned,
        "fail2ban did not ban {a} within 15 s:\n{}",
        f2b.logs()
    );
    let banned_at = Instant::now();
    let rows = rig.json(&["blocks", "--json", "--set", SET]);
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "only A: {rows}");
    assert_eq!(rows[0]["prefix"], format!("{a}/32"), "{rows}");
    assert_eq!(rows[0]["sets"], serde_json::json!([SET]), "{rows}");
    let left = rows[0]["expires_in_secs"].as_u64().expect("a timed ban");
    assert!(
        (1..=BANTIME).contains(&left),
        "ends with the bantime: {rows}"
    );
    assert_eq!(f2b.banned(), Some(1), "{}", f2b.logs());

    // A's SYNs are dropped, each counted `blocked` and as the entry's hit.
    let (segs0, blocked0) = (tcp_segments_sent(&rig), blocked(&rig));
    let hits0 = rows[0]["hits"].as_u64().expect("hits");
    assert_eq!(
        tcp_connect_from(cli, a, srv, 22, T),
        Outcome::TimedOut,
        "A banned"
    );
    let syns = tcp_segments_sent(&rig) - segs0;
    assert!(syns >= 1, "A sent no SYN");
    assert_eq!(blocked(&rig) - blocked0, syns, "blocked = A's SYNs");
    let hits = rig.json(&["blocks", "--json", "--set", SET])[0]["hits"]
        .as_u64()
        .expect("hits");
    assert_eq!(hits - hits0, syns, "the entry's hits = A's SYNs");
    assert_eq!(
        tcp_connect_from(cli, b, srv, 22, T),
        Outcome::Connected,
        "B is not banned"
    );
    assert!(
        banned_at.elapsed() < Duration::from_secs(BANTIME),
        "the checks outlasted the ban; raise BANTIME"
    );

    // fail2ban unbans after the bantime: the entry is gone from the trie
    // (the kernel's end alone would leave it there, counted as absent).
    let unbanned = wait_until(Duration::from_secs(BANTIME + 15), || {
        f2b.banned() == Some(0) && entry_count(&rig) == 0
    });
    assert!(unbanned, "fail2ban did not unban {a}:\n{}", f2b.logs());
    assert!(
        banned_at.elapsed() >= Duration::from_secs(BANTIME - 1),
        "unbanned before the bantime"
    );
    assert_eq!(rig.ok(&["blocks", "--set", SET]), "no blocked prefixes\n");
    assert_eq!(
        tcp_connect_from(cli, a, srv, 22, T),
        Outcome::Connected,
        "A after the unban"
    );

    // Banned again, then fail2ban stops: its flush empties the jail's set.
    f2b.fail(a, 3);
    let again = wait_until(Duration::from_secs(15), || entry_count(&rig) == 1);
    assert!(again, "no second ban:\n{}", f2b.logs());
    assert_eq!(
        tcp_connect_from(cli, a, srv, 22, T),
        Outcome::TimedOut,
        "A banned again"
    );
    let logs = f2b.stop();
    assert_eq!(entry_count(&rig), 0, "flushed at stop:\n{logs}");
    rig.refused(
        &["blocks", "--set", SET],
        1,
        &format!("no block set named `{SET}`"),
    );
    assert_eq!(
        tcp_connect_from(cli, a, srv, 22, T),
        Outcome::Connected,
        "A after the flush"
    );
    for needle in [
        format!("Ban {a}"),
        format!("Unban {a}"),
        "Flush ticket".to_string(),
    ] {
        assert!(
            logs.contains(&needle),
            "{needle:?} in fail2ban's log:\n{logs}"
        );
    }
    assert!(!logs.contains("ERROR"), "fail2ban logged errors:\n{logs}");
    eprintln!("fail2ban test: {:.1} s", started.elapsed().as_secs_f64());
}
