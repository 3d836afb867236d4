//! Namespace rig tests: need root (`sudo cargo xtask test`).

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv6Addr},
    path::Path,
    time::{Duration, Instant},
};

use fw_testkit::{
    in_netns, ns_name, require_root, spawn_tcp_listener, spawn_udp_echo, sweep, tcp_connect,
    tcp_session, udp_probe, Netns, Outcome, Role, Server, NETNS_RUN_DIR,
};

const T: Duration = Duration::from_secs(2);
const ANY: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

fn ns_exists(name: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(name).exists()
}

/// Waits (bounded) until `server` has counted at least `n` hits.
fn wait_hits(server: &Server, n: u64) -> u64 {
    let deadline = Instant::now() + T;
    while server.hits() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.hits()
}

#[test]
fn pair_connects_v4_and_v6_and_cleans_up() {
    require_root();
    let pair = Netns::pair("fwtk");
    let names = [pair.srv_ns().to_owned(), pair.cli_ns().to_owned()];
    assert!(names.iter().all(|n| ns_exists(n)), "{names:?} not created");
    assert_eq!(pair.srv_path(), Path::new(NETNS_RUN_DIR).join(&names[0]));
    assert!(pair.srv_veth().len() <= 15 && pair.cli_veth().len() <= 15);

    // The veth lives only in the namespaces, never in the root namespace.
    let root_links = std::fs::read_to_string("/proc/net/dev").expect("read /proc/net/dev");
    assert!(!root_links.contains(&format!("{}:", pair.srv_veth())));
    let srv_links = in_netns(pair.srv_path(), || {
        std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev")
    })
    .expect("enter server ns");
    assert!(
        srv_links.contains(&format!("{}:", pair.srv_veth())),
        "{srv_links}"
    );

    // Both ways, both families.
    let srv_l = spawn_tcp_listener(pair.srv(), ANY, 7).expect("listener in srv");
    let cli_l = spawn_tcp_listener(pair.cli(), ANY, 7).expect("listener in cli");
    for addr in [IpAddr::from(pair.srv_v4()), pair.srv_v6().into()] {
        assert_eq!(
            tcp_connect(pair.cli(), addr, 7, T),
            Outcome::Connected,
            "{addr}"
        );
    }
    for addr in [IpAddr::from(pair.cli_v4()), pair.cli_v6().into()] {
        assert_eq!(
            tcp_connect(pair.srv(), addr, 7, T),
            Outcome::Connected,
            "{addr}"
        );
    }
    assert_eq!(wait_hits(&srv_l, 2), 2);
    assert_eq!(wait_hits(&cli_l, 2), 2);
    drop((srv_l, cli_l));

    let gro = pair
        .cli()
        .command("ethtool")
        .args(["-k", pair.cli_veth()])
        .output()
        .expect("run ethtool");
    let gro = String::from_utf8_lossy(&gro.stdout);
    assert!(gro.contains("generic-receive-offload: on"), "{gro}");

    // The client veth has a native XDP_PASS program, until released.
    let xdp_attached = |pair: &fw_testkit::Pair| {
        let out = std::process::Command::new("ip")
            .args(["-n", pair.cli_ns(), "link", "show", "dev", pair.cli_veth()])
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    let mut pair = pair;
    assert!(pair.has_client_xdp() && xdp_attached(&pair));
    pair.release_client_xdp();
    assert!(!pair.has_client_xdp() && !xdp_attached(&pair));

    // A process left running in a namespace is killed on drop.
    let mut sleeper = pair
        .srv()
        .command("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep in the server ns");
    drop(pair);
    for name in &names {
        assert!(!ns_exists(name), "{name} still exists after drop");
    }
    let status = sleeper.wait().expect("wait for sleep");
    assert!(!status.success(), "sleep was not killed: {status}");
}

#[test]
fn sockets_see_accept_refuse_and_echo() {
    require_root();
    let pair = Netns::pair("fwtk");
    let tcp = spawn_tcp_listener(pair.srv(), ANY, 22).expect("tcp listener");
    let udp = spawn_udp_echo(pair.srv(), ANY, 80).expect("udp echo");

    for addr in [IpAddr::from(pair.srv_v4()), pair.srv_v6().into()] {
        assert_eq!(
            tcp_connect(pair.cli(), addr, 22, T),
            Outcome::Connected,
            "{addr}"
        );
        assert_eq!(
            tcp_connect(pair.cli(), addr, 23, T),
            Outcome::Refused,
            "{addr}"
        );
        assert_eq!(
            udp_probe(pair.cli(), addr, 80, T),
            Outcome::Replied,
            "{addr}"
        );
        // No socket on UDP 53: the kernel answers ICMP port unreachable.
        assert_eq!(
            udp_probe(pair.cli(), addr, 53, T),
            Outcome::Refused,
            "{addr}"
        );
    }
    assert_eq!(wait_hits(&tcp, 2), 2);
    assert_eq!(wait_hits(&udp, 2), 2);

    // An established connection stays open and echoes.
    let echoed = tcp_session(pair.cli(), pair.srv_v4().into(), 22, T, |mut s| {
        s.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("read echo");
        buf
    })
    .expect("connect");
    assert_eq!(&echoed, b"ping");

    // Nothing answers from an address nobody has: the probe times out, bounded.
    let start = Instant::now();
    let silent = tcp_connect(pair.srv(), "192.0.2.99".parse().expect("ip"), 22, T);
    assert!(
        matches!(silent, Outcome::TimedOut | Outcome::Unreachable(_)),
        "{silent}"
    );
    assert!(start.elapsed() < T + Duration::from_secs(1));

    drop(tcp);
    assert_eq!(
        tcp_connect(pair.cli(), pair.srv_v4().into(), 22, T),
        Outcome::Refused,
        "listener still up after drop"
    );
}

#[test]
fn cleanup_runs_on_panic() {
    require_root();
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = Netns::pair("fwtk");
        names.push(pair.srv_ns().to_owned());
        names.push(pair.cli_ns().to_owned());
        panic!("boom");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 2);
    for name in &names {
        assert!(!ns_exists(name), "{name} survived a panic");
    }
}

