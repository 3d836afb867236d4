//! Runs the parts and prints them: the machine, a table per part with each
//! figure's spread and the ratios (of medians), the targets
//! (reported, never asserted), or one JSON object; and `--compare`'s table.

use std::{fmt::Write as _, time::Instant};

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::{
    bulk::{self, BulkResult, Case},
    compare,
    conntrack::{self, CtCost},
    generator::default_cpu,
    live::{self, RowResult, Scenario},
    machine::Machine,
    spread::Spread,
    testrun::{self, PathCost, TestRunResults},
    up::{self, UpResult},
    BenchArgs, Part, Plan,
};

/// fw's flood marginal cost must be at most iptables' divided by this.
const IPTABLES_FACTOR: f64 = 15.0;
/// Every test_run path within this many times the empty program...
const PATH_FACTOR: f64 = 2.0;
/// ...except a reject that builds the ICMP error.
const REJECT_FACTOR: f64 = 3.0;
/// Established path with 1M flows vs 1k.
const CT_FACTOR: f64 = 1.3;
/// Bulk TCP: fw at least this share of a bare XDP_PASS program's Gb/s.
const BULK_SHARE: f64 = 0.95;
/// `fw up`, warm, at most this many ms.
const UP_MS: f64 = 250.0;

struct Report {
    machine: Machine,
    plan: Plan,
    quick: bool,
    cpu: usize,
    live: Vec<RowResult>,
    testrun: Option<TestRunResults>,
    conntrack: Vec<CtCost>,
    bulk: Vec<BulkResult>,
    up: Option<UpResult>,
    seconds: f64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::require_root()?;
    fw_testkit::install_interrupt_cleanup()?;
    let old = args.compare.as_deref().map(compare::load).transpose()?;
    let plan = Plan::new(args.quick);
    let machine = Machine::read();
    let cpu = args.cpu.unwrap_or_else(default_cpu);
    if cpu >= machine.cpus {
        bail!("--cpu {cpu}: this machine has CPUs 0-{}", machine.cpus - 1);
    }
    let start = Instant::now();
    let wanted = |p: Part| args.only.is_none_or(|o| o == p);
    let mut live = Vec::new();
    if wanted(Part::Live) {
        eprintln!("==> live path (veth pairs in namespaces)");
        live = live::run(&plan, cpu)?;
    }
    let mut testrun = None;
    if wanted(Part::Testrun) {
        eprintln!("==> per-path CPU cost (BPF_PROG_TEST_RUN)");
        testrun = Some(testrun::run(&plan, cpu)?);
    }
    let mut conntrack = Vec::new();
    if wanted(Part::Conntrack) {
        eprintln!("==> conntrack scaling");
        conntrack = conntrack::run(&plan, cpu)?;
    }
    let mut bulk = Vec::new();
    if wanted(Part::Bulk) {
        eprintln!("==> bulk TCP (iperf3 over veth)");
        bulk = bulk::run(&plan, cpu)?;
    }
    let mut up = None;
    if wanted(Part::Up) {
        eprintln!("==> fw up time");
        up = Some(up::run(&plan)?);
    }
    let report = Report {
        machine,
        plan,
        quick: args.quick,
        cpu,
        live,
        testrun,
        conntrack,
        bulk,
        up,
        seconds: start.elapsed().as_secs_f64(),
    };
    let mut json = report.json();
    if args.json {
        if let (Some(old), Some(f)) = (&old, &args.compare) {
            let c = compare::json(f, old, &json);
            json["compare"] = c;
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.table());
        if let (Some(old), Some(f)) = (&old, &args.compare) {
            print!("{}", compare::table(f, old, &json));
        }
    }
    Ok(())
}

