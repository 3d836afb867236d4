//! CPU cost of each of fw's verdict paths: `fw_ingress` through
//! BPF_PROG_TEST_RUN (no interface, no traffic) next to `rig_drop`, the
//! empty program, loaded from the same object in the same run.
//!
//! Two methods:
//! - bulk: one call with `repeat` = N, for paths that leave the packet and
//!   fw's state as they found them (the kernel reruns the same buffer, so a
//!   path that rewrites the packet would see its own output next time);
//! - per call: N calls of one packet each, for the paths that cannot be
//!   repeated in place: `reject` builds the ICMP error over the packet, and
//!   `port` records the flow (its next packet would be `established`; the
//!   entry is removed between calls, outside the timed region). The kernel
//!   times each call; what a single call adds over a bulk one (timer reads,
//!   colder caches) is measured on the empty program the same way and taken
//!   out: ns = empty_bulk + (path_per_call - empty_per_call).
//!
//! Every path is checked: the program's return value and the counter of
//! the reason it must be counted under.

use std::{net::IpAddr, time::Instant};

use anyhow::{bail, Context, Result};
use aya::{
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use fw_common::{
    FlowKey, FlowValue, Reason, CT_F_REPLIED, CT_TCP_ESTABLISHED, IPPROTO_TCP, PROG_INGRESS,
};
use fw_testkit::PinDir as TestPinDir;
use fw_user::{
    kernel::{
        clock::kernel_now_ns,
        load,
        maps::{CtTable, FwMaps},
        pins::PinDir,
    },
    model::config::Config,
    ops::reconfigure::apply_config,
};

use super::{
    frames::{self, CLOSED_PORT, OPEN_PORT, PEER_PORT},
    generator::pin_cpu,
    paths::{self, Method},
    spread::Spread,
    Plan,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
const EMPTY: &str = "rig_drop";

/// fw loaded and pinned (nothing attached) with `rig_drop` next to it.
pub struct Loaded {
    ebpf: Ebpf,
    pub maps: FwMaps,
    pins: PinDir,
    // Removes the pins (and so the maps) when dropped, after `ebpf`.
    _pins: TestPinDir,
}

impl Loaded {
    pub fn new(cfg: &Config) -> Result<Loaded> {
        let test_pins = TestPinDir::new();
        let pins = PinDir::new(test_pins.path());
        let mut ebpf = load::load_and_pin(&pins, cfg).context("loading fw")?;
        let empty: &mut Xdp = ebpf
            .program_mut(EMPTY)
            .context("no rig_drop in fw's object")?
            .try_into()
            .context("rig_drop is not XDP")?;
        empty.load().context("loading rig_drop")?;
        let maps = FwMaps::open(&pins)?;
        Ok(Loaded {
            ebpf,
            maps,
            pins,
            _pins: test_pins,
        })
    }

    fn prog(&self, name: &str) -> Result<&Xdp> {
        self.ebpf
            .program(name)
            .with_context(|| format!("no program {name}"))?
            .try_into()
            .with_context(|| format!("{name} is not XDP"))
    }

    pub fn fw(&self) -> Result<&Xdp> {
        self.prog(PROG_INGRESS)
    }

    pub fn empty(&self) -> Result<&Xdp> {
        self.prog(EMPTY)
    }

    /// Packets counted under `reason`, all interface slots and CPUs.
    pub fn counted(&self, reason: Reason) -> Result<u64> {
        Ok(self
            .maps
            .counters()?
            .iter()
            .map(|slot| slot[reason as usize].packets)
            .sum())
    }

    pub fn configure(&self, cfg: &Config) -> Result<()> {
        apply_config(&self.pins, cfg)?;
        Ok(())
    }
}

/// ns per packet of one bulk run, and the program's return value. The
/// kernel's own figure is an integer (truncated); the wall clock is finer
/// but also counts time the thread was interrupted: use it unless it
/// disagrees with the kernel's by a nanosecond or more.
pub fn bulk(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    };
    let start = Instant::now();
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    let wall = start.elapsed().as_nanos() as f64 / repeat as f64;
    let kernel = r.duration.as_nanos() as f64;
    let ns = if wall >= kernel && wall < kernel + 1.0 {
        wall
    } else {
        kernel + 0.5
    };
    Ok((ns, r.return_value))
}

/// One packet through `prog`: (kernel-timed ns, return value).
pub fn single(prog: &Xdp, frame: &[u8]) -> Result<(u64, u32)> {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat: 1,
        ..TestRunOptions::new()
    };
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((r.duration.as_nanos() as u64, r.return_value))
}

