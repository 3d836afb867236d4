//! Watching fw on real traffic from a peer namespace: exact counter deltas in
//! `fw stats --json` and in the exporter's /metrics, the rejected flows in
//! `fw log --json`, the `fw top` rows (ratatui TestBackend), and
//! `fw up --foreground` (kernel log message, detach on SIGTERM).
//!
//! The client sends crafted IPv4 packets through a raw socket, each with its
//! own source port, so every packet meets fw exactly once as a new flow. To
//! make the counts exact, the rig has no background chatter: static ARP
//! entries on both sides and IPv6 off on the client veth.
//!
//! Run as root: `cargo test --release -p fw-user --test watch -- --test-threads=1`.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use fw_testkit::{
    command, fw_bin, fw_cmd, in_netns,
    packet::{Fam, Packet, Tcp, L4, SYN},
    reason_packets, require_root, run_ok, Netns, Pair, PinDir, Rig,
};
use fw_user::{
    kernel::{
        maps::{CtTable, FwMaps},
        pins,
    },
    watch::{
        events::EventReader,
        stats::Stats,
        top::{view, Feed, TopModel},
    },
};
use ratatui::{backend::TestBackend, Terminal};

const PREFIX: &str = "fwwatch";
/// Packets of each kind.
const N: u64 = 5;
/// Frame sizes on the wire (Ethernet + IPv4 + L4 + payload).
const SYN_LEN: u64 = 14 + 20 + 20;
const UDP_LEN: u64 = 14 + 20 + 8 + 4;
const ICMP_LEN: u64 = 14 + 20 + 8 + 8;
const EXPORTER: &str = "127.0.0.1:9788";

/// A namespace pair with fw up on the server veth and nothing else talking.
fn rig() -> Rig {
    let rig = Rig::new(PREFIX);
    quiet(&rig.pair);
    rig.up(&[]);
    rig
}

/// `fw ARGS` in the server namespace, in the background.
fn spawn_fw(rig: &Rig, args: &[&str]) -> Bg {
    Bg::spawn(rig.command(args))
}

/// `fw exporter` on its default address, serving.
fn exporter(rig: &Rig) -> Bg {
    let bg = spawn_fw(rig, &["exporter"]);
    bg.wait_for(
        &format!("serving http://{EXPORTER}/metrics"),
        Duration::from_secs(10),
    );
    bg
}

fn stats(rig: &Rig) -> serde_json::Value {
    rig.json(&["stats", "--json"])
}

/// Sends N packets of each kind from the client and waits until fw
/// counted them all (and a little longer, so a stray extra would show).
fn send_traffic(rig: &Rig, before: &serde_json::Value) {
    send_raw(rig.pair.cli_path(), &traffic());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = stats(rig);
        let d = |r| reason_packets(&now, r) - reason_packets(before, r);
        if d("port") >= 2 * N && d("reject") >= 3 * N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fw did not count the traffic: {now}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(300));
}

/// Static neighbours (no ARP) and no IPv6 (no NDP, MLD, router
/// solicitations) between the two veth ends.
fn quiet(pair: &Pair) {
    let srv_mac = mac(pair.srv(), pair.srv_veth());
    let cli_mac = mac(pair.cli(), pair.cli_veth());
    for (ns, addr, lladdr, dev) in [
        (pair.cli_ns(), pair.srv_v4(), &srv_mac, pair.cli_veth()),
        (pair.srv_ns(), pair.cli_v4(), &cli_mac, pair.srv_veth()),
    ] {
        let a = addr.to_string();
        run_ok(command("ip").args([
            "-n",
            ns,
            "neigh",
            "replace",
            &a,
            "lladdr",
            lladdr,
            "dev",
            dev,
            "nud",
            "permanent",
        ]));
    }
    let key = format!("net.ipv6.conf.{}.disable_ipv6=1", pair.cli_veth());
    run_ok(pair.cli().command("sysctl").args(["-q", "-w", &key]));
}

fn mac(ns: &Netns, dev: &str) -> String {
    let out = run_ok(command("ip").args(["-n", ns.name(), "-o", "link", "show", "dev", dev]));
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {dev} in {out}"))
        .to_string()
}

/// One kind of packet the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Syn(u16),
    Udp(u16),
    Echo,
}

/// N of each: SYN to 22 (open), SYN to 8080, UDP to 80 (open), UDP to 53,
/// ICMP echo; every packet with its own source port / echo id.
fn traffic() -> Vec<(Kind, u16, Vec<u8>)> {
    let mut v = Vec::new();
    for (k, kind) in [
        Kind::Syn(22),
        Kind::Syn(8080),
        Kind::Udp(80),
        Kind::Udp(53),
        Kind::Echo,
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..N as u16 {
            let id = 40000 + 1000 * k as u16 + i;
            v.push((kind, id, packet(kind, id)));
        }
    }
    v
}

/// One IPv4 packet from the client to the server; `id` is its source port
/// (echo id).
fn packet(kind: Kind, id: u16) -> Vec<u8> {
    let l4 = match kind {
        Kind::Syn(port) => L4::Tcp(Tcp {
            sport: id,
            dport: port,
            seq: 1,
            flags: SYN,
            ..Tcp::default()
        }),
        Kind::Udp(port) => L4::udp(id, port, b"fw!\n".to_vec()),
        Kind::Echo => {
            let [a, b] = id.to_be_bytes();
            L4::icmp(8, 0, [a, b, 0, 1], b"fw-watch".to_vec())
        }
    };
    let mut p = Packet::to_host(Fam::V4, l4);
    p.ip_id = 0;
    p.ip()
}

