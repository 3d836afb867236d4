//! The model as the running kernel holds it: the config fw runs, read back
//! from its maps, and the config file it records.
use crate::{
    error::Result,
    kernel::maps::FwMaps,
    model::{
        config::{BlockSet, Config},
        names::name_from_bytes,
        policy::{RejectWith, SyncookieMode},
        record::{compare, FileState, Record},
    },
};

/// The file fw runs, if any.
pub fn recorded(maps: &FwMaps) -> Result<Option<Record>> {
    Ok(Record::from_pinned(&maps.config_file()?))
}

/// Records `rec` (None: fw runs no file) in the pinned state.
pub fn set_recorded(maps: &FwMaps, rec: Option<&Record>) -> Result<()> {
    maps.set_config_file(&rec.map(Record::to_pinned).unwrap_or_default())
}

/// How the running config compares with the file fw runs.
pub fn file_state(maps: &FwMaps) -> Result<FileState> {
    Ok(compare(&config(maps)?, recorded(maps)?))
}

/// The running block sets as a config has them: what each set holds
/// without end, each set a file the recorded config names for it keeping
/// that file (its contents are what the kernel holds).
pub fn block_sets(maps: &FwMaps) -> Result<Vec<BlockSet>> {
    let mut held = crate::kernel::blocks::permanent_sets(maps)?;
    let files: Vec<BlockSet> = recorded(maps)?
        .and_then(|r| {
            let text = std::fs::read_to_string(&r.path).ok()?;
            Config::from_toml(&text, &r.path).ok()
        })
        .map(|c| c.block_sets)
        .unwrap_or_default();
    let mut out: Vec<BlockSet> = Vec::new();
    for f in files.into_iter().filter(|f| f.file.is_some()) {
        out.push(BlockSet {
            prefixes: held.remove(&f.name).unwrap_or_default(),
            ..f
        });
    }
    out.extend(held.into_iter().map(|(name, prefixes)| BlockSet {
        name,
        file: None,
        prefixes,
    }));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What fw runs right now, as a config (policy, reject settings, dry
/// run, conntrack size and interfaces as loaded): what `fw apply` keeps
/// to roll back to.
pub fn config(maps: &FwMaps) -> Result<Config> {
    let k = maps.config()?;
    let meta = maps.meta()?;
    Ok(Config {
        policy: maps.policy()?,
        reject_with: RejectWith::from_kind(fw_common::RejectKind::from_u32(k.reject_kind)),
        reject_rate: meta.reject_rate,
        reject_burst: meta.reject_burst,
        conntrack_entries: meta.ct_entries,
        conntrack_unconfirmed_entries: meta.ct_unconfirmed_entries,
        source_prefixes: maps.source_capacity()?,
        interfaces: meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0)
            .map(|m| name_from_bytes(&m.name))
            .collect(),
        dry_run: k.flags & fw_common::CFG_DRY_RUN != 0,
        dhcp_client: k.flags & fw_common::CFG_DHCP_CLIENT != 0,
        block_with: RejectWith::from_kind(fw_common::RejectKind::from_u32(k.block_kind)),
        block_prefixes: maps.block_capacity()?,
        block_sets: block_sets(maps)?,
        syncookies: SyncookieMode::from_kernel(k.syncookie_mode),
        limits: maps.limits()?.into_iter().map(|(_, l)| l).collect(),
        limit_sources: maps.limit_capacity()?,
    })
}
