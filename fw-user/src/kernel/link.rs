//! bpf links: pinning them, attaching while an old one is released, and
//! what the kernel says a pinned one is attached to.
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;

use crate::error::{Error, Result};

/// How one of fw's hooks on an interface stands, as the kernel sees it
/// (not only the pins: [`crate::kernel::hooks::attached`] trusts those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    Attached,
    /// The link pin is gone (removed by hand, or an interrupted `fw down`):
    /// unpinning the link detached it.
    PinMissing,
    /// The link (or clsact filter) no longer runs fw's program on this
    /// interface: detached by someone else (`bpftool link detach`, `tc
    /// filter del`), or the interface is gone.
    Detached,
}

/// The kernel's view of the link pinned at `path`: attached to `ifindex`
/// and running `prog` (when fw's program pin says which it is).
pub fn link_state(path: &Path, ifindex: u32, prog: Option<u32>) -> HookState {
    match crate::kernel::batch::pinned_link_target(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HookState::PinMissing,
        Err(_) => HookState::Detached,
        Ok(t) if t.ifindex == ifindex && prog.is_none_or(|p| p == t.prog_id) => HookState::Attached,
        Ok(_) => HookState::Detached,
    }
}

/// Pins an attachment's link at `path`: the pin, not this process, then
/// keeps it attached.
pub fn pin_link<L>(link: L, path: PathBuf) -> Result<()>
where
    L: TryInto<FdLink, Error = aya::programs::links::LinkError>,
{
    let fd: FdLink = link.try_into().map_err(Error::link(path.clone()))?;
    fd.pin(&path).map_err(Error::pin(path))?;
    Ok(())
}

/// Runs `attach` again while it fails with EEXIST/EBUSY, for up to a
/// second: the kernel releases an unpinned link from a work queue, so right
/// after a detach (a `fw down` then `fw up`, or a repair) the old link may
/// still hold the hook for a moment.
pub fn while_link_released<T>(
    mut attach: impl FnMut() -> std::result::Result<T, aya::programs::ProgramError>,
) -> std::result::Result<T, aya::programs::ProgramError> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match attach() {
            Err(e) if busy(&e) && std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// The error (or one of its causes) is EEXIST or EBUSY.
fn busy(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(io.raw_os_error(), Some(libc::EEXIST | libc::EBUSY));
        }
        cur = c.source();
    }
    false
}
