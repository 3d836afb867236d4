//! The receivers the live benchmark compares, each on a fresh namespace pair
//! (after an XDP program is detached from a veth, frames sent with XDP_TX
//! may stop reaching its stack; a new pair per receiver avoids the doubt).
//!
//! Each receiver also reports what its own counters saw, as a sanity check
//! next to the rates.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use fw_common::Reason;
use fw_testkit::{in_netns, seed, spawn_tcp_listener, Netns, Pair, PinDir as TestPinDir, Server};
use fw_user::{
    kernel::{maps::FwMaps, pins::PinDir, xdp::Mode},
    ops::up_down::{self, Hooks},
    rig::{self, RigProgram},
};

use super::{
    conn::Conn,
    frames::{self, Flow, Tcp, CLOSED_PORT, L2, OPEN_PORT, PEER_PORT},
    generator,
};

/// Namespace prefix of the benchmark's rigs.
pub const PREFIX: &str = "fwbench";

/// Who sits on the server's veth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `rig_drop`: the cheapest XDP program there is (the limit).
    Empty,
    /// `rig_pass` and the stack, no filter at all (the established baseline).
    NoFilter,
    /// xdp-filter (xdp-tools), policy allow, the closed port filtered.
    XdpFilter,
    /// The seed ruleset in iptables (`rig_pass` gives the veth NAPI).
    Iptables,
    /// The seed ruleset in nftables (`rig_pass` gives the veth NAPI).
    Nftables,
    /// fw with its default config.
    Fw,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Empty,
        Kind::NoFilter,
        Kind::XdpFilter,
        Kind::Iptables,
        Kind::Nftables,
        Kind::Fw,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Empty => "empty XDP_DROP",
            Kind::NoFilter => "no filter (stack)",
            Kind::XdpFilter => "xdp-filter",
            Kind::Iptables => "iptables (seed)",
            Kind::Nftables => "nftables (seed)",
            Kind::Fw => "fw (default)",
        }
    }
}

/// What the receiver's own counters say, cumulative.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Flood frames dropped or rejected (the rule or verdict that should
    /// take every flood frame).
    pub flood: u64,
    /// Frames of the established flow let through.
    pub established: u64,
}

/// The veth's own statistics (ethtool -S), cumulative.
#[derive(Clone, Copy, Debug, Default)]
pub struct VethStats {
    /// Frames the server veth's XDP program saw.
    pub rx_xdp: u64,
    /// Frames the client veth could not hand to the server's ring.
    pub tx_errors: u64,
}

/// What keeps the receiver in place; undone on drop.
pub enum Guard {
    Rig(#[allow(dead_code)] RigProgram),
    XdpFilter { ns: PathBuf, veth: String },
    Fw { ns: PathBuf, pins: TestPinDir },
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self {
            Guard::Rig(_) => {}
            Guard::XdpFilter { ns, veth } => {
                let mut cmd = fw_testkit::command("nsenter");
                cmd.arg(format!("--net={}", ns.display())).args([
                    "--",
                    "xdp-filter",
                    "unload",
                    veth.as_str(),
                ]);
                if let Err(e) = run(&mut cmd) {
                    eprintln!("bench: cleanup: {e:#}");
                }
            }
            Guard::Fw { ns, pins } => {
                let pins = PinDir::new(pins.path());
                let down = in_netns(&*ns, || {
                    up_down::down(&pins, &[]).map_err(anyhow::Error::from)
                });
                match down {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => eprintln!("bench: cleanup: fw down: {e:#}"),
                    Err(e) => eprintln!("bench: cleanup: fw down: {e}"),
                }
            }
        }
    }
}

/// One receiver on its own namespace pair, with the frames aimed at it.
pub struct Receiver {
    pub kind: Kind,
    /// A SYN from the client to the server's closed port.
    pub flood_frame: Vec<u8>,
    /// A pure ACK in the window of the established connection (None for
    /// the empty program, which drops everything).
    pub established_frame: Option<Vec<u8>>,
    /// The client veth (the generator sends out of it).
    pub cli_ifindex: u32,
    // Drop order: the receiver, then the connection and listener, then the
    // namespaces.
    guard: Guard,
    _conn: Option<Conn>,
    _listener: Option<Server>,
    pair: Pair,
}

