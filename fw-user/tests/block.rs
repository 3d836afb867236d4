//! Blocklists: verdicts through BPF_PROG_TEST_RUN (longest prefix wins, v4
//! and v6, an expired ban absent, a block before established flows and
//! fragments, `[block] with`), and the library's `fw block`/`unblock`/
//! `blocks` against the tries (sets, ends, hits, bad input changing
//! nothing).
//!
//! Run as root: `cargo test --release -p fw-user --test block -- --test-threads=1`.
use std::{net::IpAddr, time::Duration};

use fw_common::{BlockValue, Reason};
use fw_testkit::{
    check::{assert_icmp_error, assert_tcp_reset},
    packet::*,
    testrun::{now_ns, Fw, XDP_DROP, XDP_PASS, XDP_TX},
};
use fw_user::{
    model::{
        blocklist::DEFAULT_SET,
        config::Config,
        policy::{parse_prefix, RejectWith},
    },
    ops::block,
    watch::blocks,
};
use ipnet::IpNet;

const SEC: u64 = 1_000_000_000;
const RT: fw_user::ops::persist::Save = fw_user::ops::persist::Save::Runtime;

fn net(s: &str) -> IpNet {
    parse_prefix(s).unwrap()
}

fn ban(fw: &Fw, nets: &[&str], set: &str, until: Option<Duration>) -> block::BlockReport {
    let nets: Vec<IpNet> = nets.iter().map(|s| net(s)).collect();
    block::block(fw.maps.pins(), &nets, set, until, true, RT)
        .unwrap_or_else(|e| panic!("fw block {nets:?}: {e}"))
}

/// Hits of the entry of exactly `prefix`.
fn hits(fw: &Fw, prefix: &str) -> u64 {
    let n = net(prefix);
    fw.maps
        .block_entries(matches!(n, IpNet::V6(_)))
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == n)
        .map_or_else(|| panic!("no entry {prefix}"), |(_, v)| v.hits)
}

/// A /24 (v4) or /64 (v6) holding the peer, and the peer alone.
fn peer_nets(fam: Fam) -> (String, String) {
    match fam.peer() {
        IpAddr::V4(a) => (
            IpNet::new(a.into(), 24).unwrap().trunc().to_string(),
            format!("{a}/32"),
        ),
        IpAddr::V6(a) => (
            IpNet::new(a.into(), 64).unwrap().trunc().to_string(),
            format!("{a}/128"),
        ),
    }
}

#[test]
fn a_blocked_source_is_dropped_and_others_pass() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let syn = Packet::syn(fam, 22);
        fw.expect(
            &format!("{fam:?} before"),
            &syn.frame(),
            XDP_PASS,
            Reason::Port,
        );
        let (_, host) = peer_nets(fam);
        let r = ban(&fw, &[&host], DEFAULT_SET, None);
        assert_eq!(r.added, [net(&host)], "{}", r.render());
        fw.expect(
            &format!("{fam:?} syn from a blocked peer"),
            &Packet::tcp(fam, 41000, 22, SYN).frame(),
            XDP_DROP,
            Reason::Blocked,
        );
        fw.expect(
            &format!("{fam:?} udp from a blocked peer to a closed port"),
            &Packet::udp(fam, 41001, 9).frame(),
            XDP_DROP,
            Reason::Blocked,
        );
        fw.expect(
            &format!("{fam:?} another source"),
            &Packet::tcp(fam, 41002, 22, SYN).from(fam.router()).frame(),
            XDP_PASS,
            Reason::Port,
        );
        assert_eq!(hits(&fw, &host), 2, "{fam:?}: the entry counts its drops");
    }
}

