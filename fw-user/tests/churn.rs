//! Proof under fire: 10,000 allow/deny changes (through the library, as
//! `fw allow` / `fw deny` make them) while traffic flows. No established
//! flow is cut — also not the one whose port is closed mid-churn — and no
//! packet to a port open throughout is refused; the probed port that is
//! toggled answers as its state of the moment says.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use fw_testkit::session::{self, EchoServer};
use fw_testkit::{
    fw_cmd, fw_up, require_root, spawn_tcp_listener, spawn_udp_echo, tcp_connect, udp_probe, Netns,
    Outcome,
};
use fw_user::{
    kernel::pins,
    model::policy::{PortRange, Proto},
    ops::{
        control::{allow, deny},
        persist::Save,
    },
};

/// Changes in the normal run (FW_TEST_LONG=1: twice as many).
fn changes() -> u64 {
    if std::env::var("FW_TEST_LONG").is_ok_and(|v| v == "1") {
        20_000
    } else {
        10_000
    }
}
/// Ports churned freely (nothing probes them).
const CHURNED: std::ops::Range<u16> = 8000..8100;
/// The probed port toggled in step with its probes.
const TOGGLED: u16 = 9000;
/// The port of a session that gets closed while the session runs.
const CLOSED_UNDER: u16 = 9001;
/// Every this many changes, the toggled port is opened, probed, closed, probed.
const TOGGLE_EVERY: u64 = 100;
const TICK: Duration = Duration::from_millis(20);
const LATE: Duration = Duration::from_secs(2);
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// Pause between rounds of probes of the open ports.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Bound of the whole churn: at least 10 changes a second. Each change
/// reads the whole port map back (BPF_MAP_LOOKUP_BATCH of 131,072 entries,
/// ~30 ms): minutes, not seconds.
fn churn_bound() -> Duration {
    Duration::from_secs(changes() / 10)
}

fn range(p: u16) -> [PortRange; 1] {
    [PortRange::single(p)]
}

