//! ESTABLISHED,RELATED in real namespaces: what the host under fw starts gets
//! its replies, flows that exist before `fw up` or survive a `fw deny` keep
//! working, and new flows to closed ports are refused.
use std::{
    io::{Read, Write},
    net::{IpAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use fw_testkit::{
    echo_rounds, fw_cmd, fw_ok, fw_stats, fw_up, in_netns, reason_packets, require_root,
    spawn_tcp_listener, spawn_udp_echo, tcp_connect, udp_probe, Netns, Outcome, Pair, PinDir,
};

const T: Duration = Duration::from_secs(2);

fn up(pair: &Pair) -> PinDir {
    fw_up(pair, &[])
}

fn down(pair: &Pair, pins: &PinDir) {
    fw_ok(pair.srv_path(), pins, ["down"]);
}

#[test]
fn host_started_flows_get_their_replies() {
    host_started_flows_get_their_replies_through("tcx");
}

/// The egress hook of kernels before 6.6 does the same job.
#[test]
fn host_started_flows_get_their_replies_through_clsact() {
    host_started_flows_get_their_replies_through("clsact");
}

fn host_started_flows_get_their_replies_through(hook: &str) {
    require_root();
    let pair = Netns::pair("fwct");
    let any6: IpAddr = "::".parse().expect("addr");
    // Services on the *client*: the server (under fw) is the one connecting.
    let _tcp = spawn_tcp_listener(pair.cli_path(), any6, 9000).expect("listener");
    let _udp = spawn_udp_echo(pair.cli_path(), any6, 5353).expect("udp echo");
    let pins = fw_up(&pair, &["--egress", hook]);
    let st: serde_json::Value =
        serde_json::from_str(&fw_ok(pair.srv_path(), &pins, ["status", "--json"]))
            .expect("status JSON");
    assert_eq!(st["interfaces"][0]["egress"], hook, "{st}");
    for peer in [IpAddr::from(pair.cli_v4()), IpAddr::from(pair.cli_v6())] {
        assert_eq!(
            tcp_connect(pair.srv_path(), peer, 9000, T),
            Outcome::Connected,
            "TCP out to {peer}"
        );
        assert_eq!(
            udp_probe(pair.srv_path(), peer, 5353, T),
            Outcome::Replied,
            "UDP out to {peer}"
        );
        let ping = pair
            .srv()
            .command("ping")
            .args(["-c", "2", "-i", "0.2", "-W", "1", &peer.to_string()])
            .output()
            .expect("ping runs");
        assert!(
            ping.status.success(),
            "ping {peer}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }
    let s = fw_stats(pair.srv_path(), &pins);
    assert!(
        reason_packets(&s, "established") >= 8,
        "replies counted as established: {s}"
    );
    assert_eq!(reason_packets(&s, "reject"), 0, "nothing rejected: {s}");
    down(&pair, &pins);
}

#[test]
fn bulk_transfer_completes() {
    require_root();
    let pair = Netns::pair("fwct");
    let pins = up(&pair);
    // The client serves 8 MiB; the host under fw downloads it, so every
    // inbound data segment has to take the `established` path.
    let total: usize = 8 << 20;
    let listener = in_netns(pair.cli_path(), || std::net::TcpListener::bind("[::]:9001"))
        .expect("setns")
        .expect("bind 9001");
    let source = thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let chunk = vec![0xabu8; 64 << 10];
        for _ in 0..total / chunk.len() {
            c.write_all(&chunk).expect("serve bulk");
        }
    });
    let cli = pair.cli_v4();
    let got = in_netns(pair.srv_path(), move || {
        let mut s = TcpStream::connect_timeout(&(cli, 9001).into(), T).expect("connect out");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0u8; 64 << 10];
        let (mut n, start) = (0, Instant::now());
        while start.elapsed() < Duration::from_secs(30) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => panic!("bulk read after {n} bytes: {e}"),
            }
        }
        n
    })
    .expect("setns");
    source.join().expect("source thread");
    assert_eq!(got, total, "every byte arrived");
    let s = fw_stats(pair.srv_path(), &pins);
    assert!(
        reason_packets(&s, "established") > 100,
        "data took the established path: {s}"
    );
    assert_eq!(
        reason_packets(&s, "reject") + reason_packets(&s, "reject_ratelimited"),
        0,
        "nothing rejected: {s}"
    );
    down(&pair, &pins);
}

