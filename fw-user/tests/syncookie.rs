//! SYN cookies from XDP: a SYN to an open TCP port whose listener the
//! kernel calls flooded is answered by fw with the kernel's cookie (XDP_TX),
//! and nothing is recorded; the client's ACK makes the connection in the
//! kernel, and the host's first segment confirms the flow.
//!
//! The verdict tests run fw_ingress through BPF_PROG_TEST_RUN from inside a
//! test namespace holding a real listener on port 80, with
//! `net.ipv4.tcp_syncookies = 2` there (the kernel then hands out a cookie
//! for every SYN: "flooded") or 1 (only when the listen queue is full).
//! The last test connects a real client through fw on a veth pair.
//!
//! Run as root: `cargo test --release -p fw-user --test syncookie -- --test-threads=1`.
use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener},
    time::Duration,
};

use aya::{
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use fw_common::{Counter, Reason, PROG_INGRESS, REASON_COUNT};
use fw_testkit::{
    echo_rounds, fw_stats, in_netns,
    packet::{checksum, Fam, Packet, Tcp, ACK, DEST_OPTS, HOP_BY_HOP, L4, SYN},
    reason_packets, require_root, spawn_tcp_listener, tcp_session, Netns, Pair, Rig,
};
use fw_user::{
    kernel::{
        load::load_and_pin,
        maps::{CtTable, FwMaps},
        pins::PinDir,
    },
    model::{
        config::Config,
        policy::{Proto, SyncookieMode},
    },
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
/// The SYNs' MSS option, and what the kernel's cookie tables make of it
/// (msstab in net/ipv4/syncookies.c and net/ipv6/syncookies.c).
const SYN_MSS: u16 = 1460;
const V4_COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
const V6_COOKIE_MSS: [u16; 4] = [1220, 1420, 1440, 8940];

/// fw loaded (never attached) and a namespace with a dual-stack listener on
/// port 80, where the programs run.
struct Bench {
    ebpf: Ebpf,
    maps: FwMaps,
    _listener: TcpListener,
    /// The server namespace is where the programs run.
    pair: Pair,
    // Last: removed after the programs and maps are closed.
    _pins: fw_testkit::PinDir,
}

impl Bench {
    fn new(tag: &str, mode: SyncookieMode, sysctl: u32) -> Bench {
        require_root();
        let pair = Netns::pair(&format!("fwsc{tag}"));
        pair.srv().sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.tcp_syncookies={sysctl}"),
        ]);
        let listener = in_netns(pair.srv_path(), || {
            TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80))
        })
        .unwrap_or_else(|e| panic!("entering {}: {e}", pair.srv_ns()))
        .unwrap_or_else(|e| panic!("listening on [::]:80: {e}"));
        let guard = fw_testkit::PinDir::new();
        let pins = PinDir::new(guard.path());
        let cfg = Config {
            syncookies: mode,
            ..Config::default()
        };
        let ebpf = load_and_pin(&pins, &cfg).unwrap_or_else(|e| panic!("loading fw: {e:?}"));
        let maps = FwMaps::open(&pins).unwrap_or_else(|e| panic!("opening fw's maps: {e}"));
        Bench {
            ebpf,
            maps,
            _listener: listener,
            pair,
            _pins: guard,
        }
    }

    /// Runs `frame` through fw_ingress inside the namespace (the socket
    /// lookup happens in the namespace of the run): (action, frame after).
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let xdp: &Xdp = self
            .ebpf
            .program(PROG_INGRESS)
            .expect("fw_ingress in the object")
            .try_into()
            .expect("fw_ingress is XDP");
        let r = in_netns(self.pair.srv_path(), || {
            let mut out = vec![0u8; 4096];
            xdp.test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .map(|r| {
                out.truncate(r.data_size_out as usize);
                (r.return_value, out)
            })
            .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| panic!("entering the namespace: {e}"));
        r.unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of fw_ingress: {e}"))
    }

    fn totals(&self) -> [Counter; REASON_COUNT] {
        let mut t = [Counter::default(); REASON_COUNT];
        for row in self.maps.counters().expect("counters") {
            for (acc, c) in t.iter_mut().zip(row.iter()) {
                acc.packets += c.packets;
                acc.bytes += c.bytes;
            }
        }
        t
    }

    fn flows(&self) -> (usize, usize) {
        let n = |t| self.maps.table_entries(t).expect("conntrack").len();
        (n(CtTable::Confirmed), n(CtTable::Unconfirmed))
    }

    /// Runs `frame`, asserting `action` and that exactly one packet of its
    /// size was counted, under `reason`. Returns the frame after the run.
    #[track_caller]
    fn expect(&self, what: &str, frame: &[u8], action: u32, reason: Reason) -> Vec<u8> {
        let before = self.totals();
        let (got, out) = self.run(frame);
        let after = self.totals();
        let delta: Vec<(&str, u64, u64)> = Reason::ALL
            .iter()
            .map(|&r| {
                let i = r as usize;
                (
                    r.name(),
                    after[i].packets - before[i].packets,
                    after[i].bytes - before[i].bytes,
                )
            })
            .filter(|d| d.1 != 0 || d.2 != 0)
            .collect();
        assert_eq!(
            (got, delta),
            (action, vec![(reason.name(), 1, frame.len() as u64)]),
            "{what}: (action, counters)"
        );
        out
    }
}

