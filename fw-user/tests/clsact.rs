//! The clsact fallback of the egress hook (kernels before 6.6 have no tcx):
//! `fw up --egress clsact` puts `fw_egress` on the clsact qdisc as a cls_bpf
//! filter, conntrack works the same through it, and `fw down` leaves the
//! qdisc as it found it, even after a `fw up` killed halfway.
//!
//! Run as root: `cargo test --release -p fw-user --test clsact -- --test-threads=1`

use std::time::Duration;

use fw_testkit::{
    command, kill_after, run_ok, spawn_tcp_listener, tcp_connect, timed, Outcome, Rig, Rng,
};

const PREFIX: &str = "fwflt";

const T: Duration = Duration::from_secs(2);

/// `tc -n <server ns> <args>`, stdout.
fn tc(rig: &Rig, args: &[&str]) -> String {
    run_ok(command("tc").arg("-n").arg(rig.pair.srv_ns()).args(args))
}

fn qdiscs(rig: &Rig) -> String {
    tc(rig, &["qdisc", "show", "dev", rig.veth()])
}

fn egress_filters(rig: &Rig) -> String {
    tc(rig, &["filter", "show", "dev", rig.veth(), "egress"])
}

/// The host under fw connects out and gets the SYN-ACK: only the egress
/// program can have let it in (conntrack.rs runs the full set of flows
/// through each hook).
fn connects_out(rig: &Rig) {
    let pair = &rig.pair;
    let _tcp = spawn_tcp_listener(pair.cli_path(), pair.cli_v4().into(), 9000).expect("listener");
    let out = tcp_connect(pair.srv_path(), pair.cli_v4().into(), 9000, T);
    assert_eq!(out, Outcome::Connected, "TCP out");
}

#[test]
fn clsact_egress_is_a_filter_there_and_down_removes_its_qdisc() {
    let rig = Rig::new(PREFIX);
    assert!(!qdiscs(&rig).contains("clsact"), "{}", qdiscs(&rig));
    let out = rig.up(&["--egress", "clsact"]);
    assert!(out.contains("egress clsact"), "{out}");
    let st = rig.status();
    assert_eq!(st["interfaces"][0]["egress"], "clsact", "{st}");
    assert_eq!(st["interfaces"][0]["attached"], true, "{st}");
    let egress_id = st["egress_prog_id"].as_u64().expect("egress id");
    let filters = egress_filters(&rig);
    assert!(
        filters.contains("fw_egress") && filters.contains(&format!(" id {egress_id} ")),
        "fw_egress (id {egress_id}) is a filter on clsact egress: {filters}"
    );
    assert!(qdiscs(&rig).contains("clsact"), "{}", qdiscs(&rig));
    assert!(rig.tcx_egress(rig.veth()).is_empty(), "nothing on tcx");
    assert!(
        rig.ok(&["status"]).contains("clsact"),
        "status names the hook"
    );

    connects_out(&rig);

    let ids = rig.prog_ids();
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "fw down");
    assert_eq!(egress_filters(&rig), "", "no filter left");
    assert!(
        !qdiscs(&rig).contains("clsact"),
        "the qdisc fw added is removed: {}",
        qdiscs(&rig)
    );
}

#[test]
fn a_clsact_qdisc_someone_else_made_is_left_as_it_was() {
    let rig = Rig::new(PREFIX);
    let veth = rig.veth().to_string();
    tc(&rig, &["qdisc", "add", "dev", &veth, "clsact"]);
    // Another tool's filter (this kernel has u32, not matchall).
    tc(
        &rig,
        &[
            "filter", "add", "dev", &veth, "egress", "protocol", "all", "u32", "match", "u32", "0",
            "0",
        ],
    );
    let theirs = egress_filters(&rig);
    rig.up(&["--egress", "clsact"]);
    assert!(egress_filters(&rig).contains("fw_egress"));
    connects_out(&rig);
    let ids = rig.prog_ids();
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "fw down");
    assert_eq!(egress_filters(&rig), theirs, "their filter stays, alone");
    assert!(qdiscs(&rig).contains("clsact"), "their qdisc stays");
}

#[test]
fn tcx_is_the_default_where_the_kernel_has_it() {
    let rig = Rig::new(PREFIX);
    let out = rig.up(&[]);
    assert!(out.contains("egress tcx"), "{out}");
    assert_eq!(rig.status()["interfaces"][0]["egress"], "tcx");
    rig.assert_attached_once(rig.veth(), "fw up");
    assert!(!qdiscs(&rig).contains("clsact"), "no qdisc added for tcx");
    rig.ok(&["down"]);
}

