//! The blocklist tries as the commands see them: set names by id, every
//! entry, the entry of one prefix. Writes go through [`FwMaps`].
use std::collections::HashMap;

use fw_common::{BlockValue, BLOCK_MAX_SETS};
use ipnet::IpNet;

use crate::{
    error::{Error, Result},
    kernel::maps::FwMaps,
    model::blocklist,
};

/// The block sets by id, as the pinned names say.
#[derive(Debug)]
pub struct Sets {
    pub names: Vec<Option<String>>,
}

impl Sets {
    pub fn read(maps: &FwMaps) -> Result<Sets> {
        Ok(Sets {
            names: maps.block_sets()?,
        })
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .map(|i| i as u32)
    }

    /// The id of set `name`, or an error naming the sets there are.
    pub fn existing(&self, name: &str) -> Result<u32> {
        self.id(name).ok_or_else(|| {
            let known: Vec<&str> = self.names.iter().flatten().map(|s| s.as_str()).collect();
            let known = if known.is_empty() {
                "there are none yet".to_string()
            } else {
                format!("the sets are: {}", known.join(", "))
            };
            Error::Block(format!(
                "no block set named `{name}` ({known}); nothing was changed (see `fw blocks`)"
            ))
        })
    }

    /// The id of set `name`, making the set when it is new.
    pub fn get_or_make(&mut self, maps: &FwMaps, name: &str) -> Result<u32> {
        blocklist::check_set_name(name)?;
        if let Some(id) = self.id(name) {
            return Ok(id);
        }
        let Some(free) = self.names.iter().position(|n| n.is_none()) else {
            return Err(Error::Block(format!(
                "fw holds {BLOCK_MAX_SETS} block sets already, the most it can tell apart; \
                 nothing was changed: add `{name}`'s prefixes to an existing set, or empty one \
                 with `fw unblock --all --set NAME`"
            )));
        };
        maps.set_block_set(free as u32, Some(name))?;
        self.names[free] = Some(name.to_string());
        Ok(free as u32)
    }

    /// The names of the sets in `mask`.
    pub fn names_of(&self, mask: u32) -> Vec<String> {
        (0..BLOCK_MAX_SETS)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| {
                self.names
                    .get(i as usize)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| format!("#{i}"))
            })
            .collect()
    }
}

/// The entries of both families, by prefix.
pub fn entries(maps: &FwMaps) -> Result<HashMap<IpNet, BlockValue>> {
    let mut all = HashMap::new();
    for v6 in [false, true] {
        all.extend(maps.block_entries(v6)?);
    }
    Ok(all)
}

/// The entry of exactly `net`, if the trie holds one.
pub fn exact(maps: &FwMaps, net: &IpNet) -> Result<Option<BlockValue>> {
    Ok(maps
        .block_lookup(net)?
        .filter(|v| v.prefix_len == net.prefix_len() as u32))
}

/// What each set holds without end (the part of the blocklist a config
/// says), by set name; sets holding only timed bans are left out.
pub fn permanent_sets(
    maps: &FwMaps,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<IpNet>>> {
    let sets = Sets::read(maps)?;
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<IpNet>> =
        std::collections::BTreeMap::new();
    for (net, v) in entries(maps)? {
        let mut bits = v.permanent & v.sets;
        while bits != 0 {
            let id = bits.trailing_zeros();
            bits &= bits - 1;
            if let Some(Some(name)) = sets.names.get(id as usize) {
                out.entry(name.clone()).or_default().insert(net);
            }
        }
    }
    Ok(out)
}
