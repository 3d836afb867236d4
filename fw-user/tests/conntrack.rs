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
