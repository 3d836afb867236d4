//! Per-source limits at runtime: `fw limit` and `fw unlimit`. One write of
//! the kernel's limit table; the config file fw runs gets the same change
//! (`[[limits]]`) unless `--runtime`, prepared before the table changes.
use crate::{
    error::{Error, Result},
    kernel::{maps::FwMaps, pins::PinDir, sys::require_root},
    model::{
        limit::Limit,
        policy::{PortRange, Proto},
    },
    ops::persist::{self, Save, Saved},
};

/// What `fw limit` / `fw unlimit` did.
#[derive(Debug)]
pub struct LimitReport {
    /// The limit now in place (`fw limit`), or taken out (`fw unlimit`).
    pub limit: Limit,
    /// The limit it replaced (`fw limit` on ports that had one).
    pub replaced: Option<Limit>,
    /// Already so: nothing written.
    pub unchanged: bool,
    pub removed: bool,
    pub saved: Saved,
}

impl LimitReport {
    pub fn render(&self) -> String {
        let l = self.limit.describe();
        match (self.removed, self.unchanged, &self.replaced) {
            (true, _, _) => format!("limit removed: {l}\n"),
            (false, true, _) => format!("already limited: {l}\n"),
            (false, false, Some(old)) => format!("limited {l} (was {})\n", old.rate),
            (false, false, None) => format!("limited {l}\n"),
        }
    }
}

fn running_limits(maps: &FwMaps) -> Result<Vec<Limit>> {
    Ok(maps.limits()?.into_iter().map(|(_, l)| l).collect())
}

/// Writes `new` and the file's change; on a failed commit the old limits
/// come back.
fn write(maps: &FwMaps, old: &[Limit], new: &[Limit], pending: persist::Pending) -> Result<Saved> {
    maps.write_limits(new)?;
    pending.commit(maps).inspect_err(|_| {
        let _ = maps.write_limits(old);
    })
}

/// Limits new flows to `limit.ports` per source prefix. The ports must be
/// open (a limit narrows what the policy lets in; on a closed port it
/// would say nothing): refused otherwise, naming `fw allow`. Replaces a
/// limit of the same ports; refuses one overlapping another limit.
pub fn limit(pins: &PinDir, limit: Limit, save: Save) -> Result<LimitReport> {
    require_root("fw limit")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open(pins)?;
    let policy = maps.policy()?;
    let (proto, ports) = (limit.proto, limit.ports);
    let closed: Vec<u16> = ports
        .ports()
        .filter(|&p| !policy.is_open(proto, p))
        .collect();
    if !closed.is_empty() {
        let shown = proto.ranges_text(&crate::model::policy::collapse(closed));
        return Err(Error::Limit(format!(
            "{proto} {shown} is not open, so there is nothing to limit (a limit counts the new \
             connections the policy lets in): open it first with `fw allow {proto} {}`, then \
             limit it; nothing was changed",
            proto.range_text(ports)
        )));
    }
    let old = running_limits(&maps)?;
    let replaced = old
        .iter()
        .find(|l| (l.proto, l.ports) == (proto, ports))
        .copied();
    let mut cfg = crate::model::config::Config {
        limits: old.clone(),
        ..Default::default()
    };
    cfg.limit_set(limit)
        .map_err(|e| Error::Limit(format!("{e}; nothing was changed")))?;
    // Written even when already so: the file may lack it (drift).
    let pending = persist::stage_config(&maps, save, |c, _| {
        let _ = c.limit_set(limit);
    })?;
    let saved = write(&maps, &old, &cfg.limits, pending)?;
    Ok(LimitReport {
        limit,
        replaced,
        unchanged: replaced == Some(limit),
        removed: false,
        saved,
    })
}

/// Takes out the limit of exactly `proto` `ports`; refused (naming the
/// limits there are) when there is none.
pub fn unlimit(pins: &PinDir, proto: Proto, ports: PortRange, save: Save) -> Result<LimitReport> {
    require_root("fw unlimit")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open(pins)?;
    let old = running_limits(&maps)?;
    let Some(gone) = old
        .iter()
        .find(|l| (l.proto, l.ports) == (proto, ports))
        .copied()
    else {
        let have = if old.is_empty() {
            "there are none".to_string()
        } else {
            let v: Vec<String> = old
                .iter()
                .map(|l| format!("{} {}", l.proto, l.proto.range_text(l.ports)))
                .collect();
            format!("there are limits on {}", v.join(", "))
        };
        return Err(Error::Limit(format!(
            "{proto} {} has no limit of its own ({have}; `fw status --verbose` lists them): \
             nothing was changed",
            proto.range_text(ports)
        )));
    };
    let new: Vec<Limit> = old.iter().filter(|l| **l != gone).copied().collect();
    let pending = persist::stage_config(&maps, save, |c, _| {
        c.limit_remove(proto, ports);
    })?;
    let saved = write(&maps, &old, &new, pending)?;
    Ok(LimitReport {
        limit: gone,
        replaced: None,
        unchanged: false,
        removed: true,
        saved,
    })
}
