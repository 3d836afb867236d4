//! Faults, in namespaces: `fw up` twice, `fw down` with nothing loaded, an
//! interface deleted while attached, the half states a killed `fw up` /
//! `fw down` / `fw apply` leaves (detected, reported, repaired), and a full
//! conntrack table.
//!
//! Run as root: `cargo test --release -p fw-user --test faults -- --test-threads=1`
//! (`FW_FAULTS_SEED` varies the kill points).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{Read as _, Write as _},
    net::IpAddr,
    time::Duration,
};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use fw_common::{IfaceMeta, PROG_EGRESS};
use fw_testkit::{
    kill_after, links_to,
    packet::{Fam, Packet},
    path_str, prog_alive, run_ok, spawn_tcp_listener, tcp_connect, tcp_session,
    testrun::{flow_key, TCX_NEXT},
    text, timed, Outcome, Rig, Rng,
};

const T: Duration = Duration::from_secs(2);
const PREFIX: &str = "fwflt";

/// The default seed of the kill points.
const KILL_SEED: u64 = 20_241_125;

#[test]
fn fw_up_twice_is_refused_and_changes_nothing() {
    let rig = Rig::new(PREFIX);
    let first = rig.up(&[]);
    assert!(
        !first.contains("repaired"),
        "a clean first `fw up` repairs nothing: {first}"
    );
    let wide = rig.file("wide.toml", "[ports]\ntcp = [\"1-1000\"]\n");
    let before = rig.status();
    let ports = rig.ok(&["ports", "--json"]);
    let veth = rig.veth().to_string();
    for args in [
        vec!["up", veth.as_str()],
        vec!["up", veth.as_str(), "--config", &path_str(&wide)],
        vec!["up", veth.as_str(), "--mode", "generic"],
    ] {
        rig.refused(
            &args,
            1,
            &format!("fw is already up on `{veth}`: run `fw down {veth}` first"),
        );
        assert_eq!(
            rig.ok(&["ports", "--json"]),
            ports,
            "{args:?}: policy untouched"
        );
        let after = rig.status();
        for k in [
            "interfaces",
            "ingress_prog_id",
            "egress_prog_id",
            "loaded_at",
            "stray_links",
        ] {
            assert_eq!(after[k], before[k], "{args:?}: status {k} unchanged");
        }
        rig.assert_attached_once(&veth, "after a refused second `fw up`");
    }
}

#[test]
fn fw_down_with_nothing_loaded_says_so_and_succeeds() {
    let rig = Rig::new(PREFIX);
    // Exit 0: the wanted state (nothing loaded) holds.
    let out = rig.ok(&["down"]);
    assert_eq!(out, "fw is not loaded; nothing to do\n");
    // Naming an interface fw is not on is an error (exit 1) that says so.
    let veth = rig.veth().to_string();
    rig.refused(&["down", &veth], 1, &format!("fw is not up on `{veth}`"));
    assert!(!rig.pins.path().exists(), "`fw down` created nothing");
    assert!(rig.status_text().starts_with("fw is not loaded"));
    // Also right after a full up and down.
    rig.up(&[]);
    let ids = rig.prog_ids();
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "after fw down");
    assert_eq!(rig.ok(&["down"]), "fw is not loaded; nothing to do\n");
}

#[test]
fn interface_deleted_while_attached() {
    let rig = Rig::new(PREFIX);
    let d1 = rig.extra_iface("a");
    let veth = rig.veth().to_string();
    rig.ok(&["up", veth.as_str(), d1.as_str()]);
    let ids = rig.prog_ids();
    rig.del_link(&veth);
    let st = rig.status();
    let ifs = st["interfaces"].as_array().expect("interfaces");
    let get = |n: &str| {
        ifs.iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("{n} not in status: {st}"))
    };
    assert_eq!(get(&veth)["present"], false, "{st}");
    assert_eq!(get(&d1)["present"], true, "{st}");
    let shown = rig.status_text();
    assert!(
        shown.starts_with("fw is DEGRADED")
            && shown.contains(&format!("{veth}: the interface is gone")),
        "{shown}"
    );
    assert_eq!(st["problems"][0]["problem"], "interface_gone", "{st}");
    rig.ok(&["stats"]);
    // Another interface can still be brought up, and the live one runs on.
    let d2 = rig.extra_iface("b");
    rig.ok(&["up", d2.as_str()]);
    for d in [&d1, &d2] {
        assert_eq!(rig.xdp_prog(d), Some(ids[0]), "XDP on {d}");
        assert_eq!(rig.tcx_egress(d), vec![ids[1]], "tcx egress on {d}");
    }
    let down = rig.ok(&["down"]);
    for n in [&veth, &d1, &d2] {
        assert!(down.contains(&format!("fw down on {n}")), "{down}");
    }
    rig.assert_gone(&ids, "fw down after the veth vanished");
}