#[test]
fn longest_prefix_wins_and_an_expired_one_counts_as_absent() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let (range, host) = peer_nets(fam);
        let syn = |sport| Packet::tcp(fam, sport, 22, SYN).frame();
        ban(&fw, &[&range], "lists", None);
        ban(&fw, &[&host], "fail2ban", Some(Duration::from_secs(600)));
        fw.expect(
            &format!("{fam:?} host in both"),
            &syn(42000),
            XDP_DROP,
            Reason::Blocked,
        );
        assert_eq!(
            (hits(&fw, &host), hits(&fw, &range)),
            (1, 0),
            "{fam:?}: the longest prefix takes the hit"
        );
        // The host's ban ran out (written with an end in the past, as the
        // clock would leave it): the range still holds the host.
        let n = net(&host);
        let v6 = matches!(n, IpNet::V6(_));
        let (_, mut v) = fw
            .maps
            .block_entries(v6)
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == n)
            .unwrap();
        v.expires_ns = now_ns() - SEC;
        v.timed_expires_ns = v.expires_ns;
        assert!(fw.maps.block_write(v6, &[(n, v)]).1.is_none());
        fw.expect(
            &format!("{fam:?} host past its end"),
            &syn(42001),
            XDP_DROP,
            Reason::Blocked,
        );
        assert_eq!(
            (hits(&fw, &host), hits(&fw, &range)),
            (1, 1),
            "{fam:?}: past the expired entry, the range takes the hit"
        );
        // The range goes: the expired host entry alone blocks nothing.
        let r = block::unblock(fw.maps.pins(), &[net(&range)], None, RT).unwrap();
        assert_eq!(r.unblocked.len(), 1, "{}", r.render());
        fw.expect(
            &format!("{fam:?} only the expired ban left"),
            &syn(42002),
            XDP_PASS,
            Reason::Port,
        );
        assert_eq!(
            hits(&fw, &host),
            1,
            "{fam:?}: an expired entry takes no hit"
        );
        // `fw blocks` does not list it; unblocking it says it was not blocked.
        assert!(blocks::list(&fw.maps, None)
            .unwrap()
            .iter()
            .all(|r| r.prefix != host));
        let r = block::unblock(fw.maps.pins(), &[n], Some("fail2ban"), RT).unwrap();
        assert_eq!(r.not_blocked, [n], "{}", r.render());
        // ... and sweeps its entry (fail2ban's unban just after the end).
        assert!(
            fw.maps
                .block_entries(v6)
                .unwrap()
                .iter()
                .all(|(k, _)| *k != n),
            "{fam:?}: the ended entry is swept"
        );
    }
}

#[test]
fn a_block_comes_before_established_flows_and_fragments() {
    let fw = Fw::seed();
    for fam in Fam::ALL {
        let sport = 43000;
        fw.expect(
            &format!("{fam:?} syn"),
            &Packet::tcp(fam, sport, 22, SYN).frame(),
            XDP_PASS,
            Reason::Port,
        );
        fw.egress(&Packet::tcp(fam, sport, 22, SYN | ACK).outbound().frame());
        let ack = Packet::tcp(fam, sport, 22, ACK).payload(10).frame();
        fw.expect(
            &format!("{fam:?} established"),
            &ack,
            XDP_PASS,
            Reason::Established,
        );
        let first = Packet::tcp(fam, sport, 22, ACK)
            .payload(60)
            .frag(Frag::First { id: 0x2001 });
        fw.expect(
            &format!("{fam:?} first fragment"),
            &first.frame(),
            XDP_PASS,
            Reason::Established,
        );
        let (_, host) = peer_nets(fam);
        ban(&fw, &[&host], DEFAULT_SET, None);
        fw.expect(
            &format!("{fam:?} established flow, blocked"),
            &ack,
            XDP_DROP,
            Reason::Blocked,
        );
        let later = Packet::tcp(fam, sport, 22, ACK)
            .payload(60)
            .frag(Frag::Later {
                id: 0x2001,
                offset: 9,
                more: false,
            });
        fw.expect(
            &format!("{fam:?} later fragment, blocked"),
            &later.frame(),
            XDP_DROP,
            Reason::Blocked,
        );
        // The flow is still tracked: unblocked, it goes on.
        block::unblock(fw.maps.pins(), &[net(&host)], None, RT).unwrap();
        fw.expect(
            &format!("{fam:?} established again"),
            &ack,
            XDP_PASS,
            Reason::Established,
        );
    }
}