#[test]
fn sweep_removes_only_dead_owners() {
    require_root();
    // 4194305 is above the largest pid_max: that owner is surely dead.
    let dead = ns_name("fwtksw", Role::Server, 4_194_305, 0);
    let live = ns_name("fwtksw", Role::Client, std::process::id(), 999);
    let dead_ns = Netns::create(&dead).expect("create dead-owner ns");
    let live_ns = Netns::create(&live).expect("create live-owner ns");
    let removed = sweep("fwtksw").expect("sweep");
    assert_eq!(removed, vec![dead.clone()]);
    assert!(!ns_exists(&dead));
    assert!(ns_exists(&live));
    drop(dead_ns); // already gone: dropping is quiet and harmless
    drop(live_ns);
    assert!(!ns_exists(&live));
}

#[test]
fn probes_tell_icmp_errors_from_drops() {
    require_root();
    let pair = Netns::pair("fwtk");
    let _tcp = spawn_tcp_listener(pair.srv(), ANY, 8080).expect("tcp listener");
    let _udp = spawn_udp_echo(pair.srv(), ANY, 53).expect("udp echo");
    let _drop = spawn_udp_echo(pair.srv(), ANY, 5353).expect("udp echo");
    // What fw's reject will look like: the reference policy's ICMP errors.
    let rules = "add table inet t; \
        add chain inet t in { type filter hook input priority 0; }; \
        add rule inet t in tcp dport 8080 reject with icmpx type host-unreachable; \
        add rule inet t in udp dport 53 reject with icmpx type host-unreachable; \
        add rule inet t in udp dport 5353 drop";
    let out = pair
        .srv()
        .command("nft")
        .arg(rules)
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unreach = Outcome::Unreachable(libc::EHOSTUNREACH);
    for addr in [IpAddr::from(pair.srv_v4()), pair.srv_v6().into()] {
        assert_eq!(tcp_connect(pair.cli(), addr, 8080, T), unreach, "{addr}");
        assert_eq!(udp_probe(pair.cli(), addr, 53, T), unreach, "{addr}");
        let short = Duration::from_millis(300);
        assert_eq!(udp_probe(pair.cli(), addr, 5353, short), Outcome::TimedOut);
    }
}