#[test]
fn interface_made_again_can_be_brought_up_again() {
    let rig = Rig::new(PREFIX);
    let d = rig.extra_iface("r");
    rig.ok(&["up", d.as_str()]);
    rig.del_link(&d);
    let again = rig.extra_iface("r");
    assert_eq!(again, d);
    // Same name, new ifindex: the stale entry must not block it.
    let out = rig.ok(&["up", d.as_str()]);
    assert!(
        out.contains("repaired: dropped the entry of") && out.contains("deleted and made again"),
        "{out}"
    );
    rig.assert_attached_once(&d, "the interface made again");
    let st = rig.status();
    assert_eq!(st["interfaces"].as_array().map(Vec::len), Some(1), "{st}");
    let ids = rig.prog_ids();
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "fw down");
}

/// Clears the META entry of `dev`: what a `fw up` killed between pinning
/// its links and recording the interface leaves.
fn forget_iface(rig: &Rig, dev: &str) {
    let maps = rig.maps();
    let mut meta = maps.meta().expect("META");
    for m in meta.ifaces.iter_mut() {
        if fw_user::model::names::name_from_bytes(&m.name) == dev {
            *m = IfaceMeta::default();
        }
    }
    maps.set_meta(&meta).expect("set META");
}

#[test]
fn links_without_a_meta_entry_are_reported_and_repaired() {
    for next in ["up", "down"] {
        let rig = Rig::new(PREFIX);
        let veth = rig.veth().to_string();
        rig.up(&[]);
        let ids = rig.prog_ids();
        forget_iface(&rig, &veth);
        let st = rig.status();
        assert_eq!(st["stray_links"].as_array().map(Vec::len), Some(2), "{st}");
        let shown = rig.status_text();
        assert!(
            shown.contains("stray link") && shown.contains("interrupted `fw up`"),
            "{shown}"
        );
        if next == "up" {
            let out = rig.ok(&["up", &veth]);
            assert!(out.contains("repaired: detached"), "{out}");
            rig.assert_attached_once(&veth, "fw up after stray links");
            assert_eq!(rig.status()["stray_links"], serde_json::json!([]));
            rig.ok(&["down"]);
        } else {
            let out = rig.ok(&["down", &veth]);
            assert!(
                out.contains("repaired: detached") && out.contains(&format!("fw down on {veth}")),
                "{out}"
            );
        }
        rig.assert_gone(&ids, &format!("fw {next} after stray links"));
        assert_eq!(rig.xdp_prog(&veth), None);
        assert!(rig.tcx_egress(&veth).is_empty());
    }
}

#[test]
fn meta_entries_without_links_are_reported_and_repaired() {
    for next in ["up", "down"] {
        let rig = Rig::new(PREFIX);
        let veth = rig.veth().to_string();
        rig.up(&[]);
        let ids = rig.prog_ids();
        let idx = rig.status()["interfaces"][0]["ifindex"]
            .as_u64()
            .expect("ifindex");
        // A `fw down` killed between unpinning the XDP link and the rest.
        fs::remove_file(rig.lib_pins().xdp_link(idx as u32)).expect("unpin xdp link");
        assert_eq!(rig.xdp_prog(&veth), None, "unpinning detached XDP");
        let st = rig.status();
        assert_eq!(st["interfaces"][0]["attached"], false, "{st}");
        let shown = rig.status_text();
        assert!(
            shown.starts_with("fw is DEGRADED") && shown.contains("passes unfiltered"),
            "{shown}"
        );
        if next == "up" {
            let out = rig.ok(&["up", &veth]);
            assert!(out.contains("repaired: finished detaching"), "{out}");
            rig.assert_attached_once(&veth, "fw up after a half detach");
            rig.ok(&["down"]);
        } else {
            let out = rig.ok(&["down", &veth]);
            assert!(out.contains(&format!("fw down on {veth}")), "{out}");
        }
        rig.assert_gone(&ids, &format!("fw {next} after a half detach"));
        assert!(rig.tcx_egress(&veth).is_empty());
    }
}

