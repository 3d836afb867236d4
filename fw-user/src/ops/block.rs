//! Blocklists at runtime: `fw block`, `fw unblock`, and `fw block --file`
//! replacing a whole set (`fw blocks` is in `watch::blocks`). Every command reads the entries
//! it touches, works out their new values with [`crate::blocklist`], and
//! writes them in batches; the next packet sees the change.
//!
//! Replacing a set writes the new list first (a prefix in the old and the
//! new list is updated in place, never absent), then removes what only the
//! old list held: a packet meets the old list, the new one, or for a moment
//! their union, never half of either.
use std::{
    collections::{BTreeSet, HashMap},
    fmt::Write as _,
    time::Duration,
};

use fw_common::{BlockValue, BLOCK_MAX_SETS};
use ipnet::IpNet;

use crate::{
    error::{Error, Result},
    kernel::{
        blocks::{entries, exact, Sets},
        clock::kernel_now_ns,
        maps::FwMaps,
        pins::PinDir,
        sys::require_root,
    },
    model::blocklist::{
        self, human, listed, live, same_block, with_permanent, with_set, without_set,
    },
    ops::{
        guard,
        persist::{self, Save, Saved},
    },
};

/// The maps these commands use (and so check when they open them).
const BLOCK_MAPS: [&str; 4] = [
    fw_common::maps::BLOCK_V4,
    fw_common::maps::BLOCK_V6,
    fw_common::maps::BLOCK_SETS,
    fw_common::maps::CONFIG_FILE,
];

/// What `fw block` did.
#[derive(Debug, Default)]
pub struct BlockReport {
    pub set: String,
    /// Prefixes no set held before.
    pub added: Vec<IpNet>,
    /// Prefixes this set held before, with a new end (or none).
    pub renewed: Vec<IpNet>,
    /// Prefixes another set held, now this one too.
    pub joined: Vec<IpNet>,
    /// Asked for, and already so (nothing written).
    pub already: Vec<IpNet>,
    /// Prefixes the set held that a `--file` replacement removed.
    pub removed: Vec<IpNet>,
    pub until: Option<Duration>,
    /// Where the change went, file-wise (None: nothing to save).
    pub saved: Option<Saved>,
}

impl BlockReport {
    pub fn changed(&self) -> usize {
        self.added.len() + self.renewed.len() + self.joined.len() + self.removed.len()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let end = match self.until {
            Some(d) => format!(" for {}", human(d)),
            None => String::new(),
        };
        let set = &self.set;
        let list = |v: &[IpNet]| listed(v);
        if !self.added.is_empty() {
            let _ = writeln!(out, "blocked{end} (set {set}): {}", list(&self.added));
        }
        if !self.joined.is_empty() {
            let _ = writeln!(
                out,
                "blocked{end} (set {set}; also in other sets): {}",
                list(&self.joined)
            );
        }
        if !self.renewed.is_empty() {
            let what = match self.until {
                Some(d) => format!("now ends in {}", human(d)),
                None => "now has no end".to_string(),
            };
            let _ = writeln!(out, "block {what} (set {set}): {}", list(&self.renewed));
        }
        if !self.already.is_empty() {
            let _ = writeln!(out, "already blocked (set {set}): {}", list(&self.already));
        }
        if !self.removed.is_empty() {
            let _ = writeln!(
                out,
                "no longer in set {set}: {} prefix(es)",
                self.removed.len()
            );
        }
        if self.changed() == 0 {
            out.push_str("nothing changed\n");
        }
        out
    }
}

fn is_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

/// Refuses, unless `force`, a block that would cut this command's own
/// session.
fn check_guard(nets: &[IpNet], force: bool, cmd: &str) -> Result<()> {
    if force {
        return Ok(());
    }
    let hazards = guard::block_hazards(nets);
    if hazards.is_empty() {
        Ok(())
    } else {
        Err(Error::Lockout(guard::explain_block(&hazards, cmd)))
    }
}

/// A change of the trie: entries written (new values), entries removed.
#[derive(Default)]
struct Plan {
    writes: Vec<(IpNet, BlockValue)>,
    removes: Vec<IpNet>,
    /// The values before, for undoing (`None`: the entry was not there).
    before: HashMap<IpNet, Option<BlockValue>>,
}

