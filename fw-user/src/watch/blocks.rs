//! `fw blocks` and the blocklist part of `fw status`: the live entries,
//! their sets, time left and hits, and each set's size.
use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use fw_common::BLOCK_MAX_SETS;
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    error::Result,
    kernel::{
        blocks::{entries, Sets},
        clock::kernel_now_ns,
        maps::FwMaps,
    },
    model::blocklist::{human, live},
};

/// One blocked prefix, as `fw blocks` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub prefix: String,
    /// The sets holding it.
    pub sets: Vec<String>,
    /// Seconds until the block ends; `None`: it has no end.
    pub expires_in_secs: Option<u64>,
    /// Packets it dropped.
    pub hits: u64,
    #[serde(skip)]
    net: IpNet,
}

/// The live entries (of set `set`, when given), by prefix.
pub fn list(maps: &FwMaps, set: Option<&str>) -> Result<Vec<Row>> {
    let sets = Sets::read(maps)?;
    let mask = match set {
        Some(s) => 1u32 << sets.existing(s)?,
        None => u32::MAX,
    };
    let now = kernel_now_ns();
    let mut rows: Vec<Row> = entries(maps)?
        .into_iter()
        .filter_map(|(net, v)| {
            let w = live(&v, now)?;
            (w.sets & mask != 0).then(|| Row {
                prefix: net.to_string(),
                sets: sets.names_of(w.sets),
                expires_in_secs: (w.expires_ns != 0)
                    .then(|| w.expires_ns.saturating_sub(now).div_ceil(1_000_000_000)),
                hits: v.hits,
                net,
            })
        })
        .collect();
    rows.sort_by_key(|r| r.net);
    Ok(rows)
}

/// `fw blocks` as a table.
pub fn render(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no blocked prefixes\n".to_string();
    }
    let w = rows
        .iter()
        .map(|r| r.prefix.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let sw = rows
        .iter()
        .map(|r| r.sets.join(",").len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut out = format!(
        "{:<w$}  {:<sw$}  {:>9}  HITS\n",
        "PREFIX", "SET", "TIME LEFT"
    );
    for r in rows {
        let left = match r.expires_in_secs {
            None => "never".to_string(),
            Some(s) => human(Duration::from_secs(s)),
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<sw$}  {:>9}  {}",
            r.prefix,
            r.sets.join(","),
            left,
            r.hits
        );
    }
    out
}

/// One set in `fw status`: its name and live prefixes per family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetSize {
    pub name: String,
    pub v4: usize,
    pub v6: usize,
}

/// The blocklists as `fw status` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub sets: Vec<SetSize>,
    /// Trie entries per family (expired ones until they are swept).
    pub v4_entries: usize,
    pub v6_entries: usize,
    /// Room per family (`[capacity] block_prefixes`).
    pub max_per_family: u32,
    /// Kernel memory of the two tries.
    pub memory_bytes: Option<u64>,
}

pub fn summary(maps: &FwMaps) -> Result<Summary> {
    let sets = Sets::read(maps)?;
    let now = kernel_now_ns();
    let mut sizes: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    let mut counts = [0usize; 2];
    for v6 in [false, true] {
        let e = maps.block_entries(v6)?;
        counts[v6 as usize] = e.len();
        for (_, v) in e {
            let Some(w) = live(&v, now) else { continue };
            for id in 0..BLOCK_MAX_SETS {
                if w.sets & (1 << id) != 0 {
                    let s = sizes.entry(id).or_default();
                    if v6 {
                        s.1 += 1;
                    } else {
                        s.0 += 1;
                    }
                }
            }
        }
    }
    let (m4, m6) = maps.block_memory()?;
    Ok(Summary {
        sets: sets
            .names
            .iter()
            .enumerate()
            .filter_map(|(id, n)| {
                let name = n.clone()?;
                let (v4, v6) = sizes.get(&(id as u32)).copied().unwrap_or_default();
                Some(SetSize { name, v4, v6 })
            })
            .collect(),
        v4_entries: counts[0],
        v6_entries: counts[1],
        max_per_family: maps.block_capacity()?,
        memory_bytes: m4.zip(m6).map(|(a, b)| a + b),
    })
}