#[test]
fn pins_without_meta_are_reported_and_removed() {
    for next in ["up", "down"] {
        let rig = Rig::new(PREFIX);
        let veth = rig.veth().to_string();
        rig.up(&[]);
        let ids = rig.prog_ids();
        // A `fw down` killed while removing the pin dir (META went first).
        fs::remove_file(rig.lib_pins().map(fw_common::maps::META)).expect("unpin META");
        let st = rig.status();
        assert_eq!(
            (st["loaded"].clone(), st["leftovers"].clone()),
            (false.into(), true.into()),
            "{st}"
        );
        let shown = rig.status_text();
        assert!(shown.contains("leftovers of an interrupted"), "{shown}");
        let out = rig.ok(&[next, veth.as_str()][..if next == "up" { 2 } else { 1 }]);
        assert!(out.contains("repaired: removed the leftovers"), "{out}");
        if next == "up" {
            rig.assert_attached_once(&veth, "fw up over leftovers");
            let new = rig.prog_ids();
            rig.ok(&["down"]);
            rig.assert_gone(&new, "fw down");
        }
        rig.assert_gone(&ids, &format!("fw {next} over leftovers"));
    }
}

/// What `fw status --json` says about a possibly half-made fw, in a word.
fn state_of(st: &serde_json::Value, veth: &str) -> String {
    if st["loaded"] == false {
        return if st["leftovers"] == true {
            "leftovers"
        } else {
            "not loaded"
        }
        .into();
    }
    if st["stray_links"].as_array().is_some_and(|a| !a.is_empty()) {
        return "stray links".into();
    }
    match st["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == veth))
    {
        None => "loaded, not attached".into(),
        Some(i) if i["attached"] == false => "half detached".into(),
        Some(_) => "up".into(),
    }
}

#[test]
fn killed_fw_up_or_down_leaves_a_state_the_next_command_repairs() {
    let rig = Rig::new(PREFIX);
    let veth = rig.veth().to_string();
    let mut rng = Rng::from_env("FW_FAULTS_SEED", KILL_SEED);
    let (_, up_time) = timed(|| rig.up(&[]));
    let (_, down_time) = timed(|| rig.ok(&["down"]));
    eprintln!("fw up takes {up_time:?}, fw down {down_time:?}");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids: BTreeSet<u32> = BTreeSet::new();
    for round in 0..16 {
        let kill_down = round % 4 == 3;
        let (args, span) = if kill_down {
            rig.ok(&["up", &veth]);
            ids.extend(rig.prog_ids());
            (vec!["down"], down_time)
        } else {
            (vec!["up", veth.as_str()], up_time)
        };
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 5 / 4));
        let (finished, _) = kill_after(rig.command(&args), delay);
        ids.extend(rig.prog_ids());
        // Whatever the kill left, status answers and says what it is.
        let st = rig.status();
        let state = state_of(&st, &veth);
        eprintln!(
            "round {round}: `fw {}` killed after {delay:?} (finished: {finished}): {state}",
            args.join(" ")
        );
        *seen.entry(state.clone()).or_default() += 1;
        let shown = rig.status_text();
        assert_eq!(
            shown.starts_with("fw is DEGRADED") || shown.contains("\nbut "),
            st["health"] == "degraded",
            "round {round} ({state}): {shown}"
        );
        assert_eq!(
            st["health"] == "degraded",
            !matches!(state.as_str(), "up" | "not loaded" | "loaded, not attached"),
            "round {round} ({state}): {st}"
        );
        // The next command finishes the job, or undoes it.
        if round % 2 == 0 {
            let out = rig.fw(&["up", veth.as_str()]);
            let err = text(&out.stderr);
            assert!(
                out.status.success() || (state == "up" && err.contains("already up")),
                "round {round} ({state}): fw up: {err}"
            );
            rig.assert_attached_once(&veth, &format!("round {round} ({state}): after fw up"));
            ids.extend(rig.prog_ids());
        }
        rig.ok(&["down"]);
        let all: Vec<u32> = ids.iter().copied().collect();
        rig.assert_gone(&all, &format!("round {round} ({state}): after fw down"));
        assert_eq!(rig.xdp_prog(&veth), None, "round {round}: no XDP left");
        assert!(
            rig.tcx_egress(&veth).is_empty(),
            "round {round}: no tcx left"
        );
    }
    eprintln!("states seen after a kill: {seen:?}");
}

