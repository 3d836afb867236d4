//! Bringing fw up and down: load the embedded object, pin it, attach XDP
//! (ingress) and TC (egress) to interfaces, and undo all of it.
use std::fs;

use fw_common::{IfaceMeta, Meta, MAX_IFACES};

use crate::{
    error::{Error, Result},
    kernel::{
        egress::{self, Egress},
        hooks::{entry, half_state, position},
        iface::{self, Iface},
        load,
        maps::FwMaps,
        pins::PinDir,
        running,
        sys::require_root,
        xdp::{self, Mode},
    },
    model::{
        config::Config,
        names::{name_bytes, name_from_bytes},
        record::Record,
    },
    ops::{
        block,
        conntrack::seed,
        guard::{self, Refused},
        reconfigure::apply_config,
    },
};

/// The config `fw up` was given (`--config`, `--dry-run`), the file it came
/// from, and whether it may shut out the session's peers (`--force`).
#[derive(Clone, Copy, Debug)]
pub struct Given<'a> {
    pub config: &'a Config,
    pub file: Option<&'a Record>,
    pub force: bool,
}

/// How fw's two programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub xdp: Mode,
    pub egress: Egress,
}

/// What `fw up` did.
#[derive(Debug)]
pub struct UpReport {
    pub loaded: bool,
    /// Conntrack entries seeded from the socket table.
    pub seeded: usize,
    pub attached: Vec<Attached>,
    /// Half-done work of an interrupted `fw up`/`fw down` that was finished first.
    pub repaired: Vec<String>,
    /// What the running config asks and the system does not give (fw is
    /// up all the same): `[syncookies] mode = "always"` without
    /// `net.ipv4.tcp_syncookies = 2`.
    pub warnings: Vec<String>,
}

/// One interface `fw up` attached to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub name: String,
    /// XDP mode: "native" or "generic".
    pub xdp: &'static str,
    /// Egress hook: "tcx" or "clsact".
    pub egress: &'static str,
}

/// Loads fw (if not loaded under `pins`) and attaches it to `ifaces`.
/// A given config is applied on a fresh load, or replaces the running one
/// (judged by the lockout guard first, as `fw apply` is, unless forced); its
/// file is recorded as the one changes are written back to.
pub fn up(
    pins: &PinDir,
    names_: &[String],
    hooks: Hooks,
    given: Option<Given<'_>>,
) -> Result<UpReport> {
    require_root("fw up")?;
    let config = given.map(|g| g.config);
    let file = given.and_then(|g| g.file);
    let _lock = crate::ops::lock::take()?;
    let default_cfg = Config::default();
    let mut wanted: Vec<String> = names_.to_vec();
    if wanted.is_empty() {
        if let Some(c) = config {
            wanted = c.interfaces.clone();
        }
    }
    if wanted.is_empty() {
        return Err(Error::NoInterface);
    }
    let mut ifaces = Vec::new();
    for n in &wanted {
        let i = iface::resolve(n)?;
        if !ifaces.contains(&i) {
            ifaces.push(i);
        }
    }
    // Looked at before `prepare` makes the (empty) subdirectories.
    let leftovers = !pins.is_loaded() && pins.has_anything();
    pins.prepare()?;
    let fresh = !pins.is_loaded();
    let mut repaired = Vec::new();
    if fresh {
        if leftovers {
            // A half-made load (killed `fw up`) or a half-removed one (killed
            // `fw down`): without META nothing records what it holds, and
            // unpinning its links detaches them.
            pins.remove_all()?;
            pins.prepare()?;
            repaired.push(leftovers_note(pins));
        }
        let cfg = config.unwrap_or(&default_cfg);
        if let Some(g) = given {
            block::guard_sets(&[], &cfg.block_sets, g.force, &up_cmd(&wanted))?;
        }
        let loaded = load::load_and_pin_recording(pins, cfg, file)
            .and_then(|_| block::replace_all(&FwMaps::new_unchecked(pins), &cfg.block_sets, None));
        if let Err(e) = loaded {
            let _ = pins.remove_all();
            return Err(e);
        }
    } else {
        let maps = FwMaps::open(pins)?;
        let mut meta = maps.meta()?;
        repaired = repair(pins, &maps, &mut meta, &ifaces)?
            .into_iter()
            .map(|r| r.1)
            .collect();
        // Refuse before changing anything else, so the running policy stays
        // (a fresh load has no interface yet: nothing to refuse there).
        if let Some(i) = ifaces.iter().find(|i| entry(&meta, &i.name).is_some()) {
            return Err(Error::AlreadyUp(i.name.clone()));
        }
        if let Some(g) = given {
            if !g.force {
                let old = running::config(&maps)?;
                guard::guard(&maps, &old.policy, &g.config.policy, Refused::Up)?;
                block::guard_sets(
                    &old.block_sets,
                    &g.config.block_sets,
                    false,
                    &up_cmd(&wanted),
                )?;
            }
            apply_config(pins, g.config)?;
            if file.is_some() {
                running::set_recorded(&maps, file)?;
            }
        }
    }
    let maps = FwMaps::open(pins)?;
    let mut meta = maps.meta()?;
    // Flows that exist already (the SSH session running this, say) go into
    // conntrack before ingress filtering starts, so nothing is cut.
    let sockets = crate::kernel::sockets::connected()?;
    let seeded = seed(&maps, &sockets)?;
    let warnings = crate::kernel::sys::syncookies_warning(
        maps.config()?.syncookie_mode,
        crate::kernel::sys::tcp_syncookies(),
    )
    .into_iter()
    .collect();
    let mut report = UpReport {
        loaded: fresh,
        attached: Vec::new(),
        seeded,
        repaired,
        warnings,
    };
    for i in &ifaces {
        match attach(pins, &maps, &mut meta, i, hooks) {
            Ok(a) => report.attached.push(a),
            Err(e) => {
                // Leave nothing half-done: undo this call's attachments.
                for a in &report.attached {
                    let _ = detach(pins, &maps, &mut meta, &a.name);
                }
                if fresh {
                    let _ = pins.remove_all();
                }
                return Err(e);
            }
        }
    }
    Ok(report)
}