#[test]
fn flow_open_before_up_survives() {
    require_root();
    let pair = Netns::pair("fwct");
    let any6: IpAddr = "::".parse().expect("addr");
    // 8080 is closed by the seed policy: only conntrack seeding can keep this flow.
    let _srv = spawn_tcp_listener(pair.srv_path(), any6, 8080).expect("listener");
    let srv = pair.srv_v4();
    let srv_path = pair.srv_path().to_path_buf();
    let veth = pair.srv_veth().to_string();
    let (pins, seeded) = in_netns(pair.cli_path(), move || {
        let mut s =
            TcpStream::connect_timeout(&(srv, 8080).into(), T).expect("connect before fw up");
        s.set_read_timeout(Some(T)).expect("timeout");
        echo_rounds(&mut s, 3, "before");
        let pins = PinDir::new();
        let out = fw_cmd(&srv_path, &pins, ["up", &veth]);
        assert!(
            out.status.success(),
            "fw up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        echo_rounds(&mut s, 20, "after fw up");
        (pins, String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .expect("setns");
    assert!(seeded.contains("seeded"), "fw up reports seeding: {seeded}");
    // A new connection to the same closed port is refused.
    let again = tcp_connect(pair.cli_path(), srv.into(), 8080, T);
    assert!(again.is_host_unreachable(), "new flow to 8080: {again}");
    let out = fw_cmd(pair.srv_path(), &pins, ["conntrack", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("conntrack JSON");
    assert!(
        rows.as_array()
            .expect("array")
            .iter()
            .any(|r| r["local_port"] == 8080 && r["origin"] == "seeded"),
        "the seeded flow is listed: {rows}"
    );
    down(&pair, &pins);
}

#[test]
fn established_flow_survives_deny() {
    require_root();
    let pair = Netns::pair("fwct");
    let any6: IpAddr = "::".parse().expect("addr");
    let _srv = spawn_tcp_listener(pair.srv_path(), any6, 80).expect("listener");
    let pins = up(&pair);
    let srv = pair.srv_v4();
    let srv_path = pair.srv_path().to_path_buf();
    let pin_path = pins.path().to_path_buf();
    in_netns(pair.cli_path(), move || {
        let mut s = TcpStream::connect_timeout(&(srv, 80).into(), T).expect("connect to 80");
        s.set_read_timeout(Some(T)).expect("timeout");
        echo_rounds(&mut s, 3, "before deny");
        let out = fw_cmd(&srv_path, &pin_path, ["deny", "tcp", "80", "--force"]);
        assert!(
            out.status.success(),
            "fw deny: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        echo_rounds(&mut s, 20, "after deny");
    })
    .expect("setns");
    let again = tcp_connect(pair.cli_path(), srv.into(), 80, T);
    assert!(
        again.is_host_unreachable(),
        "a new flow to a denied port is rejected: {again}"
    );
    down(&pair, &pins);
}

/// Processes this test started (`sleep` holding an accepted connection),
/// killed by their id at the end.
struct Holders(Vec<std::process::Child>);

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `fw conntrack ARGS --json` in the server namespace, parsed.
fn listed(pair: &Pair, pins: &PinDir, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["conntrack", "--json"];
    all.extend_from_slice(args);
    let out = fw_ok(pair.srv_path(), pins, &all);
    let v: serde_json::Value = serde_json::from_str(&out).expect("conntrack JSON");
    v.as_array().expect("a list").clone()
}

fn ports_of(rows: &[serde_json::Value]) -> std::collections::BTreeSet<u64> {
    rows.iter()
        .map(|r| r["remote_port"].as_u64().expect("remote_port"))
        .collect()
}

/// `fw conntrack`: a table an IPv4 flow fits in 100 columns with times
/// like `4d23h`, the filters of `conntrack -L`, and `--flush` that keeps
/// the flows of the session running it unless `--force`.
#[test]
fn conntrack_lists_filters_and_flushes_sparing_the_session() {
    require_root();
    let pair = Netns::pair("fwct");
    let pins = up(&pair);
    fw_ok(
        pair.srv_path(),
        &pins,
        ["allow", "tcp", "2222", "--runtime"],
    );
    fw_ok(
        pair.srv_path(),
        &pins,
        ["allow", "udp", "5353", "--runtime"],
    );
    let any6: IpAddr = "::".parse().expect("addr");
    let _udp = spawn_udp_echo(pair.srv_path(), any6, 5353).expect("udp echo");
    for peer in [IpAddr::from(pair.srv_v4()), IpAddr::from(pair.srv_v6())] {
        assert_eq!(udp_probe(pair.cli_path(), peer, 5353, T), Outcome::Replied);
    }
    // Three TCP flows to 2222. The test process holds the second one (it
    // is an ancestor of every fw it runs: the guard's "session socket");
    // `sleep` processes hold the others, and SSH_CONNECTION names the third.
    let listener = in_netns(pair.srv_path(), || {
        std::net::TcpListener::bind("0.0.0.0:2222")
    })
    .expect("setns")
    .expect("listen on 2222");
    let srv = pair.srv_v4();
    let mut clients = Vec::new();
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let c = in_netns(pair.cli_path(), move || {
            TcpStream::connect_timeout(&(srv, 2222).into(), T)
        })
        .expect("setns")
        .expect("connect to 2222");
        let (s, peer) = listener.accept().expect("accept");
        assert_eq!(peer, c.local_addr().expect("local addr"));
        clients.push(c);
        accepted.push((s, peer.port()));
    }
    let (p1, p2, p3) = (accepted[0].1, accepted[1].1, accepted[2].1);
    let mut holders = Holders(Vec::new());
    let mut held_here = None;
    for (i, (s, _)) in accepted.into_iter().enumerate() {
        if i == 1 {
            held_here = Some(s);
            continue;
        }
        let fd = std::os::fd::OwnedFd::from(s);
        holders.0.push(
            std::process::Command::new("sleep")
                .arg("120")
                .stdin(std::process::Stdio::from(fd))
                .spawn()
                .expect("spawn sleep"),
        );
    }
    let all = listed(&pair, &pins, &[]);
    assert_eq!(all.len(), 5, "3 tcp + 2 udp: {all:?}");
    assert!(
        all.iter().all(|r| r["confirmed"] == true),
        "answered flows are confirmed: {all:?}"
    );

    // The table.
    let text = fw_ok(pair.srv_path(), &pins, ["conntrack"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 5 + 1, "{text}");
    assert!(lines[0].starts_with("proto  remote"), "{text}");
    assert_eq!(lines[6], "5 entries");
    for l in &lines {
        assert!(l.len() <= 100, "{} columns: {l}", l.len());
    }
    for p in [p1, p2, p3] {
        let row = lines
            .iter()
            .find(|l| l.contains(&format!("192.0.2.2:{p} ")))
            .unwrap_or_else(|| panic!("no row of port {p}:\n{text}"));
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            f[..5],
            [
                "tcp",
                &format!("192.0.2.2:{p}"),
                "192.0.2.1:2222",
                "established",
                "inbound"
            ],
            "{row}"
        );
        assert_eq!(f[5], "yes", "a completed handshake confirms: {row}");
        assert!(
            f[6].ends_with('s') && f[6].len() <= 3,
            "age in seconds: {row}"
        );
        assert_eq!(
            f[7], "4d23h",
            "an established flow's 5 days, less a moment: {row}"
        );
    }
    let v6 = lines
        .iter()
        .find(|l| l.starts_with("udp") && l.contains("[2001:db8::2]:"))
        .unwrap_or_else(|| panic!("no v6 udp row:\n{text}"));
    let f: Vec<&str> = v6.split_whitespace().collect();
    assert_eq!(f[2], "[2001:db8::1]:5353", "{v6}");
    assert_eq!(f[5], "yes", "an answered datagram confirms: {v6}");
    assert!(
        f[7].starts_with("1m") || f[7].starts_with("2m") || f[7].ends_with('s'),
        "a replied udp flow's 2 minutes: {v6}"
    );

    // Filters, as `conntrack -L -p tcp --dport 2222 -s ...`.
    let tcp = listed(&pair, &pins, &["--proto", "tcp", "--port", "2222"]);
    assert_eq!(ports_of(&tcp), [p1, p2, p3].map(u64::from).into());
    assert_eq!(listed(&pair, &pins, &["--proto", "udp"]).len(), 2);
    assert_eq!(listed(&pair, &pins, &["--port", "5353"]).len(), 2);
    assert_eq!(
        listed(&pair, &pins, &["--port", &p2.to_string()]).len(),
        1,
        "the remote port too"
    );
    let v6 = listed(&pair, &pins, &["--src", "2001:db8::/32"]);
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(v6[0]["remote"], "2001:db8::2");
    assert_eq!(listed(&pair, &pins, &["--src", "192.0.2.2"]).len(), 4);
    assert_eq!(listed(&pair, &pins, &["--src", "198.51.100.0/24"]).len(), 0);
    assert!(listed(&pair, &pins, &["--proto", "icmp"]).is_empty());
    assert_eq!(
        fw_ok(
            pair.srv_path(),
            &pins,
            ["conntrack", "--proto", "tcp", "--port", "5353"]
        ),
        "proto  remote local state       origin   confirmed    age expires\n0 entries\n"
    );

    // Bad input: message, exit code, nothing deleted.
    for (args, needle, code) in [
        (
            vec!["--port", "0"],
            "invalid value '0' for '--port <PORT>'",
            2,
        ),
        (vec!["--port", "65536"], "invalid value '65536'", 2),
        (
            vec!["--proto", "sctp"],
            "invalid value 'sctp' for '--proto <PROTO>'",
            2,
        ),
        (
            vec!["--src", "nowhere"],
            "fw: invalid source prefix `nowhere`: expected an address or CIDR",
            1,
        ),
        (
            vec!["--src", "192.0.2.1/24"],
            "host bits are set; did you mean 192.0.2.0/24?",
            1,
        ),
        (
            vec!["--force"],
            "the following required arguments were not provided:\n  --flush",
            2,
        ),
        (vec!["--wait", "5"], "--flush", 2),
        (
            vec!["--flush", "--src", "nowhere"],
            "invalid source prefix",
            1,
        ),
    ] {
        let mut all = vec!["conntrack"];
        all.extend_from_slice(&args);
        let out = fw_cmd(pair.srv_path(), &pins, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "fw {all:?}: {err}");
        assert!(err.contains(needle), "fw {all:?}: {needle:?} in {err}");
        assert_eq!(
            listed(&pair, &pins, &[]).len(),
            5,
            "fw {all:?} deleted nothing"
        );
    }
    let mut cmd = pair.srv().command("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(fw_testkit::fw_bin())
        .arg("--pin-dir")
        .arg(pins.path())
        .args(["conntrack", "--flush"]);
    let out = cmd.output().expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("fw: `fw conntrack --flush` needs root (uid 0;"),
        "{err}"
    );
    assert_eq!(listed(&pair, &pins, &[]).len(), 5, "nobody deleted nothing");

    // Flush, from the "SSH session" of the third flow.
    let flush = |extra: &[&str]| {
        let mut cmd = pair.srv().command(&fw_testkit::fw_bin().to_string_lossy());
        cmd.env("SSH_CONNECTION", format!("192.0.2.2 {p3} 192.0.2.1 2222"))
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["conntrack", "--flush"])
            .args(extra);
        let out = cmd.output().expect("fw runs");
        assert!(
            out.status.success(),
            "fw conntrack --flush {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = flush(&["--proto", "tcp"]);
    assert_eq!(out, "deleted 1 flow(s)\n", "{err}");
    let me = std::process::id();
    // (Another fw command, of another test, may hold the lock a moment.)
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("fw: kept")).collect();
    assert_eq!(notes.len(), 2, "{err}");
    let kept2 = notes
        .iter()
        .find(|l| l.contains(&format!(":{p2} ->")))
        .unwrap_or_else(|| panic!("flow {p2} kept: {err}"));
    assert!(
        kept2.starts_with(&format!(
            "fw: kept tcp 192.0.2.2:{p2} -> 192.0.2.1:2222: a connection from 192.0.2.2:{p2} held by `"
        )) && kept2.ends_with(&format!("(pid {me}), which runs this command; --force deletes it too")),
        "{kept2}"
    );
    assert!(
        err.contains(&format!(
            "fw: kept tcp 192.0.2.2:{p3} -> 192.0.2.1:2222: the SSH session running this command \
             (SSH_CONNECTION, client 192.0.2.2:{p3}); --force deletes it too\n"
        )),
        "{err}"
    );
    assert_eq!(
        ports_of(&listed(&pair, &pins, &["--proto", "tcp"])),
        [p2, p3].map(u64::from).into()
    );
    assert_eq!(
        listed(&pair, &pins, &["--proto", "udp"]).len(),
        2,
        "udp untouched"
    );
    let (out, err) = flush(&["--port", "2222", "--force"]);
    assert_eq!(out, "deleted 2 flow(s)\n");
    assert!(!err.contains("kept"), "{err}");
    assert!(listed(&pair, &pins, &["--proto", "tcp"]).is_empty());
    let (out, _) = flush(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("flush JSON");
    assert_eq!(v["deleted"], 2, "{v}");
    assert_eq!(v["kept"], serde_json::json!([]), "{v}");
    assert!(listed(&pair, &pins, &[]).is_empty());
    // Flushed entries are no evictions, in either table.
    let st: serde_json::Value =
        serde_json::from_str(&fw_ok(pair.srv_path(), &pins, ["status", "--json"]))
            .expect("status JSON");
    assert_eq!(
        (
            &st["conntrack_evicted"],
            &st["conntrack_unconfirmed_evicted"]
        ),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{st}"
    );
    let text = fw_ok(pair.srv_path(), &pins, ["status"]);
    assert!(
        text.contains("conntrack: 0 confirmed of ") && text.contains("0 unconfirmed of "),
        "{text}"
    );
    drop(held_here);
    drop(holders);
    down(&pair, &pins);
}