#[test]
fn block_with_answers_as_it_says_and_dry_run_passes() {
    let mut cfg = Config {
        block_with: RejectWith::HostUnreachable,
        ..Config::default()
    };
    let fw = Fw::load(cfg.clone());
    for fam in Fam::ALL {
        let (_, host) = peer_nets(fam);
        ban(&fw, &[&host], DEFAULT_SET, None);
        let f = Packet::tcp(fam, 44000, 22, SYN).frame();
        let out = fw.expect(&format!("{fam:?} answered"), &f, XDP_TX, Reason::Blocked);
        assert_icmp_error(&f, &out, fam.unreach(), fam.host_unreach_code());
        // Never an answer to an ICMP error: dropped, still counted blocked.
        let err = Packet::icmp(fam, fam.unreach(), 1, [0; 4], vec![0; 28]).frame();
        fw.expect(
            &format!("{fam:?} icmp error"),
            &err,
            XDP_DROP,
            Reason::Blocked,
        );
    }
    cfg.block_with = RejectWith::TcpReset;
    let fw = Fw::load(cfg.clone());
    for fam in Fam::ALL {
        let (_, host) = peer_nets(fam);
        ban(&fw, &[&host], DEFAULT_SET, None);
        let f = Packet::tcp(fam, 44001, 22, SYN).frame();
        let out = fw.expect(&format!("{fam:?} reset"), &f, XDP_TX, Reason::Blocked);
        assert_tcp_reset(&f, &out);
    }
    cfg.block_with = RejectWith::Drop;
    cfg.dry_run = true;
    let fw = Fw::load(cfg);
    for fam in Fam::ALL {
        let (_, host) = peer_nets(fam);
        ban(&fw, &[&host], DEFAULT_SET, None);
        let f = Packet::tcp(fam, 44002, 22, SYN).frame();
        fw.expect(
            &format!("{fam:?} dry run"),
            &f,
            XDP_PASS,
            Reason::WouldReject,
        );
    }
}

#[test]
fn a_later_block_sets_a_new_end_and_sets_share_a_prefix() {
    let fw = Fw::seed();
    let n = net("198.51.100.0/24");
    let end = |fw: &Fw| -> BlockValue {
        fw.maps
            .block_entries(false)
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == n)
            .unwrap()
            .1
    };
    let t0 = now_ns();
    ban(
        &fw,
        &["198.51.100.0/24"],
        "a",
        Some(Duration::from_secs(3600)),
    );
    let v = end(&fw);
    assert!(v.expires_ns >= t0 + 3600 * SEC && v.expires_ns <= now_ns() + 3600 * SEC);
    let r = ban(
        &fw,
        &["198.51.100.0/24"],
        "a",
        Some(Duration::from_secs(60)),
    );
    assert_eq!(r.renewed, [n], "{}", r.render());
    assert!(end(&fw).expires_ns <= now_ns() + 60 * SEC, "shortened");
    let r = ban(&fw, &["198.51.100.0/24"], "b", None);
    assert_eq!(r.joined, [n], "{}", r.render());
    assert_eq!(end(&fw).expires_ns, 0, "held for good by b");
    let rows = blocks::list(&fw.maps, None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].sets, ["a", "b"]);
    assert_eq!(rows[0].expires_in_secs, None);
    // b lets go: a's timed ban is back, with its end.
    block::unblock(fw.maps.pins(), &[n], Some("b"), RT).unwrap();
    let left = blocks::list(&fw.maps, None).unwrap()[0]
        .expires_in_secs
        .unwrap();
    assert!((1..=60).contains(&left), "{left}");
    let r = ban(&fw, &["198.51.100.0/24"], "a", None);
    assert_eq!(r.renewed, [n]);
    let r = ban(&fw, &["198.51.100.0/24"], "a", None);
    assert_eq!(r.already, [n]);
    assert!(r.render().contains("nothing changed"), "{}", r.render());
    // A list per set; `--set` filters; unknown sets are errors.
    assert_eq!(blocks::list(&fw.maps, Some("a")).unwrap().len(), 1);
    let e = blocks::list(&fw.maps, Some("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no block set named `nope`") && e.contains("a, b"),
        "{e}"
    );
    // An address inside a blocked prefix is not an entry of its own.
    let r = block::unblock(fw.maps.pins(), &[net("198.51.100.7")], None, RT).unwrap();
    assert_eq!(r.covered.len(), 1, "{}", r.render());
    assert!(
        r.render().contains("inside 198.51.100.0/24 (set a)"),
        "{}",
        r.render()
    );
}