/// `fw up IFACE... --config FILE`, to repeat with `--force`.
fn up_cmd(ifaces: &[String]) -> String {
    format!("fw up {} --config FILE", ifaces.join(" "))
}

fn leftovers_note(pins: &PinDir) -> String {
    format!(
        "removed the leftovers of an interrupted `fw up` or `fw down` under {} (pins without fw's META map)",
        pins.root().display()
    )
}

/// Finishes what an interrupted `fw up`/`fw down` left: unpins stray links
/// (which detaches them), completes half-done detaches, and drops the entry
/// of an interface in `bringing_up` that was deleted and made again (same
/// name, new ifindex). Returns what it did, in words.
fn repair(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    bringing_up: &[Iface],
) -> Result<Vec<(u32, String)>> {
    let half = half_state(pins, meta);
    let mut done = Vec::new();
    for (path, ifindex) in &half.stray_links {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("unpinning {}", path.display()), e)),
        }
        maps.set_iface_slot(*ifindex, 0)?;
        done.push((
            *ifindex,
            format!(
                "detached {} (ifindex {ifindex}), left attached by an interrupted `fw up`",
                path.display()
            ),
        ));
    }
    for name in &half.unlinked {
        let ifindex = entry(meta, name).map_or(0, |m| m.ifindex);
        detach(pins, maps, meta, name)?;
        done.push((
            ifindex,
            format!("finished detaching {name}, left half-detached by an interrupted `fw down`"),
        ));
    }
    for i in bringing_up {
        let stale = entry(meta, &i.name).filter(|m| m.ifindex != i.index);
        if let Some(m) = stale {
            let old = m.ifindex;
            detach(pins, maps, meta, &i.name)?;
            done.push((
                old,
                format!(
                    "dropped the entry of {} (ifindex {old}): the interface was deleted and made again (ifindex {})",
                    i.name, i.index
                ),
            ));
        }
    }
    Ok(done)
}

