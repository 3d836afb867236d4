//! The plan of an apply: everything checked before anything changes, and
//! what it would change, in words.
use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    kernel::{
        iface,
        maps::FwMaps,
        pins::PinDir,
        rundir::{interrupted, pending_pid},
        running,
        sys::require_root,
    },
    model::{
        config::Config,
        policy::{collapse, PortRange, Proto},
        record::{unrecorded_note, Record, Source},
        source_sets,
    },
    ops::guard,
};

/// A validated apply: the file's config and the running one it replaces.
#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub new: Config,
    pub old: Config,
    /// The file, as fw records it once applied (None: not a regular file).
    pub record: Option<Record>,
    /// The file fw ran before (restored with `old` on a rollback).
    pub old_record: Option<Record>,
    /// Things the apply does not change, said aloud.
    pub notes: Vec<String>,
}

/// Validates everything before anything is touched: the file (syntax,
/// values, interfaces), the running fw (loaded, same layout), for `confirm`
/// that no other apply is on probation, and, unless `force`, the lockout
/// guard for ports the file closes.
pub fn plan(pins: &PinDir, path: &Path, force: bool, confirm: Option<u64>) -> Result<Plan> {
    require_root("fw apply")?;
    let source = read_checked(path)?;
    let maps = FwMaps::open(pins)?;
    if confirm.is_some() {
        if let Some(pid) = pending_pid(pins) {
            return Err(Error::ApplyPending { pid });
        }
    }
    let refused = guard::Refused::Apply {
        file: path,
        confirm,
    };
    plan_on(&maps, path, source, (!force).then_some(refused))
}

/// The file, parsed and validated on its own (syntax, values, its own
/// capacity, its interfaces in this network namespace).
fn read_checked(path: &Path) -> Result<Source> {
    let source = Source::read(path)?;
    for name in &source.config.interfaces {
        iface::resolve(name)?;
    }
    Ok(source)
}

/// The checks of [`plan`] that need the running fw: the lockout guard
/// (unless `guard` is None) and the fit into the running maps. Reads only.
fn plan_on(
    maps: &FwMaps,
    path: &Path,
    source: Source,
    guard: Option<guard::Refused<'_>>,
) -> Result<Plan> {
    let pins = maps.pins();
    let record = source.record();
    let new = source.config;
    let old = running::config(maps)?;
    let old_record = running::recorded(maps)?;
    if let Some(refused) = guard {
        let cmd = match &refused {
            guard::Refused::Check { file } => format!("fw check {}", file.display()),
            _ => format!("fw apply {}", path.display()),
        };
        guard::guard(maps, &old.policy, &new.policy, refused)?;
        crate::ops::block::guard_sets(&old.block_sets, &new.block_sets, false, &cmd)?;
    }
    let mut notes = Vec::new();
    if let Some(i) = interrupted(pins) {
        notes.push(format!(
            "{i}. This apply sets the whole config from {}",
            path.display()
        ));
    }
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (
        old.interfaces.iter().collect(),
        new.interfaces.iter().collect(),
    );
    if !new.interfaces.is_empty() && a != b {
        notes.push(format!(
            "interfaces in the file ({}) differ from where fw is up ({}): `fw apply` does not \
             attach or detach; use `fw up IFACE` / `fw down IFACE`",
            join(&new.interfaces),
            join(&old.interfaces)
        ));
    }
    // Refused here, before the summary says what would change.
    maps.check_policy_fits(&new.policy)?;
    let room = maps.block_capacity()? as usize;
    for v6 in [false, true] {
        let n = new
            .block_sets
            .iter()
            .flat_map(|s| &s.prefixes)
            .filter(|p| matches!(p, ipnet::IpNet::V6(_)) == v6)
            .collect::<BTreeSet<_>>()
            .len();
        if n > room {
            return Err(Error::Block(format!(
                "{} block sets hold {n} {} prefixes, more than the running blocklist's \
                 room for {room} (`[capacity] block_prefixes` of its load): nothing was \
                 changed. Use fewer or wider prefixes, or raise block_prefixes and reload \
                 (`fw down`, `fw up IFACE --config {}`)",
                path.display(),
                if v6 { "IPv6" } else { "IPv4" },
                path.display()
            )));
        }
    }
    if new.source_prefixes != old.source_prefixes {
        notes.push(format!(
            "[capacity] source_prefixes = {} takes effect at the next load (`fw down`, `fw up`); \
             the running map keeps {}",
            new.source_prefixes, old.source_prefixes
        ));
    }
    if new.block_prefixes != old.block_prefixes {
        notes.push(format!(
            "[capacity] block_prefixes = {} takes effect at the next load (`fw down`, `fw up`); \
             the running blocklist keeps {}",
            new.block_prefixes, old.block_prefixes
        ));
    }
    if new.limit_sources != old.limit_sources {
        notes.push(format!(
            "[capacity] limit_sources = {} takes effect at the next load (`fw down`, `fw up`); \
             the running limits keep {}",
            new.limit_sources, old.limit_sources
        ));
    }
    if new.conntrack_entries != old.conntrack_entries {
        notes.push(format!(
            "[conntrack] entries = {} takes effect at the next load (`fw down`, `fw up`); \
             the running table keeps {}",
            new.conntrack_entries, old.conntrack_entries
        ));
    }
    if new.conntrack_unconfirmed_entries != old.conntrack_unconfirmed_entries {
        notes.push(format!(
            "[conntrack] unconfirmed_entries = {} takes effect at the next load (`fw down`, \
             `fw up`); the running table keeps {}",
            new.conntrack_unconfirmed_entries, old.conntrack_unconfirmed_entries
        ));
    }
    if record.is_none() {
        notes.push(unrecorded_note(path));
    }
    Ok(Plan {
        path: path.to_path_buf(),
        new,
        old,
        record,
        old_record,
        notes,
    })
}

