//! Conntrack scaling: the established path with 1k, 100k and 1M flows in
//! the table (sized 2M, so none is evicted).
//!
//! Two figures per size:
//! - one flow, bulk (`repeat`): the measure; the flow's bucket and
//!   entry stay in the CPU's cache, so it shows the cost of the lookup code
//!   with a bigger table, not of cache misses;
//! - random flows, one call each: a different flow every packet, like real
//!   traffic across many connections, where a big table no longer fits in
//!   the caches. Corrected like the per-call paths of `testrun`.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use anyhow::{Context, Result};
use fw_user::model::config::Config;

use super::{
    frames::{self, Flow, Tcp, OPEN_PORT, PEER_PORT, TEST_L2},
    generator::pin_cpu,
    spread::Spread,
    testrun::{bulk_pair, established_value, flow_key, per_call, Loaded, XDP_DROP, XDP_PASS},
    Plan,
};

/// Table size for the scaling runs: room for 1M flows without eviction.
const CT_ENTRIES: u32 = 1 << 21;
pub const SIZES: [u32; 3] = [1_000, 100_000, 1_000_000];
/// Ports used per filler source address.
const PORTS_PER_SRC: u32 = 60_000;

/// The `i`-th filler flow: 198.51.100.x:port -> host:OPEN_PORT.
fn filler(i: u32) -> Flow {
    let x = (i / PORTS_PER_SRC) as u8;
    Flow {
        src: IpAddr::V4(Ipv4Addr::new(198, 51, 100, x)),
        dst: frames::host(false),
        sport: 1024 + (i % PORTS_PER_SRC) as u16,
        dport: OPEN_PORT,
    }
}

/// Established-path ns at one table size.
#[derive(Clone, Debug)]
pub struct CtCost {
    pub entries: u32,
    /// One flow, bulk (the median of `spread`).
    pub ns: f64,
    pub spread: Spread,
    /// A random flow per packet, one call each (corrected; the median of
    /// `random`, runs of the random flows in `testrun_runs` slices).
    pub random_ns: f64,
    pub random: Spread,
}

pub fn run(plan: &Plan, cpu: usize) -> Result<Vec<CtCost>> {
    pin_cpu(cpu)?;
    let cfg = Config {
        conntrack_entries: CT_ENTRIES,
        ..Config::default()
    };
    let fw = Loaded::new(&cfg)?;
    let (prog, empty) = (fw.fw()?, fw.empty()?);
    let main_key = flow_key(
        frames::peer(false),
        frames::host(false),
        PEER_PORT,
        OPEN_PORT,
    );
    let value = established_value();
    fw.maps.conntrack_insert(&main_key, &value)?;
    let frame = frames::established_ack(false, PEER_PORT)?;
    let mut filled: u32 = 0;
    let mut out = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for size in SIZES {
        let start = Instant::now();
        let want = size - 1;
        while filled < want {
            let f = filler(filled);
            fw.maps
                .conntrack_insert(&flow_key(f.src, f.dst, f.sport, f.dport), &value)
                .context("filling conntrack")?;
            filled += 1;
            if filled.is_multiple_of(100_000) {
                eprint!("\r  conntrack: {filled} flows inserted ");
            }
        }
        if start.elapsed().as_secs() >= 1 {
            eprintln!(
                "\r  conntrack: {filled} flows inserted in {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        let (spread, empty_spread, ret) =
            bulk_pair(prog, empty, &frame, plan.repeat, plan.testrun_runs)?;
        let (ns, empty_ns) = (spread.median, empty_spread.median);
        if ret != XDP_PASS {
            anyhow::bail!("the established flow was not passed at {size} entries (action {ret})");
        }
        // Random flows: frames built first, so only the calls are timed.
        let frames: Vec<Vec<u8>> = (0..plan.ct_random)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let f = filler((rng % want.max(1) as u64) as u32);
                frames::tcp(
                    TEST_L2,
                    &f,
                    Tcp::Ack {
                        seq: 1000,
                        ack: 2000,
                    },
                )
            })
            .collect::<Result<_>>()?;
        let slice = frames.len().div_ceil(plan.testrun_runs.max(1)).max(1);
        let mut all_passed = true;
        let mut runs = Vec::new();
        for chunk in frames.chunks(slice) {
            let (mut fw_total, mut empty_total) = (0.0, 0.0);
            for f in chunk {
                let (e, _) = per_call(empty, f, 1, Some(XDP_DROP), || Ok(()))?;
                let (p, ok) = per_call(prog, f, 1, Some(XDP_PASS), || Ok(()))?;
                empty_total += e;
                fw_total += p;
                all_passed &= ok;
            }
            runs.push(empty_ns + (fw_total - empty_total) / chunk.len() as f64);
        }
        if !all_passed {
            anyhow::bail!("a random established flow was not passed at {size} entries");
        }
        let random = Spread::of(&runs);
        let random_ns = random.median;
        eprintln!(
            "  conntrack {size:>8} flows: {ns:.1} ns (one flow), {random_ns:.1} ns (random flows)"
        );
        out.push(CtCost {
            entries: size,
            ns,
            spread,
            random_ns,
            random,
        });
    }
    Ok(out)
}