fn attach(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    i: &Iface,
    hooks: Hooks,
) -> Result<Attached> {
    let slot_idx = meta
        .ifaces
        .iter()
        .position(|m| m.slot == 0)
        .ok_or(Error::TooManyInterfaces(MAX_IFACES))?;
    let slot = slot_idx as u32 + 1;
    // Counters first, so the very first packet lands in this interface's slot.
    maps.set_iface_slot(i.index, slot)?;
    let entry = |xdp_mode, tc_mode| IfaceMeta {
        ifindex: i.index,
        slot,
        xdp_mode,
        tc_mode,
        name: name_bytes(&i.name),
    };

    // Egress before ingress: replies to what the host sends must be known
    // before the ingress policy starts judging them.
    let tc_mode = match egress::attach(pins, maps, meta, slot_idx, i, hooks.egress, entry) {
        Ok(m) => m,
        Err(e) => {
            let _ = maps.set_iface_slot(i.index, 0);
            return Err(e);
        }
    };
    let (xdp_mode, xdp) = match xdp::attach(pins, i, hooks.xdp) {
        Ok(v) => v,
        Err(e) => {
            let _ = egress::detach(pins, i.index, tc_mode);
            let _ = maps.set_iface_slot(i.index, 0);
            if meta.ifaces[slot_idx].slot != 0 {
                meta.ifaces[slot_idx] = IfaceMeta::default();
                let _ = maps.set_meta(meta);
            }
            return Err(e);
        }
    };
    meta.ifaces[slot_idx] = entry(xdp_mode, tc_mode);
    maps.set_meta(meta)?;
    Ok(Attached {
        name: i.name.clone(),
        xdp,
        egress: egress::mode_name(tc_mode),
    })
}

/// Detaches `name`: unpinning a link nobody else holds destroys it.
fn detach(pins: &PinDir, maps: &FwMaps, meta: &mut Meta, name: &str) -> Result<()> {
    let pos = position(meta, name).ok_or_else(|| Error::NotUpOn(name.to_string()))?;
    let m = meta.ifaces[pos];
    let path = pins.xdp_link(m.ifindex);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("unpinning {}", path.display()), e)),
    }
    egress::detach(pins, m.ifindex, m.tc_mode)?;
    maps.set_iface_slot(m.ifindex, 0)?;
    meta.ifaces[pos] = IfaceMeta::default();
    maps.set_meta(meta)
}

/// What `fw down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub detached: Vec<String>,
    /// Everything was removed (no interface left).
    pub unloaded: bool,
    pub was_loaded: bool,
    /// Half-done work of an interrupted `fw up`/`fw down` that was finished.
    pub repaired: Vec<String>,
}

/// Detaches `names_` (all when empty); unloads when none is left.
pub fn down(pins: &PinDir, names_: &[String]) -> Result<DownReport> {
    require_root("fw down")?;
    let _lock = crate::ops::lock::take()?;
    let mut report = DownReport::default();
    if !pins.is_loaded() {
        if pins.has_anything() {
            // Leftovers of an interrupted `fw up` or `fw down`: clean them.
            pins.remove_all()?;
            report.unloaded = true;
            report.repaired.push(leftovers_note(pins));
            return Ok(report);
        }
        if let Some(n) = names_.first() {
            return Err(Error::NotUpOn(n.clone()));
        }
        return Ok(report);
    }
    report.was_loaded = true;
    let maps = match FwMaps::open(pins) {
        Ok(m) => m,
        Err(Error::StalePin { .. }) if names_.is_empty() => {
            // Pins of another fw build: they can still be removed, which
            // detaches whatever they hold.
            pins.remove_all()?;
            report.unloaded = true;
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let mut meta = maps.meta()?;
    let before = meta;
    let repaired = repair(pins, &maps, &mut meta, &[])?;
    let listed = |meta: &Meta, n: &str| entry(meta, n).map(|m| m.ifindex);
    let mut targets = Vec::new();
    if names_.is_empty() {
        targets = meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0)
            .map(|m| name_from_bytes(&m.name))
            .collect();
    }
    for n in names_ {
        if listed(&meta, n).is_some() {
            targets.push(n.clone());
            continue;
        }
        // The repair may just have finished detaching it.
        let idx = listed(&before, n).or_else(|| iface::resolve(n).ok().map(|i| i.index));
        if idx.is_some_and(|i| repaired.iter().any(|r| r.0 == i)) {
            report.detached.push(n.clone());
            continue;
        }
        return Err(Error::NotUpOn(n.clone()));
    }
    report.repaired = repaired.into_iter().map(|r| r.1).collect();
    for n in &targets {
        detach(pins, &maps, &mut meta, n)?;
        report.detached.push(n.clone());
    }
    if meta.ifaces.iter().all(|m| m.slot == 0) {
        drop(maps);
        pins.remove_all()?;
        report.unloaded = true;
    }
    Ok(report)
}