/// ns per packet at `mpps`.
fn ns_per_packet(mpps: f64) -> f64 {
    1e3 / mpps
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "MISS"
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

impl Report {
    fn live_row(&self, key: &str) -> Option<&RowResult> {
        self.live.iter().find(|r| r.row.key == key)
    }

    /// `1/rate − 1/rate_empty` in ns.
    fn marginal(&self, r: &RowResult) -> f64 {
        let empty = self.live_row("empty_xdp_drop").map_or(f64::NAN, |e| e.mpps);
        ns_per_packet(r.mpps) - ns_per_packet(empty)
    }

    fn path_limit(name: &str) -> f64 {
        if name.starts_with("reject_v") {
            REJECT_FACTOR
        } else {
            PATH_FACTOR
        }
    }

    fn json(&self) -> Value {
        let mut live = Map::new();
        for r in &self.live {
            live.insert(r.row.key.into(), r.spread().json());
        }
        let mut tr = Map::new();
        if let Some(t) = &self.testrun {
            tr.insert("empty".into(), t.empty.json());
            for p in &t.paths {
                tr.insert(p.name.clone(), p.spread.json());
            }
        }
        let (mut ct, mut ct_random) = (Map::new(), Map::new());
        for c in &self.conntrack {
            ct.insert(c.entries.to_string(), c.spread.json());
            ct_random.insert(c.entries.to_string(), c.random.json());
        }
        let mut bulk = Map::new();
        for b in &self.bulk {
            bulk.insert(b.case.key().into(), b.gbps.json());
        }
        let mut up = Map::new();
        if let Some(u) = &self.up {
            let sp = &u.split;
            up.insert("fw_up".into(), u.wall.json());
            up.insert("fw_down".into(), u.down.json());
            for (k, v) in [
                ("straced_total", sp.total_ms),
                ("straced_prog_load", sp.prog_load_ms),
                ("straced_map_create", sp.map_create_ms),
                ("straced_attach", sp.attach_ms),
                ("straced_other_bpf", sp.other_bpf_ms),
                ("straced_lock_wait", sp.lock_wait_ms),
                ("straced_rest", sp.rest_ms()),
            ] {
                up.insert(k.into(), json!(v));
            }
        }
        let p = &self.plan;
        json!({
            "machine": self.machine.json(),
            "run": {
                "quick": self.quick,
                "cpu": self.cpu,
                "seconds": self.seconds,
                "live_runs": p.live_runs,
                "testrun_runs": p.testrun_runs,
                "bulk_runs": p.bulk_runs,
                "bulk_secs": p.bulk_secs,
                "up_runs": p.up_runs,
            },
            "live_mpps": live,
            "test_run_ns": tr,
            "conntrack_ns": ct,
            "conntrack_random_ns": ct_random,
            "bulk_gbps": bulk,
            "up_ms": up,
        })
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let p = &self.plan;
        let _ = writeln!(
            s,
            "fw bench ({}): {}, {} CPUs, kernel {}, pinned to CPU {}, load {} at start, {:.0} s",
            if self.quick { "--quick" } else { "full" },
            m.cpu_model,
            m.cpus,
            m.kernel,
            self.cpu,
            m.load,
            self.seconds
        );
        s.push_str(&m.details());
        if !self.live.is_empty() {
            self.live_table(&mut s);
        }
        if let Some(t) = &self.testrun {
            Self::testrun_table(t, &mut s);
        }
        if !self.conntrack.is_empty() {
            self.conntrack_table(&mut s);
        }
        if !self.bulk.is_empty() {
            self.bulk_table(&mut s);
        }
        if let Some(u) = &self.up {
            Self::up_table(u, &mut s);
        }
        self.targets(&mut s);
        let _ = writeln!(
            s,
            "\n(live: {} frames x {} runs per receiver; test_run: repeat {} x {} runs, {} calls per call-timed path in {} runs; bulk: {} runs x {} s; fw up: {} runs)",
            p.live_frames, p.live_runs, p.repeat, p.testrun_runs, p.per_call, p.testrun_runs,
            p.bulk_runs, p.bulk_secs, p.up_runs
        );
        s
    }

    fn live_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nLive: rig_tx (XDP_TX, live frames) -> veth -> receiver; median Mpps of {} runs (min-max)",
            self.plan.live_runs
        );
        let _ = writeln!(
            s,
            "{:<12} {:<18} {:>7} {:>11} {:>9} {:>12} {:>12} {:>8} {:>9}",
            "scenario",
            "receiver",
            "Mpps",
            "min-max",
            "x empty",
            "marginal ns",
            "+ns vs none",
            "veth rx",
            "counted"
        );
        let empty = self.live_row("empty_xdp_drop").map_or(f64::NAN, |e| e.mpps);
        let none = self.live_row("no_filter_established").map(|r| r.mpps);
        for r in &self.live {
            let scenario = match r.row.scenario {
                Scenario::Flood => "syn flood",
                Scenario::Established => "established",
            };
            let vs_none = match (r.row.scenario, none) {
                (Scenario::Established, Some(n)) => {
                    format!("{:.1}", ns_per_packet(r.mpps) - ns_per_packet(n))
                }
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<12} {:<18} {:>7.2} {:>11} {:>8.3}x {:>12.1} {:>12} {:>8} {:>9}",
                scenario,
                r.row.kind.label(),
                r.mpps,
                r.spread().range(2),
                r.mpps / empty,
                self.marginal(r),
                vs_none,
                pct(r.veth_rx, r.sent),
                pct(r.receiver, r.sent),
            );
        }
        let lost: u64 = self.live.iter().map(|r| r.tx_errors).sum();
        if lost > 0 {
            let _ = writeln!(
                s,
                "  ({lost} frames could not be handed to a receiver's ring)"
            );
        }
    }

    fn testrun_table(t: &TestRunResults, s: &mut String) {
        let _ = writeln!(s, "\nPer-path CPU cost: BPF_PROG_TEST_RUN, ns per packet");
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:>13} {:>9} {:<9} {:>9} {:>12}",
            "path", "ns", "min-max", "x empty", "method", "checked", "target"
        );
        let _ = writeln!(
            s,
            "{:<24} {:>8.1} {:>13} {:>8.2}x bulk",
            "empty (rig_drop)",
            t.empty_ns,
            t.empty.range(1),
            1.0
        );
        for p in &t.paths {
            let ratio = p.ns / t.empty_ns;
            let limit = Self::path_limit(&p.name);
            let checked = if p.counted == p.ran && p.action_ok {
                "ok".to_string()
            } else {
                format!("BAD {}", pct(p.counted, p.ran))
            };
            let _ = writeln!(
                s,
                "{:<24} {:>8.1} {:>13} {:>8.2}x {:<9} {:>9} {:>7} {:.0}x",
                p.name,
                p.ns,
                p.spread.range(1),
                ratio,
                if p.per_call { "per call" } else { "bulk" },
                checked,
                pass(ratio <= limit),
                limit
            );
        }
        let _ = writeln!(
            s,
            "  (per call: single-packet runs, corrected by the empty program's per-call cost of {:.1} ns)",
            t.empty_call_ns
        );
    }

    fn conntrack_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nConntrack scaling: established_v4 ns per packet by flows in the table"
        );
        let _ = writeln!(
            s,
            "{:>9} {:>10} {:>13} {:>8} {:>13} {:>13} {:>8}",
            "flows", "one flow", "min-max", "x 1k", "random flows", "min-max", "x 1k"
        );
        let base = self.conntrack.first();
        for c in &self.conntrack {
            let (b, br) = base.map_or((f64::NAN, f64::NAN), |b| (b.ns, b.random_ns));
            let _ = writeln!(
                s,
                "{:>9} {:>10.1} {:>13} {:>7.2}x {:>13.1} {:>13} {:>7.2}x",
                c.entries,
                c.ns,
                c.spread.range(1),
                c.ns / b,
                c.random_ns,
                c.random.range(1),
                c.random_ns / br
            );
        }
    }

    fn bulk_gbps(&self, case: Case) -> Option<&Spread> {
        self.bulk.iter().find(|b| b.case == case).map(|b| &b.gbps)
    }

    fn bulk_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nBulk TCP: iperf3, one stream, client -> veth -> server under the receiver, both on CPU {}; median Gb/s of {} runs of {} s",
            self.cpu, self.plan.bulk_runs, self.plan.bulk_secs
        );
        let _ = writeln!(
            s,
            "{:<20} {:>7} {:>13} {:>10} {:>11}",
            "receiver", "Gb/s", "min-max", "x XDP_PASS", "retransmits"
        );
        let pass = self.bulk_gbps(Case::XdpPass).map_or(f64::NAN, |g| g.median);
        for b in &self.bulk {
            let _ = writeln!(
                s,
                "{:<20} {:>7.2} {:>13} {:>9.3}x {:>11}",
                b.case.label(),
                b.gbps.median,
                b.gbps.range(2),
                b.gbps.median / pass,
                b.retransmits
            );
        }
        let _ = writeln!(
            s,
            "  (iptables and nftables as deployed, without an XDP program; the XDP_PASS row is what any XDP program costs on veth)"
        );
    }

    fn up_table(u: &UpResult, s: &mut String) {
        let _ = writeln!(
            s,
            "\nfw up IFACE (the fw binary, warm, in a bench namespace; fw down between runs)"
        );
        let _ = writeln!(
            s,
            "  fw up   median {:.0} ms (min-max {} ms, {} runs); fw down median {:.0} ms",
            u.wall.median,
            u.wall.range(0),
            u.wall.runs.len(),
            u.down.median
        );
        let sp = &u.split;
        let _ = writeln!(
            s,
            "  one run under strace -T -e trace=bpf,flock: {:.0} ms = BPF_PROG_LOAD (verifier) {:.0} ms ({} calls) + BPF_MAP_CREATE {:.0} ms ({}) + attach (BPF_LINK_CREATE) {:.1} ms ({}) + other bpf {:.1} ms ({}) + lock wait {:.1} ms + rest {:.0} ms",
            sp.total_ms,
            sp.prog_load_ms,
            sp.prog_loads,
            sp.map_create_ms,
            sp.map_creates,
            sp.attach_ms,
            sp.attaches,
            sp.other_bpf_ms,
            sp.other_bpf,
            sp.lock_wait_ms,
            sp.rest_ms()
        );
    }

    fn targets(&self, s: &mut String) {
        let _ = writeln!(s, "\nTargets (reported, not asserted)");
        if !self.live.is_empty() {
            let marginal = |key: &str| self.live_row(key).map_or(f64::NAN, |r| self.marginal(r));
            let (fw, xf, ipt) = (
                marginal("fw_reject_flood"),
                marginal("xdp_filter_drop"),
                marginal("iptables_seed_reject"),
            );
            let _ = writeln!(
                s,
                "  {}  fw flood marginal {:.1} ns <= xdp-filter's {:.1} ns",
                pass(fw <= xf),
                fw,
                xf
            );
            let _ = writeln!(
                s,
                "  {}  fw flood marginal {:.1} ns <= iptables' / {IPTABLES_FACTOR} = {:.1} ns (fw is {:.1}x cheaper)",
                pass(fw <= ipt / IPTABLES_FACTOR),
                fw,
                ipt / IPTABLES_FACTOR,
                ipt / fw
            );
        }
        if let Some(t) = &self.testrun {
            let ratio = |p: &PathCost| p.ns / t.empty_ns;
            let within = t
                .paths
                .iter()
                .filter(|p| ratio(p) <= Self::path_limit(&p.name))
                .count();
            let worst = t.paths.iter().max_by(|a, b| ratio(a).total_cmp(&ratio(b)));
            let _ = writeln!(
                s,
                "  {}  every test_run path <= {PATH_FACTOR}x empty (reject <= {REJECT_FACTOR}x): {} of {} within{}",
                pass(within == t.paths.len()),
                within,
                t.paths.len(),
                worst.map_or(String::new(), |w| format!(", highest {} {:.1}x", w.name, ratio(w)))
            );
        }
        if let (Some(fw), Some(pass_)) = (self.bulk_gbps(Case::Fw), self.bulk_gbps(Case::XdpPass)) {
            let r = fw.median / pass_.median;
            let _ = writeln!(
                s,
                "  {}  bulk TCP: fw {:.2} Gb/s >= {BULK_SHARE} x bare XDP_PASS's {:.2}: {:.3}x",
                pass(r >= BULK_SHARE),
                fw.median,
                pass_.median,
                r
            );
        }
        if let Some(u) = &self.up {
            let _ = writeln!(
                s,
                "  {}  fw up {:.0} ms <= {UP_MS:.0} ms (median, warm)",
                pass(u.wall.median <= UP_MS),
                u.wall.median
            );
        }
        if let (Some(first), Some(last)) = (self.conntrack.first(), self.conntrack.last()) {
            let r = last.ns / first.ns;
            let _ = writeln!(
                s,
                "  {}  conntrack {} vs {} flows: {:.2}x <= {CT_FACTOR}x (random flows: {:.2}x)",
                pass(r <= CT_FACTOR),
                last.entries,
                first.entries,
                r,
                last.random_ns / first.random_ns
            );
        }
    }
}
