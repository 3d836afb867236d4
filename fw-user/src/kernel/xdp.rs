//! Attaching fw's ingress program to an interface with XDP.
use aya::programs::{Xdp, XdpMode};
use fw_common::{PROG_INGRESS, XDP_MODE_GENERIC, XDP_MODE_NATIVE};

use crate::{
    error::{Error, Result},
    kernel::{
        iface::Iface,
        link::{pin_link, while_link_released},
        pins::PinDir,
    },
};

/// How XDP is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Native (driver) mode where the driver supports it, else generic.
    #[default]
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

pub fn mode_name(m: u32) -> &'static str {
    match m {
        XDP_MODE_NATIVE => "native",
        XDP_MODE_GENERIC => "generic",
        _ => "unknown",
    }
}

pub fn attach(pins: &PinDir, i: &Iface, mode: Mode) -> Result<(u32, &'static str)> {
    let mut xdp = Xdp::from_pin(
        pins.prog(PROG_INGRESS),
        aya_obj::programs::XdpAttachType::Interface,
    )
    .map_err(Error::program(PROG_INGRESS))?;
    let tries: &[(XdpMode, u32, &'static str)] = match mode {
        Mode::Auto => &[
            (XdpMode::Driver, XDP_MODE_NATIVE, "native"),
            (XdpMode::Skb, XDP_MODE_GENERIC, "generic"),
        ],
        Mode::Native => &[(XdpMode::Driver, XDP_MODE_NATIVE, "native")],
        Mode::Generic => &[(XdpMode::Skb, XDP_MODE_GENERIC, "generic")],
    };
    let mut last = None;
    for &(m, code, name) in tries {
        match while_link_released(|| xdp.attach_to_if_index(i.index, m)) {
            Ok(id) => {
                let link = xdp.take_link(id).map_err(Error::program(PROG_INGRESS))?;
                pin_link(link, pins.xdp_link(i.index))?;
                return Ok((code, name));
            }
            Err(e) => last = Some((name, e)),
        }
    }
    let (name, source) = last.expect("at least one mode is tried");
    let hint = if mode == Mode::Native {
        " (the driver may lack native XDP: try `--mode generic`)"
    } else {
        " (is another XDP program attached? see `ip link show`)"
    };
    Err(Error::xdp_attach(&i.name, name, hint)(source))
}
