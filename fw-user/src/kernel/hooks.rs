//! Where fw's programs are attached, as the pins, META and the kernel tell.
use std::path::PathBuf;

use fw_common::{IfaceMeta, Meta, PROG_EGRESS, PROG_INGRESS};

use crate::{
    kernel::{
        egress, iface,
        link::{link_state, HookState},
        load::program_id,
        pins::PinDir,
    },
    model::names::name_from_bytes,
};

/// Where the pins disagree with META: what a `fw up` or `fw down` killed
/// halfway leaves behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HalfState {
    /// Link pins of interfaces META does not list (`fw up` killed between
    /// pinning a link and recording the interface): still attached, unseen.
    pub stray_links: Vec<(PathBuf, u32)>,
    /// Interfaces META lists with a link pin missing (`fw down` killed
    /// between unpinning and recording it): not, or half, attached.
    pub unlinked: Vec<String>,
}

impl HalfState {
    pub fn is_empty(&self) -> bool {
        self.stray_links.is_empty() && self.unlinked.is_empty()
    }
}

/// Both of fw's programs are attached to the interface of `m` (or it is
/// gone, which detached them).
pub fn attached(pins: &PinDir, m: &IfaceMeta) -> bool {
    let egress = if egress::is_clsact(m.tc_mode) {
        !iface::exists(m.ifindex)
            || egress::fw_filter_present(m.ifindex, program_id(pins, PROG_EGRESS).ok())
    } else {
        pins.tc_link(m.ifindex).exists()
    };
    pins.xdp_link(m.ifindex).exists() && egress
}

/// Whether fw's XDP program really filters the interface of `m`.
pub fn ingress_state(pins: &PinDir, m: &IfaceMeta) -> HookState {
    link_state(
        &pins.xdp_link(m.ifindex),
        m.ifindex,
        program_id(pins, PROG_INGRESS).ok(),
    )
}

/// Whether fw's egress program really sees what the interface of `m` sends.
pub fn egress_state(pins: &PinDir, m: &IfaceMeta) -> HookState {
    let prog = program_id(pins, PROG_EGRESS).ok();
    if egress::is_clsact(m.tc_mode) {
        return if egress::fw_filter_present(m.ifindex, prog) {
            HookState::Attached
        } else {
            HookState::Detached
        };
    }
    link_state(&pins.tc_link(m.ifindex), m.ifindex, prog)
}

pub fn half_state(pins: &PinDir, meta: &Meta) -> HalfState {
    let listed: Vec<u32> = meta
        .ifaces
        .iter()
        .filter(|m| m.slot != 0)
        .map(|m| m.ifindex)
        .collect();
    HalfState {
        stray_links: pins
            .link_pins()
            .into_iter()
            .filter(|(_, idx)| !listed.contains(idx))
            .collect(),
        unlinked: meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0 && !attached(pins, m))
            .map(|m| name_from_bytes(&m.name))
            .collect(),
    }
}

/// Where in `meta` the interface fw is up on under `name` is listed.
pub fn position(meta: &Meta, name: &str) -> Option<usize> {
    meta.ifaces
        .iter()
        .position(|m| m.slot != 0 && name_from_bytes(&m.name) == name)
}

/// The `Meta` entry of the interface fw is up on under `name`, if any.
pub fn entry<'a>(meta: &'a Meta, name: &str) -> Option<&'a IfaceMeta> {
    position(meta, name).map(|p| &meta.ifaces[p])
}
