//! Where `fw_egress` runs on an interface: tcx (a BPF link, Linux 6.6+), or
//! on older kernels a direct-action cls_bpf filter on the `clsact` qdisc,
//! set up over rtnetlink.
//!
//! A tcx link is pinned like the XDP link, so the pin holds the attachment.
//! A clsact filter has no link: the qdisc holds the program, and fw finds
//! its filter again by the program's name. fw removes the qdisc only when it
//! made it and no other filter is left on it.
use std::{fs, io};

use aya::programs::{
    tc::{NlOptions, TcAttachOptions, TcAttachType},
    LinkOrder, SchedClassifier,
};
use fw_common::{IfaceMeta, Meta, PROG_EGRESS, TC_MODE_CLSACT, TC_MODE_CLSACT_OWN, TC_MODE_TCX};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::{
    tc::{TcAttribute, TcFilterBpfOption, TcHandle, TcHeader, TcMessage, TcOption},
    RouteNetlinkMessage,
};
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::{
    error::{Error, Result},
    kernel::{
        iface::Iface,
        link::{pin_link, while_link_released},
        load::program_id,
        maps::FwMaps,
        pins::PinDir,
    },
};

/// Which egress hook `fw up` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Egress {
    /// tcx where the kernel has it (6.6+), else clsact.
    #[default]
    Auto,
    /// tcx only.
    Tcx,
    /// The clsact qdisc (netlink), as on kernels before 6.6.
    Clsact,
}

/// A hook `fw_egress` can be attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Tcx,
    Clsact,
}

impl Egress {
    /// The hooks tried, in order; the next one only when the kernel lacks
    /// the one before (see [`lacks_tcx`]).
    pub fn tries(self) -> &'static [Hook] {
        match self {
            Egress::Auto => &[Hook::Tcx, Hook::Clsact],
            Egress::Tcx => &[Hook::Tcx],
            Egress::Clsact => &[Hook::Clsact],
        }
    }
}

/// Name of a `tc_mode` (as `IfaceMeta` records it) for people.
pub fn mode_name(tc_mode: u32) -> &'static str {
    match tc_mode {
        TC_MODE_TCX => "tcx",
        TC_MODE_CLSACT | TC_MODE_CLSACT_OWN => "clsact",
        _ => "unknown",
    }
}

pub fn is_clsact(tc_mode: u32) -> bool {
    matches!(tc_mode, TC_MODE_CLSACT | TC_MODE_CLSACT_OWN)
}

/// The error is a tcx attach the kernel refused for want of tcx:
/// BPF_LINK_CREATE does not know the attach type (EINVAL) or the operation
/// (EOPNOTSUPP / ENOTSUPP).
pub fn lacks_tcx(e: &Error) -> bool {
    const ENOTSUPP: i32 = 524;
    match e {
        Error::TcAttach {
            hook: "tcx",
            source,
            ..
        } => match source.as_ref() {
            aya::programs::ProgramError::SyscallError(s) => matches!(
                s.io_error.raw_os_error(),
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
            ),
            _ => false,
        },
        _ => false,
    }
}

fn pinned_egress(pins: &PinDir) -> Result<SchedClassifier> {
    SchedClassifier::from_pin(pins.prog(PROG_EGRESS)).map_err(Error::program(PROG_EGRESS))
}

/// Attaches the pinned `fw_egress` to `i`'s tcx egress hook and pins the
/// link.
pub fn attach_tcx(pins: &PinDir, i: &Iface) -> Result<()> {
    let mut tc = pinned_egress(pins)?;
    let id = while_link_released(|| {
        tc.attach_with_options(
            &i.name,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
    })
    .map_err(Error::tc_attach(&i.name, "tcx"))?;
    let link = tc.take_link(id).map_err(Error::tc_attach(&i.name, "tcx"))?;
    pin_link(link, pins.tc_link(i.index))
}

/// `i` has a clsact qdisc. Refuses an `ingress` qdisc (same handle,
/// ffff:): a filter put "on egress" there would run on ingress.
pub fn has_clsact(i: &Iface) -> Result<bool> {
    let msg = TcMessage::with_index(i.index as i32);
    let replies = request(RouteNetlinkMessage::GetQueueDiscipline(msg), NLM_F_DUMP)
        .map_err(|e| Error::io(format!("listing the qdiscs of `{}`", i.name), e))?;
    let kind = replies.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewQueueDiscipline(q)
            if q.header.index == i.index as i32 && q.header.handle.major == CLSACT_MAJOR =>
        {
            q.attributes.iter().find_map(|a| match a {
                TcAttribute::Kind(k) => Some(k.clone()),
                _ => None,
            })
        }
        _ => None,
    });
    match kind.as_deref() {
        None => Ok(false),
        Some("clsact") => Ok(true),
        Some(other) => Err(Error::invalid(
            "interface",
            i.name.clone(),
            format!(
                "it has an `{other}` qdisc where fw's egress hook needs clsact: replace it \
                 (`tc qdisc del dev {} {other}`, then move its filters to clsact ingress) or \
                 use tcx (Linux 6.6+)",
                i.name
            ),
        )),
    }
}

