//! Per-source limits through the `fw` binary in a namespace pair: real
//! connections over the limit refused while an open session goes on, the
//! limit listed in `fw status`, persisted like the rest of the policy
//! (write-back, `fw save`, `fw check`, `fw apply` all or nothing, drift,
//! `fw down`/`up`), and bad input refused with nothing changed. The
//! verdicts themselves (exact reject frames, windows on a fake clock, v4
//! and v6, grouping, a flood not evicting another limit's state) are in
//! verdict.rs.
//!
//! Run as root: `cargo test --release -p fw-user --test limit -- --test-threads=1`.
use std::{net::IpAddr, time::Duration};

use fw_testkit::{reason_packets, tcp_connect, tcp_session, Outcome, Rig};

const T: Duration = Duration::from_millis(1500);

fn limits_json(rig: &Rig) -> serde_json::Value {
    rig.status()["limits"].clone()
}

#[test]
fn six_connects_get_in_the_seventh_is_refused_and_an_open_session_goes_on() {
    let rig = Rig::new("fwlm");
    let any: IpAddr = "::".parse().unwrap();
    let _ssh = fw_testkit::spawn_tcp_listener(rig.pair.srv_path(), any, 22).unwrap();
    rig.up(&[]);
    let out = rig.ok(&["limit", "tcp", "22", "--rate", "6/30s"]);
    assert_eq!(out, "limited tcp 22 6/30s per source /32 (IPv6 /64)\n");
    let (cli, srv4, srv6) = (rig.pair.cli_path(), rig.srv(), rig.srv6());
    let kept = tcp_session(cli, srv4, 22, T, |mut s| {
        fw_testkit::echo_rounds(&mut s, 2, "before");
        // The session was the first new connection: five more get in.
        for i in 0..5 {
            assert_eq!(
                tcp_connect(cli, srv4, 22, T),
                Outcome::Connected,
                "connect {} of 6",
                i + 2
            );
        }
        assert_eq!(
            tcp_connect(cli, srv4, 22, T),
            Outcome::Unreachable(libc::EHOSTUNREACH),
            "the 7th new connection in 30 s: host unreachable, as [reject] with says"
        );
        // Established flows are never limited.
        fw_testkit::echo_rounds(&mut s, 5, "after");
        // Another source (the client's IPv6 address) has its own count.
        assert_eq!(tcp_connect(cli, srv6, 22, T), Outcome::Connected);
    });
    assert!(kept.is_ok(), "the open session: {kept:?}");
    let stats = rig.json(&["stats", "--json"]);
    assert_eq!(reason_packets(&stats, "limited"), 1, "{stats}");
    let st = rig.status_text();
    assert!(
        st.contains("limits: tcp 22 6/30s per /32 (IPv6 /64), 2 source(s); 1 new flow(s) limited"),
        "{st}"
    );
    // Out again: the source connects at once.
    let out = rig.ok(&["unlimit", "tcp", "22"]);
    assert_eq!(
        out,
        "limit removed: tcp 22 6/30s per source /32 (IPv6 /64)\n"
    );
    assert_eq!(tcp_connect(cli, srv4, 22, T), Outcome::Connected);
    assert_eq!(limits_json(&rig), serde_json::json!([]));
}

const CONFIG: &str = "# my policy\n[ports]\ntcp = [22, 80]\nudp = [80]\n";