#[test]
fn policy_churn_cuts_nothing_and_refuses_nothing() {
    require_root();
    let pair = Netns::pair("fwch");
    let any: IpAddr = "::".parse().expect("addr");
    let srv: IpAddr = pair.srv_v4().into();
    let srv6: IpAddr = pair.srv_v6().into();
    let _web = spawn_tcp_listener(pair.srv_path(), any, 80).expect("listener 80");
    let _udp = spawn_udp_echo(pair.srv_path(), any, 80).expect("udp 80");
    let _toggled = spawn_tcp_listener(pair.srv_path(), any, TOGGLED).expect("listener");
    let ssh = EchoServer::start(pair.srv_path(), any, 22);
    let closed_under = EchoServer::start(pair.srv_path(), any, CLOSED_UNDER);
    let pin_dir = fw_up(&pair, &[]);
    let pins = pins::PinDir::new(pin_dir.path());

    allow(&pins, Proto::Tcp, &range(CLOSED_UNDER), &[], Save::Runtime).expect("allow");
    let ssh_sess = session::connect(pair.cli_path(), srv, 22);
    let under_sess = session::connect(pair.cli_path(), srv6, CLOSED_UNDER);

    let stop = AtomicBool::new(false);
    let probes_ok = AtomicU64::new(0);
    let (churn, probe_failures, reports) = thread::scope(|s| {
        let talk: Vec<_> = [ssh_sess, under_sess]
            .into_iter()
            .map(|sess| {
                let stop = &stop;
                s.spawn(move || session::run(sess, TICK, LATE, u64::MAX, stop))
            })
            .collect();
        // Probes of the ports open throughout: a fresh TCP connection and a
        // UDP exchange, both families, every PROBE_EVERY.
        let probes = s.spawn(|| {
            let mut failures = Vec::new();
            let started = Instant::now();
            while !stop.load(Ordering::SeqCst) && started.elapsed() < churn_bound() {
                thread::sleep(PROBE_EVERY);
                for addr in [srv, srv6] {
                    let t = tcp_connect(pair.cli_path(), addr, 80, PROBE_WAIT);
                    let u = udp_probe(pair.cli_path(), addr, 80, PROBE_WAIT);
                    for (what, o, want) in
                        [("tcp", t, Outcome::Connected), ("udp", u, Outcome::Replied)]
                    {
                        if o == want {
                            probes_ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failures.push(format!("{what} {addr}:80: {o}"));
                        }
                    }
                }
            }
            failures
        });
        // Two workers on disjoint ports (a change reads and rewrites only
        // what it asks for, so they do not undo each other's).
        let workers: Vec<_> = [0, 1]
            .into_iter()
            .map(|w| {
                let (pair, pins) = (&pair, &pins);
                s.spawn(move || churn(w, pair, pins, srv))
            })
            .collect();
        let done: Vec<Churn> = workers
            .into_iter()
            .map(|w| w.join().expect("churn"))
            .collect();
        let churn = Churn {
            changes: done.iter().map(|c| c.changes).sum(),
            took: done.iter().map(|c| c.took).max().unwrap_or_default(),
            toggle_probes: done.iter().map(|c| c.toggle_probes).sum(),
            failures: done.into_iter().flat_map(|c| c.failures).collect(),
        };
        stop.store(true, Ordering::SeqCst);
        let reports: Vec<_> = talk
            .into_iter()
            .map(|t| t.join().expect("session"))
            .collect();
        (churn, probes.join().expect("probes"), reports)
    });

    println!(
        "{} changes in {:.1?} ({:.0}/s); {} probes of open ports answered, {} failed; \
         toggled port: {} probes as expected; sessions: {:?}",
        churn.changes,
        churn.took,
        churn.changes as f64 / churn.took.as_secs_f64(),
        probes_ok.load(Ordering::SeqCst),
        probe_failures.len(),
        churn.toggle_probes,
        reports
            .iter()
            .map(|r| (r.sent, r.echoed, r.worst))
            .collect::<Vec<_>>()
    );
    assert_eq!(churn.changes, changes(), "changes made");
    assert!(
        churn.failures.is_empty(),
        "toggled port: {:#?}",
        churn.failures
    );
    assert!(
        probe_failures.is_empty(),
        "open ports refused: {probe_failures:#?}"
    );
    assert!(probes_ok.load(Ordering::SeqCst) >= 40, "too few probes ran");
    for (r, port) in reports.iter().zip([22, CLOSED_UNDER]) {
        assert!(
            r.failures.is_empty(),
            "session on {port} cut: {:?}",
            r.failures
        );
        assert!(r.sent >= 50, "session on {port}: only {} messages", r.sent);
        assert_eq!(r.sent, r.echoed, "session on {port} lost messages");
    }
    // The session port closed mid-churn stays closed to new connections.
    let late = tcp_connect(pair.cli_path(), srv, CLOSED_UNDER, PROBE_WAIT);
    assert!(
        late.is_host_unreachable(),
        "new connection to a closed port: {late}"
    );
    assert!(ssh.segs_in() > 0 && closed_under.segs_in() > 0);
    let out = fw_cmd(pair.srv_path(), &pin_dir, ["down"]);
    assert!(
        out.status.success(),
        "fw down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Churn {
    changes: u64,
    took: Duration,
    toggle_probes: u64,
    failures: Vec<String>,
}

/// Makes worker `w`'s half of the changes: its churned ports (every other
/// one) flip one after another. Worker 0 also opens the toggled port every
/// `TOGGLE_EVERY` changes, probes it (must connect), closes it, probes it
/// (must be refused); worker 1 closes the session port halfway.
fn churn(w: u64, pair: &fw_testkit::Pair, pins: &pins::PinDir, srv: IpAddr) -> Churn {
    let started = Instant::now();
    let mut c = Churn {
        changes: 0,
        took: Duration::ZERO,
        toggle_probes: 0,
        failures: Vec::new(),
    };
    let mut open: BTreeMap<(bool, u16), bool> = BTreeMap::new();
    let total = changes() / 2;
    let mut k: u64 = 0;
    while c.changes < total && started.elapsed() < churn_bound() {
        k += 1;
        if w == 1 && c.changes == total / 2 {
            // Established flows on a port that closes go on (--force: the
            // guard would refuse, this process holds the accepted socket).
            deny(
                pins,
                Proto::Tcp,
                &range(CLOSED_UNDER),
                &[],
                true,
                Save::Runtime,
            )
            .expect("deny the session port");
            c.changes += 1;
            continue;
        }
        if w == 0 && k.is_multiple_of(TOGGLE_EVERY) && c.changes + 2 <= total {
            allow(pins, Proto::Tcp, &range(TOGGLED), &[], Save::Runtime)
                .expect("allow the toggled port");
            c.changes += 1;
            let o = tcp_connect(pair.cli_path(), srv, TOGGLED, PROBE_WAIT);
            if o == Outcome::Connected {
                c.toggle_probes += 1;
            } else {
                c.failures
                    .push(format!("change {}: open {TOGGLED} gave {o}", c.changes));
            }
            deny(pins, Proto::Tcp, &range(TOGGLED), &[], true, Save::Runtime)
                .expect("deny the toggled port");
            c.changes += 1;
            let o = tcp_connect(pair.cli_path(), srv, TOGGLED, PROBE_WAIT);
            if o.is_host_unreachable() {
                c.toggle_probes += 1;
            } else {
                c.failures
                    .push(format!("change {}: closed {TOGGLED} gave {o}", c.changes));
            }
            continue;
        }
        let udp = k.is_multiple_of(2);
        let half = (CHURNED.end - CHURNED.start) as u64 / 2;
        let port = CHURNED.start + (2 * ((k * 37) % half) + w) as u16;
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        let is_open = open.entry((udp, port)).or_insert(false);
        if *is_open {
            deny(pins, proto, &range(port), &[], false, Save::Runtime).expect("deny");
        } else {
            allow(pins, proto, &range(port), &[], Save::Runtime).expect("allow");
        }
        *is_open = !*is_open;
        c.changes += 1;
    }
    c.took = started.elapsed();
    c
}