impl Plan {
    fn write(&mut self, net: IpNet, old: Option<BlockValue>, new: BlockValue) {
        self.before.insert(net, old);
        self.writes.push((net, new));
    }

    fn remove(&mut self, net: IpNet, old: BlockValue) {
        self.before.insert(net, Some(old));
        self.removes.push(net);
    }

    /// Entries a family gains (writes of prefixes not in the trie).
    fn new_keys(&self, v6: bool) -> usize {
        self.writes
            .iter()
            .filter(|(n, _)| is_v6(n) == v6 && self.before.get(n).is_some_and(|b| b.is_none()))
            .count()
    }

    /// Refuses a change that would not fit the tries.
    fn check_room(&self, maps: &FwMaps, in_use: impl Fn(bool) -> Result<usize>) -> Result<()> {
        let max = maps.block_capacity()? as usize;
        for v6 in [false, true] {
            let new = self.new_keys(v6);
            if new == 0 {
                continue;
            }
            let used = in_use(v6)?;
            if used + new > max {
                let fam = if v6 { "IPv6" } else { "IPv4" };
                return Err(Error::Block(format!(
                    "the blocklist has room for {max} {fam} prefixes (`[capacity] \
                     block_prefixes`) and holds {used}: the {new} new ones do not fit \
                     (new entries are written before old ones go); nothing was changed. Use \
                     fewer or wider prefixes, or raise `[capacity] block_prefixes` in the config \
                     (it takes effect at the next load: `fw down`, then `fw up IFACE --config \
                     FILE`)"
                )));
            }
        }
        Ok(())
    }

    /// Puts back every entry this plan changed (after a later step failed).
    fn revert(&self, maps: &FwMaps) {
        for v6 in [false, true] {
            let back: Vec<(IpNet, BlockValue)> = self
                .before
                .iter()
                .filter(|(n, _)| is_v6(n) == v6)
                .filter_map(|(n, b)| Some((*n, (*b)?)))
                .collect();
            let gone: Vec<IpNet> = self
                .before
                .iter()
                .filter(|(n, b)| is_v6(n) == v6 && b.is_none())
                .map(|(n, _)| *n)
                .collect();
            let _ = maps.block_write(v6, &back);
            let _ = maps.block_remove(v6, &gone);
        }
    }

    /// Applies the plan and commits `pending` (the config file's share of
    /// the change); when that fails, the maps are put back.
    fn apply_saving(
        &self,
        maps: &FwMaps,
        pending: Option<persist::Pending>,
    ) -> Result<Option<Saved>> {
        self.apply(maps)?;
        let Some(p) = pending else { return Ok(None) };
        match p.commit(maps) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                self.revert(maps);
                Err(e)
            }
        }
    }

    /// Writes first, then removes, each family in batches; on a failure,
    /// puts back what was written.
    fn apply(&self, maps: &FwMaps) -> Result<()> {
        let mut written: Vec<IpNet> = Vec::new();
        let r = (|| -> Result<()> {
            for v6 in [false, true] {
                let w: Vec<(IpNet, BlockValue)> = self
                    .writes
                    .iter()
                    .filter(|(n, _)| is_v6(n) == v6)
                    .copied()
                    .collect();
                let (done, err) = maps.block_write(v6, &w);
                written.extend(w[..done].iter().map(|(n, _)| *n));
                if let Some(e) = err {
                    return Err(e);
                }
            }
            for v6 in [false, true] {
                let r: Vec<IpNet> = self
                    .removes
                    .iter()
                    .filter(|n| is_v6(n) == v6)
                    .copied()
                    .collect();
                maps.block_remove(v6, &r)?;
            }
            Ok(())
        })();
        let Err(e) = r else { return Ok(()) };
        // Undo: the written entries get their old values back (or go).
        let mut undo_err = None;
        for v6 in [false, true] {
            let back: Vec<(IpNet, BlockValue)> = written
                .iter()
                .filter(|n| is_v6(n) == v6)
                .filter_map(|n| Some((*n, (*self.before.get(n)?)?)))
                .collect();
            let gone: Vec<IpNet> = written
                .iter()
                .filter(|n| is_v6(n) == v6 && matches!(self.before.get(n), Some(None)))
                .copied()
                .collect();
            if let (_, Some(e)) = maps.block_write(v6, &back) {
                undo_err.get_or_insert(e);
            }
            if let Err(e) = maps.block_remove(v6, &gone) {
                undo_err.get_or_insert(e);
            }
        }
        Err(match undo_err {
            None => Error::Block(format!(
                "writing the blocklist failed, the previous entries are back: {e}"
            )),
            Some(u) => Error::Block(format!(
                "writing the blocklist failed ({e}) and undoing it failed too ({u}): check \
                 `fw blocks` and run the command again"
            )),
        })
    }
}