#[test]
fn bad_input_changes_nothing() {
    let fw = Fw::seed();
    ban(&fw, &["198.51.100.0/24"], "keep", None);
    let before = blocks::list(&fw.maps, None).unwrap();
    let pins = fw.maps.pins();
    let e = block::block(pins, &[net("192.0.2.9")], "bad name", None, true, RT).unwrap_err();
    assert!(e.to_string().contains("invalid set name `bad name`"), "{e}");
    let e = block::unblock(pins, &[net("198.51.100.0/24")], Some("ghost"), RT).unwrap_err();
    assert!(e.to_string().contains("no block set named `ghost`"), "{e}");
    let e = block::unblock_all(pins, "ghost", RT).unwrap_err();
    assert!(e.to_string().contains("no block set named `ghost`"), "{e}");
    for bad in [
        "198.51.100.1/24",
        "300.1.1.1",
        "2001:db8::1/32",
        "::ffff:192.0.2.1",
    ] {
        assert!(parse_prefix(bad).is_err(), "{bad}");
    }
    assert!(fw_user::model::blocklist::parse_duration("0").is_err());
    assert_eq!(blocks::list(&fw.maps, None).unwrap(), before);
}

#[test]
fn a_set_past_the_tries_size_is_refused_whole() {
    let fw = Fw::load(Config {
        block_prefixes: 16,
        ..Config::default()
    });
    let pins = fw.maps.pins();
    ban(&fw, &["192.0.2.0/28"], "keep", None);
    let list: std::collections::BTreeSet<IpNet> =
        (0..16).map(|i| net(&format!("198.51.100.{i}"))).collect();
    let e = block::replace_set(
        pins,
        "big",
        &list,
        true,
        std::path::Path::new("big.txt"),
        RT,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("room for 16 IPv4 prefixes") && e.contains("holds 1"),
        "{e}"
    );
    assert!(e.contains("nothing was changed"), "{e}");
    assert_eq!(blocks::list(&fw.maps, None).unwrap().len(), 1);
    assert!(
        blocks::list(&fw.maps, Some("big")).is_err(),
        "the set was not made"
    );
    // Single bans past the size: the kernel refuses, the plan is undone.
    let many: Vec<IpNet> = (0..16).map(|i| net(&format!("203.0.113.{i}"))).collect();
    let e = block::block(pins, &many, "big", None, true, RT)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is full"), "{e}");
    assert_eq!(blocks::list(&fw.maps, None).unwrap().len(), 1, "undone");
    // v6 has its own room.
    let v6: std::collections::BTreeSet<IpNet> =
        (0..15).map(|i| net(&format!("2001:db8::{i:x}"))).collect();
    block::replace_set(pins, "v6", &v6, true, std::path::Path::new("v6.txt"), RT).unwrap();
    assert_eq!(blocks::list(&fw.maps, Some("v6")).unwrap().len(), 15);
}

