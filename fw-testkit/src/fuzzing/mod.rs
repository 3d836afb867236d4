//! The fuzz runner: proptest strategies generate cases (a few frames each),
//! every case runs through a freshly loaded fw's programs with
//! BPF_PROG_TEST_RUN, and each result is checked as it comes; counters are
//! checked against what was sent every [`BATCH`] cases (reading them is
//! what costs), the batch replayed frame by frame when they disagree.
//!
//! Reproducible: a fixed seed by default, `FW_FUZZ_SEED` to vary it (printed
//! on failure), `FW_FUZZ_CASES` to change the count; `FW_TEST_LONG=1`
//! (`cargo xtask test --long`) runs the long campaign.

pub mod gen;
pub mod mutate;
pub mod wellformed;

use std::{path::Path, time::Instant};

use fw_common::{Reason, REASON_COUNT};
use fw_user::model::{config::Config, policy::RejectWith};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner},
};

use crate::testrun::{action_name, Fw, TCX_NEXT, XDP_DROP, XDP_PASS, XDP_TX};
use gen::Step;

/// The seed when `FW_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x00f0_f022_5eed;
/// Cases between two counter checks.
pub const BATCH: usize = 1000;
/// Most extra runs spent shrinking a failing case.
const SHRINK_BUDGET: usize = 3000;