/// Sends IPv4 packets (headers included) from namespace `ns` through a raw socket.
fn send_raw(ns: &Path, packets: &[(Kind, u16, Vec<u8>)]) {
    let packets: Vec<Vec<u8>> = packets.iter().map(|p| p.2.clone()).collect();
    in_netns(ns, move || {
        // SAFETY: plain socket calls; the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        for p in &packets {
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([p[16], p[17], p[18], p[19]]),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: valid buffer and sockaddr of the given sizes.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            assert_eq!(
                rc,
                p.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    })
    .expect("enter the client namespace");
}

fn bytes(s: &serde_json::Value, reason: &str) -> u64 {
    s["reasons"][reason]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no reason {reason} in {s}"))
}

fn port_hits(s: &serde_json::Value, proto: &str, port: u64) -> u64 {
    s["ports"]
        .as_array()
        .expect("ports is a list")
        .iter()
        .find(|p| p["proto"] == proto && p["port"] == port)
        .and_then(|p| p["packets"].as_u64())
        .unwrap_or_else(|| panic!("no {proto}/{port} in {s}"))
}

/// What the traffic must add per reason: (packets, bytes).
fn expected_reasons() -> BTreeMap<&'static str, (u64, u64)> {
    let mut m: BTreeMap<&'static str, (u64, u64)> = fw_common::Reason::ALL
        .iter()
        .map(|r| (r.name(), (0, 0)))
        .collect();
    m.insert("port", (2 * N, N * (SYN_LEN + UDP_LEN)));
    m.insert("reject", (3 * N, N * (SYN_LEN + UDP_LEN + ICMP_LEN)));
    m
}

/// A background process with its output collected line by line.
struct Bg {
    child: Child,
    lines: Arc<Mutex<Vec<(bool, String)>>>,
    news: mpsc::Receiver<()>,
}