#[test]
fn replacing_a_set_keeps_what_stays_and_drops_what_goes() {
    let fw = Fw::seed();
    let pins = fw.maps.pins();
    let set =
        |v: &[&str]| -> std::collections::BTreeSet<IpNet> { v.iter().map(|s| net(s)).collect() };
    let p = std::path::Path::new("list.txt");
    let r = block::replace_set(
        pins,
        "list",
        &set(&["192.0.2.0/25", "198.51.100.0/24", "2001:db8:1::/48"]),
        true,
        p,
        RT,
    )
    .unwrap();
    assert_eq!(r.added.len(), 3);
    ban(&fw, &["198.51.100.0/24"], "manual", None);
    // Drops from the peer's /25 count on the entry.
    fw.expect(
        "v4 in the list",
        &Packet::syn(Fam::V4, 22).frame(),
        XDP_DROP,
        Reason::Blocked,
    );
    let r = block::replace_set(
        pins,
        "list",
        &set(&["192.0.2.0/25", "2001:db8:2::/48"]),
        true,
        p,
        RT,
    )
    .unwrap();
    assert_eq!(r.added, [net("2001:db8:2::/48")], "{}", r.render());
    assert_eq!(r.already, [net("192.0.2.0/25")]);
    assert_eq!(r.removed, [net("198.51.100.0/24"), net("2001:db8:1::/48")]);
    assert_eq!(
        hits(&fw, "192.0.2.0/25"),
        1,
        "an entry in both lists keeps its hits"
    );
    let rows = blocks::list(&fw.maps, None).unwrap();
    let got: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|r| (r.prefix.clone(), r.sets.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("192.0.2.0/25".to_string(), vec!["list".to_string()]),
            ("198.51.100.0/24".to_string(), vec!["manual".to_string()]),
            ("2001:db8:2::/48".to_string(), vec!["list".to_string()]),
        ]
    );
    // Emptied, the set is gone.
    let r = block::replace_set(pins, "list", &set(&[]), true, p, RT).unwrap();
    assert_eq!(r.removed.len(), 2);
    assert!(blocks::list(&fw.maps, Some("list")).is_err());
    let r = block::unblock_all(pins, "manual", RT).unwrap();
    assert_eq!(r.emptied, Some(("manual".into(), 1)));
    assert!(blocks::list(&fw.maps, None).unwrap().is_empty());
    assert!(fw.maps.block_entries(false).unwrap().is_empty());
}

// ---- namespace tests: the `fw` binary, real sockets ----

/// A second client address on the client veth (v4 and v6, no DAD wait).
const OTHER_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 3);
const OTHER_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);

fn add_other_peer(pair: &fw_testkit::Pair) {
    for a in [IpAddr::from(OTHER_V4), IpAddr::from(OTHER_V6)] {
        pair.add_client_addr(a)
            .unwrap_or_else(|e| panic!("ip addr add {a}: {e}"));
    }
}

const T: Duration = Duration::from_millis(1500);