/// A SYN from the peer's port `sport` to port `dport` with an MSS option.
fn syn(fam: Fam, sport: u16, dport: u16) -> Packet {
    Packet::to_host(
        fam,
        L4::Tcp(Tcp {
            sport,
            dport,
            seq: 0x1234_5678,
            flags: SYN,
            options: vec![2, 4, (SYN_MSS >> 8) as u8, SYN_MSS as u8, 1, 1, 4, 2],
            ..Tcp::default()
        }),
    )
}

/// Checks `out` is the SYN-ACK answering `syn` and returns (cookie, mss);
/// `max_mss`: the SYN's MSS (or the kernel's default without the option). The frame is compared byte for byte with one the test
/// kit builds (its own checksum code), and the checksums are verified
/// again by summing the reply as it came out.
#[track_caller]
fn assert_syn_ack(what: &str, syn: &Packet, out: &[u8], max_mss: u16) -> (u32, u16) {
    let v6 = syn.v6();
    let l3 = 14 + 4 * syn.vlans.len();
    let ip_len = if v6 { 40 } else { 20 };
    assert_eq!(out.len(), l3 + ip_len + 24, "{what}: SYN-ACK size");
    let t = &out[l3 + ip_len..];
    let cookie = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let mss = u16::from_be_bytes([t[22], t[23]]);
    let table = if v6 { V6_COOKIE_MSS } else { V4_COOKIE_MSS };
    assert!(
        table.contains(&mss) && mss <= max_mss,
        "{what}: MSS {mss} is one of the kernel's cookie MSS values {table:?}, at most the SYN's"
    );
    let L4::Tcp(s) = &syn.l4 else {
        panic!("{what}: not a TCP SYN")
    };
    let window = 65535 / mss * mss;
    let mut want = Packet::new(
        syn.dst_mac,
        syn.src_mac,
        syn.dst,
        syn.src,
        L4::Tcp(Tcp {
            sport: s.dport,
            dport: s.sport,
            seq: cookie,
            ack: s.seq.wrapping_add(1),
            flags: SYN | ACK,
            window,
            options: vec![2, 4, (mss >> 8) as u8, mss as u8],
            ..Tcp::default()
        }),
    );
    want.vlans = syn.vlans.clone();
    want.df = true;
    want.ip_id = 0;
    assert_eq!(
        out,
        &want.frame()[..],
        "{what}: the SYN-ACK (addresses and ports swapped, ack = seq + 1, MSS option, no IP options)"
    );
    // Independently of both builders: the sums come out right.
    let ip = &out[l3..];
    if !v6 {
        assert!(checksum::sum_ok(&ip[..20]), "{what}: IPv4 header checksum");
    }
    let (src, dst) = if v6 {
        (&ip[8..24], &ip[24..40])
    } else {
        (&ip[12..16], &ip[16..20])
    };
    let pseudo = checksum::pseudo_sum(src, dst, 6, 24);
    assert_eq!(
        checksum::ones_sum(t, pseudo),
        0xffff,
        "{what}: TCP checksum over the pseudo-header"
    );
    (cookie, mss)
}

