//! Proof under fire: a SYN flood at full generator speed to a closed port
//! while an interactive session on port 22 exchanges a message every 20 ms.
//! No message is lost or late, fw's counters account for every packet
//! exactly, and fw stays controllable during the flood.
mod support;

use std::{
    net::IpAddr,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use fw_testkit::{
    fw_cmd, fw_stats, fw_up, in_netns,
    packet::{Packet, Tcp, L4, SYN},
    reason_packets, require_root, Netns,
};
use support::{
    blast::Blaster,
    raw,
    session::{self, EchoServer},
};

/// How long the flood lasts (longer with FW_TEST_LONG=1).
fn flood_for() -> Duration {
    if std::env::var("FW_TEST_LONG").is_ok_and(|v| v == "1") {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }
}
/// Most frames one flood sends, whatever the speed.
const MAX_FRAMES: u64 = 50_000_000;
const TICK: Duration = Duration::from_millis(20);
/// An echo later than this counts as lost (generous: TCP may retransmit).
const LATE: Duration = Duration::from_secs(2);
/// A control command slower than this fails the test.
const CONTROL_BOUND: Duration = Duration::from_secs(5);

/// SYNs to closed port 23 from 1024 source ports of a peer address the
/// client does not own (so the client's stack ignores the answers).
fn syn_frames(cli_mac: [u8; 6], srv_mac: [u8; 6], v6: bool) -> Vec<Vec<u8>> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::77".parse().expect("addr"),
            fw_testkit::SRV_V6.into(),
        )
    } else {
        (
            "192.0.2.77".parse().expect("addr"),
            fw_testkit::SRV_V4.into(),
        )
    };
    (0..1024u16)
        .map(|i| {
            let l4 = L4::Tcp(Tcp {
                sport: 10000 + i,
                dport: 23,
                seq: i as u32,
                ack: 0,
                flags: SYN,
                options: Vec::new(),
                payload: Vec::new(),
                ..Tcp::default()
            });
            Packet::new(cli_mac, srv_mac, src, dst, l4)
                .frames()
                .remove(0)
        })
        .collect()
}

#[test]
fn syn_flood_spares_the_interactive_session() {
    require_root();
    let pair = Netns::pair("fwfl");
    let any: IpAddr = "::".parse().expect("addr");
    let server = EchoServer::start(pair.srv_path(), any, 22);
    let pins = fw_up(&pair, &[]);

    let mut sess = session::connect(pair.cli_path(), pair.srv_v4().into(), 22);
    session::exchange(&mut sess, 0, LATE).expect("warm-up message");
    // Let delayed ACKs go out before the counters are read.
    thread::sleep(Duration::from_millis(300));

    let cli_mac = {
        let v = pair.cli_veth().to_string();
        in_netns(pair.cli_path(), move || raw::mac_of(&v))
            .expect("setns")
            .expect("mac")
    };
    let srv_mac = {
        let v = pair.srv_veth().to_string();
        in_netns(pair.srv_path(), move || raw::mac_of(&v))
            .expect("setns")
            .expect("mac")
    };
    let mut frames = syn_frames(cli_mac, srv_mac, false);
    frames.extend(syn_frames(cli_mac, srv_mac, true));

    let before = fw_stats(pair.srv_path(), &pins);
    let segs_before = server.segs_in();
    let stop = AtomicBool::new(false);
    let (sent, report, control) = thread::scope(|s| {
        let flood = s.spawn(|| {
            let iface = pair.cli_veth().to_string();
            in_netns(pair.cli_path(), || {
                let b = Blaster::open(&iface).expect("packet socket");
                b.flood(&frames, MAX_FRAMES, flood_for(), &stop)
            })
            .expect("setns")
        });
        let talk = s.spawn(|| {
            let max = (flood_for().as_millis() / TICK.as_millis()) as u64 + 1000;
            session::run(sess.try_clone().expect("clone"), TICK, LATE, max, &stop)
        });
        // fw stays controllable while it is flooded.
        let mut control = Vec::new();
        thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        while started.elapsed() < flood_for().saturating_sub(Duration::from_secs(1)) {
            for args in [
                vec!["stats", "--json"],
                vec!["allow", "tcp", "2222"],
                vec!["deny", "tcp", "2222"],
                vec!["ports"],
            ] {
                let t = Instant::now();
                let out = fw_cmd(pair.srv_path(), &pins, &args);
                control.push((args.join(" "), out.status.success(), t.elapsed()));
            }
        }
        let sent = flood.join().expect("flood thread");
        // Let the session run a little past the flood, then stop it.
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        let report = talk.join().expect("session thread");
        (sent, report, control)
    });
    // Late ACKs and the last answers.
    thread::sleep(Duration::from_millis(500));
    let after = fw_stats(pair.srv_path(), &pins);
    let segs_after = server.segs_in();

    let d = |r: &str| reason_packets(&after, r) - reason_packets(&before, r);
    let rate = sent.frames as f64 / sent.elapsed.as_secs_f64();
    println!(
        "flood: {} SYNs in {:.1?} ({rate:.0}/s), {} refused by the full veth ring; \
         session: {} sent, {} echoed, worst round trip {:?}; \
         fw: reject {}, reject_ratelimited {}, established {}, server segments in {}",
        sent.frames,
        sent.elapsed,
        sent.refused,
        report.sent,
        report.echoed,
        report.worst,
        d("reject"),
        d("reject_ratelimited"),
        d("established"),
        segs_after - segs_before,
    );
    for (cmd, ok, took) in &control {
        assert!(*ok, "`fw {cmd}` failed during the flood");
        assert!(
            *took < CONTROL_BOUND,
            "`fw {cmd}` took {took:?} during the flood (bound {CONTROL_BOUND:?})"
        );
    }
    assert!(
        control.len() >= 8,
        "too few control commands ran during the flood: {control:?}"
    );
    assert!(
        report.failures.is_empty(),
        "session failures: {:?}",
        report.failures
    );
    assert!(
        report.sent >= (flood_for().as_millis() / TICK.as_millis()) as u64 / 2,
        "the session only sent {} messages",
        report.sent
    );
    assert_eq!(report.sent, report.echoed, "messages lost");
    assert!(
        sent.frames > 100_000,
        "the generator was too slow to be a flood: {sent:?}"
    );
    // Every flood frame that reached fw is counted once, as a reject.
    assert_eq!(
        d("reject") + d("reject_ratelimited"),
        sent.frames,
        "flood frames vs reject + reject_ratelimited"
    );
    assert!(d("reject") > 0, "some rejects were answered");
    // Every packet of the session that reached the server was established.
    assert_eq!(
        d("established"),
        segs_after - segs_before,
        "session packets vs established"
    );
    for r in ["port", "malformed", "martian", "fragment", "related"] {
        assert_eq!(d(r), 0, "unexpected `{r}` packets during the flood");
    }
    // The client's own stack may send a few multicast packets meanwhile (MLD
    // reports, router solicitations): dropped unanswered, nothing else.
    assert!(
        d("reject_silent") <= 16,
        "reject_silent: {}",
        d("reject_silent")
    );
    let out = fw_cmd(pair.srv_path(), &pins, ["down"]);
    assert!(
        out.status.success(),
        "fw down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(sess);
}
