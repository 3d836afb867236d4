//! The port policy: allowed (proto, port), optionally restricted by source.
use aya_ebpf::maps::lpm_trie::Key;
use fw_common::{proto_index, SrcKey, PORT_ALLOW, PORT_FROM_RESTRICTED, SRC_KEY_FIXED_BITS};

use crate::{
    maps::{ALLOW_SRC, PORTS},
    parse::Pkt,
};

/// The `PORTS` index of an allowed packet, or `None` when the policy does not
/// allow it.
#[inline(always)]
pub fn allowed(p: &Pkt) -> Option<u32> {
    let idx = proto_index(p.proto)? * 65536 + p.dport as u32;
    let flags = *PORTS.get(idx)?;
    if flags & PORT_ALLOW == 0 {
        return None;
    }
    if flags & PORT_FROM_RESTRICTED != 0 && !source_allowed(p) {
        return None;
    }
    Some(idx)
}

#[inline(always)]
fn source_allowed(p: &Pkt) -> bool {
    let bits = if p.family == 4 { 32 } else { 128 };
    let key = Key::new(
        SRC_KEY_FIXED_BITS + bits,
        SrcKey {
            proto: p.proto,
            family: p.family,
            port_be: p.dport.to_be(),
            addr: p.src,
        },
    );
    ALLOW_SRC.get(&key).is_some()
}