pub fn run(cmd: &mut std::process::Command) -> Result<String> {
    let out = fw_testkit::output_with_timeout(cmd, fw_testkit::CMD_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "`{:?}` failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mac_of(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let out =
        run(fw_testkit::command("ip").args(["-n", ns.name(), "-o", "link", "show", "dev", dev]))?;
    let text = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .with_context(|| format!("no MAC address for {dev} in `ip link` output: {out}"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        bail!("cannot parse MAC address {text:?} of {dev}");
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("MAC address {text:?}"))?;
    }
    Ok(mac)
}

/// `name: value` lines of `ethtool -S`.
fn ethtool_stat(ns: &Netns, dev: &str, name: &str) -> Result<u64> {
    let out = run(ns.command("ethtool").args(["-S", dev]))?;
    out.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| k.trim() == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .with_context(|| format!("no {name} in `ethtool -S {dev}`"))
}

/// The packet count of the first line of `text` that contains every word
/// of `needles`, read as the `index`-th whitespace-separated field.
fn count_in(text: &str, needles: &[&str], index: usize, what: &str) -> Result<u64> {
    text.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.split_whitespace().nth(index))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {what} counter in:\n{text}"))
}

/// The number after `packets` on the first line containing every needle
/// (nftables' `counter packets N bytes M`).
fn nft_count(text: &str, needles: &[&str]) -> Result<u64> {
    text.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "packets")?;
            words.next()?.parse().ok()
        })
        .with_context(|| format!("no nftables counter for {needles:?} in:\n{text}"))
}

/// TCP segments the server's stack received (`Tcp: InSegs`).
fn tcp_in_segs(ns: &Netns) -> Result<u64> {
    let snmp = run(ns.command("cat").arg("/proc/net/snmp"))?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next(), tcp.next());
    let (Some(names), Some(values)) = (names, values) else {
        bail!("no Tcp lines in /proc/net/snmp");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InSegs")
        .and_then(|(_, v)| v.parse().ok())
        .context("no Tcp InSegs in /proc/net/snmp")
}

/// Puts `kind` on `pair`'s server veth (nothing but a rig program for the
/// stack-only kinds); undone when the guard drops.
pub fn install(kind: Kind, pair: &Pair) -> Result<Guard> {
    let veth = pair.srv_veth().to_string();
    let srv_path = pair.srv_path().to_path_buf();
    Ok(match kind {
        Kind::Empty | Kind::NoFilter | Kind::Iptables | Kind::Nftables => {
            let drop_all = kind == Kind::Empty;
            let prog = in_netns(&srv_path, || {
                rig::attach(&veth, drop_all).map_err(anyhow::Error::from)
            })?
            .with_context(|| format!("attaching the rig program to {veth}"))?;
            if kind == Kind::Iptables {
                seed::apply_iptables(pair.srv()).context("installing the iptables seed ruleset")?;
            }
            if kind == Kind::Nftables {
                seed::apply_nftables(pair.srv()).context("installing the nftables seed ruleset")?;
            }
            Guard::Rig(prog)
        }
        Kind::XdpFilter => {
            run(pair
                .srv()
                .command("xdp-filter")
                .args(["load", "-p", "allow", "-m", "native", &veth]))
            .context("xdp-filter load (is xdp-tools installed? `cargo xtask setup`)")?;
            let guard = Guard::XdpFilter {
                ns: srv_path.clone(),
                veth: veth.clone(),
            };
            run(pair
                .srv()
                .command("xdp-filter")
                .args(["port", &CLOSED_PORT.to_string()]))?;
            guard
        }
        Kind::Fw => {
            let test_pins = TestPinDir::new();
            let pins = PinDir::new(test_pins.path());
            let guard = Guard::Fw {
                ns: srv_path.clone(),
                pins: test_pins,
            };
            let names = [veth.clone()];
            in_netns(&srv_path, || {
                up_down::up(
                    &pins,
                    &names,
                    Hooks {
                        xdp: Mode::Native,
                        ..Hooks::default()
                    },
                    None,
                )
                .map_err(anyhow::Error::from)
            })?
            .context("fw up")?;
            guard
        }
    })
}

impl Receiver {
    /// Builds a pair, puts the receiver on the server veth, opens the
    /// established connection through it, and builds the frames.
    pub fn new(kind: Kind) -> Result<Receiver> {
        let pair = Netns::try_pair(PREFIX).context("building a namespace pair")?;
        let guard = install(kind, &pair)?;
        let (listener, conn) = if kind == Kind::Empty {
            (None, None)
        } else {
            let any: IpAddr = Ipv6Addr::UNSPECIFIED.into();
            let l = spawn_tcp_listener(pair.srv_path(), any, OPEN_PORT)?;
            (Some(l), Some(Conn::open(&pair)?))
        };
        let l2 = L2 {
            src: mac_of(pair.cli(), pair.cli_veth())?,
            dst: mac_of(pair.srv(), pair.srv_veth())?,
        };
        let flood = Flow {
            src: pair.cli_v4().into(),
            dst: pair.srv_v4().into(),
            sport: PEER_PORT,
            dport: CLOSED_PORT,
        };
        let flood_frame = frames::tcp(l2, &flood, Tcp::Syn { seq: 0x1000_0000 })?;
        let established_frame = match &conn {
            Some(c) => {
                let flow = Flow {
                    src: pair.cli_v4().into(),
                    dst: pair.srv_v4().into(),
                    sport: c.lport,
                    dport: OPEN_PORT,
                };
                Some(frames::tcp(
                    l2,
                    &flow,
                    Tcp::Ack {
                        seq: c.seq,
                        ack: c.ack,
                    },
                )?)
            }
            None => None,
        };
        let cli_ifindex = generator::ifindex(pair.cli_path(), pair.cli_veth())?;
        Ok(Receiver {
            kind,
            flood_frame,
            established_frame,
            cli_ifindex,
            guard,
            _conn: conn,
            _listener: listener,
            pair,
        })
    }

