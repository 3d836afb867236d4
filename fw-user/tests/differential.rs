//! The same crafted packets against the seed iptables/ip6tables ruleset and
//! against fw, each on its own namespace rig: what the peer sees must match,
//! except for differences DESIGN.md names.
use std::{net::IpAddr, time::Duration};

use fw_testkit::{
    in_netns, require_root, seed, spawn_tcp_listener, spawn_udp_echo, Pair, Rig, Server,
};
use fw_testkit::{
    probes::{self, Ends, Kind},
    raw::{self, Answer, RawPort},
};

const CASES: &[Kind] = &[
    Kind::Syn(22),
    Kind::Syn(80),
    Kind::Syn(8080),
    Kind::Syn(443),
    Kind::Ack(80),
    Kind::Ack(8080),
    Kind::Rst(8080),
    Kind::Udp(80),
    Kind::Udp(53),
    Kind::Udp(9999),
    Kind::Echo,
    Kind::SynWithOptions(80),
    Kind::SynWithOptions(8080),
    Kind::FragmentedUdp(80),
    Kind::FragmentedUdp(53),
    Kind::IcmpErrorUnknown,
    Kind::L2BroadcastUdp(53),
    Kind::LoopbackSource(53),
];

/// A rig with the listeners and the seed policy: fw's (`fw`) or the
/// iptables/ip6tables ruleset's.
fn rig(fw: bool) -> (Rig, Vec<Server>) {
    let rig = Rig::new("fwdf");
    let pair = &rig.pair;
    let any6: IpAddr = "::".parse().expect("addr");
    let servers = vec![
        spawn_tcp_listener(pair.srv_path(), any6, 22).expect("listener 22"),
        spawn_tcp_listener(pair.srv_path(), any6, 80).expect("listener 80"),
        spawn_tcp_listener(pair.srv_path(), any6, 8080).expect("listener 8080"),
        spawn_udp_echo(pair.srv_path(), any6, 80).expect("udp 80"),
        spawn_udp_echo(pair.srv_path(), any6, 53).expect("udp 53"),
    ];
    if fw {
        rig.up(&[]);
    } else {
        // The kernel rate-limits ICMP errors per peer; fw's bucket is global
        // (a named difference): take the per-peer limit out of the comparison.
        pair.srv()
            .sh(&["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
        pair.srv()
            .sh(&["sysctl", "-qw", "net.ipv6.icmp.ratelimit=0"]);
        seed::apply_iptables(pair.srv()).expect("seed iptables ruleset");
    }
    (rig, servers)
}

/// Sends every case from the client; returns what came back for each.
fn run(pair: &Pair) -> Vec<(String, Answer)> {
    let srv_mac = in_netns(pair.srv_path(), {
        let v = pair.srv_veth().to_string();
        move || raw::mac_of(&v)
    })
    .expect("setns")
    .expect("server mac");
    let cli_veth = pair.cli_veth().to_string();
    let fams: [(IpAddr, IpAddr); 2] = [
        (pair.cli_v4().into(), pair.srv_v4().into()),
        (pair.cli_v6().into(), pair.srv_v6().into()),
    ];
    in_netns(pair.cli_path(), move || {
        let port = RawPort::open(&cli_veth).expect("raw socket on the client veth");
        let mut out = Vec::new();
        for (fi, (cli, srv)) in fams.iter().enumerate() {
            let ends = Ends {
                cli_mac: port.mac,
                srv_mac,
                cli: *cli,
                srv: *srv,
            };
            for (i, kind) in CASES.iter().enumerate() {
                let sport = 40000 + (fi * 100 + i) as u16;
                let (frames, probe) = probes::frames(&ends, *kind, sport);
                port.drain();
                for f in &frames {
                    port.send(f).expect("send");
                }
                let seen = port.collect(Duration::from_millis(300));
                out.push((
                    probes::describe(*kind, srv.is_ipv6()),
                    raw::classify(&seen, &probe),
                ));
            }
        }
        out
    })
    .expect("setns")
}

/// The two runs side by side: the report, and how many cases differ.
fn compare(reference: &[(String, Answer)], fw: &[(String, Answer)]) -> (String, usize) {
    let mut report = String::new();
    let mut diffs = 0;
    for ((case, want), (_, got)) in reference.iter().zip(fw) {
        let mark = if want == got {
            "  "
        } else {
            diffs += 1;
            "!!"
        };
        report.push_str(&format!(
            "{mark} {case:<32} iptables: {want:<14?} fw: {got:?}\n"
        ));
    }
    println!("{report}");
    (report, diffs)
}

fn answer(run: &[(String, Answer)], case: &str) -> Option<Answer> {
    run.iter().find(|(n, _)| n == case).map(|(_, a)| a.clone())
}

#[test]
fn seed_policy_matches_iptables() {
    require_root();
    let reference = {
        let (rig, _s) = rig(false);
        run(&rig.pair)
    };
    let fw = {
        let (rig, _s) = rig(true);
        let r = run(&rig.pair);
        rig.ok(&["down"]);
        r
    };
    let (report, diffs) = compare(&reference, &fw);
    // Sanity: the reference must show the seed's shape, or the rig is broken.
    let get = |c: &str| answer(&reference, c);
    assert_eq!(
        get("v4 Syn(22)"),
        Some(Answer::SynAck),
        "reference rig broken:\n{report}"
    );
    assert_eq!(
        get("v4 Syn(8080)"),
        Some(Answer::Icmp(3, 1)),
        "reference rig broken:\n{report}"
    );
    assert_eq!(
        get("v6 Syn(8080)"),
        Some(Answer::Icmp(1, 3)),
        "reference rig broken:\n{report}"
    );
    assert_eq!(
        diffs, 0,
        "fw and the seed iptables ruleset disagree:\n{report}"
    );
}

/// `fw allow icmp echo` against the seed ruleset with its twin, an
/// echo-request ACCEPT before the REJECT (v4 and v6): every case must
/// still agree, the pings now answered.
#[test]
fn echo_allowed_matches_iptables_with_an_echo_rule() {
    require_root();
    let reference = {
        let (rig, _s) = rig(false);
        let srv = rig.pair.srv();
        srv.sh(&[
            "iptables",
            "-I",
            "INPUT",
            "3",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-request",
            "-j",
            "ACCEPT",
        ]);
        srv.sh(&[
            "ip6tables",
            "-I",
            "INPUT",
            "3",
            "-p",
            "ipv6-icmp",
            "--icmpv6-type",
            "echo-request",
            "-j",
            "ACCEPT",
        ]);
        run(&rig.pair)
    };
    let fw = {
        let (rig, _s) = rig(true);
        rig.ok(&["allow", "icmp", "echo", "--runtime"]);
        let r = run(&rig.pair);
        rig.ok(&["down"]);
        r
    };
    let (report, diffs) = compare(&reference, &fw);
    for case in ["v4 Echo", "v6 Echo"] {
        assert_eq!(
            answer(&reference, case),
            Some(Answer::EchoReply),
            "reference rig broken: {case}:\n{report}"
        );
    }
    assert_eq!(
        answer(&reference, "v4 Syn(8080)"),
        Some(Answer::Icmp(3, 1)),
        "reference rig broken:\n{report}"
    );
    assert_eq!(
        diffs, 0,
        "fw allow icmp echo and the ruleset with an echo rule disagree:\n{report}"
    );
}
