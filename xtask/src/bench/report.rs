//! Runs the three parts and prints them: a table with ratios and the
//! issue's targets (reported, never asserted), or one JSON object.

use std::{fmt::Write as _, time::Instant};

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::{
    conntrack::{self, CtCost},
    generator::default_cpu,
    live::{self, RowResult, Scenario},
    testrun::{self, PathCost, TestRunResults},
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

struct Machine {
    cpu_model: String,
    cpus: usize,
    kernel: String,
    load: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        Machine {
            cpu_model,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into()),
            load: read("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

struct Report {
    machine: Machine,
    plan: Plan,
    quick: bool,
    cpu: usize,
    live: Vec<RowResult>,
    testrun: Option<TestRunResults>,
    conntrack: Vec<CtCost>,
    seconds: f64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::require_root()?;
    fw_testkit::install_interrupt_cleanup()?;
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
    let report = Report {
        machine,
        plan,
        quick: args.quick,
        cpu,
        live,
        testrun,
        conntrack,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
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
            live.insert(r.row.key.into(), json!(r.mpps));
        }
        let mut tr = Map::new();
        if let Some(t) = &self.testrun {
            tr.insert("empty".into(), json!(t.empty_ns));
            for p in &t.paths {
                tr.insert(p.name.clone(), json!(p.ns));
            }
        }
        let mut ct = Map::new();
        for c in &self.conntrack {
            ct.insert(c.entries.to_string(), json!(c.ns));
        }
        json!({ "live_mpps": live, "test_run_ns": tr, "conntrack_ns": ct })
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
        if !self.live.is_empty() {
            self.live_table(&mut s);
        }
        if let Some(t) = &self.testrun {
            Self::testrun_table(t, &mut s);
        }
        if !self.conntrack.is_empty() {
            self.conntrack_table(&mut s);
        }
        self.targets(&mut s);
        let _ = writeln!(
            s,
            "\n(live: {} frames x {} runs per receiver; test_run: repeat {} x {} runs, {} calls per call-timed path)",
            p.live_frames, p.live_runs, p.repeat, p.testrun_runs, p.per_call
        );
        s
    }

    fn live_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nLive: rig_tx (XDP_TX, live frames) -> veth -> receiver; median Mpps of {} runs",
            self.plan.live_runs
        );
        let _ = writeln!(
            s,
            "{:<12} {:<18} {:>7} {:>9} {:>12} {:>12} {:>8} {:>9}",
            "scenario",
            "receiver",
            "Mpps",
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
                "{:<12} {:<18} {:>7.2} {:>8.3}x {:>12.1} {:>12} {:>8} {:>9}",
                scenario,
                r.row.kind.label(),
                r.mpps,
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
            "{:<24} {:>8} {:>9} {:<9} {:>9} {:>12}",
            "path", "ns", "x empty", "method", "checked", "target"
        );
        let _ = writeln!(
            s,
            "{:<24} {:>8.1} {:>8.2}x bulk",
            "empty (rig_drop)", t.empty_ns, 1.0
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
                "{:<24} {:>8.1} {:>8.2}x {:<9} {:>9} {:>7} {:.0}x",
                p.name,
                p.ns,
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
            "{:>9} {:>12} {:>8} {:>16} {:>8}",
            "flows", "one flow", "x 1k", "random flows", "x 1k"
        );
        let base = self.conntrack.first().copied();
        for c in &self.conntrack {
            let (b, br) = base.map_or((f64::NAN, f64::NAN), |b| (b.ns, b.random_ns));
            let _ = writeln!(
                s,
                "{:>9} {:>12.1} {:>7.2}x {:>16.1} {:>7.2}x",
                c.entries,
                c.ns,
                c.ns / b,
                c.random_ns,
                c.random_ns / br
            );
        }
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
