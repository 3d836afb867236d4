//! Running a corpus against a rig fast: probes go out in batches, each
//! from its own source (address, port), then the answers of the batch are
//! collected for a short settle time and matched to their probes by key.
use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use crate::probe::in_netns;

use crate::{
    corpus::Case,
    twin::Twin,
    wire::{answer, probe_keys, Key, Wire},
};

/// Probes in flight at once.
pub const BATCH: usize = 256;
/// How long the answers of a batch may take (the stack and XDP answer in
/// microseconds; this is for a loaded machine).
pub const SETTLE: Duration = Duration::from_millis(150);

/// What a run saw: per case the set of answer labels, plus frames no probe
/// of their batch claimed (for the report).
pub struct Seen {
    pub answers: Vec<BTreeSet<String>>,
    pub unclaimed: Vec<String>,
}

/// Key -> case; keys two cases share would misattribute answers, so they
/// are left out (and reported).
pub fn key_map(cases: &[Case]) -> (HashMap<Key, usize>, Vec<String>) {
    let mut map: HashMap<Key, usize> = HashMap::new();
    let mut shared: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, c) in cases.iter().enumerate() {
        for f in &c.frames {
            for k in probe_keys(f) {
                match map.get(&k) {
                    Some(&j) if j != i => shared.entry(k).or_insert_with(|| vec![j]).push(i),
                    _ => {
                        map.insert(k, i);
                    }
                }
            }
        }
    }
    let mut problems = Vec::new();
    for (k, who) in shared {
        map.remove(&k);
        let names: Vec<&str> = who.iter().map(|&i| cases[i].name.as_str()).collect();
        problems.push(format!("{k:?} shared by {names:?}"));
    }
    (map, problems)
}

/// Sends `cases` from the rig's client veth and classifies the answers.
pub fn run(twin: &Twin, cases: &[Case]) -> Seen {
    let rig = &twin.rig;
    let (keys, _) = key_map(cases);
    let iface = rig.pair.cli_veth().to_string();
    in_netns(rig.pair.cli_path(), move || {
        let wire = Wire::open(&iface).expect("raw socket on the client veth");
        let mut answers = vec![BTreeSet::new(); cases.len()];
        let mut unclaimed = Vec::new();
        // Neighbor solicitations, router solicitations and the like that
        // the link produced before the run.
        let _ = wire.collect(Duration::from_millis(50));
        for (b, batch) in cases.chunks(BATCH).enumerate() {
            let first = b * BATCH;
            for c in batch {
                for f in &c.frames {
                    wire.send(f);
                }
            }
            for f in wire.collect(SETTLE) {
                let Some((label, key)) = answer(&f) else {
                    continue;
                };
                match keys.get(&key) {
                    Some(&i) if (first..first + batch.len()).contains(&i) => {
                        answers[i].insert(label);
                    }
                    Some(_) => {} // a late answer of an earlier batch
                    None => unclaimed.push(format!("{label} {key:?}")),
                }
            }
        }
        Seen { answers, unclaimed }
    })
    .expect("setns")
}