/// `fw block NETS [--for D] [--set S]`: set `set` holds `nets`, until
/// `until` from now (or without end). Unless `force`, refuses to block the
/// session running the command.
pub fn block(
    pins: &PinDir,
    nets: &[IpNet],
    set: &str,
    until: Option<Duration>,
    force: bool,
    save: Save,
) -> Result<BlockReport> {
    require_root("fw block")?;
    blocklist::check_set_name(set)?;
    let asked: BTreeSet<IpNet> = nets.iter().copied().collect();
    let nets: Vec<IpNet> = asked.into_iter().collect();
    check_guard(&nets, force, &block_cmd(&nets, set, until))?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open_only(pins, &BLOCK_MAPS)?;
    let mut sets = Sets::read(&maps)?;
    let now = kernel_now_ns();
    let end = until.map(|d| now.saturating_add(d.as_nanos() as u64));
    let mut report = BlockReport {
        set: set.to_string(),
        until,
        ..BlockReport::default()
    };
    let mut plan = Plan::default();
    let made = sets.id(set).is_none();
    let id = sets.get_or_make(&maps, set)?;
    let bit = 1u32 << id;
    // A timed ban is not saved; it only touches the config when it turns
    // a prefix the set held without end into a timed one.
    let mut was_permanent = false;
    for net in &nets {
        let old = exact(&maps, net)?;
        was_permanent |= old
            .as_ref()
            .and_then(|o| live(o, now))
            .is_some_and(|o| o.permanent & bit != 0);
        let new = with_set(old.as_ref(), net, id, end, now);
        let was = old.as_ref().and_then(|o| live(o, now));
        match was {
            None => report.added.push(*net),
            Some(w) if w.sets & bit == 0 => report.joined.push(*net),
            Some(w) if end.is_none() && w.permanent & bit != 0 => {
                report.already.push(*net);
                continue;
            }
            Some(_) => report.renewed.push(*net),
        }
        if old.is_some_and(|o| same_block(&o, &new)) {
            continue;
        }
        plan.write(*net, old, new);
    }
    // No room check up front (it would read the whole trie per ban): the
    // kernel refuses an entry past the trie's size, and the plan is undone.
    let pending = match until {
        None => Some(persist::stage_config(&maps, save, |c, _| {
            c.block_add(set, &nets)
        })),
        Some(_) if was_permanent => Some(persist::stage_config(&maps, save, |c, _| {
            c.block_remove(Some(set), &nets)
        })),
        Some(_) => None,
    }
    .transpose();
    let r = pending.and_then(|p| plan.apply_saving(&maps, p));
    match r {
        Ok(saved) => {
            report.saved = saved;
            Ok(report)
        }
        Err(e) => {
            if made {
                let _ = maps.set_block_set(id, None);
            }
            Err(e)
        }
    }
}

