//! Live path: the same generator and frames against every receiver, each
//! on its own namespace pair, all built before the first run. Runs go round
//! robin over the receivers, so a disturbance (another process on the CPU)
//! spreads over all of them instead of spoiling one; the median counts.

use anyhow::{Context, Result};

use super::{
    generator::Generator,
    receivers::{Kind, Receiver},
    spread::Spread,
    Plan,
};

/// What the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// SYNs to a closed port (fw's reject path, default rate limit).
    Flood,
    /// Pure ACKs of an established connection to an open port.
    Established,
}

/// One line of the live table: a scenario against a receiver.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The key in `--json`'s `live_mpps`.
    pub key: &'static str,
    pub scenario: Scenario,
    pub kind: Kind,
}

pub const ROWS: [Row; 10] = [
    Row {
        key: "empty_xdp_drop",
        scenario: Scenario::Flood,
        kind: Kind::Empty,
    },
    Row {
        key: "xdp_filter_drop",
        scenario: Scenario::Flood,
        kind: Kind::XdpFilter,
    },
    Row {
        key: "iptables_seed_reject",
        scenario: Scenario::Flood,
        kind: Kind::Iptables,
    },
    Row {
        key: "nftables_seed_reject",
        scenario: Scenario::Flood,
        kind: Kind::Nftables,
    },
    Row {
        key: "fw_reject_flood",
        scenario: Scenario::Flood,
        kind: Kind::Fw,
    },
    Row {
        key: "no_filter_established",
        scenario: Scenario::Established,
        kind: Kind::NoFilter,
    },
    Row {
        key: "xdp_filter_established",
        scenario: Scenario::Established,
        kind: Kind::XdpFilter,
    },
    Row {
        key: "iptables_seed_established",
        scenario: Scenario::Established,
        kind: Kind::Iptables,
    },
    Row {
        key: "nftables_seed_established",
        scenario: Scenario::Established,
        kind: Kind::Nftables,
    },
    Row {
        key: "fw_established",
        scenario: Scenario::Established,
        kind: Kind::Fw,
    },
];

/// The measured rates of one row, and what the receiving side counted.
#[derive(Clone, Debug)]
pub struct RowResult {
    pub row: Row,
    /// Mpps of each run, in run order.
    pub runs: Vec<f64>,
    pub mpps: f64,
    pub sent: u64,
    /// Frames the server veth's XDP program saw.
    pub veth_rx: u64,
    /// Frames the client veth could not hand over.
    pub tx_errors: u64,
    /// What the receiver's own counters say it did with them.
    pub receiver: u64,
}

impl RowResult {
    /// min/median/max Mpps over the runs.
    pub fn spread(&self) -> Spread {
        Spread::of(&self.runs)
    }
}

/// Frames of the warm-up run per row (fills caches, ARP, conntrack).
const WARMUP_FRAMES: u32 = 100_000;

pub fn run(plan: &Plan, cpu: usize) -> Result<Vec<RowResult>> {
    let mut gen = Generator::load()?;
    let mut receivers = Vec::new();
    for kind in Kind::ALL {
        eprintln!("  setting up: {}", kind.label());
        let r = Receiver::new(kind).with_context(|| format!("setting up {}", kind.label()))?;
        receivers.push(r);
    }
    let find = |k: Kind| {
        receivers
            .iter()
            .find(|r| r.kind == k)
            .context("receiver missing")
    };
    let frame_of = |r: &Receiver, s: Scenario| -> Result<Vec<u8>> {
        match s {
            Scenario::Flood => Ok(r.flood_frame.clone()),
            Scenario::Established => r
                .established_frame
                .clone()
                .with_context(|| format!("{} has no established flow", r.kind.label())),
        }
    };
    for row in ROWS {
        let r = find(row.kind)?;
        gen.send(
            r.cli_path(),
            r.cli_ifindex,
            &frame_of(r, row.scenario)?,
            WARMUP_FRAMES,
            cpu,
        )?;
    }
    let mut results: Vec<RowResult> = ROWS
        .iter()
        .map(|&row| RowResult {
            row,
            runs: Vec::new(),
            mpps: 0.0,
            sent: 0,
            veth_rx: 0,
            tx_errors: 0,
            receiver: 0,
        })
        .collect();
    for run in 0..plan.live_runs {
        eprint!("  live run {}/{}:", run + 1, plan.live_runs);
        for res in results.iter_mut() {
            let r = find(res.row.kind)?;
            let frame = frame_of(r, res.row.scenario)?;
            let (v0, c0) = (r.veth_stats()?, r.counts()?);
            let sent = gen.send(r.cli_path(), r.cli_ifindex, &frame, plan.live_frames, cpu)?;
            let (v1, c1) = (r.veth_stats()?, r.counts()?);
            res.runs.push(sent.mpps());
            res.sent += sent.frames as u64;
            res.veth_rx += v1.rx_xdp - v0.rx_xdp;
            res.tx_errors += v1.tx_errors - v0.tx_errors;
            res.receiver += match res.row.scenario {
                Scenario::Flood => c1.flood - c0.flood,
                Scenario::Established => c1.established - c0.established,
            };
            eprint!(" {:.2}", sent.mpps());
        }
        eprintln!();
    }
    for res in results.iter_mut() {
        res.mpps = res.spread().median;
    }
    Ok(results)
}
