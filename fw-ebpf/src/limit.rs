//! Per-source limits (`fw limit`): a new flow (a SYN, a first datagram)
//! that the port policy lets in is counted per (limit, source prefix); over
//! the limit's rate it is rejected (reason `limited`). Established and
//! related traffic never gets here: only what conntrack did not know.
//!
//! Each limit counts in a fixed window with the previous window weighted
//! in (sliding-window estimate, as Cloudflare's and nginx's limiters do):
//! two counters per source, no timestamp list, and a burst at a window's
//! edge gets no double allowance. Every new flow a source tries is
//! counted, the limited ones too, so a source stays limited until the rate
//! it tries falls under the limit (ufw's `recent --update` does the same).
use aya_ebpf::maps::LruHashMap;
use fw_common::{Config, LimitKey, LimitRule, LimitState, LIMIT_SLOTS};

use crate::{
    conntrack,
    maps::{
        LIMITS, LIMIT_STATE_0, LIMIT_STATE_1, LIMIT_STATE_2, LIMIT_STATE_3, LIMIT_STATE_4,
        LIMIT_STATE_5, LIMIT_STATE_6, LIMIT_STATE_7,
    },
    parse::Pkt,
};

const NS_PER_MS: u64 = 1_000_000;

/// Whether the packet starts a flow its source is over a limit for. Counts
/// the flow in the limit's state either way.
#[inline(always)]
pub fn over(cfg: &Config, p: &Pkt, now: u64) -> bool {
    let Some(t) = LIMITS.get(0) else {
        return false;
    };
    if t.count == 0 || !conntrack::starts_flow(p) {
        return false;
    }
    let now = now.wrapping_add(cfg.limit_clock_offset_ns);
    let mut slot = 0;
    while slot < LIMIT_SLOTS {
        if slot as u32 >= t.count {
            return false;
        }
        let r = &t.rules[slot];
        if r.proto == p.proto && r.lo <= p.dport && p.dport <= r.hi {
            return count(state_map(slot), r, p, now);
        }
        slot += 1;
    }
    false
}

/// The state map of `slot`: one constant map per arm.
#[inline(always)]
fn state_map(slot: usize) -> &'static LruHashMap<LimitKey, LimitState> {
    match slot {
        0 => &LIMIT_STATE_0,
        1 => &LIMIT_STATE_1,
        2 => &LIMIT_STATE_2,
        3 => &LIMIT_STATE_3,
        4 => &LIMIT_STATE_4,
        5 => &LIMIT_STATE_5,
        6 => &LIMIT_STATE_6,
        _ => &LIMIT_STATE_7,
    }
}

/// The source address masked to `bits`.
#[inline(always)]
fn key(p: &Pkt, bits: u8) -> LimitKey {
    let mut k = LimitKey {
        addr: [0; 16],
        family: p.family,
        _pad: [0; 3],
    };
    let n = if p.family == 4 { 4 } else { 16 };
    let bits = bits as usize;
    let mut i = 0;
    while i < 16 {
        if i < n {
            let keep = if bits >= (i + 1) * 8 {
                8
            } else if bits > i * 8 {
                bits - i * 8
            } else {
                0
            };
            let mask = if keep == 0 { 0u8 } else { 0xffu8 << (8 - keep) };
            k.addr[i] = p.src[i] & mask;
        }
        i += 1;
    }
    k
}

/// Counts one new flow of the packet's source prefix under `r`; true when
/// the prefix was at or over the rate before it.
#[inline(always)]
fn count(map: &LruHashMap<LimitKey, LimitState>, r: &LimitRule, p: &Pkt, now: u64) -> bool {
    if r.window_ns == 0 {
        return false;
    }
    let k = key(p, if p.family == 4 { r.per4 } else { r.per6 });
    let window = now / r.window_ns;
    let into = now % r.window_ns;
    let mut st = LimitState {
        window,
        cur: 0,
        prev: 0,
        generation: r.generation,
        _pad: 0,
    };
    let found = map.get_ptr_mut(&k);
    if let Some(v) = found {
        // SAFETY: a value of the LRU, valid while the program runs; other
        // CPUs may update it at once, which at worst loses a count.
        let old = unsafe { *v };
        if old.generation == r.generation {
            if old.window == window {
                st.cur = old.cur;
                st.prev = old.prev;
            } else if old.window + 1 == window {
                st.prev = old.cur;
            }
        }
    }
    // Milliseconds keep prev * remaining below u64's range for any window
    // userspace accepts (<= 1 day) and any count (u32). Rounded up: just
    // after a window's start the previous window counts whole.
    let w_ms = r.window_ns / NS_PER_MS;
    let rest_ms = (r.window_ns - into) / NS_PER_MS;
    let weighted = if w_ms == 0 {
        0
    } else {
        (st.prev as u64 * rest_ms).div_ceil(w_ms)
    };
    let limited = weighted + st.cur as u64 >= r.rate as u64;
    st.cur = st.cur.saturating_add(1);
    match found {
        // SAFETY: as above.
        Some(v) => unsafe { *v = st },
        None => {
            let _ = map.insert(&k, &st, 0);
        }
    }
    limited
}
