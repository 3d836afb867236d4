//! Helpers for test and benchmark rigs built from fw's own object: a pass
//! program that gives a veth peer NAPI (so XDP_TX replies reach its stack),
//! and the empty drop program benchmarks compare against.
use aya::{
    programs::{Xdp, XdpMode},
    Ebpf,
};

use crate::{
    error::{Error, Result},
    kernel::load::EBPF_OBJECT,
};

/// An attached rig program; detached when dropped.
pub struct RigProgram {
    _ebpf: Ebpf,
}

/// Attaches `rig_pass` (or `rig_drop`) natively to `iface` in the current
/// network namespace.
pub fn attach(iface: &str, drop_all: bool) -> Result<RigProgram> {
    let name = if drop_all { "rig_drop" } else { "rig_pass" };
    let mut ebpf = Ebpf::load(EBPF_OBJECT)?;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::no_program("rig"))?
        .try_into()
        .map_err(Error::program("rig"))?;
    prog.load().map_err(Error::program("rig"))?;
    prog.attach(iface, XdpMode::Driver)
        .map_err(Error::xdp_attach(iface, "native", ""))?;
    Ok(RigProgram { _ebpf: ebpf })
}
