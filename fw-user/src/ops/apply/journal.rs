//! Applying a plan for good, with a journal entry under /run/fw while the
//! maps are written, so an apply killed halfway is told afterwards.
use std::fs;

use crate::{
    error::{Error, Result},
    kernel::{
        maps::FwMaps,
        pins::PinDir,
        rundir::{
            interrupted, make_private_dir, pending_dir, write_private, Interrupted, APPLYING,
            APPLYING_OLD, PENDING, PREVIOUS,
        },
        running,
        sys::require_root,
    },
    ops::{apply::Plan, reconfigure::apply_config},
};

/// Applies `plan` for good. A journal entry under [`RUN_DIR`] marks the
/// time the maps are being written, so that an apply killed halfway (its
/// policy a mix of old and new) is detected and reported afterwards.
pub fn apply(pins: &PinDir, plan: &Plan) -> Result<()> {
    require_root("fw apply")?;
    let _lock = crate::ops::lock::take()?;
    apply_locked(pins, plan)
}

/// [`apply`], for a caller that holds [`crate::ops::lock`].
pub(super) fn apply_locked(pins: &PinDir, plan: &Plan) -> Result<()> {
    let dir = pending_dir(pins);
    make_private_dir(&dir)?;
    let old = dir.join(APPLYING_OLD);
    let header = "# The config fw ran before an `fw apply` that was interrupted; restore it with `fw apply` on this file.\n";
    write_private(&old, &format!("{header}{}", plan.old.to_toml()))?;
    let journal = dir.join(APPLYING);
    let body = format!("pid={}\nfile={}\n", std::process::id(), plan.path.display());
    write_private(&journal, &body)?;
    if let Err(e) = apply_config(pins, &plan.new) {
        // A policy refused or undone whole left nothing half-written: no
        // interrupted apply to report later.
        if matches!(
            e,
            Error::PolicyWrite { .. }
                | Error::Block(_)
                | Error::SourceCapacity { .. }
                | Error::TooManySourceSets { .. }
        ) {
            let _ = fs::remove_file(&journal);
            let _ = fs::remove_file(&old);
            let _ = fs::remove_dir(&dir);
        }
        return Err(e);
    }
    // From now on fw runs this file: changes are written back to it.
    running::set_recorded(&FwMaps::open(pins)?, plan.record.as_ref())?;
    // Done: nothing half-written to report any more, and an earlier
    // `--confirm` that died undecided is superseded by this config.
    let _ = fs::remove_file(&journal);
    let _ = fs::remove_file(&old);
    if let Some(Interrupted::Probation { .. }) = interrupted(pins) {
        let _ = fs::remove_file(dir.join(PENDING));
        let _ = fs::remove_file(dir.join(PREVIOUS));
    }
    // The probation directory is removed by its owner; an empty one here is ours.
    let _ = fs::remove_dir(&dir);
    Ok(())
}