/// Runs `path` and `empty` alternately, `runs` times each: their spreads.
pub fn bulk_pair(
    path: &Xdp,
    empty: &Xdp,
    frame: &[u8],
    repeat: u32,
    runs: usize,
) -> Result<(Spread, Spread, u32)> {
    let (mut p, mut e) = (Vec::new(), Vec::new());
    let mut ret = u32::MAX;
    for _ in 0..runs {
        e.push(bulk(empty, frame, repeat)?.0);
        let (ns, r) = bulk(path, frame, repeat)?;
        p.push(ns);
        ret = r;
    }
    Ok((Spread::of(&p), Spread::of(&e), ret))
}

/// The conntrack key of a TCP flow `src:sport -> dst:dport` as ingress sees it.
pub fn flow_key(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FlowKey {
    let bytes = |a: IpAddr| {
        let mut b = [0u8; 16];
        match a {
            IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => b = v6.octets(),
        }
        b
    };
    FlowKey {
        src: bytes(src),
        dst: bytes(dst),
        sport,
        dport,
        proto: IPPROTO_TCP,
        family: if src.is_ipv6() { 6 } else { 4 },
        _pad: [0; 2],
    }
}

/// A live established entry (as if seeded at `fw up`).
pub fn established_value() -> FlowValue {
    let now = kernel_now_ns();
    FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state: CT_TCP_ESTABLISHED,
        flags: CT_F_REPLIED,
        _pad: [0; 2],
        host_isn: 0,
    }
}

/// What one path cost.
#[derive(Clone, Debug)]
pub struct PathCost {
    pub name: String,
    /// The median of `spread`.
    pub ns: f64,
    pub spread: Spread,
    pub per_call: bool,
    /// Packets the path's reason counted / packets run.
    pub counted: u64,
    pub ran: u64,
    /// The program returned the expected action every time.
    pub action_ok: bool,
}

/// The empty program's costs, and every path's.
#[derive(Clone, Debug)]
pub struct TestRunResults {
    /// The median of `empty`.
    pub empty_ns: f64,
    /// The empty program's bulk runs, all paths'.
    pub empty: Spread,
    /// The empty program per call (the per-call method's baseline).
    pub empty_call_ns: f64,
    pub paths: Vec<PathCost>,
}

/// Mean kernel-timed ns per call over `n` single-packet calls, calling
/// `between` after each (outside the timed region); false in the flag if a
/// call returned something else than `action`.
pub fn per_call(
    prog: &Xdp,
    frame: &[u8],
    n: u32,
    action: Option<u32>,
    mut between: impl FnMut() -> Result<()>,
) -> Result<(f64, bool)> {
    let mut total: u64 = 0;
    let mut ok = true;
    for _ in 0..n {
        let (ns, ret) = single(prog, frame)?;
        total += ns;
        if action.is_some_and(|a| a != ret) {
            ok = false;
        }
        between()?;
    }
    Ok((total as f64 / n.max(1) as f64, ok))
}