#[test]
fn syns_to_an_open_port_of_a_flooded_listener_get_a_cookie_syn_ack() {
    let b = Bench::new("flood", SyncookieMode::Auto, 2);
    let cases: Vec<(&str, Packet)> = vec![
        ("v4", syn(Fam::V4, 40000, 80)),
        ("v6", syn(Fam::V6, 40000, 80)),
        ("v4 vlan 7", syn(Fam::V4, 40001, 80).vlan(7)),
        ("v6 vlan 7", syn(Fam::V6, 40001, 80).vlan(7)),
        ("v4 priority tag", syn(Fam::V4, 40002, 80).vlan(0)),
        (
            "v4 options",
            syn(Fam::V4, 40003, 80).v4_options(&[1, 1, 1, 0]),
        ),
        (
            "v6 extension headers",
            syn(Fam::V6, 40003, 80).v6_exts(&[HOP_BY_HOP, DEST_OPTS]),
        ),
        (
            "v4 vlan + options",
            syn(Fam::V4, 40004, 80).vlan(9).v4_options(&[1, 1, 1, 1]),
        ),
        ("v4 SYN without options", Packet::syn(Fam::V4, 80)),
        ("v6 SYN without options", Packet::syn(Fam::V6, 80)),
    ];
    let hits = b.maps.port_hits(Proto::Tcp, 80).expect("port hits");
    for (what, pkt) in &cases {
        let f = pkt.frame();
        let out = b.expect(what, &f, XDP_TX, Reason::Syncookie);
        if pkt.l4_bytes().len() > 20 {
            assert_syn_ack(what, pkt, &out, SYN_MSS);
        } else {
            // No MSS option in the SYN: the kernel takes the protocol's
            // default (RFC 9293's 536, IPv6's 1280 - 60) and the reply
            // grows by the option.
            let default = if pkt.v6() { 1220 } else { 536 };
            let (_, mss) = assert_syn_ack(what, pkt, &out, default);
            assert_eq!(mss, default, "{what}: default MSS");
        }
        assert_eq!(
            b.flows(),
            (0, 0),
            "{what}: no flow recorded in either table"
        );
    }
    assert_eq!(
        b.maps.port_hits(Proto::Tcp, 80).expect("port hits"),
        hits,
        "a cookie answer opens no flow: no port hit"
    );
    // Two SYNs of the same flow get the same cookie (it is the kernel's
    // hash of the flow and the minute), a different flow another.
    let cookie = |sport: u16| {
        let pkt = syn(Fam::V4, sport, 80);
        assert_syn_ack("again", &pkt, &b.run(&pkt.frame()).1, SYN_MSS).0
    };
    let (c1, c2, c3) = (cookie(41000), cookie(41000), cookie(41001));
    assert_eq!(c1, c2, "same flow, same cookie");
    assert_ne!(c1, c3, "another flow, another cookie");
}

#[test]
fn always_asks_the_kernel_as_auto_does() {
    let b = Bench::new("always", SyncookieMode::Always, 2);
    for fam in Fam::ALL {
        let pkt = syn(fam, 40000, 80);
        let out = b.expect(&format!("{fam:?}"), &pkt.frame(), XDP_TX, Reason::Syncookie);
        assert_syn_ack(&format!("{fam:?}"), &pkt, &out, SYN_MSS);
    }
    assert_eq!(b.flows(), (0, 0));
}

#[test]
fn a_listener_that_is_not_flooded_gets_the_syn_as_today() {
    // tcp_syncookies = 1: cookies only when the listen queue overflows.
    let b = Bench::new("calm", SyncookieMode::Auto, 1);
    for (i, fam) in Fam::ALL.into_iter().enumerate() {
        let f = syn(fam, 40000, 80).frame();
        b.expect(&format!("{fam:?}"), &f, XDP_PASS, Reason::Port);
        assert_eq!(
            b.flows(),
            (0, i + 1),
            "{fam:?}: the SYN is recorded, unconfirmed"
        );
    }
}

#[test]
fn mode_off_passes_every_syn() {
    let b = Bench::new("off", SyncookieMode::Off, 2);
    for fam in Fam::ALL {
        let f = syn(fam, 40000, 80).frame();
        b.expect(&format!("{fam:?}"), &f, XDP_PASS, Reason::Port);
    }
    assert_eq!(b.flows(), (0, 2));
}

#[test]
fn closed_ports_and_open_ports_without_a_listener_are_judged_as_today() {
    let b = Bench::new("closed", SyncookieMode::Always, 2);
    for fam in Fam::ALL {
        // Closed: rejected (host unreachable), as without cookies.
        let out = b.expect(
            &format!("{fam:?} closed 23"),
            &syn(fam, 40000, 23).frame(),
            XDP_TX,
            Reason::Reject,
        );
        let icmp_type = if fam == Fam::V4 { 3 } else { 1 };
        let l4 = 14 + if fam == Fam::V4 { 20 } else { 40 };
        assert_eq!(
            out[l4], icmp_type,
            "{fam:?}: an ICMP destination unreachable"
        );
        // Open but nothing listens on 22: no socket, no cookie.
        b.expect(
            &format!("{fam:?} open 22, no listener"),
            &syn(fam, 40000, 22).frame(),
            XDP_PASS,
            Reason::Port,
        );
        // Not a SYN: never answered with a cookie.
        b.expect(
            &format!("{fam:?} ACK to 80"),
            &Packet::tcp(fam, 40001, 80, ACK).frame(),
            XDP_PASS,
            Reason::Port,
        );
    }
}

