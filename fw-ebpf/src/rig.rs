//! Tiny programs for test and benchmark rigs, never attached by fw itself:
//! `rig_pass` gives a veth peer the NAPI context that XDP_TX frames need to
//! reach its stack; `rig_drop` is the empty-program baseline of benchmarks;
//! `rig_tx` is the benchmark's traffic generator (run through
//! BPF_PROG_TEST_RUN with live frames, its XDP_TX sends each frame out the
//! interface named in the test context).
use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};

/// Size of a `rig_tx` template frame, in 8-byte words (64 bytes: the
/// classic minimum-size frame of packet-rate benchmarks).
const TX_FRAME_WORDS: usize = 8;

/// The frame `rig_tx` sends, written over every packet before XDP_TX. The
/// live-frames page pool initialises each page once and hands it out again
/// as is; a receiver that rewrites a frame in place (fw's reject builds its
/// ICMP error over the packet) would otherwise corrupt all later frames sent
/// from that page. All zero: the packet goes out untouched.
#[map]
static RIG_TX_FRAME: Array<[u64; TX_FRAME_WORDS]> = Array::with_max_entries(1, 0);

#[xdp]
pub fn rig_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn rig_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

#[xdp]
pub fn rig_tx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + TX_FRAME_WORDS * 8 > ctx.data_end() {
        return xdp_action::XDP_TX;
    }
    let Some(frame) = RIG_TX_FRAME.get(0) else {
        return xdp_action::XDP_TX;
    };
    if frame[0] | frame[1] != 0 {
        let dst = start as *mut u64;
        for (i, w) in frame.iter().enumerate() {
            // SAFETY: in bounds: checked against data_end above. Live-frame data
            // starts 8-byte aligned (after the page head and headroom).
            unsafe { dst.add(i).write(*w) };
        }
    }
    xdp_action::XDP_TX
}