const WIDE: &str = "[ports]\ntcp = [22, 80, \"10000-60000\"]\nudp = [80, \"10000-60000\"]\n";
const SEED: &str = "[ports]\ntcp = [22, 80]\nudp = [80]\n";

#[test]
fn killed_fw_apply_is_reported_and_the_next_apply_finishes_it() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let wide = rig.file("wide.toml", WIDE);
    let seed = rig.file("seed.toml", SEED);
    let (wide, seed) = (path_str(&wide), path_str(&seed));
    let seed_ports = rig.ok(&["ports", "--json"]);
    let (_, apply_time) = timed(|| rig.ok(&["apply", &wide]));
    let wide_ports = rig.ok(&["ports", "--json"]);
    rig.ok(&["apply", &seed]);
    eprintln!("fw apply of 100k port changes takes {apply_time:?}");
    let mut rng = Rng::from_env("FW_FAULTS_SEED", KILL_SEED);
    let mut interrupted = 0;
    // Kill delays are drawn from a window that narrows onto the map writes:
    // a kill that left the old policy was too early, one that left the new
    // policy too late. Bounded in rounds; at least 8, until two kills land.
    let (mut lo, mut hi) = (0u64, apply_time.as_micros() as u64 * 3 / 2);
    let mut round = 0;
    while round < 40 && (round < 8 || interrupted < 2) {
        let (file, want, old) = if round % 2 == 0 {
            (&wide, &wide_ports, &seed_ports)
        } else {
            (&seed, &seed_ports, &wide_ports)
        };
        if hi - lo < 200 {
            (lo, hi) = (lo.saturating_sub(500), hi + 500);
        }
        let delay = Duration::from_micros(lo + rng.below(hi - lo));
        let (finished, _) = kill_after(rig.command(&["apply", file.as_str()]), delay);
        let st = rig.status();
        let left = rig.ok(&["ports", "--json"]);
        if let Some(w) = st["interrupted_apply"].as_str() {
            interrupted += 1;
            assert!(
                !finished,
                "round {round}: a finished apply reported as interrupted: {w}"
            );
            assert!(
                w.contains(&format!("`fw apply {file}`")) && w.contains("part old, part new"),
                "round {round}: {w}"
            );
            assert!(rig.status_text().contains("`fw apply"));
        } else if &left == want {
            hi = delay.as_micros() as u64;
        } else {
            assert_eq!(&left, old, "round {round}: not interrupted, so old or new");
            lo = delay.as_micros() as u64;
        }
        eprintln!(
            "round {round}: killed after {delay:?}: {}",
            if st["interrupted_apply"].is_string() {
                "interrupted"
            } else if &left == want {
                "done"
            } else {
                "not started"
            }
        );
        // Applying the file again leaves exactly its policy, and no warning.
        let out = rig.fw(&["apply", file.as_str()]);
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        if st["interrupted_apply"].is_string() {
            assert!(
                text(&out.stderr).contains("was interrupted"),
                "round {round}: {}",
                text(&out.stderr)
            );
        }
        assert_eq!(&rig.ok(&["ports", "--json"]), want, "round {round}");
        assert_eq!(rig.status()["interrupted_apply"], serde_json::Value::Null);
        round += 1;
    }
    assert!(
        interrupted > 0,
        "no kill landed while `fw apply` wrote the maps in {round} rounds"
    );
}