/// What `fw check FILE` found (the file passed every check).
#[derive(Debug)]
pub struct Checked {
    /// What `fw apply FILE` would change, when fw is loaded.
    pub summary: Option<String>,
    /// What was checked against, and what an apply would not change.
    pub notes: Vec<String>,
}

/// `fw check FILE`: every check `fw apply FILE` makes (syntax, values,
/// interfaces, the lockout guard unless `force`, the fit into the running
/// maps), reading only: no map, file or lock is touched, like `nft -c`.
/// Without a running fw it can read, the file is checked as `fw up
/// --config FILE` would load it (its own `[capacity]`).
pub fn check(pins: &PinDir, path: &Path, force: bool) -> Result<Checked> {
    let source = read_checked(path)?;
    let maps = match FwMaps::open(pins) {
        Ok(maps) => maps,
        Err(e @ (Error::NotLoaded(_) | Error::NoAccess { .. })) => {
            let cfg = &source.config;
            source_sets::plan(
                &source_sets::Layout::empty(cfg.source_prefixes),
                &cfg.policy,
            )?;
            let why = match e {
                Error::NotLoaded(_) => format!("fw is not loaded under {}", pins.root().display()),
                _ => format!(
                    "the running fw under {} is not readable (not root?)",
                    pins.root().display()
                ),
            };
            return Ok(Checked {
                summary: None,
                notes: vec![format!(
                    "{why}: checked on its own, as `fw up --config {}` would load it \
                     ([capacity] source_prefixes = {})",
                    path.display(),
                    cfg.source_prefixes
                )],
            });
        }
        Err(e) => return Err(e),
    };
    let refused = guard::Refused::Check { file: path };
    let plan = plan_on(&maps, path, source, (!force).then_some(refused))?;
    Ok(Checked {
        summary: Some(plan.summary()),
        notes: plan.notes,
    })
}

fn join(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Plan {
    /// What the apply changes, one line per item; "no change" when none.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (o, n) = (&self.old, &self.new);
        for proto in Proto::EVERY {
            let opened = collapse(
                n.policy
                    .ports(proto)
                    .filter(|&p| !o.policy.is_open(proto, p)),
            );
            let closed = collapse(
                o.policy
                    .ports(proto)
                    .filter(|&p| !n.policy.is_open(proto, p)),
            );
            let resourced = collapse(n.policy.ports(proto).filter(|&p| {
                o.policy.is_open(proto, p)
                    && o.policy.sources(proto, p) != n.policy.sources(proto, p)
            }));
            let list = |v: &[PortRange]| proto.ranges_text(v);
            if !opened.is_empty() {
                let _ = writeln!(out, "opened {proto} {}", list(&opened));
            }
            if !closed.is_empty() {
                let _ = writeln!(out, "closed {proto} {}", list(&closed));
            }
            if !resourced.is_empty() {
                let _ = writeln!(out, "new source list for {proto} {}", list(&resourced));
            }
        }
        if o.reject_with != n.reject_with {
            let _ = writeln!(
                out,
                "reject with {} (was {})",
                n.reject_with.name(),
                o.reject_with.name()
            );
        }
        if (o.reject_rate, o.reject_burst) != (n.reject_rate, n.reject_burst) {
            let _ = writeln!(
                out,
                "reject rate {}/s burst {} (was {}/s burst {})",
                n.reject_rate, n.reject_burst, o.reject_rate, o.reject_burst
            );
        }
        if o.block_with != n.block_with {
            let _ = writeln!(
                out,
                "blocked sources answered with {} (was {})",
                n.block_with.name(),
                o.block_with.name()
            );
        }
        for d in crate::model::record::block_set_differences(n, o, "the running fw") {
            let _ = writeln!(out, "{d}");
        }
        for l in n.limits.iter().filter(|l| !o.limits.contains(l)) {
            let _ = writeln!(out, "limit {}", l.describe());
        }
        for l in o.limits.iter().filter(|l| !n.limits.contains(l)) {
            let _ = writeln!(out, "no limit {} any more", l.describe());
        }
        if o.dry_run != n.dry_run {
            let _ = writeln!(out, "dry run {}", if n.dry_run { "on" } else { "off" });
        }
        if o.syncookies != n.syncookies {
            let _ = writeln!(
                out,
                "syncookies mode {} (was {})",
                n.syncookies.name(),
                o.syncookies.name()
            );
        }
        if o.dhcp_client != n.dhcp_client {
            let _ = writeln!(
                out,
                "dhcp client replies {}",
                if n.dhcp_client {
                    "passed"
                } else {
                    "no longer passed"
                }
            );
        }
        if out.is_empty() {
            out.push_str("no change to the running config\n");
        }
        out
    }
}