#[test]
fn killed_fw_up_on_clsact_is_repaired_and_down_leaves_nothing() {
    let rig = Rig::new(PREFIX);
    let veth = rig.veth().to_string();
    // fw stays loaded on another interface, so `fw up <veth>` is the attach
    // alone and the kills land in it (loading is the faults test's part).
    let other = rig.extra_iface("k");
    rig.ok(&["up", other.as_str()]);
    let mut rng = Rng::from_env("FW_FAULTS_SEED", 20_261_125);
    let args = ["up", veth.as_str(), "--egress", "clsact"];
    let (_, span) = timed(|| rig.ok(&args));
    rig.ok(&["down", veth.as_str()]);
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..24 {
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 5 / 4));
        let (finished, _) = kill_after(rig.command(&args), delay);
        let st = rig.status();
        let state = match st["interfaces"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == veth.as_str()))
        {
            None => "not listed",
            Some(i) if i["attached"] == true => "up",
            Some(_) => "half attached",
        };
        eprintln!("round {round}: killed after {delay:?} (finished: {finished}): {state}");
        *states.entry(state.to_string()).or_default() += 1;
        if round % 2 == 0 {
            // The next `fw up` finishes the job, or undoes the half of it.
            let out = rig.fw(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || (state == "up" && err.contains("already up")),
                "round {round} ({state}): fw up: {err}"
            );
            let filters = egress_filters(&rig);
            assert_eq!(
                filters.lines().filter(|l| l.contains("fw_egress")).count(),
                1,
                "round {round} ({state}): fw_egress once on clsact egress: {filters}"
            );
        }
        let down = rig.fw(&["down", veth.as_str()]);
        let err = String::from_utf8_lossy(&down.stderr);
        assert!(
            down.status.success() || (state == "not listed" && err.contains("not up on")),
            "round {round} ({state}): fw down: {err}"
        );
        assert_eq!(
            egress_filters(&rig),
            "",
            "round {round} ({state}): no filter left"
        );
        assert!(
            !qdiscs(&rig).contains("clsact"),
            "round {round} ({state}): no qdisc left: {}",
            qdiscs(&rig)
        );
    }
    eprintln!("states seen after a kill: {states:?}");
    let ids = rig.prog_ids();
    rig.ok(&["down"]);
    rig.assert_gone(&ids, "fw down at the end");
}

#[test]
fn interface_deleted_while_on_clsact() {
    let rig = Rig::new(PREFIX);
    let d = rig.extra_iface("c");
    rig.ok(&["up", d.as_str(), "--egress", "clsact"]);
    rig.up(&["--egress", "clsact"]);
    let ids = rig.prog_ids();
    rig.del_link(&d);
    let st = rig.status();
    let gone = st["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == d.as_str()))
        .unwrap_or_else(|| panic!("{d} still listed: {st}"));
    assert_eq!(gone["present"], false, "{st}");
    // The live interface still runs fw's filter.
    assert!(egress_filters(&rig).contains("fw_egress"));
    let down = rig.ok(&["down"]);
    assert!(down.contains(&format!("fw down on {d}")), "{down}");
    rig.assert_gone(&ids, "fw down after the interface vanished");
    assert_eq!(egress_filters(&rig), "", "no filter left");
    assert!(!qdiscs(&rig).contains("clsact"), "no qdisc left");
}

#[test]
fn an_ingress_qdisc_is_refused_not_mistaken_for_clsact() {
    let rig = Rig::new(PREFIX);
    let veth = rig.veth().to_string();
    // Same handle (ffff:) as clsact, but no egress hook.
    tc(&rig, &["qdisc", "add", "dev", &veth, "ingress"]);
    let err = rig.refused(
        &["up", veth.as_str(), "--egress", "clsact"],
        1,
        "an `ingress` qdisc where fw's egress hook needs clsact",
    );
    assert!(err.contains(&veth), "{err}");
    assert!(!rig.pins.path().exists(), "nothing loaded: {err}");
    assert_eq!(
        tc(&rig, &["filter", "show", "dev", &veth, "ingress"]),
        "",
        "nothing attached on ingress"
    );
    assert!(qdiscs(&rig).contains("qdisc ingress"), "their qdisc stays");
}