/// Major number of the ingress/clsact qdisc handle (ffff:).
const CLSACT_MAJOR: u16 = TcHandle::CLSACT.major;

/// The clsact qdisc of interface `ifindex` (handle ffff:, parent
/// ffff:fff1), named by kind so the kernel refuses one of another kind.
fn clsact_qdisc(ifindex: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.handle = TcHandle {
        major: CLSACT_MAJOR,
        minor: 0,
    };
    msg.header.parent = TcHandle::CLSACT;
    msg.attributes.push(TcAttribute::Kind("clsact".into()));
    msg
}

/// Makes sure `i` has a clsact qdisc; true when this call made it.
pub fn add_clsact(i: &Iface) -> Result<bool> {
    match request(
        RouteNetlinkMessage::NewQueueDiscipline(clsact_qdisc(i.index)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(Error::io(
            format!("adding a clsact qdisc to `{}`", i.name),
            e,
        )),
    }
}

/// Attaches the pinned `fw_egress` as a cls_bpf filter on `i`'s clsact
/// egress (the qdisc must exist: [`add_clsact`]).
pub fn attach_clsact(pins: &PinDir, i: &Iface) -> Result<()> {
    let mut tc = pinned_egress(pins)?;
    let id = tc
        .attach_with_options(
            &i.name,
            TcAttachType::Egress,
            TcAttachOptions::Netlink(NlOptions::default()),
        )
        .map_err(Error::tc_attach(&i.name, "clsact"))?;
    let link = tc
        .take_link(id)
        .map_err(Error::tc_attach(&i.name, "clsact"))?;
    // The filter, not this handle, keeps the program attached: dropping the
    // handle would delete the filter, so it is let go of instead.
    std::mem::forget(link);
    Ok(())
}

/// One filter on a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub egress: bool,
    /// The BPF program's name and id, for cls_bpf filters.
    pub prog_name: Option<String>,
    pub prog_id: Option<u32>,
    header: TcHeader,
}

impl Filter {
    /// The filter runs fw's egress program: the one with id `prog` when
    /// known (so another fw instance's filter is not taken for this one's),
    /// else any program named `fw_egress`.
    pub fn is_fw(&self, prog: Option<u32>) -> bool {
        self.egress
            && match prog {
                Some(id) => self.prog_id == Some(id),
                None => self.prog_name.as_deref() == Some(PROG_EGRESS),
            }
    }
}

/// The filters on interface `ifindex`'s clsact ingress and egress hooks
/// (none when it has no clsact qdisc).
pub fn clsact_filters(ifindex: u32) -> io::Result<Vec<Filter>> {
    let mut out = Vec::new();
    for (egress, minor) in [(false, TcHandle::MIN_INGRESS), (true, TcHandle::MIN_EGRESS)] {
        let mut msg = TcMessage::with_index(ifindex as i32);
        msg.header.parent = TcHandle {
            major: TcHandle::CLSACT.major,
            minor,
        };
        let replies = match request(RouteNetlinkMessage::GetTrafficFilter(msg), NLM_F_DUMP) {
            Ok(r) => r,
            // No clsact qdisc: no hook, so no filter.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(e),
        };
        for m in replies {
            let RouteNetlinkMessage::NewTrafficFilter(f) = m else {
                continue;
            };
            // The kernel lists each priority once on its own (handle 0,
            // no options) before the filters in it.
            if u32::from(f.header.handle) == 0 {
                continue;
            }
            let bpf = || {
                f.attributes.iter().flat_map(|a| match a {
                    TcAttribute::Options(opts) => opts.as_slice(),
                    _ => &[],
                })
            };
            out.push(Filter {
                egress,
                prog_name: bpf().find_map(|o| match o {
                    TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => Some(n.clone()),
                    _ => None,
                }),
                prog_id: bpf().find_map(|o| match o {
                    TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => Some(*id),
                    _ => None,
                }),
                header: f.header.clone(),
            });
        }
    }
    Ok(out)
}

/// Removes fw's filter (of program `prog`, see [`Filter::is_fw`]) from
/// interface `ifindex` and, when fw made the qdisc (`own`) and nothing else
/// uses it, the qdisc. An interface that is gone took both with it.
pub fn detach_clsact(ifindex: u32, own: bool, prog: Option<u32>) -> Result<()> {
    let gone = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENOENT));
    let what = |w: &str| format!("{w} on ifindex {ifindex}");
    let filters = match clsact_filters(ifindex) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(Error::io(what("listing the clsact filters"), e)),
    };
    for f in filters.iter().filter(|f| f.is_fw(prog)) {
        let msg = TcMessage::from_parts(f.header.clone(), Vec::new());
        match request(RouteNetlinkMessage::DelTrafficFilter(msg), NLM_F_ACK) {
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(Error::io(what("removing fw's clsact filter"), e)),
        }
    }
    if !own || filters.iter().any(|f| !f.is_fw(prog)) {
        return Ok(());
    }
    match request(
        RouteNetlinkMessage::DelQueueDiscipline(clsact_qdisc(ifindex)),
        NLM_F_ACK,
    ) {
        Ok(_) => Ok(()),
        Err(e) if gone(&e) || e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(Error::io(what("removing the clsact qdisc fw added"), e)),
    }
}