#[test]
fn killed_fw_apply_confirm_is_reported() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let wide = path_str(&rig.file("wide.toml", WIDE));
    let seed_ports = rig.ok(&["ports", "--json"]);
    for ending in ["confirm", "restore"] {
        let mut child = rig
            .command(&["apply", wide.as_str(), "--confirm", "120"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Kill in the countdown, not while the maps are written (that is the
        // other report, "interrupted while changing the policy", tested by
        // `killed_fw_apply_is_reported_and_the_next_apply_finishes_it`): part
        // of the new policy shows in `fw ports` long before the apply is
        // done, so wait for the countdown's own line, printed once it is.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if line.starts_with("new config applied") && tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("apply --confirm never started its countdown: {e}"));
        assert!(rig.ok(&["ports"]).contains("10000-60000"), "{line}");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        let st = rig.status();
        let w = st["interrupted_apply"]
            .as_str()
            .unwrap_or_else(|| panic!("not reported: {st}"));
        assert!(
            w.contains("--confirm") && w.contains("will not be rolled back"),
            "{w}"
        );
        let saved = w
            .rsplit("`fw apply ")
            .next()
            .and_then(|s| s.split('`').next())
            .unwrap_or_else(|| panic!("no saved config named in: {w}"))
            .to_string();
        let meta = fs::metadata(&saved).unwrap_or_else(|e| panic!("{saved}: {e}"));
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077,
            0,
            "{saved} is root-only"
        );
        if ending == "confirm" {
            let out = rig.ok(&["confirm"]);
            assert!(out.contains("had died"), "{out}");
            assert!(rig.ok(&["ports"]).contains("10000-60000"));
            rig.ok(&["apply", &path_str(&rig.file("seed.toml", SEED))]);
        } else {
            let out = rig.fw(&["apply", &saved]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(
                rig.ok(&["ports", "--json"]),
                seed_ports,
                "the saved config restores the seed"
            );
        }
        assert_eq!(
            rig.status()["interrupted_apply"],
            serde_json::Value::Null,
            "{ending}"
        );
    }
}

#[test]
fn prog_helpers_see_the_kernel() {
    // The checks above rest on these: a loaded fw's programs are alive and
    // held by one link each; after `fw down` they are gone.
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let ids = rig.prog_ids();
    assert!(
        ids.iter().all(|&i| prog_alive(i) && links_to(i) == 1),
        "{ids:?}"
    );
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "fw down");
}

/// Host-sent UDP from port `p` to the peer's port 53, and the conntrack key
/// fw_egress files it under (the reply as ingress sees it).
fn outbound_udp(p: u16) -> (Vec<u8>, fw_common::FlowKey) {
    let frame = Packet::udp(Fam::V4, 53, p).outbound().frame();
    (frame, flow_key(Fam::V4, fw_common::IPPROTO_UDP, 53, p))
}

#[test]
fn full_conntrack_table_evicts_the_oldest_and_fw_keeps_answering() {
    const ENTRIES: u32 = 1024;
    const FLOWS: u32 = 10 * ENTRIES;
    const CHUNK: u32 = 512;
    let rig = Rig::new(PREFIX);
    let cfg = rig.file(
        "small.toml",
        &format!("{SEED}[conntrack]\nentries = {ENTRIES}\n"),
    );
    rig.up(&["--config", &path_str(&cfg)]);
    let any: IpAddr = "::".parse().expect("addr");
    let _ssh = spawn_tcp_listener(rig.pair.srv_path(), any, 22).expect("listener 22");
    // A port the server's policy keeps closed: replies from it pass only
    // while conntrack knows the flow the server opened.
    let _peer = spawn_tcp_listener(rig.pair.cli_path(), any, 5555).expect("listener 5555");
    let egress =
        SchedClassifier::from_pin(rig.lib_pins().prog(PROG_EGRESS)).expect("pinned fw_egress");
    let run_egress = |frame: &[u8]| {
        let mut out = vec![0u8; 256];
        let r = egress
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("test_run of the pinned fw_egress: {e}"));
        assert_eq!(r.return_value as i32, TCX_NEXT);
    };
    let maps = rig.maps();
    let cli: IpAddr = rig.pair.cli_v4().into();
    // The flood of new flows runs while an outbound TCP session keeps
    // talking; it checks each round trip and whether its entry survives.
    let session = tcp_session(
        rig.pair.srv_path(),
        cli,
        5555,
        Duration::from_secs(3),
        |mut s| {
            let local = s.local_addr().expect("local addr").port();
            let key = flow_key(Fam::V4, fw_common::IPPROTO_TCP, 5555, local);
            let mut kept = Vec::new();
            for chunk in 0..FLOWS / CHUNK {
                for i in chunk * CHUNK..(chunk + 1) * CHUNK {
                    run_egress(&outbound_udp(20_000 + i as u16).0);
                }
                kept.push(
                    maps.conntrack_entries()
                        .expect("CONNTRACK")
                        .iter()
                        .any(|(k, _)| *k == key),
                );
                let msg = format!("round {chunk}\n");
                s.write_all(msg.as_bytes()).expect("write");
                let mut buf = vec![0u8; msg.len()];
                s.read_exact(&mut buf)
                    .unwrap_or_else(|e| panic!("echo {chunk} lost: {e}"));
            }
            kept
        },
    );
    let kept = session.unwrap_or_else(|o| panic!("outbound session to the peer: {o}"));
    eprintln!(
        "the talking outbound flow was in the table after {} of {} flood chunks \
         (fw_egress files it again as the host sends)",
        kept.iter().filter(|&&k| k).count(),
        kept.len()
    );
    let live: Vec<fw_common::FlowKey> = maps
        .conntrack_entries()
        .expect("CONNTRACK")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        live.len() <= ENTRIES as usize,
        "{} entries in a table of {ENTRIES}",
        live.len()
    );
    let present = |r: std::ops::Range<u32>| {
        r.filter(|&i| live.contains(&outbound_udp(20_000 + i as u16).1))
            .count()
    };
    let newest = present(FLOWS - CHUNK..FLOWS);
    let oldest = present(0..ENTRIES);
    eprintln!("of the newest {CHUNK} flows {newest} are tracked, of the oldest {ENTRIES} {oldest}");
    assert_eq!(newest, CHUNK as usize, "the newest flows are all tracked");
    assert!(
        oldest <= ENTRIES as usize / 100,
        "the oldest flows were evicted ({oldest} left)"
    );
    // fw still answers, quickly, and says how full the table is.
    let (st, t) = timed(|| rig.status());
    assert!(t < Duration::from_secs(5), "fw status took {t:?}");
    assert_eq!(st["conntrack_max_entries"], ENTRIES);
    assert!(
        st["conntrack_entries"]
            .as_u64()
            .is_some_and(|n| n <= ENTRIES as u64),
        "{st}"
    );
    // Every flow beyond the table's size was evicted and counted as such
    // (the LRU may evict a little before the table is completely full).
    let evicted = st["conntrack_evicted"]
        .as_u64()
        .expect("conntrack_evicted in status");
    let least = (FLOWS - ENTRIES) as u64;
    assert!(
        (least..=FLOWS as u64).contains(&evicted),
        "evictions counted: {evicted}, expected {least} to {FLOWS}: {st}"
    );
    let listed = rig.ok(&["conntrack", "--json"]);
    assert!(serde_json::from_str::<serde_json::Value>(&listed)
        .is_ok_and(|v| v.as_array().is_some_and(|a| a.len() <= ENTRIES as usize)));
    // New flows work both ways.
    let srv: IpAddr = rig.pair.srv_v4().into();
    assert_eq!(
        tcp_connect(rig.pair.cli_path(), srv, 22, T),
        Outcome::Connected
    );
    let again = tcp_session(rig.pair.srv_path(), cli, 5555, T, |mut s| {
        s.write_all(b"new\n").and_then(|()| {
            let mut b = [0u8; 4];
            s.read_exact(&mut b).map(|()| b)
        })
    });
    assert!(
        matches!(again, Ok(Ok(b)) if &b == b"new\n"),
        "a new outbound flow after the flood: {again:?}"
    );
}

