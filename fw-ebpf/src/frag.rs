//! Fragments: the first fragment's verdict is remembered (LRU) and followed by
//! the later ones, which carry no L4 header to decide on.
use fw_common::{FragKey, FragValue, Reason};

use crate::{maps::FRAGS, parse::Pkt};

#[inline(always)]
fn key(p: &Pkt) -> FragKey {
    FragKey {
        src: p.src,
        dst: p.dst,
        id: p.frag_id,
        proto: p.proto,
        family: p.family,
        _pad: [0; 2],
    }
}

/// Records the verdict of a first fragment.
#[inline(always)]
pub fn remember(p: &Pkt, reason: Reason, pass: bool) {
    let v = FragValue {
        reason: reason as u32,
        pass: pass as u32,
    };
    let _ = FRAGS.insert(&key(p), &v, 0);
}

/// The verdict of the first fragment of `p`, if seen.
#[inline(always)]
pub fn lookup(p: &Pkt) -> Option<FragValue> {
    // SAFETY: the value is copied out at once, before any update could free it.
    unsafe { FRAGS.get(&key(p)) }.copied()
}