/// The prefixes `new` blocks without end that `old` does not: what a
/// config replacing `old` newly blocks (for the lockout guard).
pub fn newly_blocked(
    old: &[crate::model::config::BlockSet],
    new: &[crate::model::config::BlockSet],
) -> Vec<IpNet> {
    let had: std::collections::HashSet<&IpNet> = old.iter().flat_map(|s| &s.prefixes).collect();
    let mut out: Vec<IpNet> = new
        .iter()
        .flat_map(|s| &s.prefixes)
        .filter(|n| !had.contains(n))
        .copied()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Refuses, unless `force`, a config whose new blocks cut this session.
pub fn guard_sets(
    old: &[crate::model::config::BlockSet],
    new: &[crate::model::config::BlockSet],
    force: bool,
    cmd: &str,
) -> Result<()> {
    check_guard(&newly_blocked(old, new), force, cmd)
}

/// The command as typed, to repeat it with `--force`.
fn block_cmd(nets: &[IpNet], set: &str, until: Option<Duration>) -> String {
    let mut s = format!("fw block {}", listed(nets));
    if let Some(d) = until {
        let _ = write!(s, " --for {}s", d.as_secs());
    }
    if set != blocklist::DEFAULT_SET {
        let _ = write!(s, " --set {set}");
    }
    s
}

/// `fw block --file FILE --set S`: set `set` holds exactly `nets` (without
/// end) from now on. New entries first, then what only the old list held
/// goes; entries whose bans all ended are swept on the way.
pub fn replace_set(
    pins: &PinDir,
    set: &str,
    nets: &BTreeSet<IpNet>,
    force: bool,
    file: &std::path::Path,
    save: Save,
) -> Result<BlockReport> {
    require_root("fw block")?;
    blocklist::check_set_name(set)?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open_only(pins, &BLOCK_MAPS)?;
    let mut sets = Sets::read(&maps)?;
    let now = kernel_now_ns();
    let all = entries(&maps)?;
    let made = sets.id(set).is_none();
    let id = match sets.id(set) {
        Some(id) => id,
        None if nets.is_empty() => {
            return Ok(BlockReport {
                set: set.to_string(),
                ..BlockReport::default()
            })
        }
        None => sets.get_or_make(&maps, set)?,
    };
    let bit = 1u32 << id;
    let mut report = BlockReport {
        set: set.to_string(),
        ..BlockReport::default()
    };
    let mut plan = Plan::default();
    let mut newly: Vec<IpNet> = Vec::new();
    for net in nets {
        let old = all.get(net).copied();
        let was = old.as_ref().and_then(|o| live(o, now));
        let new = with_set(old.as_ref(), net, id, None, now);
        match was {
            None => {
                report.added.push(*net);
                newly.push(*net);
            }
            Some(w) if w.sets & bit == 0 => {
                report.joined.push(*net);
                newly.push(*net);
            }
            Some(w) if w.permanent & bit != 0 => report.already.push(*net),
            Some(_) => report.renewed.push(*net),
        }
        if old.is_none_or(|o| !same_block(&o, &new)) {
            plan.write(*net, old, new);
        }
    }
    for (net, old) in &all {
        if nets.contains(net) {
            continue;
        }
        let held = live(old, now).is_some_and(|w| w.sets & bit != 0);
        match without_set(old, id, now) {
            None => {
                if held {
                    report.removed.push(*net);
                }
                plan.remove(*net, *old);
            }
            Some(new) => {
                if held {
                    report.removed.push(*net);
                }
                if !same_block(old, &new) {
                    plan.write(*net, Some(*old), new);
                }
            }
        }
    }
    report.removed.sort();
    let cmd = format!("fw block --file {} --set {set}", file.display());
    let r = check_guard(&newly, force, &cmd)
        .and_then(|()| {
            plan.check_room(&maps, |v6| {
                Ok(all.keys().filter(|n| is_v6(n) == v6).count())
            })
        })
        .and_then(|()| {
            // The config names the file as the set's home (kept as written
            // when it names that file already).
            let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
            persist::stage_config(&maps, save, |c, path| {
                let keep = c
                    .block_set(set)
                    .and_then(|s| Some((s.file.clone()?, s.file_path(path)?)))
                    .filter(|(_, p)| std::fs::canonicalize(p).ok().as_ref() == Some(&real))
                    .map(|(f, _)| f);
                c.block_replace(
                    set,
                    Some(keep.unwrap_or_else(|| real.clone())),
                    nets.clone(),
                );
            })
        })
        .and_then(|p| plan.apply_saving(&maps, Some(p)));
    match r {
        Ok(saved) => report.saved = saved,
        Err(e) => {
            if made {
                let _ = maps.set_block_set(id, None);
            }
            return Err(e);
        }
    }
    if nets.is_empty() {
        // Nothing holds the id any more: free it.
        maps.set_block_set(id, None)?;
    }
    Ok(report)
}

/// Sets the block sets to a config's `want`: each set holds exactly its
/// prefixes without end; sets the config does not name lose theirs (timed
/// bans stay until they end: they belong to whoever set them, fail2ban
/// say, not to the config). All or nothing: new entries first, then what
/// only the old sets held goes, undone on a failure. With `guard` (the
/// command, to repeat with `--force`), refuses a newly blocked prefix
/// holding this session's peer. The caller holds [`crate::ops::lock`].
pub fn replace_all(
    maps: &FwMaps,
    want: &[crate::model::config::BlockSet],
    guard: Option<&str>,
) -> Result<()> {
    let mut sets = Sets::read(maps)?;
    let now = kernel_now_ns();
    let all = entries(maps)?;
    let before = sets.names.clone();
    let r = (|| -> Result<()> {
        let mut masks: HashMap<IpNet, u32> = HashMap::new();
        for set in want.iter().filter(|s| !s.prefixes.is_empty()) {
            let bit = 1u32 << sets.get_or_make(maps, &set.name)?;
            for n in &set.prefixes {
                *masks.entry(*n).or_default() |= bit;
            }
        }
        let mut plan = Plan::default();
        let mut newly = Vec::new();
        let mut used = 0u32;
        for (net, old) in &all {
            let mask = masks.get(net).copied().unwrap_or(0);
            let new = with_permanent(Some(old), net, mask, now);
            if live(old, now).is_none_or(|o| mask & !o.sets != 0) && mask != 0 {
                newly.push(*net);
            }
            match new {
                None => plan.remove(*net, *old),
                Some(v) => {
                    used |= v.sets;
                    if !same_block(old, &v) {
                        plan.write(*net, Some(*old), v);
                    }
                }
            }
        }
        for (net, mask) in &masks {
            if all.contains_key(net) {
                continue;
            }
            if let Some(v) = with_permanent(None, net, *mask, now) {
                used |= v.sets;
                newly.push(*net);
                plan.write(*net, None, v);
            }
        }
        if let Some(cmd) = guard {
            newly.sort();
            check_guard(&newly, false, cmd)?;
        }
        plan.check_room(maps, |v6| Ok(all.keys().filter(|n| is_v6(n) == v6).count()))?;
        plan.apply(maps)?;
        // Ids nothing holds any more are free again.
        for (id, name) in sets.names.iter().enumerate() {
            if name.is_some() && used & (1 << id) == 0 {
                maps.set_block_set(id as u32, None)?;
            }
        }
        Ok(())
    })();
    if r.is_err() {
        for (id, (was, now)) in before.iter().zip(&sets.names).enumerate() {
            if was != now {
                let _ = maps.set_block_set(id as u32, was.as_deref());
            }
        }
    }
    r
}

/// What `fw unblock` did.
#[derive(Debug, Default)]
pub struct UnblockReport {
    /// Removed from the set(s) named.
    pub unblocked: Vec<(IpNet, Vec<String>)>,
    /// Not held by the set(s) named.
    pub not_blocked: Vec<IpNet>,
    /// Not an entry, but inside a blocked prefix: (asked, covering, sets).
    pub covered: Vec<(IpNet, IpNet, Vec<String>)>,
    /// `--all`: entries of the set removed.
    pub emptied: Option<(String, usize)>,
    /// Where the change went, file-wise (None: nothing to save).
    pub saved: Option<Saved>,
}

impl UnblockReport {
    pub fn changed(&self) -> usize {
        self.unblocked.len() + self.emptied.as_ref().map_or(0, |e| e.1)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (net, sets) in &self.unblocked {
            let _ = writeln!(out, "unblocked {net} (set {})", sets.join(", "));
        }
        if let Some((set, n)) = &self.emptied {
            let _ = writeln!(out, "emptied set {set}: {n} prefix(es) unblocked");
        }
        if !self.not_blocked.is_empty() {
            let _ = writeln!(out, "not blocked: {}", listed(&self.not_blocked));
        }
        for (net, by, sets) in &self.covered {
            let _ = writeln!(
                out,
                "{net} is not blocked on its own: it is inside {by} (set {}); unblock that \
                 prefix to let it in",
                sets.join(", ")
            );
        }
        if self.changed() == 0 {
            out.push_str("nothing changed\n");
        }
        out
    }
}

/// `fw unblock NETS [--set S]`: the set (every set, without one) no longer
/// holds `nets`.
pub fn unblock(
    pins: &PinDir,
    nets: &[IpNet],
    set: Option<&str>,
    save: Save,
) -> Result<UnblockReport> {
    require_root("fw unblock")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open_only(pins, &BLOCK_MAPS)?;
    let sets = Sets::read(&maps)?;
    let mask = match set {
        Some(s) => 1u32 << sets.existing(s)?,
        None => u32::MAX,
    };
    let now = kernel_now_ns();
    let mut report = UnblockReport::default();
    let mut plan = Plan::default();
    let asked: BTreeSet<IpNet> = nets.iter().copied().collect();
    let mut permanent = false;
    for net in &asked {
        let entry = exact(&maps, net)?;
        let held = entry.and_then(|o| Some((o, live(&o, now)?)));
        match held {
            Some((old, w)) if w.sets & mask != 0 => {
                permanent |= w.permanent & mask != 0;
                let mut new = Some(w);
                for id in 0..BLOCK_MAX_SETS {
                    if mask & w.sets & (1 << id) != 0 {
                        new = new.and_then(|v| without_set(&v, id, now));
                    }
                }
                report.unblocked.push((*net, sets.names_of(w.sets & mask)));
                match new {
                    None => plan.remove(*net, old),
                    Some(v) => plan.write(*net, Some(old), v),
                }
            }
            _ => {
                // A ban of the set that has ended counts as absent, but its
                // entry keeps room in the trie: the unban (fail2ban's comes
                // just after the kernel's end) sweeps it.
                if let Some(old) = entry.filter(|o| o.sets & mask != 0) {
                    match live(&old, now) {
                        None => plan.remove(*net, old),
                        Some(v) if !same_block(&old, &v) => plan.write(*net, Some(old), v),
                        Some(_) => {}
                    }
                }
                let cover = maps
                    .block_lookup(net)?
                    .and_then(|v| Some((v.prefix_len, live(&v, now)?)));
                match cover {
                    Some((len, v)) if v.sets & mask != 0 => {
                        let by = IpNet::new(net.addr(), len as u8)
                            .map(|n| n.trunc())
                            .unwrap_or(*net);
                        report
                            .covered
                            .push((*net, by, sets.names_of(v.sets & mask)));
                    }
                    _ => report.not_blocked.push(*net),
                }
            }
        }
    }
    // Only prefixes held without end are in the config.
    let gone: Vec<IpNet> = report.unblocked.iter().map(|(n, _)| *n).collect();
    let pending = permanent
        .then(|| persist::stage_config(&maps, save, |c, _| c.block_remove(set, &gone)))
        .transpose()?;
    report.saved = plan.apply_saving(&maps, pending)?;
    Ok(report)
}

/// `fw unblock --all --set S`: the set holds nothing any more (its name is
/// freed).
pub fn unblock_all(pins: &PinDir, set: &str, save: Save) -> Result<UnblockReport> {
    require_root("fw unblock")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open_only(pins, &BLOCK_MAPS)?;
    let sets = Sets::read(&maps)?;
    let id = sets.existing(set)?;
    let now = kernel_now_ns();
    let mut plan = Plan::default();
    let mut n = 0;
    for (net, old) in entries(&maps)? {
        if old.sets & (1 << id) == 0 {
            continue;
        }
        if live(&old, now).is_some_and(|w| w.sets & (1 << id) != 0) {
            n += 1;
        }
        match without_set(&old, id, now) {
            None => plan.remove(net, old),
            Some(v) => plan.write(net, Some(old), v),
        }
    }
    // The config no longer names the set (its set file, if any, stays).
    let pending = persist::stage_config(&maps, save, |c, _| {
        c.block_replace(set, None, BTreeSet::new())
    })?;
    let saved = plan.apply_saving(&maps, Some(pending))?;
    maps.set_block_set(id, None)?;
    Ok(UnblockReport {
        emptied: Some((set.to_string(), n)),
        saved,
        ..UnblockReport::default()
    })
}
