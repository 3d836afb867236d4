//! The foundation end to end: `fw up` on a veth filters real traffic with the
//! seed policy, `fw status` says where and how, and `fw down` leaves nothing
//! behind (no XDP or tcx program on the interface, no pins).
use std::{net::IpAddr, time::Duration};

use aya::programs::{tc::TcAttachType, SchedClassifier};

use fw_testkit::{
    fw_cmd, require_root, spawn_tcp_listener, spawn_udp_echo, tcp_connect, udp_probe, Netns,
    Outcome, PinDir,
};

const T: Duration = Duration::from_secs(2);

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `ip link` says is attached to `dev` in `ns` (XDP).
fn xdp_shown(ns: &Netns, dev: &str) -> String {
    let link = ns
        .command("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&link.stdout).into_owned()
}

/// Program ids on `dev`'s tcx egress hook (Debian's bpftool predates tcx).
fn tcx_egress(pair: &fw_testkit::Pair) -> Vec<u32> {
    let dev = pair.srv_veth().to_string();
    fw_testkit::in_netns(pair.srv_path(), move || {
        SchedClassifier::query_tcx(&dev, TcAttachType::Egress).expect("query tcx")
    })
    .expect("setns")
    .1
    .iter()
    .map(|p| p.id())
    .collect()
}

#[test]
fn up_filters_real_traffic_and_down_leaves_nothing() {
    require_root();
    let pair = Netns::pair("fwlc");
    let any6: IpAddr = "::".parse().expect("addr");
    let _l: Vec<_> = [22, 80, 8080]
        .iter()
        .map(|&p| spawn_tcp_listener(pair.srv_path(), any6, p).expect("listener"))
        .chain(
            [80, 53]
                .iter()
                .map(|&p| spawn_udp_echo(pair.srv_path(), any6, p).expect("udp")),
        )
        .collect();
    let pins = PinDir::new();
    ok(
        &fw_cmd(pair.srv_path(), &pins, ["up", pair.srv_veth()]),
        "fw up",
    );

    let st: serde_json::Value = serde_json::from_str(&ok(
        &fw_cmd(pair.srv_path(), &pins, ["status", "--json"]),
        "fw status",
    ))
    .expect("status JSON");
    assert_eq!(st["loaded"], true, "{st}");
    assert_eq!(st["interfaces"][0]["name"], pair.srv_veth(), "{st}");
    assert_eq!(st["interfaces"][0]["mode"], "native", "{st}");
    let prog_id = st["ingress_prog_id"].as_u64().expect("program id");
    let shown = xdp_shown(pair.srv(), pair.srv_veth());
    assert!(
        shown.contains(&format!("id {prog_id}")),
        "XDP program {prog_id} on the veth:\n{shown}"
    );
    let egress_id = st["egress_prog_id"].as_u64().expect("egress id") as u32;
    assert_eq!(
        tcx_egress(&pair),
        vec![egress_id],
        "fw_egress on tcx egress"
    );

    for srv in [IpAddr::from(pair.srv_v4()), IpAddr::from(pair.srv_v6())] {
        for port in [22, 80] {
            assert_eq!(
                tcp_connect(pair.cli_path(), srv, port, T),
                Outcome::Connected,
                "tcp {srv}:{port}"
            );
        }
        let blocked = tcp_connect(pair.cli_path(), srv, 8080, T);
        assert!(
            blocked.is_host_unreachable(),
            "tcp {srv}:8080 must be rejected, got {blocked}"
        );
        assert_eq!(
            udp_probe(pair.cli_path(), srv, 80, T),
            Outcome::Replied,
            "udp {srv}:80"
        );
        let blocked = udp_probe(pair.cli_path(), srv, 53, T);
        assert!(
            blocked.is_host_unreachable(),
            "udp {srv}:53 must be rejected, got {blocked}"
        );
    }

    let stats: serde_json::Value = serde_json::from_str(&ok(
        &fw_cmd(pair.srv_path(), &pins, ["stats", "--json"]),
        "fw stats",
    ))
    .expect("stats JSON");
    let n = |r: &str| stats["reasons"][r]["packets"].as_u64().unwrap_or(0);
    assert!(n("port") >= 6, "new flows on open ports counted: {stats}");
    assert!(n("reject") >= 4, "rejects counted: {stats}");

    let down = ok(&fw_cmd(pair.srv_path(), &pins, ["down"]), "fw down");
    assert!(down.contains("unloaded"), "{down}");
    let shown = xdp_shown(pair.srv(), pair.srv_veth());
    assert!(!shown.contains("prog/xdp"), "no XDP left:\n{shown}");
    assert!(tcx_egress(&pair).is_empty(), "no tcx program left");
    assert!(
        !pins.path().exists(),
        "pin dir {} removed",
        pins.path().display()
    );
    // With fw gone the closed port answers again.
    assert_eq!(
        tcp_connect(pair.cli_path(), pair.srv_v4().into(), 8080, T),
        Outcome::Connected
    );
}

#[test]
fn loopback_and_unknown_interfaces_are_refused_without_state() {
    require_root();
    let pair = Netns::pair("fwlc");
    let pins = PinDir::new();
    for (iface, needle) in [("lo", "loopback"), ("nosuch0", "does not exist")] {
        let out = fw_cmd(pair.srv_path(), &pins, ["up", iface]);
        assert!(!out.status.success(), "fw up {iface} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "fw up {iface}: {err}");
        assert!(
            !pins.path().join("maps").exists(),
            "no state after fw up {iface}"
        );
    }
}