pub fn seed() -> u64 {
    match std::env::var("FW_FUZZ_SEED") {
        Ok(s) => {
            let t = s.trim();
            let parsed = match t.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => t.parse(),
            };
            parsed
                .unwrap_or_else(|_| panic!("FW_FUZZ_SEED={s:?}: want a number (decimal or 0x hex)"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// How many cases to run: `FW_FUZZ_CASES`, else `long` with
/// `FW_TEST_LONG=1`, else `normal`.
pub fn cases(normal: usize, long: usize) -> usize {
    if let Ok(s) = std::env::var("FW_FUZZ_CASES") {
        return s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FW_FUZZ_CASES={s:?}: want a number"));
    }
    if std::env::var("FW_TEST_LONG").is_ok_and(|v| v == "1") {
        long
    } else {
        normal
    }
}

/// A deterministic generator per (seed, campaign).
fn rng(seed: u64, campaign: &str) -> TestRng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in campaign.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&h.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &key)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn show(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Egress(f) => format!("    egress  {}", hex(f)),
            Step::Ingress(f) => format!("    ingress {}", hex(f)),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The policy every variant runs: the seed's ports, a range, a port open to
/// some sources only; rejects not rate-limited unless a variant says so
/// (so XDP_TX replies are checked by the thousand).
const POLICY: &str = r#"
[ports]
tcp = [22, 80, "8000-8100"]
udp = [53, 80]
[[sources]]
proto = "tcp"
port = 2222
from = ["192.0.2.0/30", "2001:db8::/126"]
[reject]
rate = 10000000
[conntrack]
entries = 4096
"#;

/// Whether BPF_PROG_TEST_RUN takes `f` as an skb: since 6.x it refuses
/// (EINVAL) an IPv4 or IPv6 ethertype without a whole IP header behind it,
/// before any program runs. (A real skb like that is possible, from a packet
/// socket; fw_egress's own bounds checks cover it, as they do on ingress.)
fn egress_runnable(f: &[u8]) -> bool {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => f.len() >= 14 + 20,
        0x86dd => f.len() >= 14 + 40,
        _ => true,
    }
}

/// One loaded fw and what was sent to it.
pub struct Variant {
    pub name: &'static str,
    pub fw: Fw,
    kind: RejectWith,
    dry_run: bool,
    sent: u64,
    bytes: u64,
    /// Ingress frames since the last counter check.
    batch: Vec<Vec<u8>>,
}

impl Variant {
    fn load(name: &'static str, edit: impl FnOnce(&mut Config)) -> Variant {
        let mut cfg = Config::from_toml(POLICY, Path::new("fuzz policy"))
            .unwrap_or_else(|e| panic!("fuzz policy: {e}"));
        edit(&mut cfg);
        Variant {
            name,
            kind: cfg.reject_with,
            dry_run: cfg.dry_run,
            fw: Fw::load(cfg),
            sent: 0,
            bytes: 0,
            batch: Vec::new(),
        }
    }

    /// Runs the steps of one case; the first broken property, in words.
    fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        for (n, s) in steps.iter().enumerate() {
            match s {
                Step::Egress(f) => {
                    let r = self.fw.try_egress(f);
                    if !egress_runnable(f) {
                        // The kernel refuses these before fw_egress runs.
                        if r.is_ok() {
                            return Err(format!("step {n}: BPF_PROG_TEST_RUN took a {}-byte skb with an IP ethertype", f.len()));
                        }
                        continue;
                    }
                    let (ret, out) = r.map_err(|e| {
                        format!("step {n}: BPF_PROG_TEST_RUN of fw_egress failed: {e}")
                    })?;
                    if ret != TCX_NEXT {
                        return Err(format!(
                            "step {n}: fw_egress returned {ret}, not tcx next (-1)"
                        ));
                    }
                    if out != *f {
                        return Err(format!(
                            "step {n}: fw_egress changed the packet to {}",
                            hex(&out)
                        ));
                    }
                }
                Step::Ingress(f) => {
                    let r = self.fw.try_ingress(f);
                    self.sent += 1;
                    self.bytes += f.len() as u64;
                    self.batch.push(f.clone());
                    let (action, out) = r.map_err(|e| {
                        format!("step {n}: BPF_PROG_TEST_RUN of fw_ingress failed: {e}")
                    })?;
                    match action {
                        XDP_PASS if out != *f => {
                            return Err(format!(
                                "step {n}: XDP_PASS with the frame changed to {}",
                                hex(&out)
                            ))
                        }
                        XDP_PASS | XDP_DROP => {}
                        XDP_TX if self.dry_run => {
                            return Err(format!("step {n}: XDP_TX in dry-run mode"))
                        }
                        XDP_TX => wellformed::check_tx(f, &out, self.kind).map_err(|e| {
                            format!("step {n}: XDP_TX reply: {e}\n    reply   {}", hex(&out))
                        })?,
                        a => {
                            return Err(format!(
                                "step {n}: fw_ingress returned {a} ({}), not PASS/DROP/TX",
                                action_name(a)
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Packets and bytes over all reasons.
    fn counted(&self) -> (u64, u64) {
        self.fw
            .totals()
            .iter()
            .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes))
    }

    /// The counters hold exactly what was sent; when not, finds the frame.
    fn check_counters(&mut self, campaign: &str, seed: u64) {
        let counted = self.counted();
        if counted != (self.sent, self.bytes) {
            let mut culprit = String::from("(no single frame of the batch reproduces it)");
            for f in &self.batch {
                let before = self.counted();
                let _ = self.fw.try_ingress(f);
                let after = self.counted();
                let delta = (after.0 - before.0, after.1 - before.1);
                if delta != (1, f.len() as u64) {
                    culprit = format!(
                        "frame {} counted as {delta:?} (packets, bytes), want (1, {})",
                        hex(f),
                        f.len()
                    );
                    break;
                }
            }
            panic!(
                "{campaign}: fw {}: counters say {counted:?} (packets, bytes) after {} packets \
                 of {} bytes (seed {seed:#x}); {culprit}",
                self.name, self.sent, self.bytes
            );
        }
        self.batch.clear();
    }

    pub fn reasons(&self) -> [u64; REASON_COUNT] {
        let t = self.fw.totals();
        std::array::from_fn(|i| t[i].packets)
    }
}

/// fw loaded once per reject kind, in dry run, and with rejects rate-limited
/// and a conntrack table that overflows.
pub fn variants() -> Vec<Variant> {
    vec![
        Variant::load("host-unreachable", |_| {}),
        Variant::load("port-unreachable", |c| {
            c.reject_with = RejectWith::PortUnreachable
        }),
        Variant::load("admin-prohibited", |c| {
            c.reject_with = RejectWith::AdminProhibited
        }),
        Variant::load("tcp-reset", |c| c.reject_with = RejectWith::TcpReset),
        Variant::load("drop", |c| c.reject_with = RejectWith::Drop),
        Variant::load("dry-run", |c| c.dry_run = true),
        Variant::load("rate-limited, small table", |c| {
            c.reject_rate = 100;
            c.reject_burst = 100;
            c.conntrack_entries = 1024;
        }),
    ]
}

/// Runs `cases` cases of `strategy`, round robin over `variants`; panics
/// with the seed, the case and its shrunk form at the first broken property.
pub fn campaign<S>(name: &str, strategy: S, cases: usize, variants: &mut [Variant])
where
    S: Strategy<Value = Vec<Step>>,
{
    let seed = seed();
    eprintln!("fuzz {name}: {cases} cases, seed {seed:#x} (set FW_FUZZ_SEED to vary it)");
    let config = RunnerConfig {
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(seed, name));
    let start = Instant::now();
    for i in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{name}: generating case {i}: {e}"));
        let v = i % variants.len();
        let steps = tree.current();
        if let Err(why) = variants[v].run(&steps) {
            let (min, min_why) = shrink(&mut tree, &mut variants[v], steps.clone(), why.clone());
            panic!(
                "{name}: case {i} broke a property on fw {} (seed {seed:#x}; rerun with \
                 FW_FUZZ_SEED={seed:#x}):\n  {why}\n{}\nshrunk to:\n  {min_why}\n{}",
                variants[v].name,
                show(&steps),
                show(&min)
            );
        }
        if (i + 1) % BATCH == 0 || i + 1 == cases {
            for var in variants.iter_mut() {
                var.check_counters(name, seed);
            }
        }
    }
    eprintln!(
        "fuzz {name}: {cases} cases passed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

/// proptest's shrinking loop, run by hand: simplify while the case still
/// fails, complicate back when it passes.
fn shrink<T>(
    tree: &mut T,
    var: &mut Variant,
    mut best: Vec<Step>,
    mut why: String,
) -> (Vec<Step>, String)
where
    T: ValueTree<Value = Vec<Step>>,
{
    if !tree.simplify() {
        return (best, why);
    }
    for _ in 0..SHRINK_BUDGET {
        let cur = tree.current();
        match var.run(&cur) {
            Err(w) => {
                best = cur;
                why = w;
                if !tree.simplify() {
                    break;
                }
            }
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (best, why)
}

/// Per-reason packet counts over all variants, printed, for the coverage check.
pub fn reason_totals(variants: &[Variant]) -> Vec<(Reason, u64)> {
    let mut sum = [0u64; REASON_COUNT];
    for v in variants {
        for (acc, n) in sum.iter_mut().zip(v.reasons()) {
            *acc += n;
        }
    }
    Reason::ALL.iter().map(|&r| (r, sum[r as usize])).collect()
}