/// Runs every command of `batch` at once; returns their outputs.
fn all_at_once(rig: &Rig, batch: &[Vec<String>]) -> Vec<std::process::Output> {
    let children: Vec<_> = batch
        .iter()
        .map(|args| rig.command(args).spawn().expect("spawn fw"))
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait fw"))
        .collect()
}

#[test]
fn concurrent_commands_take_turns_and_lose_nothing() {
    let rig = Rig::new(PREFIX);
    let mut ifaces = vec![rig.veth().to_string()];
    for tag in ["p", "q", "r"] {
        ifaces.push(rig.extra_iface(tag));
    }
    // Four `fw up` at once on one pin dir: one loads, all attach.
    let ups: Vec<Vec<String>> = ifaces
        .iter()
        .map(|i| vec!["up".to_string(), i.clone()])
        .collect();
    for (out, args) in all_at_once(&rig, &ups).iter().zip(&ups) {
        assert!(out.status.success(), "fw {args:?}: {}", text(&out.stderr));
    }
    let st = rig.status();
    assert_eq!(
        st["interfaces"].as_array().map(Vec::len),
        Some(4),
        "all four listed: {st}"
    );
    let ids = rig.prog_ids();
    assert_eq!(ids.len(), 2, "one load: {ids:?}");
    for i in &ifaces {
        assert_eq!(rig.xdp_prog(i), Some(ids[0]), "XDP on {i}");
        assert_eq!(rig.tcx_egress(i), vec![ids[1]], "tcx egress on {i}");
    }
    assert_eq!(links_to(ids[0]), 4, "a link per interface holds fw_ingress");
    assert_eq!(links_to(ids[1]), 4, "a link per interface holds fw_egress");
    // Sixteen `fw allow` at once: every port ends up open.
    let ports: Vec<u16> = (0..16).map(|k| 20_000 + k * 7).collect();
    let allows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| vec!["allow".into(), "tcp".into(), p.to_string()])
        .collect();
    for (out, args) in all_at_once(&rig, &allows).iter().zip(&allows) {
        assert!(out.status.success(), "fw {args:?}: {}", text(&out.stderr));
    }
    let open: serde_json::Value =
        serde_json::from_str(&rig.ok(&["ports", "--json"])).expect("ports JSON");
    for p in &ports {
        assert!(
            open.to_string().contains(&p.to_string()),
            "tcp {p} open: {open}"
        );
    }
    // Four `fw down` at once: all detached, fw unloaded.
    let downs: Vec<Vec<String>> = ifaces
        .iter()
        .map(|i| vec!["down".to_string(), i.clone()])
        .collect();
    for (out, args) in all_at_once(&rig, &downs).iter().zip(&downs) {
        assert!(out.status.success(), "fw {args:?}: {}", text(&out.stderr));
    }
    rig.assert_gone(&ids, "after four fw down at once");
}