impl Bg {
    fn spawn(mut cmd: Command) -> Bg {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, news) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for (is_err, pipe) in [(false, out), (true, err)] {
            let (lines, tx) = (Arc::clone(&lines), tx.clone());
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push((is_err, line));
                    let _ = tx.send(());
                }
            });
        }
        Bg { child, lines, news }
    }

    fn stdout(&self) -> Vec<String> {
        let l = self.lines.lock().expect("lines");
        l.iter()
            .filter(|(e, _)| !e)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Its stdout lines, each parsed as JSON.
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn all(&self) -> String {
        let l = self.lines.lock().expect("lines");
        l.iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for a line (stdout or stderr) containing `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .any(|(_, s)| s.contains(needle))
            {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?} within {timeout:?}; output:\n{}",
                self.all()
            );
            let _ = self.news.recv_timeout(left.min(Duration::from_millis(100)));
        }
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Let the readers take the last lines.
                thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}:\n{}",
                self.all()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        // nsenter execs fw (no --fork): the child is fw itself.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every metric family the exporter serves (README "Metrics").
const FAMILIES: [&str; 13] = [
    "fw_packets_total",
    "fw_bytes_total",
    "fw_port_new_flows_total",
    "fw_conntrack_entries",
    "fw_conntrack_capacity",
    "fw_conntrack_evictions_total",
    "fw_conntrack_unconfirmed_entries",
    "fw_conntrack_unconfirmed_capacity",
    "fw_conntrack_unconfirmed_evictions_total",
    "fw_conntrack_promotions_total",
    "fw_interface_attached",
    "fw_build_info",
    "fw_scrape_duration_seconds",
];

/// One scrape as Prometheus reads it.
struct Scrape {
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// The value of the series `name{labels}` (exactly these labels).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| {
                let got: BTreeMap<&str, &str> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                got == want
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                ref v => panic!("{name}{labels:?} is neither counter nor gauge: {v:?}"),
            })
            .collect();
        match found[..] {
            [v] => v,
            _ => panic!(
                "{} series {name}{labels:?} in {:?}",
                found.len(),
                self.samples
            ),
        }
    }

    /// An integer-valued series (counters, entry counts).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self.value(name, labels);
        assert!(v >= 0.0 && v.fract() == 0.0, "{name}{labels:?} = {v}");
        v as u64
    }

    /// The series of family `name`.
    fn series(&self, name: &str) -> Vec<&prometheus_parse::Sample> {
        self.samples.iter().filter(|s| s.metric == name).collect()
    }
}

/// GET /metrics from inside the server namespace, plain HTTP/1.0, parsed
/// with a Prometheus text-format parser. Asserts what any scrape must
/// satisfy: HTTP 200 with the text format's content type, every line a
/// sample the parser read, every sample of a family with HELP and TYPE
/// (counter or gauge), and exactly the documented families.
fn scrape(pair: &Pair) -> Scrape {
    let text = in_netns(pair.srv_path(), || {
        let addr: SocketAddr = EXPORTER.parse().expect("addr");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("send");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        buf
    })
    .expect("enter the server namespace");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("parse /metrics");
    // The parser skips what it cannot read: every sample line must be there.
    let lines = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(parsed.samples.len(), lines, "unparsed lines in\n{body}");
    let mut families: Vec<&str> = Vec::new();
    for s in &parsed.samples {
        assert!(
            parsed.docs.get(&s.metric).is_some_and(|h| !h.is_empty()),
            "no HELP for {}:\n{body}",
            s.metric
        );
        assert!(
            body.lines()
                .any(|l| l == format!("# TYPE {} counter", s.metric)
                    || l == format!("# TYPE {} gauge", s.metric)),
            "no TYPE for {}:\n{body}",
            s.metric
        );
        let counter = matches!(s.value, prometheus_parse::Value::Counter(_));
        assert_eq!(
            counter,
            s.metric.ends_with("_total"),
            "{}: counters and only they end in _total",
            s.metric
        );
        if !families.contains(&s.metric.as_str()) {
            families.push(&s.metric);
        }
    }
    families.sort_unstable();
    let mut want = FAMILIES.to_vec();
    want.sort_unstable();
    assert_eq!(families, want, "metric families in\n{body}");
    Scrape {
        samples: parsed.samples,
    }
}

#[test]
fn stats_and_metrics_count_every_packet_exactly() {
    let rig = rig();
    let sv = rig.pair.srv_veth();
    let mut exporter = exporter(&rig);
    let m0 = scrape(&rig.pair);
    let s0 = stats(&rig);

    send_traffic(&rig, &s0);
    let s1 = stats(&rig);
    let m1 = scrape(&rig.pair);

    for (reason, (p, b)) in expected_reasons() {
        let got = (
            reason_packets(&s1, reason) - reason_packets(&s0, reason),
            bytes(&s1, reason) - bytes(&s0, reason),
        );
        assert_eq!(
            got,
            (p, b),
            "fw stats: reason {reason} (packets, bytes)\nbefore {s0}\nafter {s1}"
        );
        let iface = |s: &serde_json::Value, what: &str| {
            s["interfaces"][sv]["reasons"][reason][what]
                .as_u64()
                .unwrap_or_else(|| panic!("{sv} in {s}"))
        };
        let got = (
            iface(&s1, "packets") - iface(&s0, "packets"),
            iface(&s1, "bytes") - iface(&s0, "bytes"),
        );
        assert_eq!(got, (p, b), "fw stats: {sv} reason {reason}");
        let labels = [("interface", sv), ("reason", reason)];
        let got = (
            m1.count("fw_packets_total", &labels) - m0.count("fw_packets_total", &labels),
            m1.count("fw_bytes_total", &labels) - m0.count("fw_bytes_total", &labels),
        );
        assert_eq!(got, (p, b), "/metrics: reason {reason}");
    }
    for (proto, port, n) in [("tcp", 22, N), ("udp", 80, N), ("tcp", 80, 0)] {
        let got = port_hits(&s1, proto, port) - port_hits(&s0, proto, port);
        assert_eq!(got, n, "fw stats: {proto}/{port}");
        let labels = [("proto", proto), ("ports", &port.to_string())];
        assert_eq!(
            m1.count("fw_port_new_flows_total", &labels)
                - m0.count("fw_port_new_flows_total", &labels),
            n,
            "/metrics: {proto}/{port}"
        );
    }
    // One series per open range of the seed policy, nothing else.
    assert_eq!(m1.series("fw_port_new_flows_total").len(), 3);
    // The whole stream of accepted packets is also the sum of the reasons.
    assert_eq!(
        s1["accepted"]["packets"].as_u64().unwrap() - s0["accepted"]["packets"].as_u64().unwrap(),
        2 * N
    );
    // Conntrack: the N accepted UDP flows at least (a TCP flow the host
    // answers with a RST is deleted at once, as netfilter does), plus one
    // entry whose timeout passed long ago: still in the map, but absent for
    // the kernel side, so not counted.
    let maps = FwMaps::open(&pins::PinDir::new(rig.pins.path())).expect("open maps");
    let mut key = fw_common::FlowKey {
        sport: 4242,
        dport: 9,
        proto: fw_common::IPPROTO_UDP,
        family: 4,
        ..Default::default()
    };
    key.src[..4].copy_from_slice(&[192, 0, 2, 99]);
    key.dst[..4].copy_from_slice(&[192, 0, 2, 1]);
    let stale = fw_common::FlowValue {
        created_ns: 0,
        last_seen_ns: 0,
        state: fw_common::CT_UDP,
        ..Default::default()
    };
    let cfg = maps.config().expect("config");
    let now = fw_user::kernel::clock::kernel_now_ns();
    assert!(
        now > fw_common::ct_timeout_ns(&cfg, fw_common::CT_UDP, 0),
        "the host is up for less than a UDP timeout: no entry can be expired yet"
    );
    maps.conntrack_insert(&key, &stale)
        .expect("insert an expired entry");
    let m2 = scrape(&rig.pair);
    // Nobody answered the datagrams: their flows wait in the unconfirmed
    // table; the expired entry is in the confirmed one.
    let ct = maps
        .conntrack_count(CtTable::Confirmed)
        .expect("count conntrack");
    let unconfirmed = maps
        .conntrack_count(CtTable::Unconfirmed)
        .expect("count the unconfirmed table");
    assert!(ct >= 1, "conntrack has {ct} entries");
    assert!(
        unconfirmed >= N,
        "the unconfirmed table has {unconfirmed} entries"
    );
    assert_eq!(
        m2.count("fw_conntrack_entries", &[]),
        ct - 1,
        "live entries"
    );
    assert_eq!(
        m2.count("fw_conntrack_unconfirmed_entries", &[]),
        unconfirmed,
        "live unconfirmed entries"
    );
    let meta = maps.meta().expect("meta");
    assert_eq!(
        m2.count("fw_conntrack_capacity", &[]),
        u64::from(meta.ct_entries)
    );
    assert_eq!(
        m2.count("fw_conntrack_capacity", &[]),
        u64::from(fw_common::CT_DEFAULT_ENTRIES)
    );
    assert_eq!(m2.count("fw_conntrack_evictions_total", &[]), 0);
    assert_eq!(
        m2.count("fw_conntrack_unconfirmed_capacity", &[]),
        u64::from(meta.ct_unconfirmed_entries)
    );
    assert_eq!(m2.count("fw_conntrack_unconfirmed_evictions_total", &[]), 0);
    // One gauge per interface fw is up on.
    assert_eq!(m2.count("fw_interface_attached", &[("interface", sv)]), 1);
    assert_eq!(m2.series("fw_interface_attached").len(), 1);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m2.count("fw_build_info", &[("version", version)]), 1);
    assert!(m2.value("fw_scrape_duration_seconds", &[]) > 0.0);
    maps.conntrack_remove(&key)
        .expect("remove the expired entry");

    // Graceful shutdown on SIGTERM: exit status 0.
    let st = exporter.terminate();
    assert!(st.success(), "exporter exit {st}:\n{}", exporter.all());
}

/// With every UDP port open (`udp 1-65535`), `fw stats` and /metrics keep
/// one row/series per open range, and the new flows of ports across the
/// whole range (both ends included) add up in that one series.
#[test]
fn every_udp_port_open_keeps_stats_and_metrics_small() {
    let rig = rig();
    rig.ok(&["allow", "udp", "1-65535"]);
    assert!(rig.ok(&["ports"]).contains("udp: 1-65535\n"));
    let mut exporter = exporter(&rig);
    let m0 = scrape(&rig.pair);
    let s0 = stats(&rig);
    let dports = [1u16, 80, 5000, 65535];
    let packets: Vec<(Kind, u16, Vec<u8>)> = dports
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let id = 45000 + i as u16;
            (Kind::Udp(p), id, packet(Kind::Udp(p), id))
        })
        .chain([(Kind::Syn(22), 46000, packet(Kind::Syn(22), 46000))])
        .collect();
    send_raw(rig.pair.cli_path(), &packets);
    let n = dports.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while reason_packets(&stats(&rig), "port") - reason_packets(&s0, "port") < n + 1 {
        assert!(Instant::now() < deadline, "fw did not count the traffic");
        thread::sleep(Duration::from_millis(100));
    }
    let m1 = scrape(&rig.pair);
    let s1 = stats(&rig);

    let all = [("proto", "udp"), ("ports", "1-65535")];
    assert_eq!(
        m1.count("fw_port_new_flows_total", &all) - m0.count("fw_port_new_flows_total", &all),
        n
    );
    let ssh = [("proto", "tcp"), ("ports", "22")];
    assert_eq!(
        m1.count("fw_port_new_flows_total", &ssh) - m0.count("fw_port_new_flows_total", &ssh),
        1
    );
    // tcp 22, tcp 80, udp 1-65535; and the whole scrape stays small: two
    // series per (interface, reason), one per family besides.
    assert_eq!(m1.series("fw_port_new_flows_total").len(), 3);
    let reasons = fw_common::Reason::ALL.len();
    assert!(
        m1.samples.len() <= 2 * reasons + 3 + 10,
        "{} series",
        m1.samples.len()
    );
    println!(
        "scrape with udp 1-65535 open: {:.1} ms reading the maps",
        m1.value("fw_scrape_duration_seconds", &[]) * 1e3
    );

    // fw stats --json: one entry per range, the old per-port keys kept.
    let ports = s1["ports"].as_array().expect("ports is a list");
    assert_eq!(ports.len(), 3, "{s1}");
    let udp = ports
        .iter()
        .find(|p| p["proto"] == "udp")
        .expect("the udp range");
    assert_eq!(
        (&udp["ports"], &udp["lo"], &udp["hi"], &udp["port"]),
        (
            &serde_json::json!("1-65535"),
            &serde_json::json!(1),
            &serde_json::json!(65535),
            &serde_json::json!(1)
        ),
        "{udp}"
    );
    assert_eq!(port_hits(&s1, "udp", 1) - port_hits(&s0, "udp", 1), n);
    // fw stats: the reasons, the totals, a short ports table.
    let text = rig.ok(&["stats"]);
    let lines = text.lines().count();
    assert!(lines <= reasons + 10, "{lines} lines:\n{text}");
    let row = text
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["udp", "1-65535"]))
        .unwrap_or_else(|| panic!("no udp 1-65535 row:\n{text}"));
    let total = port_hits(&s1, "udp", 1).to_string();
    assert_eq!(
        row.split_whitespace().nth(2),
        Some(total.as_str()),
        "{text}"
    );
    assert!(exporter.terminate().success(), "{}", exporter.all());
}

/// `fw status --verbose`: one listing of the rules with their counters,
/// like `ufw status verbose` / `iptables -L -v -n`, in text and JSON.
#[test]
fn status_verbose_lists_every_rule_with_its_counters() {
    let rig = rig();
    rig.ok(&["allow", "tcp", "8000-8010", "--from", "198.51.100.0/24"]);
    rig.ok(&["allow", "tcp", "8000-8010", "--from", "2001:db8::/32"]);
    let verbose = || -> serde_json::Value {
        serde_json::from_str(&rig.ok(&["status", "--verbose", "--json"])).expect("status JSON")
    };
    let v0 = verbose();
    let s0 = stats(&rig);
    assert!(
        serde_json::from_str::<serde_json::Value>(&rig.ok(&["status", "--json"]))
            .expect("status JSON")
            .get("rules")
            .is_none(),
        "plain status has no rules"
    );
    send_traffic(&rig, &s0);
    let v1 = verbose();
    let rules = &v1["rules"];
    let d = &rules["default"];
    let delta =
        |key: &str| d[key].as_u64().expect(key) - v0["rules"]["default"][key].as_u64().expect(key);
    assert_eq!(
        (&d["reject_with"], &d["rate"], &d["burst"], &d["dry_run"]),
        (
            &serde_json::json!("host-unreachable"),
            &serde_json::json!(1000),
            &serde_json::json!(1000),
            &serde_json::json!(false)
        ),
        "{d}"
    );
    assert_eq!(delta("rejected"), 3 * N, "{d}");
    assert_eq!(delta("reject_ratelimited"), 0, "{d}");
    assert_eq!(
        rules["always"],
        serde_json::json!(["lo", "established", "related", "ndp", "dhcp"])
    );
    let ports = rules["ports"].as_array().expect("ports");
    let rows: Vec<(String, String, Option<serde_json::Value>)> = ports
        .iter()
        .map(|p| {
            (
                p["proto"].as_str().expect("proto").to_string(),
                p["ports"].as_str().expect("ports").to_string(),
                p.get("from").cloned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("tcp".into(), "22".into(), None),
            ("tcp".into(), "80".into(), None),
            (
                "tcp".into(),
                "8000-8010".into(),
                Some(serde_json::json!(["198.51.100.0/24", "2001:db8::/32"]))
            ),
            ("udp".into(), "80".into(), None),
        ]
    );
    let new = |i: usize| {
        ports[i]["new_flows"].as_u64().expect("new_flows")
            - v0["rules"]["ports"][i]["new_flows"]
                .as_u64()
                .expect("new_flows")
    };
    assert_eq!((new(0), new(1), new(2), new(3)), (N, 0, 0, N));
    // The SYNs to 22 were answered with RSTs (nobody listens): no flow
    // stays; the UDP datagrams to 80 each left one.
    let live: Vec<u64> = ports
        .iter()
        .map(|p| p["live_flows"].as_u64().expect("live_flows"))
        .collect();
    assert_eq!(live, [0, 0, 0, N]);

    // The text: the status, then the same numbers in one table.
    let text = rig.ok(&["status", "--verbose"]);
    assert!(text.starts_with("fw is up"), "{text}");
    assert!(
        text.contains("\ndefault: reject new inbound flows with host-unreachable, at most 1000/s (burst 1000)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\n         {} answered, 0 over the rate, {} dropped unanswerable\n",
            d["rejected"], d["reject_silent"]
        )),
        "{text}"
    );
    assert!(
        text.contains("\nalways passed: lo, established, related, ndp, dhcp\n"),
        "{text}"
    );
    let table: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("proto "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut want: Vec<Vec<String>> =
        vec![["proto", "ports", "new", "flows", "live", "flows", "from"]
            .map(String::from)
            .to_vec()];
    for (p, (proto, range, from)) in ports.iter().zip(&rows) {
        let mut row = vec![
            proto.clone(),
            range.clone(),
            p["new_flows"].to_string(),
            p["live_flows"].to_string(),
        ];
        match from {
            None => row.push("anywhere".into()),
            Some(f) => row.extend(
                f.as_array()
                    .expect("from")
                    .iter()
                    .map(|n| n.as_str().expect("prefix").to_string()),
            ),
        }
        want.push(row);
    }
    assert_eq!(table, want, "{text}");
    assert!(
        text.lines()
            .skip_while(|l| !l.starts_with("default:"))
            .all(|l| l.len() <= 100),
        "the rules fit 100 columns:\n{text}"
    );
}

#[test]
fn log_json_shows_each_rejected_flow() {
    let rig = rig();
    let k = 3 * N;
    let mut log = spawn_fw(
        &rig,
        &[
            "log",
            "--json",
            "--count",
            &k.to_string(),
            "--timeout",
            "20",
        ],
    );
    log.wait_for("fw log: following events", Duration::from_secs(10));
    let s0 = stats(&rig);
    send_traffic(&rig, &s0);
    let st = log.wait(Duration::from_secs(25));
    assert!(st.success(), "fw log exit {st}:\n{}", log.all());

    let events = log.json_lines();
    assert_eq!(events.len() as u64, k, "{events:?}");
    let mut seen = Vec::new();
    for e in &events {
        assert_eq!(e["reason"], "reject", "{e}");
        assert_eq!(e["interface"], rig.pair.srv_veth(), "{e}");
        assert_eq!(e["family"], "ipv4", "{e}");
        assert_eq!(e["src"], "192.0.2.2", "{e}");
        assert_eq!(e["dst"], "192.0.2.1", "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
        let kind = match (
            e["proto"].as_str(),
            e["dport"].as_u64(),
            e["icmp_type"].as_u64(),
        ) {
            (Some("tcp"), Some(port), None) => (
                Kind::Syn(port as u16),
                e["sport"].as_u64().unwrap(),
                SYN_LEN,
            ),
            (Some("udp"), Some(port), None) => (
                Kind::Udp(port as u16),
                e["sport"].as_u64().unwrap(),
                UDP_LEN,
            ),
            (Some("icmp"), None, Some(8)) => (Kind::Echo, 0, ICMP_LEN),
            _ => panic!("unexpected event {e}"),
        };
        assert_eq!(e["len"].as_u64(), Some(kind.2), "{e}");
        seen.push((kind.0, kind.1));
    }
    let mut want: Vec<(Kind, u64)> = traffic()
        .into_iter()
        .filter(|(kind, _, _)| !matches!(kind, Kind::Syn(22) | Kind::Udp(80)))
        .map(|(kind, id, _)| (kind, if kind == Kind::Echo { 0 } else { id as u64 }))
        .collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want);

    // Text lines, and --count not reached by --timeout is an error.
    let mut text = spawn_fw(&rig, &["log", "--count", "1", "--timeout", "20"]);
    text.wait_for("fw log: following events", Duration::from_secs(10));
    send_raw(rig.pair.cli_path(), &traffic()[5..6]); // one SYN to 8080
    assert!(
        text.wait(Duration::from_secs(25)).success(),
        "{}",
        text.all()
    );
    let line = text.stdout().join("\n");
    assert!(
        line.contains(&format!(
            " {} reject ipv4 tcp 192.0.2.2:41000 -> 192.0.2.1:8080 len=54",
            rig.pair.srv_veth()
        )),
        "{line}"
    );
    let out = fw_cmd(
        rig.pair.srv_path(),
        &rig.pins,
        ["log", "--count", "1", "--timeout", "0.5"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only 0 of the 1 events"), "{err}");
}

fn render(model: &TopModel, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| view::draw(f, model)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

/// Columns of the reasons table; the ports and sources tables are right of it.
const LEFT: usize = 38;

/// The screen's lines cut to the left (reasons) or right (ports, sources) column.
fn column(screen: &[String], left: bool) -> Vec<String> {
    screen
        .iter()
        .map(|l| {
            let chars = l.chars();
            if left {
                chars.take(LEFT).collect()
            } else {
                chars.skip(LEFT).collect()
            }
        })
        .collect()
}

fn row(lines: &[String], needle: &str) -> String {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no row with {needle:?}:\n{}", lines.join("\n")))
}

/// The numbers of a screen row, left to right.
fn numbers(row: &str) -> Vec<String> {
    row.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

#[test]
fn top_shows_reasons_ports_and_sources_of_real_traffic() {
    let rig = rig();
    let maps = FwMaps::open(&pins::PinDir::new(rig.pins.path())).expect("open maps");
    let mut events = EventReader::open(&maps, false).expect("events");
    let mut model = TopModel::new();
    model.observe(Stats::collect(&maps).expect("stats"), 1.0);
    let t0 = Instant::now();
    send_traffic(&rig, &stats(&rig));
    model.observe(
        Stats::collect(&maps).expect("stats"),
        t0.elapsed().as_secs_f64(),
    );
    for e in events.drain(1000) {
        model.observe_event(&e);
    }

    let screen = render(&model, 80, 24);
    let text = screen.join("\n");
    assert!(
        screen[0].contains("fw top") && screen[0].contains(rig.pair.srv_veth()),
        "{text}"
    );
    assert!(screen[0].contains("q quits"), "{text}");
    let (left, right) = (column(&screen, true), column(&screen, false));
    for r in fw_common::Reason::ALL {
        row(&left, r.name());
    }
    // reason, rate, total: the totals since fw up are exactly the traffic.
    assert_eq!(
        numbers(&row(&left, "reject "))[1],
        (3 * N).to_string(),
        "{text}"
    );
    assert_eq!(
        numbers(&row(&left, "port "))[1],
        (2 * N).to_string(),
        "{text}"
    );
    assert_eq!(numbers(&row(&left, "malformed "))[1], "0", "{text}");
    // port, rate, new flows.
    assert_eq!(numbers(&row(&right, "tcp/22"))[1], N.to_string(), "{text}");
    assert_eq!(numbers(&row(&right, "udp/80"))[1], N.to_string(), "{text}");
    // source, events, last.
    let src = row(&right, "192.0.2.2");
    assert_eq!(numbers(&src)[1], (3 * N).to_string(), "{text}");
    // The last event was an ICMP echo.
    assert!(src.contains("icmp type 8"), "{text}");
    assert!(
        text.contains("accepted/s") && text.contains("rejected/s"),
        "{text}"
    );
    assert_eq!(model.accepted.len(), 1);
    assert_eq!(model.rejected.len(), 1);
}

#[test]
fn top_fits_80x24_and_grows() {
    let mut model = TopModel::new();
    let snap = |n: u64| {
        let mut s = Stats {
            reasons: fw_common::Reason::ALL
                .iter()
                .map(|r| (r.name(), fw_user::watch::stats::Count::default()))
                .collect(),
            accepted: Default::default(),
            dropped: Default::default(),
            ports: vec![],
            interfaces: BTreeMap::new(),
        };
        s.reasons.get_mut("established").expect("reason").packets = 1_234_567 * n;
        s.accepted.packets = 1_234_567 * n;
        s
    };
    for n in 0..100 {
        model.observe(snap(n), 1.0);
    }
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&model, w, h);
        let text = screen.join("\n");
        // Every reason row and both sparkline titles are on screen.
        let left = column(&screen, true);
        for r in fw_common::Reason::ALL {
            row(&left, r.name());
        }
        assert!(row(&left, "established").contains("1.2M"), "{text}");
        assert!(text.contains("accepted/s · max 1.2M"), "{text}");
        assert!(screen[h as usize - 1].contains('└'), "{text}");
    }
    // Below 80x24 it says so instead of drawing a mangled screen.
    for (w, h) in [(79, 24), (80, 23), (40, 10)] {
        let text = render(&model, w, h).join("\n");
        assert!(
            text.contains("fw top needs a terminal of at least")
                && text.contains(&format!("80x24 (this one is {w}x{h})"))
                && !text.contains('└'),
            "{w}x{h}: {text}"
        );
    }
}

#[test]
fn foreground_logs_kernel_messages_and_detaches_on_sigterm() {
    require_root();
    let pair = Netns::pair(PREFIX);
    quiet(&pair);
    let pins = PinDir::new();
    let mut cmd = pair.srv().command(&fw_bin().to_string_lossy());
    cmd.arg("--pin-dir")
        .arg(pins.path())
        .args(["up", "--foreground", pair.srv_veth()])
        // The kernel's messages are warnings: whatever the caller's RUST_LOG
        // says, this test wants them shown.
        .env("RUST_LOG", "info");
    let mut fg = Bg::spawn(cmd);
    fg.wait_for(
        &format!("fw up on {}", pair.srv_veth()),
        Duration::from_secs(20),
    );
    assert!(pins.path().join("maps/META").exists());

    // Overflow the event ring buffer (nobody reads it): 256 KiB holds about
    // 3300 events, the kernel lets 1000/s per CPU through. The overflow is
    // reported through aya-log, once per power of two.
    let flood: Vec<(Kind, u16, Vec<u8>)> = (0..100u16)
        .map(|i| {
            let mut pkt = Vec::new();
            etherparse::PacketBuilder::ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64)
                .udp(10000 + i, 53)
                .write(&mut pkt, b"x")
                .expect("build");
            (Kind::Udp(53), i, pkt)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fg.all().contains("event ring buffer full") {
        assert!(
            Instant::now() < deadline,
            "no overflow message:\n{}",
            fg.all()
        );
        send_raw(pair.cli_path(), &flood);
        thread::sleep(Duration::from_millis(20));
    }
    assert!(fg.all().contains("fw::kernel"), "{}", fg.all());

    let st = fg.terminate();
    assert!(st.success(), "exit {st}:\n{}", fg.all());
    let out = fg.stdout().join("\n");
    assert!(
        out.contains(&format!("fw down on {}", pair.srv_veth())),
        "{out}"
    );
    assert!(out.contains("fw unloaded"), "{out}");
    assert!(!pins.path().exists(), "pins left behind");
    let link =
        run_ok(command("ip").args(["-n", pair.srv_ns(), "link", "show", "dev", pair.srv_veth()]));
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
}

#[test]
fn exporter_refuses_a_busy_address_and_reports_fw_down() {
    require_root();
    let pair = Netns::pair(PREFIX);
    let pins = PinDir::new();
    // Not loaded: the exporter still serves, scrapes fail with 503.
    let mut cmd = pair.srv().command(&fw_bin().to_string_lossy());
    cmd.arg("--pin-dir")
        .arg(pins.path())
        .args(["exporter", "--listen", EXPORTER]);
    let mut exporter = Bg::spawn(cmd);
    exporter.wait_for("serving", Duration::from_secs(10));
    let head = in_netns(pair.srv_path(), || {
        let mut s = TcpStream::connect(EXPORTER).expect("connect");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("send");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        buf
    })
    .expect("netns");
    assert!(
        head.contains(" 503 ") && head.contains("fw is not loaded"),
        "{head}"
    );
    // A second exporter on the same address fails with a clear message.
    let out = fw_cmd(pair.srv_path(), &pins, ["exporter", "--listen", EXPORTER]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listening on 127.0.0.1:9788"), "{err}");
    assert!(exporter.terminate().success(), "{}", exporter.all());
}

/// Runs `fw ARGS` in the server namespace with a standard output whose
/// reader is gone already; returns (exit code, stderr).
fn with_closed_stdout(rig: &Rig, args: &[&str], while_running: impl Fn()) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = rig.pair.srv().command(&fw_bin().to_string_lossy());
    cmd.arg("--pin-dir")
        .arg(rig.pins.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fw {args:?}: {e}"));
    let mut stderr = child.stderr.take().expect("stderr");
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fw {args:?} with a closed stdout still runs after 15 s");
        }
        while_running();
        thread::sleep(Duration::from_millis(100));
    };
    (status.code(), err.join().expect("stderr reader"))
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let rig = rig();
    let nothing = || {};
    for args in [
        &["stats"][..],
        &["stats", "--json"],
        &["stats", "--watch", "0.2"],
        &["stats", "--watch", "0.2", "--json"],
        &["ports"],
        &["ports", "--json"],
        &["status"],
        &["status", "--json"],
        &["conntrack"],
        &["conntrack", "--json"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let (code, err) = with_closed_stdout(&rig, args, nothing);
        assert_eq!(code, Some(0), "fw {args:?}: exit code; stderr: {err}");
        assert_eq!(err, "", "fw {args:?}: quiet on stderr");
    }
    // `fw log` ends at its first event, saying nothing but its greeting.
    let syn = &traffic()[5..6];
    let (code, err) = with_closed_stdout(&rig, &["log", "--timeout", "10"], || {
        send_raw(rig.pair.cli_path(), syn)
    });
    assert_eq!(code, Some(0), "fw log: {err}");
    assert!(
        err.starts_with("fw log: following events") && err.lines().count() == 1,
        "{err}"
    );
    // Changes are made whether or not anyone reads what they say.
    let (code, err) = with_closed_stdout(&rig, &["allow", "tcp", "8080"], nothing);
    assert_eq!((code, err.as_str()), (Some(0), ""), "fw allow");
    assert!(
        rig.ok(&["ports"]).contains("tcp: 22 80 8080"),
        "8080 opened"
    );
    let (code, err) = with_closed_stdout(&rig, &["deny", "tcp", "8080"], nothing);
    assert_eq!((code, err.as_str()), (Some(0), ""), "fw deny");
    assert!(rig.ok(&["ports"]).contains("tcp: 22 80\n"), "8080 closed");
}

/// The `stats` objects `fw stats --watch --json` printed so far.
fn watch_lines(bg: &Bg) -> Vec<serde_json::Value> {
    bg.json_lines()
        .into_iter()
        .map(|v| v["stats"].clone())
        .collect()
}

#[test]
fn log_and_stats_watch_follow_fw_across_a_reload() {
    let rig = rig();
    let (before, after) = (3 * N, N);
    let count = (before + after).to_string();
    let mut log = spawn_fw(
        &rig,
        &["log", "--json", "--count", &count, "--timeout", "40"],
    );
    log.wait_for("fw log: following events", Duration::from_secs(10));
    let mut watch = spawn_fw(&rig, &["stats", "--watch", "0.2", "--json"]);
    send_traffic(&rig, &stats(&rig));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watch_lines(&watch)
        .iter()
        .any(|s| reason_packets(s, "reject") == before)
    {
        assert!(
            Instant::now() < deadline,
            "no stats line with the traffic:\n{}",
            watch.all()
        );
        thread::sleep(Duration::from_millis(100));
    }

    rig.ok(&["down"]);
    for bg in [&log, &watch] {
        bg.wait_for("fw was unloaded", Duration::from_secs(10));
    }
    // While fw is not loaded the watch prints nothing, and waits.
    let lines = watch.stdout().len();
    thread::sleep(Duration::from_millis(800));
    assert_eq!(
        watch.stdout().len(),
        lines,
        "stats while fw is down:\n{}",
        watch.all()
    );
    assert!(
        watch.child.try_wait().expect("try_wait").is_none(),
        "{}",
        watch.all()
    );

    rig.ok(&["up", rig.pair.srv_veth()]);
    for bg in [&log, &watch] {
        bg.wait_for("following the new instance", Duration::from_secs(10));
    }
    // The new load's events and counters: N SYNs to the closed 8080.
    let syns = &traffic()[5..10];
    send_raw(rig.pair.cli_path(), syns);
    let st = log.wait(Duration::from_secs(30));
    assert!(st.success(), "fw log exit {st}:\n{}", log.all());
    let events = log.json_lines();
    assert_eq!(events.len() as u64, before + after, "{events:?}");
    let mut late: Vec<(u64, u64)> = events[before as usize..]
        .iter()
        .map(|e| {
            assert_eq!(e["interface"], rig.pair.srv_veth(), "{e}");
            (
                e["dport"].as_u64().unwrap_or(0),
                e["sport"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    late.sort();
    let want: Vec<(u64, u64)> = syns.iter().map(|(_, id, _)| (8080, *id as u64)).collect();
    assert_eq!(late, want, "the events after the reload are the new load's");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = watch_lines(&watch).last().cloned().expect("a stats line");
        // Counters of the new load only: exactly the SYNs sent to it.
        if reason_packets(&last, "reject") == after {
            assert_eq!(reason_packets(&last, "port"), 0, "{last}");
            assert_eq!(
                last["interfaces"][rig.pair.srv_veth()]["reasons"]["reject"]["packets"],
                after,
                "{last}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stats of the new load:\n{}",
            watch.all()
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!watch.all().contains("BPF_OBJ_GET"), "{}", watch.all());
    let st = watch.terminate();
    assert!(st.success(), "fw stats --watch exit {st}:\n{}", watch.all());
}

#[test]
fn top_follows_fw_across_a_reload() {
    let rig = rig();
    let maps = FwMaps::open(&pins::PinDir::new(rig.pins.path())).expect("open maps");
    let mut model = TopModel::new();
    let mut feed = Feed::open(&maps, &mut model).expect("fw top's feed");
    let until =
        |model: &mut TopModel, feed: &mut Feed, what: &str, done: &dyn Fn(&TopModel) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                feed.update(model)
                    .unwrap_or_else(|e| panic!("fw top while {what}: {e}"));
                if done(model) {
                    return;
                }
                assert!(Instant::now() < deadline, "fw top: no {what}: {model:?}");
                thread::sleep(Duration::from_millis(100));
            }
        };
    let notice = |m: &TopModel, s: &str| m.notice.as_deref().is_some_and(|n| n.contains(s));
    rig.ok(&["down"]);
    until(&mut model, &mut feed, "unload notice", &|m| {
        notice(m, "fw was unloaded")
    });
    let screen = render(&model, 120, 24).join("\n");
    assert!(screen.contains("fw was unloaded"), "{screen}");
    rig.ok(&["up", rig.pair.srv_veth()]);
    until(&mut model, &mut feed, "reload notice", &|m| {
        notice(m, "loaded again")
    });
    send_traffic(&rig, &stats(&rig));
    let total = |m: &TopModel, r: &str| m.reasons.iter().find(|x| x.reason == r).map(|x| x.total);
    // Counters are read once per refresh, events drained on every update:
    // wait for both rather than assume they land in the same tick.
    until(
        &mut model,
        &mut feed,
        "new load's counters and events",
        &|m| {
            total(m, "reject") == Some(3 * N)
                && m.top_sources(1).first().is_some_and(|s| s.events >= 3 * N)
        },
    );
    assert_eq!(total(&model, "port"), Some(2 * N), "{model:?}");
    let src = model.top_sources(1);
    assert_eq!(src.len(), 1, "{src:?}");
    assert_eq!(src[0].events, 3 * N, "events of the new load: {src:?}");
}

#[test]
fn top_on_a_terminal_survives_a_reload_and_quits_on_q() {
    let rig = rig();
    let (mut master, slave) = fw_testkit::pty();
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .expect("open the pty slave")
    };
    let mut top = rig
        .pair
        .srv()
        .command(&fw_bin().to_string_lossy())
        .arg("--pin-dir")
        .arg(rig.pins.path())
        .arg("top")
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .expect("spawn fw top");
    // Whatever fw top draws, read it (a full terminal buffer would block it).
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = master.try_clone().expect("pty master");
    let seen = Arc::clone(&screen);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.lock().expect("screen").extend_from_slice(&buf[..n]);
        }
    });
    let drawn = || String::from_utf8_lossy(&screen.lock().expect("screen")).into_owned();
    let mut still_running = |what: &str| {
        // Twice fw top's refresh: it has looked at fw since.
        thread::sleep(Duration::from_millis(2500));
        assert!(
            top.try_wait().expect("try_wait").is_none(),
            "fw top ended {what}:\n{}",
            drawn()
        );
    };
    still_running("at the start");
    rig.ok(&["down"]);
    still_running("when fw was unloaded");
    rig.ok(&["up", rig.pair.srv_veth()]);
    still_running("when fw was loaded again");
    master.write_all(b"q").expect("type q");
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = top.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "fw top did not quit on q");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "fw top exit {st}:\n{}", drawn());
    assert!(!drawn().contains("BPF_OBJ_GET"), "{}", drawn());
}
