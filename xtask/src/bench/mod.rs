//! `cargo xtask bench`: how much a packet costs fw, next to the cheapest
//! possible XDP program and to its peers, as ratios within one run on one
//! machine (absolute figures vary from machine to machine).
//!
//! Three parts:
//! - live: a traffic generator (`rig_tx`, XDP_TX through BPF_PROG_TEST_RUN
//!   with live frames) in a client namespace floods a veth whose server end
//!   runs each receiver in turn: an empty XDP_DROP program, xdp-filter, the
//!   seed ruleset in iptables and in nftables, and fw;
//! - test_run: ns per packet of each of fw's verdict paths against the empty
//!   program (BPF_PROG_TEST_RUN, no interface involved);
//! - conntrack: the established path with 1k, 100k and 1M flows tracked;
//! - bulk: one iperf3 TCP stream over a veth pair into each receiver;
//! - up: the wall time of `fw up IFACE`, and where it goes.
//!
//! Every figure is measured over several runs (min/median/max); `--compare`
//! prints a saved `--json` run next to the new one.
//!
//! The code needs fw-user (for the embedded eBPF object), which needs
//! bpf-linker to build; so it sits behind the `bench` feature and the plain
//! xtask runs `setup` first, then re-runs itself with the feature.

use std::path::PathBuf;

use clap::Args;

#[cfg(feature = "bench")]
mod bulk;
// Pure parsing and formatting: built (and unit-tested) without the bench
// feature too; the plain xtask checks a --compare file before building.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
mod compare;
#[cfg(feature = "bench")]
mod conn;
#[cfg(feature = "bench")]
mod conntrack;
#[cfg(feature = "bench")]
mod frames;
#[cfg(feature = "bench")]
mod generator;
#[cfg(feature = "bench")]
mod live;
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
mod machine;
#[cfg(feature = "bench")]
mod paths;
#[cfg(feature = "bench")]
mod receivers;
#[cfg(feature = "bench")]
mod report;
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
mod spread;
#[cfg(feature = "bench")]
mod testrun;
#[cfg(feature = "bench")]
mod up;

/// Options of `cargo xtask bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// A short run (under two minutes): fewer frames, runs and calls.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// CPU the generator and the test runs are pinned to (default: the last).
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Run one part only (the others are left out of the output).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    /// A saved `--json` run to print next to this one, figure by figure
    /// (old median, new median, change).
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
}

/// The parts of the benchmark.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Real XDP on veth pairs: fw against the limit and its peers.
    Live,
    /// Per verdict path through BPF_PROG_TEST_RUN.
    Testrun,
    /// The established path with 1k, 100k and 1M flows tracked.
    Conntrack,
    /// One iperf3 TCP stream over veth into each receiver (Gb/s).
    Bulk,
    /// The wall time of `fw up IFACE` and its split (strace).
    Up,
}

#[cfg(not(feature = "bench"))]
impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Live => "live",
            Part::Testrun => "testrun",
            Part::Conntrack => "conntrack",
            Part::Bulk => "bulk",
            Part::Up => "up",
        }
    }
}

/// How much work one run does.
#[cfg(feature = "bench")]
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Frames the generator sends per live run.
    pub live_frames: u32,
    /// Live runs per receiver (the median is reported).
    pub live_runs: usize,
    /// `repeat` of one bulk BPF_PROG_TEST_RUN.
    pub repeat: u32,
    /// Bulk runs per path, each next to one of the empty program.
    pub testrun_runs: usize,
    /// Single-packet runs for the paths that change the packet or the
    /// conntrack table (they cannot be repeated in place).
    pub per_call: u32,
    /// Random flows looked up per conntrack size.
    pub ct_random: u32,
    /// iperf3 runs per bulk case, and seconds per run.
    pub bulk_runs: usize,
    pub bulk_secs: u32,
    /// Timed `fw up` runs (after an untimed one).
    pub up_runs: usize,
}

#[cfg(feature = "bench")]
impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                live_frames: 1_000_000,
                live_runs: 3,
                repeat: 1_000_000,
                testrun_runs: 3,
                per_call: 100_000,
                ct_random: 5_000,
                bulk_runs: 3,
                bulk_secs: 2,
                up_runs: 3,
            }
        } else {
            Plan {
                live_frames: 3_000_000,
                live_runs: 5,
                repeat: 1_000_000,
                testrun_runs: 5,
                per_call: 1_000_000,
                ct_random: 20_000,
                bulk_runs: 3,
                bulk_secs: 5,
                up_runs: 7,
            }
        }
    }
}

/// Runs the benchmark (with the `bench` feature) or builds the xtask that
/// can, and runs that.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    #[cfg(feature = "bench")]
    {
        report::run(args)
    }
    #[cfg(not(feature = "bench"))]
    {
        reexec(args)
    }
}

#[cfg(not(feature = "bench"))]
fn reexec(args: &BenchArgs) -> anyhow::Result<()> {
    use anyhow::bail;

    // A bad file fails now, not after the build and the runs.
    if let Some(f) = &args.compare {
        compare::load(f)?;
    }
    crate::require_root()?;
    // With --json, stdout carries the JSON object only: setup's progress
    // lines go to stderr.
    if args.json {
        stdout_to_stderr(crate::setup::run)?;
    } else {
        crate::setup::run()?;
    }
    if args.only.is_none_or(|p| p == Part::Up) {
        // `up` times the real binary.
        let mut build = crate::tool::cargo();
        build.args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "fw-user",
            "--bin",
            "fw",
        ]);
        let status = build.status()?;
        if !status.success() {
            bail!("building the fw binary failed ({status})");
        }
    }
    let mut cmd = crate::tool::cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "xtask",
        "--features",
        "bench",
        "--",
        "bench",
    ]);
    if args.quick {
        cmd.arg("--quick");
    }
    if args.json {
        cmd.arg("--json");
    }
    if let Some(cpu) = args.cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    if let Some(part) = args.only {
        cmd.args(["--only", part.name()]);
    }
    if let Some(f) = &args.compare {
        cmd.arg("--compare").arg(f);
    }
    if !args.json {
        println!("==> cargo run --release --package xtask --features bench -- bench");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

/// Runs `f` with file descriptor 1 pointing at stderr (child processes too).
#[cfg(not(feature = "bench"))]
fn stdout_to_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::io::Write as _;

    let _ = std::io::stdout().flush();
    // SAFETY: dup/dup2/close on the process's own standard descriptors.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return f();
    }
    unsafe { libc::dup2(2, 1) };
    let result = f();
    let _ = std::io::stdout().flush();
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    result
}
