//! Bulk TCP: one iperf3 stream from the client namespace to the server's,
//! over the veth pair, with the receiver under each filter in turn: no
//! XDP program at all, a bare XDP_PASS (`rig_pass`: what any XDP program
//! costs on veth, which then runs its NAPI and converts every skb),
//! xdp-filter, the seed ruleset in iptables and in nftables (as deployed:
//! without an XDP program), and fw. Client and server are pinned to the
//! bench's CPU, so Gb/s is what one CPU moves through sender and receiver.
//! Runs go round robin over the cases, each on its own pair.

use std::{process::Child, time::Duration};

use anyhow::{bail, Context, Result};
use fw_testkit::{output_with_timeout, seed, wait_until, Netns, Pair};
use serde_json::Value;

use super::{
    frames::OPEN_PORT,
    receivers::{self, Guard, Kind, PREFIX},
    spread::Spread,
    Plan,
};

/// The cases, with their `--json` keys (`bulk_gbps`) and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    None,
    XdpPass,
    XdpFilter,
    Iptables,
    Nftables,
    Fw,
}

impl Case {
    pub const ALL: [Case; 6] = [
        Case::None,
        Case::XdpPass,
        Case::XdpFilter,
        Case::Iptables,
        Case::Nftables,
        Case::Fw,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Case::None => "no_filter",
            Case::XdpPass => "bare_xdp_pass",
            Case::XdpFilter => "xdp_filter",
            Case::Iptables => "iptables_seed",
            Case::Nftables => "nftables_seed",
            Case::Fw => "fw",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Case::None => "no filter, no XDP",
            Case::XdpPass => "bare XDP_PASS",
            Case::XdpFilter => "xdp-filter",
            Case::Iptables => "iptables (seed)",
            Case::Nftables => "nftables (seed)",
            Case::Fw => "fw (default)",
        }
    }
}

/// One case's Gb/s over the runs.
#[derive(Clone, Debug)]
pub struct BulkResult {
    pub case: Case,
    pub gbps: Spread,
    /// TCP retransmissions the sender counted, all runs.
    pub retransmits: u64,
}

/// A pair with its filter and an iperf3 server in the server namespace.
struct Setup {
    case: Case,
    server: Child,
    _guard: Option<Guard>,
    pair: Pair,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn listening(ns: &Netns) -> bool {
    let out = output_with_timeout(
        ns.command("ss")
            .args(["-Hltn", &format!("sport = :{OPEN_PORT}")]),
        Duration::from_secs(5),
    );
    out.is_ok_and(|o| !o.stdout.is_empty())
}

impl Setup {
    fn new(case: Case, cpu: usize) -> Result<Setup> {
        let pair = Netns::try_pair(PREFIX).context("building a namespace pair")?;
        let guard = match case {
            Case::None => None,
            Case::XdpPass => Some(receivers::install(Kind::NoFilter, &pair)?),
            Case::XdpFilter => Some(receivers::install(Kind::XdpFilter, &pair)?),
            Case::Fw => Some(receivers::install(Kind::Fw, &pair)?),
            Case::Iptables => {
                seed::apply_iptables(pair.srv()).context("installing the iptables seed")?;
                None
            }
            Case::Nftables => {
                seed::apply_nftables(pair.srv()).context("installing the nftables seed")?;
                None
            }
        };
        // The open port of every ruleset (and of fw's default config).
        let server = pair
            .srv()
            .command("iperf3")
            .args(["-s", "-p", &OPEN_PORT.to_string(), "-A", &cpu.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting iperf3 -s (is iperf3 installed? `cargo xtask setup`)")?;
        let setup = Setup {
            case,
            server,
            _guard: guard,
            pair,
        };
        if !wait_until(Duration::from_secs(5), || listening(setup.pair.srv())) {
            bail!("iperf3 -s did not listen on port {OPEN_PORT} within 5 s");
        }
        Ok(setup)
    }

    /// One run: (Gb/s the receiver got, retransmissions).
    fn run(&self, secs: u32, cpu: usize) -> Result<(f64, u64)> {
        let mut cmd = self.pair.cli().command("iperf3");
        cmd.args(["-c", &self.pair.srv_v4().to_string()])
            .args(["-p", &OPEN_PORT.to_string(), "-t", &secs.to_string()])
            .args(["-A", &cpu.to_string(), "-J"]);
        let out = output_with_timeout(&mut cmd, Duration::from_secs(u64::from(secs) + 20))
            .context("iperf3 -c")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed = parse_iperf3(&text);
        if !out.status.success() || parsed.is_err() {
            bail!(
                "iperf3 -c to {} ({}) failed ({}): {}{}",
                self.pair.srv_v4(),
                self.case.label(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                parsed.err().map_or(String::new(), |e| format!(" {e:#}"))
            );
        }
        parsed
    }
}

/// Gb/s the receiver counted and the sender's retransmissions, from `iperf3 -J`.
pub fn parse_iperf3(json: &str) -> Result<(f64, u64)> {
    let v: Value = serde_json::from_str(json).context("iperf3 -J printed no JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok((bps / 1e9, retr))
}

pub fn run(plan: &Plan, cpu: usize) -> Result<Vec<BulkResult>> {
    let mut setups = Vec::new();
    for case in Case::ALL {
        eprintln!("  setting up: {}", case.label());
        setups.push(Setup::new(case, cpu).with_context(|| format!("bulk TCP: {}", case.label()))?);
    }
    let mut runs: Vec<(Vec<f64>, u64)> = vec![(Vec::new(), 0); setups.len()];
    for run in 0..plan.bulk_runs {
        eprint!(
            "  bulk run {}/{} ({} s each):",
            run + 1,
            plan.bulk_runs,
            plan.bulk_secs
        );
        for (s, r) in setups.iter().zip(runs.iter_mut()) {
            let (gbps, retr) = s.run(plan.bulk_secs, cpu)?;
            r.0.push(gbps);
            r.1 += retr;
            eprint!(" {gbps:.2}");
        }
        eprintln!();
    }
    Ok(setups
        .iter()
        .zip(runs)
        .map(|(s, (g, retransmits))| BulkResult {
            case: s.case,
            gbps: Spread::of(&g),
            retransmits,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iperf3_json() {
        let j = r#"{"start": {}, "end": {"sum_sent": {"bits_per_second": 1.1e10, "retransmits": 3},
                   "sum_received": {"bits_per_second": 1.09e10}}}"#;
        let (g, r) = parse_iperf3(j).unwrap();
        assert!((g - 10.9).abs() < 1e-9);
        assert_eq!(r, 3);
        assert!(parse_iperf3(r#"{"error": "unable to connect to server"}"#).is_err());
        assert!(parse_iperf3("garbage").is_err());
    }
}