    /// The client namespace (where the generator runs).
    pub fn cli_path(&self) -> &Path {
        self.pair.cli_path()
    }

    pub fn veth_stats(&self) -> Result<VethStats> {
        Ok(VethStats {
            rx_xdp: ethtool_stat(
                self.pair.srv(),
                self.pair.srv_veth(),
                "rx_queue_0_xdp_packets",
            )?,
            tx_errors: ethtool_stat(
                self.pair.cli(),
                self.pair.cli_veth(),
                "tx_queue_0_xdp_xmit_errors",
            )?,
        })
    }

    /// The receiver's own counters.
    pub fn counts(&self) -> Result<Counts> {
        let srv = self.pair.srv();
        match (&self.kind, &self.guard) {
            (Kind::Empty, _) => Ok(Counts {
                flood: ethtool_stat(srv, self.pair.srv_veth(), "rx_queue_0_xdp_drops")?,
                established: 0,
            }),
            (Kind::NoFilter, _) => Ok(Counts {
                flood: 0,
                established: tcp_in_segs(srv)?,
            }),
            (Kind::XdpFilter, _) => {
                let out = run(srv.command("xdp-filter").arg("status"))?;
                Ok(Counts {
                    flood: count_in(&out, &["XDP_DROP", "pkts"], 1, "xdp-filter XDP_DROP")?,
                    established: count_in(&out, &["XDP_PASS", "pkts"], 1, "xdp-filter XDP_PASS")?,
                })
            }
            (Kind::Iptables, _) => {
                let out = run(srv
                    .command("iptables")
                    .args(["-L", "INPUT", "-v", "-x", "-n"]))?;
                Ok(Counts {
                    flood: count_in(&out, &["REJECT"], 0, "iptables REJECT")?,
                    established: count_in(&out, &["ESTABLISHED"], 0, "iptables ESTABLISHED")?,
                })
            }
            (Kind::Nftables, _) => {
                let out = run(srv.command("nft").args([
                    "list",
                    "chain",
                    "inet",
                    seed::NFT_TABLE,
                    "input",
                ]))?;
                Ok(Counts {
                    flood: nft_count(&out, &["ipv4", "reject"])?,
                    established: nft_count(&out, &["established"])?,
                })
            }
            (Kind::Fw, Guard::Fw { pins, .. }) => {
                let maps = FwMaps::open(&PinDir::new(pins.path()))?;
                let mut sum = [0u64; fw_common::REASON_COUNT];
                for slot in maps.counters()? {
                    for (s, c) in sum.iter_mut().zip(slot.iter()) {
                        *s += c.packets;
                    }
                }
                let r = |x: Reason| sum[x as usize];
                if std::env::var_os("FWBENCH_DEBUG").is_some() {
                    eprintln!("DEBUG fw counters {sum:?}");
                }
                Ok(Counts {
                    flood: r(Reason::Reject)
                        + r(Reason::RejectRatelimited)
                        + r(Reason::RejectSilent),
                    established: r(Reason::Established),
                })
            }
            (Kind::Fw, _) => Err(anyhow!("fw receiver without its pins")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters() {
        let ipt = "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       0        0 ACCEPT     0    --  lo     *       0.0.0.0/0            0.0.0.0/0
      12      480 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
 3000000 120000000 REJECT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            reject-with icmp-host-unreachable";
        assert_eq!(count_in(ipt, &["REJECT"], 0, "x").unwrap(), 3_000_000);
        assert_eq!(count_in(ipt, &["ESTABLISHED"], 0, "x").unwrap(), 12);
        let nft = "\t\tct state established,related counter packets 7 bytes 280 accept
\t\tmeta nfproto ipv4 counter packets 99 bytes 5940 reject with icmp host-unreachable";
        assert_eq!(nft_count(nft, &["established"]).unwrap(), 7);
        assert_eq!(nft_count(nft, &["ipv4", "reject"]).unwrap(), 99);
        let xf =
            "  XDP_DROP                         5 pkts           0 KiB\n  XDP_PASS   3 pkts 0 KiB";
        assert_eq!(count_in(xf, &["XDP_DROP", "pkts"], 1, "x").unwrap(), 5);
    }
}