#[test]
fn a_held_lock_makes_changes_wait_then_fail_and_reads_go_on() {
    let rig = Rig::new(PREFIX);
    rig.up(&[]);
    let before = rig.ok(&["ports", "--json"]);
    let held = fw_user::ops::lock::exclusive(Duration::from_secs(5)).expect("take the lock");
    let (out, took) = timed(|| rig.fw(&["allow", "tcp", "8080", "--wait", "1"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("another fw command (pid {})", std::process::id()))
            && err.contains("try again when it is done"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(1), "waited {took:?}");
    // `apply --confirm` that cannot take the lock changed nothing, so it
    // rolls nothing back (a rollback would undo the holder's work).
    let wide = path_str(&rig.file("wide.toml", WIDE));
    let out = rig.fw(&["apply", &wide, "--wait", "1", "--confirm", "30"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another fw command") && !err.contains("roll"),
        "{err}"
    );
    assert_eq!(rig.status()["interrupted_apply"], serde_json::Value::Null);
    // Reading needs no lock.
    assert_eq!(rig.ok(&["ports", "--json"]), before, "policy untouched");
    rig.status_text();
    // Once released, a waiting command goes through.
    let waiting = rig
        .command(&["allow", "--wait", "10", "tcp", "8080"])
        .spawn()
        .expect("spawn fw");
    std::thread::sleep(Duration::from_millis(700));
    drop(held);
    let out = waiting.wait_with_output().expect("wait fw");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("waiting for another fw command"),
        "it said it waited: {}",
        text(&out.stderr)
    );
    assert!(rig.ok(&["ports"]).contains("8080"));
}

/// Makes one kind of hole in a running fw on `veth`.
fn make_hole(rig: &Rig, problem: &str, ifindex: u32) {
    let pins = rig.lib_pins();
    let ids = rig.prog_ids();
    let detach = |prog: u32| {
        let link = rig.link_of(prog).to_string();
        run_ok(fw_testkit::command("bpftool").args(["link", "detach", "id", &link]));
    };
    match problem {
        "ingress_link_missing" => fs::remove_file(pins.xdp_link(ifindex)).expect("rm xdp link"),
        "ingress_detached" => detach(ids[0]),
        "egress_link_missing" => fs::remove_file(pins.tc_link(ifindex)).expect("rm tc link"),
        "egress_detached" => detach(ids[1]),
        "program_pin_missing" => {
            fs::remove_file(pins.prog(fw_common::PROG_INGRESS)).expect("rm program pin")
        }
        _ => unreachable!("{problem}"),
    }
}

#[test]
fn status_says_degraded_for_every_hole_and_exits_3() {
    let rig = Rig::new(PREFIX);
    let veth = rig.veth().to_string();
    let any: IpAddr = "::".parse().expect("addr");
    let _closed = spawn_tcp_listener(rig.pair.srv_path(), any, 8080).expect("listener 8080");
    let srv: IpAddr = rig.pair.srv_v4().into();
    for problem in [
        "ingress_link_missing",
        "ingress_detached",
        "egress_link_missing",
        "egress_detached",
        "program_pin_missing",
    ] {
        rig.up(&[]);
        let st = rig.status();
        assert_eq!(st["health"], "ok", "{problem}: before: {st}");
        assert_eq!(st["problems"], serde_json::json!([]), "{st}");
        assert!(rig.status_text().starts_with("fw is up"));
        let ifindex = st["interfaces"][0]["ifindex"].as_u64().expect("ifindex") as u32;
        make_hole(&rig, problem, ifindex);

        let st = rig.status();
        assert_eq!(st["health"], "degraded", "{problem}: {st}");
        let found = st["problems"].as_array().expect("problems");
        assert_eq!(found.len(), 1, "{problem}: {st}");
        assert_eq!(found[0]["problem"], problem, "{st}");
        let on_iface = problem != "program_pin_missing";
        assert_eq!(
            found[0]["interface"],
            if on_iface {
                veth.as_str().into()
            } else {
                serde_json::Value::Null
            },
            "{st}"
        );
        let shown = rig.status_text();
        assert!(
            shown.starts_with("fw is DEGRADED") && shown.contains("1 problem"),
            "{problem}: {shown}"
        );
        // The holes in the ingress filter are real: the closed port answers.
        let got = tcp_connect(rig.pair.cli_path(), srv, 8080, T);
        if problem.starts_with("ingress") {
            assert_eq!(got, Outcome::Connected, "{problem}: traffic passes");
        } else {
            assert!(
                got.is_host_unreachable(),
                "{problem}: still filtered: {got}"
            );
        }
        // `fw down` cleans up whatever is left.
        rig.ok(&["down"]);
        assert_eq!(rig.status()["health"], "not_loaded");
    }
}

#[test]
fn another_fw_up_counts_no_conntrack_evictions() {
    let rig = Rig::new(PREFIX);
    let any: IpAddr = "::".parse().expect("addr");
    let _ssh = spawn_tcp_listener(rig.pair.srv_path(), any, 22).expect("listener 22");
    let srv: IpAddr = rig.pair.srv_v4().into();
    let extra = [rig.extra_iface("e"), rig.extra_iface("f")];
    // One session, open across three `fw up`: each seeds it again.
    let (seeded, st, snap) = tcp_session(rig.pair.cli_path(), srv, 22, T, |_s| {
        let mut seeded = vec![rig.up(&[])];
        for x in &extra {
            seeded.push(rig.ok(&["up", x.as_str()]));
        }
        let snap = fw_user::watch::metrics::Snapshot::collect(&rig.maps()).expect("metrics");
        (seeded, rig.status(), snap)
    })
    .unwrap_or_else(|o| panic!("session to port 22: {o}"));
    for out in &seeded {
        assert!(out.contains("1 existing flow(s) seeded"), "{out}");
    }
    assert_eq!(st["conntrack_entries"], 1, "{st}");
    assert_eq!(st["conntrack_evicted"], 0, "no eviction happened: {st}");
    assert_eq!((snap.conntrack_entries, snap.conntrack_evicted), (1, 0));
    let text = fw_user::watch::metrics::encode(snap).expect("encode");
    assert!(text.contains("fw_conntrack_evictions_total 0\n"), "{text}");
}