#[test]
fn fw_block_cuts_a_peer_and_only_it_until_unblocked_or_its_time_is_up() {
    use fw_testkit::{fw_cmd, fw_ok, fw_stats, reason_packets, tcp_session, Outcome};
    fw_testkit::require_root();
    let pair = fw_testkit::Netns::pair("fwbk");
    add_other_peer(&pair);
    let _ssh = fw_testkit::spawn_tcp_listener(pair.srv(), "::".parse().unwrap(), 22).unwrap();
    let pins = fw_testkit::fw_up(&pair, &[]);
    let (srv, cli) = (pair.srv_path(), pair.cli_path());
    let srv4: IpAddr = pair.srv_v4().into();
    let srv6: IpAddr = pair.srv_v6().into();
    let (me4, me6): (IpAddr, IpAddr) = (pair.cli_v4().into(), pair.cli_v6().into());
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me4, srv4, 22, T),
        Outcome::Connected
    );
    // A session from the peer, held by this test (an ancestor of the fw
    // command): the guard refuses to cut it.
    let blocked = tcp_session(cli, srv4, 22, T, |mut s| {
        fw_testkit::echo_rounds(&mut s, 2, "before");
        let out = fw_cmd(srv, &pins, ["block", &me4.to_string()]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("refusing to block")
                && err.contains(&format!(
                    "{me4}/32 holds the peer of a connection from {me4}:"
                )),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
        assert_eq!(fw_ok(srv, &pins, ["blocks"]), "no blocked prefixes\n");
        let out = fw_ok(srv, &pins, ["block", &me4.to_string(), "--force"]);
        assert_eq!(out, format!("blocked (set default): {me4}/32\n"));
        // The session is cut at once (its next segment is dropped).
        use std::io::{Read, Write};
        let _ = s.write_all(b"after\n");
        let mut buf = [0u8; 16];
        s.read(&mut buf).map(|n| n == 0)
    })
    .expect("session");
    assert!(
        blocked.is_err(),
        "the blocked session got an answer: {blocked:?}"
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me4, srv4, 22, T),
        Outcome::TimedOut,
        "blocked, dropped silently"
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, OTHER_V4.into(), srv4, 22, T),
        Outcome::Connected,
        "another peer"
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me6, srv6, 22, T),
        Outcome::Connected,
        "its v6 address"
    );
    let stats = fw_stats(srv, &pins);
    assert!(reason_packets(&stats, "blocked") >= 2, "{stats}");
    let rows: serde_json::Value =
        serde_json::from_str(&fw_ok(srv, &pins, ["blocks", "--json"])).unwrap();
    assert_eq!(rows[0]["prefix"], format!("{me4}/32"), "{rows}");
    assert_eq!(rows[0]["sets"], serde_json::json!(["default"]));
    assert_eq!(rows[0]["expires_in_secs"], serde_json::Value::Null);
    assert!(rows[0]["hits"].as_u64().unwrap() >= 2, "{rows}");
    let status = fw_ok(srv, &pins, ["status"]);
    assert!(
        status.contains("blocklist: 1 v4 + 0 v6 of 1000000 entries per family"),
        "{status}"
    );
    assert!(status.contains("sets: default (1 v4, 0 v6)"), "{status}");
    assert_eq!(
        fw_ok(srv, &pins, ["unblock", &me4.to_string()]),
        format!("unblocked {me4}/32 (set default)\n")
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me4, srv4, 22, T),
        Outcome::Connected,
        "unblocked"
    );
    // A timed ban of the peer's v6 /64 ends in the kernel, no daemon.
    let out = fw_ok(
        srv,
        &pins,
        [
            "block",
            "2001:db8::/64",
            "--for",
            "3s",
            "--set",
            "timed",
            "--force",
        ],
    );
    assert_eq!(out, "blocked for 3s (set timed): 2001:db8::/64\n");
    let left = fw_ok(srv, &pins, ["blocks", "--set", "timed"]);
    assert!(
        left.contains("2001:db8::/64") && left.contains("timed"),
        "{left}"
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me6, srv6, 22, T),
        Outcome::TimedOut,
        "v6 blocked"
    );
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me4, srv4, 22, T),
        Outcome::Connected,
        "v4 not"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        fw_testkit::tcp_connect_from(cli, me6, srv6, 22, T),
        Outcome::Connected,
        "the ban ran out"
    );
    assert_eq!(
        fw_ok(srv, &pins, ["blocks", "--set", "timed"]),
        "no blocked prefixes\n"
    );
}