/// A real client connects to port 80 through fw with `mode = "always"`
/// and `tcp_syncookies = 2` in the server namespace: fw answers its SYN
/// with a cookie, the kernel accepts the cookie in the client's ACK, data
/// goes both ways, and the host's first segment confirms the flow, whose
/// later segments are `established`.
#[test]
fn a_real_client_connects_through_a_cookie_and_its_flow_is_confirmed() {
    let rig = Rig::new("fwsc");
    let cfg = rig.file(
        "fw.toml",
        "[ports]\ntcp = [22, 80]\nudp = [80]\n[syncookies]\nmode = \"always\"\n",
    );
    rig.pair
        .srv()
        .sh(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=2"]);
    let up = rig.up(&["--config", cfg.to_str().expect("utf-8 path")]);
    assert!(
        !up.contains("warning"),
        "no warning with the sysctl at 2: {up}"
    );
    let status = rig.status_text();
    assert!(
        status.contains("syncookies: always (net.ipv4.tcp_syncookies = 2)"),
        "fw status shows the mode: {status}"
    );
    let _server = spawn_tcp_listener(rig.pair.srv_path(), IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80)
        .expect("listener on port 80");
    let srv = IpAddr::V4(rig.pair.srv_v4());
    let ns = rig.pair.srv_path();
    let pins = &rig.pins;
    let before = fw_stats(ns, pins);
    let r = tcp_session(
        rig.pair.cli_path(),
        srv,
        80,
        Duration::from_secs(5),
        |mut s| {
            // The first round: the client's ACK and first data arrive before
            // the host sent anything on the connection (`port`).
            echo_rounds(&mut s, 1, "first");
            let mid = fw_stats(ns, pins);
            echo_rounds(&mut s, 10, "later");
            let end = fw_stats(ns, pins);
            (mid, end)
        },
    );
    let (mid, end) = r.unwrap_or_else(|o| panic!("connect through a cookie: {o:?}"));
    let d = |a: &serde_json::Value, b: &serde_json::Value, r: &str| {
        reason_packets(b, r) - reason_packets(a, r)
    };
    assert_eq!(d(&before, &end, "syncookie"), 1, "one SYN, one cookie");
    assert_eq!(d(&before, &end, "reject"), 0, "nothing rejected");
    assert_eq!(
        d(&mid, &end, "port"),
        0,
        "after the host's first segment nothing is judged by the port again"
    );
    assert!(
        d(&mid, &end, "established") >= 10,
        "the later segments are established: {}",
        d(&mid, &end, "established")
    );
    let flows = rig.json(&["conntrack", "--port", "80", "--json"]);
    let rows = flows.as_array().expect("fw conntrack --json is a list");
    assert!(
        rows.iter()
            .any(|f| f["proto"] == "tcp" && f["local_port"] == 80 && f["confirmed"] == true),
        "the cookie connection is a confirmed flow: {flows}"
    );
}

/// `mode = "always"` without `net.ipv4.tcp_syncookies = 2`: fw comes up
/// and warns, and `fw status` says what is missing.
#[test]
fn always_without_the_sysctl_warns_and_comes_up() {
    let rig = Rig::new("fwscw");
    rig.pair
        .srv()
        .sh(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=1"]);
    let cfg = rig.file(
        "fw.toml",
        "[ports]\ntcp = [22, 80]\n[syncookies]\nmode = \"always\"\n",
    );
    let out = rig.fw(&[
        "up",
        rig.veth(),
        "--config",
        cfg.to_str().expect("utf-8 path"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fw up succeeds: {err}");
    assert!(
        err.contains("warning")
            && err.contains("net.ipv4.tcp_syncookies = 2")
            && err.contains("it is 1"),
        "fw up warns: {err}"
    );
    let status = rig.status_text();
    assert!(
        status.contains("syncookies: always (net.ipv4.tcp_syncookies = 1): \"always\" needs 2"),
        "{status}"
    );
    assert_eq!(rig.status()["syncookies"], "always");
    // `fw save` keeps the mode, and the saved file loads back unchanged.
    let saved = rig.ok(&["save"]);
    assert!(saved.contains("[syncookies]\nmode = \"always\""), "{saved}");
}