#[test]
fn limits_persist_like_the_policy_and_bad_input_changes_nothing() {
    let rig = Rig::new("fwlp");
    let cfg = rig.file("fw.toml", CONFIG);
    let c = cfg.display().to_string();
    rig.up(&["--config", &c]);
    let out = rig.ok(&["limit", "tcp", "22", "--rate", "6/30s", "--per", "24"]);
    assert_eq!(
        out,
        format!("limited tcp 22 6/30s per source /24 (IPv6 /64)\nwritten to {c}\n")
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.starts_with("# my policy\n")
            && text.contains(
                "[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"6/30s\"\nper = 24\nper6 = 64\n"
            ),
        "{text}"
    );
    for view in [rig.status_text(), rig.ok(&["status", "--verbose"])] {
        assert!(
            view.contains("limits: tcp 22 6/30s per /24 (IPv6 /64), 0 source(s)")
                && view.contains("the running policy matches it"),
            "{view}"
        );
    }
    let j = limits_json(&rig);
    assert_eq!(j[0]["rate"], "6/30s", "{j}");
    assert_eq!(
        (j[0]["per"].as_u64(), j[0]["per6"].as_u64()),
        (Some(24), Some(64))
    );
    // --runtime: the kernel only, and the status says the file differs.
    rig.ok(&["limit", "udp", "80", "--rate", "100/1m", "--runtime"]);
    let st = rig.status_text();
    assert!(
        st.contains(
            "limit udp 80 100/1m per source /32 (IPv6 /64) in place, the file does not have it"
        ),
        "{st}"
    );
    assert!(rig.ok(&["save"]).contains("port = 80\nrate = \"100/1m\""));
    rig.ok(&["unlimit", "udp", "80", "--runtime"]);
    assert!(rig.status_text().contains("the running policy matches it"));
    // Bad input: a clear error, exit 1, nothing changed anywhere (tcp 23
    // open, so that 22-23 is open and overlaps the limit of 22).
    rig.ok(&["allow", "tcp", "23", "--runtime"]);
    let before = (limits_json(&rig), std::fs::read_to_string(&cfg).unwrap());
    for (args, needle) in [
        (
            vec!["limit", "tcp", "22", "--rate", "0/30s"],
            "the count must be 1-1000000",
        ),
        (
            vec!["limit", "tcp", "22", "--rate", "6/0s"],
            "the window must be 1s-24h",
        ),
        (
            vec!["limit", "tcp", "22", "--rate", "6/30x"],
            "unknown unit `x`: use s, m or h",
        ),
        (
            vec!["limit", "tcp", "22", "--rate", "6"],
            "a rate is NEW_FLOWS/WINDOW",
        ),
        (
            vec!["limit", "tcp", "22", "--rate", "6/30s", "--per", "33"],
            "--per must be 1-32",
        ),
        (
            vec!["limit", "tcp", "22", "--rate", "6/30s", "--per6", "0"],
            "--per6 must be 1-128",
        ),
        (
            vec!["limit", "tcp", "443", "--rate", "6/30s"],
            "tcp 443 is not open, so there is nothing to limit",
        ),
        (
            vec!["limit", "tcp", "443", "--rate", "6/30s"],
            "`fw allow tcp 443`",
        ),
        (
            vec!["limit", "tcp", "22-23", "--rate", "6/30s"],
            "overlaps tcp 22",
        ),
        (vec!["limit", "tcp", "70000", "--rate", "6/30s"], "1-65535"),
        (
            vec!["unlimit", "tcp", "80"],
            "tcp 80 has no limit of its own (there are limits on tcp 22",
        ),
    ] {
        rig.refused(&args, 1, needle);
        let now = (limits_json(&rig), std::fs::read_to_string(&cfg).unwrap());
        assert_eq!(now, before, "fw {}: changed something", args.join(" "));
    }
    // fw down / up: the limit comes back from the file.
    rig.ok(&["down"]);
    rig.up(&["--config", &c]);
    assert_eq!(limits_json(&rig), before.0);
    // fw check / apply: all or nothing.
    let bad = rig.file(
        "bad.toml",
        &format!("{CONFIG}[[limits]]\nproto = \"udp\"\nport = 80\nrate = \"5/1m\"\n[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"0/1m\"\n"),
    );
    let b = bad.display().to_string();
    rig.refused(&["check", &b], 1, "limits[1].rate");
    rig.refused(&["apply", &b], 1, "the count must be");
    assert_eq!(
        limits_json(&rig),
        before.0,
        "a refused apply changes nothing"
    );
    let good = rig.file(
        "good.toml",
        &format!("{CONFIG}[[limits]]\nproto = \"udp\"\nport = 80\nrate = \"5/1m\"\nper6 = 48\n"),
    );
    let g = good.display().to_string();
    let out = rig.ok(&["check", &g]);
    assert!(
        out.contains("limit udp 80 5/1m per source /32 (IPv6 /48)")
            && out.contains("no limit tcp 22 6/30s per source /24 (IPv6 /64) any more"),
        "{out}"
    );
    rig.ok(&["apply", &g]);
    let j = limits_json(&rig);
    assert_eq!(j.as_array().map(Vec::len), Some(1), "{j}");
    assert_eq!(
        (j[0]["proto"].as_str(), j[0]["lo"].as_u64()),
        (Some("udp"), Some(80))
    );
}