#[test]
fn cli_bad_input_is_refused_with_nothing_changed() {
    use fw_testkit::{fw_cmd, fw_ok};
    fw_testkit::require_root();
    let pair = fw_testkit::Netns::pair("fwbx");
    let pins = fw_testkit::fw_up(&pair, &[]);
    let srv = pair.srv_path();
    fw_ok(srv, &pins, ["block", "198.51.100.0/24", "--set", "keep"]);
    let before = fw_ok(srv, &pins, ["blocks", "--json"]);
    let dir = std::env::temp_dir().join(format!("fw-block-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list.txt");
    std::fs::write(&list, "# ok\n203.0.113.0/24\n203.0.113.77/24 ; host bits\n").unwrap();
    let garbage = dir.join("garbage.txt");
    std::fs::write(&garbage, "203.0.113.0/24\n\nnot an address\n").unwrap();
    let l = list.display().to_string();
    let g = garbage.display().to_string();
    for (args, needle) in [
        (
            vec!["block", "198.51.100.1/24"],
            "host bits are set; did you mean 198.51.100.0/24?",
        ),
        (
            vec!["block", "300.0.0.1"],
            "invalid source prefix `300.0.0.1`",
        ),
        (
            vec!["block", "2001:db8::1/32"],
            "did you mean 2001:db8::/32?",
        ),
        (
            vec!["block", "203.0.113.9", "--for", "0"],
            "a ban of 0 seconds",
        ),
        (
            vec!["block", "203.0.113.9", "--for", "5parsecs"],
            "unknown unit",
        ),
        (
            vec!["block", "203.0.113.9", "--set", "no/slash"],
            "invalid set name",
        ),
        (
            vec!["unblock", "198.51.100.0/24", "--set", "ghost"],
            "no block set named `ghost` (the sets are: keep)",
        ),
        (
            vec!["blocks", "--set", "ghost"],
            "no block set named `ghost`",
        ),
        (vec!["block", "--file", &l], "--file needs --set NAME"),
        (
            vec!["block", "--file", &l, "--set", "list"],
            &format!("{l}:3: invalid source prefix `203.0.113.77/24`: host bits are set"),
        ),
        (
            vec!["block", "--file", &g, "--set", "list"],
            &format!("{g}:3: `not an address`: expected one address or prefix per line"),
        ),
        (
            vec!["block", "--file", "/nonexistent/list", "--set", "list"],
            "reading the set file /nonexistent/list",
        ),
    ] {
        let out = fw_cmd(srv, &pins, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            fw_ok(srv, &pins, ["blocks", "--json"]),
            before,
            "{args:?} changed something"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The blocks of `rig` as (prefix, sets) pairs, timed ones marked.
fn block_rows(rig: &fw_testkit::Rig) -> Vec<(String, String, bool)> {
    let rows = rig.json(&["blocks", "--json"]);
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().to_string(),
                r["sets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(","),
                !r["expires_in_secs"].is_null(),
            )
        })
        .collect()
}

fn row(p: &str, sets: &str, timed: bool) -> (String, String, bool) {
    (p.to_string(), sets.to_string(), timed)
}

const SETS_CONFIG: &str = r#"# my policy
[ports]
tcp = [22, 80]
udp = [80]
[block]
with = "drop"
[[block.sets]]
name = "manual"   # by hand
prefixes = ["203.0.113.7"]
[[block.sets]]
name = "drop"
file = "drop.txt"
"#;

#[test]
fn sets_persist_across_down_and_up_and_changes_are_written_back() {
    let rig = fw_testkit::Rig::new("fwbp");
    let drop = rig.file(
        "drop.txt",
        "; a DROP list\n192.0.2.0/28 ; SBL1\n2001:db8:bad::/48\n",
    );
    let cfg = rig.file("fw.toml", SETS_CONFIG);
    let c = cfg.display().to_string();
    rig.up(&["--config", &c]);
    let loaded = vec![
        row("192.0.2.0/28", "drop", false),
        row("203.0.113.7/32", "manual", false),
        row("2001:db8:bad::/48", "drop", false),
    ];
    assert_eq!(block_rows(&rig), loaded);
    // Written back: a ban without end into the config's list or the set
    // file, a timed ban nowhere, an unblock out of it.
    let out = rig.ok(&["block", "198.51.100.9", "--set", "manual"]);
    assert!(out.contains(&format!("written to {c}")), "{out}");
    let out = rig.ok(&["block", "198.51.100.10", "--set", "drop"]);
    assert!(
        out.contains(&format!("written to {}", drop.display())),
        "{out}"
    );
    let out = rig.ok(&["block", "198.51.100.11", "--for", "1h", "--set", "fail2ban"]);
    assert!(!out.contains("written"), "{out}");
    let out = rig.ok(&["unblock", "203.0.113.7"]);
    assert!(out.contains(&format!("written to {c}")), "{out}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("# my policy") && text.contains("name = \"manual\"   # by hand"),
        "{text}"
    );
    assert!(
        text.contains("198.51.100.9")
            && !text.contains("203.0.113.7")
            && !text.contains("fail2ban"),
        "{text}"
    );
    let list = std::fs::read_to_string(&drop).unwrap();
    assert_eq!(
        list,
        "; a DROP list\n192.0.2.0/28 ; SBL1\n2001:db8:bad::/48\n198.51.100.10/32\n"
    );
    // --runtime changes the kernel only.
    rig.ok(&["block", "198.51.100.12", "--set", "manual", "--runtime"]);
    assert!(!std::fs::read_to_string(&cfg)
        .unwrap()
        .contains("198.51.100.12"));
    let status = rig.status_text();
    assert!(
        status.contains("block set manual holds 1 prefix(es) the file does not have"),
        "{status}"
    );
    rig.ok(&["unblock", "198.51.100.12", "--runtime"]);
    assert!(rig.status_text().contains("the running policy matches it"));
    let before = block_rows(&rig);
    assert_eq!(
        before,
        vec![
            row("192.0.2.0/28", "drop", false),
            row("198.51.100.9/32", "manual", false),
            row("198.51.100.10/32", "drop", false),
            row("198.51.100.11/32", "fail2ban", true),
            row("2001:db8:bad::/48", "drop", false),
        ]
    );
    // `fw save` prints the sets as the config names them.
    let saved = rig.ok(&["save"]);
    assert!(
        saved.contains("name = \"drop\"\nfile = \"drop.txt\""),
        "{saved}"
    );
    assert!(saved.contains("\"198.51.100.9/32\""), "{saved}");
    // Down and up again: the sets are back, the timed ban is not (fail2ban
    // bans again from its own database).
    rig.ok(&["down"]);
    rig.up(&["--config", &c]);
    let mut after = before.clone();
    after.retain(|r| !r.2);
    assert_eq!(block_rows(&rig), after);
    // `fw check` judges the sets as an apply would.
    let out = rig.ok(&["check", &c]);
    assert!(out.contains("no change"), "{out}");
}

#[test]
fn apply_replaces_the_sets_all_or_nothing() {
    let rig = fw_testkit::Rig::new("fwba");
    rig.file("drop.txt", "192.0.2.0/28\n2001:db8:bad::/48\n");
    let cfg = rig.file("fw.toml", SETS_CONFIG);
    let c = cfg.display().to_string();
    rig.up(&["--config", &c]);
    rig.ok(&["block", "198.51.100.11", "--for", "1h", "--set", "fail2ban"]);
    let before = block_rows(&rig);
    // A bad line in a set file: refused naming the file and line, nothing changed.
    let bad_list = rig.file("bad.txt", "198.51.100.0/24\n\n198.51.100.300\n");
    let bad = rig.file(
        "bad.toml",
        &SETS_CONFIG.replace("drop.txt", &bad_list.display().to_string()),
    );
    let b = bad.display().to_string();
    for cmd in ["apply", "check"] {
        let err = rig.refused(&[cmd, &b], 1, &format!("{}:3: ", bad_list.display()));
        assert!(err.contains("198.51.100.300"), "{err}");
        assert_eq!(block_rows(&rig), before, "{cmd}");
    }
    // A set past the tries' room: refused whole.
    let big: String = (0..40u32)
        .map(|i| format!("10.{}.{}.0/24\n", i / 200, i % 200))
        .collect();
    rig.file("big.txt", &big);
    let small = rig.file(
        "small.toml",
        &(SETS_CONFIG.replace("drop.txt", "big.txt") + "[capacity]\nblock_prefixes = 16\n"),
    );
    rig.ok(&["down"]);
    rig.refused(
        &["up", rig.veth(), "--config", &small.display().to_string()],
        1,
        "room for 16",
    );
    rig.up(&["--config", &c]);
    rig.ok(&["block", "198.51.100.11", "--for", "1h", "--set", "fail2ban"]);
    let before = block_rows(&rig);
    // A good file replaces every set at once; timed bans stay.
    let next = rig.file(
        "next.toml",
        "[ports]\ntcp = [22, 80]\nudp = [80]\n[[block.sets]]\nname = \"other\"\nprefixes = [\"198.51.100.0/24\", \"2001:db8:1::/48\"]\n",
    );
    let out = rig.ok(&["apply", &next.display().to_string()]);
    assert!(out.contains("block set other"), "{out}");
    assert_ne!(block_rows(&rig), before);
    assert_eq!(
        block_rows(&rig),
        vec![
            row("198.51.100.0/24", "other", false),
            row("198.51.100.11/32", "fail2ban", true),
            row("2001:db8:1::/48", "other", false),
        ]
    );
    // And back.
    rig.ok(&["apply", &c]);
    assert_eq!(block_rows(&rig), before);
}