/// fw's filter is on interface `ifindex`'s clsact egress hook, or the
/// filters cannot be listed (unknown is not "detached": a repair must not
/// tear down the ingress side on a guess).
pub fn fw_filter_present(ifindex: u32, prog: Option<u32>) -> bool {
    clsact_filters(ifindex).map_or(true, |f| f.iter().any(|f| f.is_fw(prog)))
}

/// One rtnetlink request (see [`crate::kernel::netlink::request`]).
fn request(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    crate::kernel::netlink::request(NETLINK_ROUTE, msg, flags)
}

/// Attaches `fw_egress` to `i` on the first hook of `egress` the kernel
/// has; returns the `tc_mode` to record.
pub fn attach(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    slot_idx: usize,
    i: &Iface,
    egress: Egress,
    entry: impl Fn(u32, u32) -> IfaceMeta,
) -> Result<u32> {
    let mut last = None;
    for &hook in egress.tries() {
        let r = match hook {
            Hook::Tcx => attach_tcx(pins, i).map(|()| TC_MODE_TCX),
            Hook::Clsact => attach_clsact_meta(pins, maps, meta, slot_idx, i, &entry),
        };
        match r {
            Err(e) if hook == Hook::Tcx && lacks_tcx(&e) => last = Some(e),
            r => return r,
        }
    }
    Err(last.expect("at least one hook is tried"))
}

/// Puts `fw_egress` on `i`'s clsact egress (adding the qdisc if there is
/// none); returns the `tc_mode` to record. The interface's entry is in
/// META before the qdisc and filter go on: a filter has no pin, so META is
/// how a later command finds (and removes) what a killed `fw up` left.
fn attach_clsact_meta(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    slot_idx: usize,
    i: &Iface,
    entry: impl Fn(u32, u32) -> IfaceMeta,
) -> Result<u32> {
    let mode = |own| {
        if own {
            TC_MODE_CLSACT_OWN
        } else {
            TC_MODE_CLSACT
        }
    };
    let mut own = !has_clsact(i)?;
    meta.ifaces[slot_idx] = entry(0, mode(own));
    let mut steps = || -> Result<()> {
        maps.set_meta(meta)?;
        if own && !add_clsact(i)? {
            // Somebody else added one in the meantime: theirs to keep.
            own = false;
            meta.ifaces[slot_idx] = entry(0, mode(own));
            maps.set_meta(meta)?;
        }
        attach_clsact(pins, i)
    };
    match steps() {
        Ok(()) => Ok(mode(own)),
        Err(e) => {
            let prog = program_id(pins, PROG_EGRESS).ok();
            let _ = detach_clsact(i.index, own, prog);
            meta.ifaces[slot_idx] = IfaceMeta::default();
            let _ = maps.set_meta(meta);
            Err(e)
        }
    }
}

/// Undoes [`attach`] on interface `ifindex`.
pub fn detach(pins: &PinDir, ifindex: u32, tc_mode: u32) -> Result<()> {
    if is_clsact(tc_mode) {
        let prog = program_id(pins, PROG_EGRESS).ok();
        return detach_clsact(ifindex, tc_mode == TC_MODE_CLSACT_OWN, prog);
    }
    let path = pins.tc_link(ifindex);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("unpinning {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_clsact_and_forced_hooks_do_not() {
        assert_eq!(Egress::Auto.tries(), &[Hook::Tcx, Hook::Clsact]);
        assert_eq!(Egress::Tcx.tries(), &[Hook::Tcx]);
        assert_eq!(Egress::Clsact.tries(), &[Hook::Clsact]);
    }

    #[test]
    fn only_a_kernel_without_tcx_falls_back() {
        let os = |hook, code| {
            Error::tc_attach("x", hook)(
                aya::sys::SyscallError {
                    call: "bpf_mprog_attach",
                    io_error: io::Error::from_raw_os_error(code),
                }
                .into(),
            )
        };
        for code in [libc::EINVAL, libc::EOPNOTSUPP, 524] {
            assert!(lacks_tcx(&os("tcx", code)), "errno {code}");
            assert!(!lacks_tcx(&os("clsact", code)), "clsact errno {code}");
        }
        for code in [libc::EPERM, libc::EBUSY, libc::EEXIST, libc::ENODEV] {
            assert!(!lacks_tcx(&os("tcx", code)), "errno {code}");
        }
    }

    #[test]
    fn modes_have_names() {
        assert_eq!(mode_name(TC_MODE_TCX), "tcx");
        assert_eq!(mode_name(TC_MODE_CLSACT), "clsact");
        assert_eq!(mode_name(TC_MODE_CLSACT_OWN), "clsact");
        assert!(is_clsact(TC_MODE_CLSACT_OWN) && !is_clsact(TC_MODE_TCX));
    }
}