pub fn run(plan: &Plan, cpu: usize) -> Result<TestRunResults> {
    pin_cpu(cpu)?;
    let fw = Loaded::new(&Config::default())?;
    // The flow the established and related paths belong to.
    for v6 in [false, true] {
        let key = flow_key(frames::peer(v6), frames::host(v6), PEER_PORT, OPEN_PORT);
        fw.maps.conntrack_insert(&key, &established_value())?;
    }
    let (prog, empty) = (fw.fw()?, fw.empty()?);
    let probe = frames::syn(false, PEER_PORT, CLOSED_PORT)?;
    // Warm up both programs (and the CPU's caches).
    bulk(empty, &probe, plan.repeat)?;
    bulk(prog, &probe, plan.repeat / 10)?;
    let mut empty_runs = Vec::new();
    let (empty_call, _) = per_call(empty, &probe, plan.per_call, Some(XDP_DROP), || Ok(()))?;
    let mut paths = Vec::new();
    for s in paths::all()? {
        eprint!("  {:<22}", s.name);
        fw.configure(&s.setting.config())?;
        let (spread, ran, counted, action_ok) = match s.method {
            Method::Bulk => {
                let (mut p, mut e) = (Vec::new(), Vec::new());
                let (mut counted, mut ok) = (0, true);
                for _ in 0..plan.testrun_runs {
                    e.push(bulk(empty, &s.frame, plan.repeat)?.0);
                    // A token earned since the last run would answer one
                    // packet, rewriting it in place for the rest of the run.
                    if s.setting.drained() {
                        drain(prog, &s.frame)?;
                    }
                    let before = fw.counted(s.reason)?;
                    let (ns, ret) = bulk(prog, &s.frame, plan.repeat)?;
                    counted += fw.counted(s.reason)? - before;
                    ok &= ret == s.action;
                    p.push(ns);
                }
                empty_runs.extend(e);
                let ran = plan.repeat as u64 * plan.testrun_runs as u64;
                (Spread::of(&p), ran, counted, ok)
            }
            Method::PerCall => {
                // The calls in `testrun_runs` runs, a mean each.
                let runs = plan.testrun_runs.max(1) as u32;
                let calls = (plan.per_call / runs).max(1);
                let before = fw.counted(s.reason)?;
                let (mut means, mut ok) = (Vec::new(), true);
                for _ in 0..runs {
                    let (mean, run_ok) = per_call(prog, &s.frame, calls, Some(s.action), || {
                        // The SYN's entry sits in the unconfirmed table
                        // since there are two; a gone one is no error.
                        if let Some(k) = &s.forget {
                            for t in CtTable::ALL {
                                fw.maps.conntrack_remove_all(t, std::slice::from_ref(k))?;
                            }
                        }
                        Ok(())
                    })?;
                    means.push(mean);
                    ok &= run_ok;
                }
                let counted = fw.counted(s.reason)? - before;
                (Spread::of(&means), u64::from(calls * runs), counted, ok)
            }
        };
        let ns = spread.median;
        let how = if s.method == Method::PerCall {
            " per call, uncorrected"
        } else {
            ""
        };
        let check = if counted == ran && action_ok {
            ""
        } else {
            "  (CHECK FAILED)"
        };
        eprintln!(" {ns:>8.1} ns{how}{check}");
        paths.push((
            s.method,
            PathCost {
                name: s.name,
                ns,
                spread,
                per_call: s.method == Method::PerCall,
                counted,
                ran,
                action_ok,
            },
        ));
    }
    fw.configure(&Config::default())?;
    let empty = Spread::of(&empty_runs);
    let empty_ns = empty.median;
    let paths = paths
        .into_iter()
        .map(|(m, mut p)| {
            if m == Method::PerCall {
                p.spread = p.spread.map(|x| empty_ns + (x - empty_call));
                p.ns = p.spread.median;
            }
            p
        })
        .collect();
    Ok(TestRunResults {
        empty_ns,
        empty,
        empty_call_ns: empty_call,
        paths,
    })
}

/// Takes what is left in the reject bucket: single calls until one is
/// rate-limited.
fn drain(prog: &Xdp, frame: &[u8]) -> Result<()> {
    for _ in 0..100 {
        if single(prog, frame)?.1 == XDP_DROP {
            return Ok(());
        }
    }
    bail!("the reject bucket does not empty at a rate of 0")
}
