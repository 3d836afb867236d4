//! Stage: answering a rejected packet from XDP (XDP_TX back out the same
//! interface), like REJECT --reject-with icmp-host-unreachable, or tcp-reset.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use fw_common::{
    icmp, icmpv6, Config, Reason, RejectKind, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
};

use crate::{
    checksum,
    frame::{ptr_at, read, Frame},
    options,
    parse::{
        dst_not_unicast, is_icmp, is_icmp_error, src_unanswerable, Pkt, FRAG_LATER, TCP_ACK,
        TCP_FIN, TCP_RST, TCP_SYN,
    },
    ratelimit,
};

/// Longest L2 header fw answers from (two VLAN tags).
pub const MAX_L2: usize = 22;
/// IPv6 "no next header".
const IPPROTO_NONE: u8 = 59;
const TTL: u8 = 64;
const TCPOPT_MSS: u8 = 2;
/// RFC 1812 4.3.2.3: an ICMPv4 error stays within 576 bytes.
const V4_MAX_QUOTE: usize = 576 - 20 - 8;
/// RFC 4443 2.4(c): an ICMPv6 error stays within the minimum MTU.
const V6_MAX_QUOTE: usize = 1280 - 40 - 8;

/// Answers (or not) a packet the policy rejects, as `kind` says. Returns
/// the action and the reason it is counted under.
#[inline(always)]
pub fn answer(
    ctx: &XdpContext,
    p: &Pkt,
    cfg: &Config,
    kind: RejectKind,
    now: u64,
) -> (u32, Reason) {
    let answers_error = is_icmp(p) && is_icmp_error(p.proto, p.icmp_type);
    let tcp_rst = kind == RejectKind::TcpReset && p.proto == IPPROTO_TCP;
    if kind == RejectKind::Drop
        || answers_error
        || p.frag == FRAG_LATER
        || dst_not_unicast(p)
        || src_unanswerable(p)
        || p.vlan_tagged
        || no_transport(p)
        || (tcp_rst && (p.tcp_flags & TCP_RST != 0 || p.l4_off + 20 > p.l3_off + p.ip_len))
    {
        return (xdp_action::XDP_DROP, Reason::RejectSilent);
    }
    // Linux drops an IPv4 packet whose header checksum is wrong in ip_rcv,
    // before netfilter sees it: it is never answered. Checked only here,
    // off the accept path (the stack drops what fw passes anyway).
    if p.family == 4 && (p.l3_off > MAX_L2 || !checksum::ipv4_header_ok(ctx, p.l3_off)) {
        return (xdp_action::XDP_DROP, Reason::Malformed);
    }
    // Options the stack refuses before netfilter: never answered either.
    match refused_options(ctx, p) {
        options::REFUSED_SILENTLY => return (xdp_action::XDP_DROP, Reason::RejectSilent),
        options::REFUSED_MALFORMED => return (xdp_action::XDP_DROP, Reason::Malformed),
        _ => {}
    }
    if !ratelimit::take_shared(cfg.reject_rate, cfg.reject_burst, now) {
        return (xdp_action::XDP_DROP, Reason::RejectRatelimited);
    }
    let built = if tcp_rst {
        tcp_reset(ctx, p)
    } else if p.family == 4 {
        let code = match kind {
            RejectKind::PortUnreachable => icmp::PORT_UNREACH,
            RejectKind::AdminProhibited => icmp::HOST_ADMIN_PROHIBITED,
            _ => icmp::HOST_UNREACH,
        };
        icmp_error(ctx, p, icmp::DEST_UNREACH, code)
    } else {
        let code = match kind {
            RejectKind::PortUnreachable => icmpv6::PORT_UNREACH,
            RejectKind::AdminProhibited => icmpv6::ADMIN_PROHIBITED,
            _ => icmpv6::ADDR_UNREACH,
        };
        icmp_error(ctx, p, icmpv6::DEST_UNREACH, code)
    };
    match built {
        Some(()) => (xdp_action::XDP_TX, Reason::Reject),
        None => (xdp_action::XDP_DROP, Reason::RejectSilent),
    }
}

/// IPv6 without a transport header to quote: "no next header", or nothing
/// after the extension headers (ip6tables' REJECT stays silent on both).
#[inline(always)]
fn no_transport(p: &Pkt) -> bool {
    p.family == 6 && (p.proto == IPPROTO_NONE || p.l4_off >= p.l3_off + p.ip_len)
}

/// What the stack would make of the packet's IPv4 options or IPv6
/// hop-by-hop options (see `options`).
#[inline(always)]
fn refused_options(ctx: &XdpContext, p: &Pkt) -> u8 {
    let l3 = p.l3_off;
    if l3 > MAX_L2 {
        return 0;
    }
    if p.family == 4 {
        if p.l4_off > l3 + 20 {
            return options::v4_refused(ctx, p, l3);
        }
        return 0;
    }
    match read::<[u8; 8], _>(ctx, l3) {
        Some(h) if h[6] == 0 => options::hbh_refused(ctx, l3),
        _ => 0,
    }
}

/// Writes the reply's L2 header at 0 from the original one at `from` (0 when
/// it did not move): MACs swapped, VLAN tags and ethertypes kept. Copies
/// `MAX_L2` bytes; what lies beyond the real L2 header is overwritten next.
#[inline(always)]
fn reply_l2(ctx: &XdpContext, from: usize) -> Option<()> {
    let new = ptr_at::<[u8; MAX_L2], _>(ctx, 0)? as *mut u8;
    let old = ptr_at::<[u8; MAX_L2], _>(ctx, from)? as *mut u8;
    // SAFETY: ptr_at checked both MAX_L2-byte windows against data_end.
    unsafe {
        for i in 0..6 {
            let a = *old.add(i);
            let b = *old.add(i + 6);
            *new.add(i) = b;
            *new.add(i + 6) = a;
        }
        if from != 0 {
            for i in 12..MAX_L2 {
                *new.add(i) = *old.add(i);
            }
        }
    }
    Some(())
}

/// Moves the start (negative: grows) and trims the end to `new_len` bytes.
#[inline(always)]
fn resize(ctx: &XdpContext, head_delta: i32, new_len: usize) -> Option<()> {
    // SAFETY: the helper validates the delta against the frame; pointers taken before
    // are not used after it (callers take them again).
    if head_delta != 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, head_delta) } != 0 {
        return None;
    }
    let cur = ctx.len();
    if new_len != cur {
        let delta = new_len as i64 - cur as i64;
        // SAFETY: as for adjust_head: the kernel checks the new length.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } != 0 {
            return None;
        }
    }
    Some(())
}

/// # Safety
/// `h + off .. h + off + 2` lies in a checked window of the frame.
#[inline(always)]
unsafe fn put16(h: *mut u8, off: usize, v: u16) {
    let b = v.to_be_bytes();
    *h.add(off) = b[0];
    *h.add(off + 1) = b[1];
}

/// # Safety
/// As [`put16`].
#[inline(always)]
unsafe fn put_bytes(h: *mut u8, off: usize, b: &[u8; 2]) {
    *h.add(off) = b[0];
    *h.add(off + 1) = b[1];
}

/// # Safety
/// `h + off .. h + off + N` lies in a checked window of the frame.
#[inline(always)]
unsafe fn put_addr<const N: usize>(h: *mut u8, off: usize, a: &[u8; 16]) {
    for i in 0..N {
        *h.add(off + i) = a[i];
    }
}

/// IPv4 header from `src` to `dst` at `h` (20 bytes), checksum included.
///
/// # Safety
/// `h .. h + 20` lies in a checked window of the frame.
#[inline(always)]
unsafe fn put_v4(
    h: *mut u8,
    total_len: u16,
    proto: u8,
    tos: u8,
    df: bool,
    src: &[u8; 16],
    dst: &[u8; 16],
) {
    *h = 0x45;
    *h.add(1) = tos;
    put16(h, 2, total_len);
    put16(h, 4, 0);
    put16(h, 6, if df { 0x4000 } else { 0 });
    *h.add(8) = TTL;
    *h.add(9) = proto;
    put16(h, 10, 0);
    put_addr::<4>(h, 12, src);
    put_addr::<4>(h, 16, dst);
    let c = checksum::finish(checksum::add(0, &*(h as *const [u8; 20])));
    put_bytes(h, 10, &c);
}

/// IPv6 header from `src` to `dst` at `h` (40 bytes).
///
/// # Safety
/// `h .. h + 40` lies in a checked window of the frame.
#[inline(always)]
unsafe fn put_v6(h: *mut u8, payload_len: u16, next: u8, src: &[u8; 16], dst: &[u8; 16]) {
    *h = 0x60;
    *h.add(1) = 0;
    put16(h, 2, 0);
    put16(h, 4, payload_len);
    *h.add(6) = next;
    *h.add(7) = TTL;
    put_addr::<16>(h, 8, src);
    put_addr::<16>(h, 24, dst);
}

/// Sum of the IPv6 pseudo-header (RFC 8200 8.1).
#[inline(always)]
fn v6_pseudo_sum(src: &[u8; 16], dst: &[u8; 16], len: u32, next: u8) -> u64 {
    let s = checksum::add(0, src);
    let s = checksum::add(s, dst);
    let s = checksum::add(s, &len.to_be_bytes());
    checksum::add(s, &[0, 0, 0, next])
}

/// How many bytes of the offending IP packet the error quotes.
#[inline(always)]
fn quote_len(ctx: &XdpContext, p: &Pkt, max: usize) -> Option<usize> {
    let avail = ctx.len().checked_sub(p.l3_off)?;
    let mut q = if p.ip_len < avail { p.ip_len } else { avail };
    if q > max {
        q = max;
    }
    if q < 20 {
        return None;
    }
    Some(q)
}

/// An ICMP (v4) or ICMPv6 destination unreachable quoting the packet
/// (RFC 792 + RFC 1812 4.3.2.3, RFC 4443 3.1). The original IP packet stays
/// where it is and becomes the quote; new headers go in front of it.
#[inline(never)]
fn icmp_error(ctx: &XdpContext, p: &Pkt, ty: u8, code: u8) -> Option<()> {
    let l3 = p.l3_off;
    if l3 > MAX_L2 {
        return None;
    }
    let v4 = p.family == 4;
    let (ip_hdr, max_quote) = if v4 {
        (20, V4_MAX_QUOTE)
    } else {
        (40, V6_MAX_QUOTE)
    };
    let grow = ip_hdr + 8;
    let q = quote_len(ctx, p, max_quote)?;
    // Linux's TOS for errors: the request's TOS bits, precedence
    // "internetwork control" (icmp_send).
    let tos = if v4 {
        let h: [u8; 2] = read(ctx, l3)?;
        (h[1] & 0x1e) | 0xc0
    } else {
        0
    };
    let icmp_len = (8 + q) as u32;
    let mut sum = checksum::packet_sum(ctx, l3, q)? + checksum::add(0, &[ty, code]);
    if !v4 {
        sum += v6_pseudo_sum(&p.dst, &p.src, icmp_len, IPPROTO_ICMPV6);
    }
    resize(ctx, -(grow as i32), l3 + grow + q)?;
    reply_l2(ctx, grow)?;
    let h = ptr_at::<[u8; 48], _>(ctx, l3)? as *mut u8;
    // SAFETY: ptr_at checked 48 bytes at l3 (the IPv6 header + 8 of ICMP, the larger
    // case) after the resize.
    unsafe {
        let icmp = if v4 {
            put_v4(
                h,
                (grow + q) as u16,
                IPPROTO_ICMP,
                tos,
                false,
                &p.dst,
                &p.src,
            );
            h.add(20)
        } else {
            put_v6(h, icmp_len as u16, IPPROTO_ICMPV6, &p.dst, &p.src);
            h.add(40)
        };
        *icmp = ty;
        *icmp.add(1) = code;
        put_bytes(icmp, 2, &checksum::finish(sum));
        put16(icmp, 4, 0);
        put16(icmp, 6, 0);
    }
    Some(())
}

/// The RST answering `p` (RFC 9293 3.10.7.1, as nf_send_reset builds it),
/// written over the original packet.
#[inline(always)]
fn tcp_reset(ctx: &XdpContext, p: &Pkt) -> Option<()> {
    let (seq, ack, flags) = if p.tcp_flags & TCP_ACK != 0 {
        (p.tcp_ack, 0u32, TCP_RST)
    } else {
        let syn_fin = (p.tcp_flags & TCP_SYN != 0) as u32 + (p.tcp_flags & TCP_FIN != 0) as u32;
        (
            0,
            p.tcp_seq.wrapping_add(p.tcp_payload).wrapping_add(syn_fin),
            TCP_RST | TCP_ACK,
        )
    };
    tcp_answer(ctx, p, seq, ack, flags as u32)
}

/// A bare TCP segment (no payload) answering `p`, written over the original
/// frame: L2 kept with the MACs swapped, a fresh IP header without options
/// or extension headers (addresses swapped), ports swapped. `flags_mss`:
/// the TCP flags in the low byte, and an MSS option's value above them (0:
/// no option). Five arguments: the most a BPF subprogram takes.
#[inline(never)]
pub fn tcp_answer(ctx: &XdpContext, p: &Pkt, seq: u32, ack: u32, flags_mss: u32) -> Option<()> {
    let l3 = p.l3_off;
    if l3 > MAX_L2 {
        return None;
    }
    let v4 = p.family == 4;
    let ip_hdr = if v4 { 20 } else { 40 };
    let flags = flags_mss as u8;
    let mss = (flags_mss >> 8) as u16;
    let tcp_len: usize = if mss != 0 { 24 } else { 20 };
    // The kernel never scales a SYN-ACK's window (RFC 7323 2.2): a multiple
    // of the MSS within 16 bits, as tcp_select_initial_window rounds it.
    let window = if mss != 0 {
        (65535 / mss as u32 * mss as u32) as u16
    } else {
        0
    };
    let pseudo = if v4 {
        let s = checksum::add(0, &[p.dst[0], p.dst[1], p.dst[2], p.dst[3]]);
        let s = checksum::add(s, &[p.src[0], p.src[1], p.src[2], p.src[3]]);
        checksum::add(s, &[0, IPPROTO_TCP, 0, tcp_len as u8])
    } else {
        v6_pseudo_sum(&p.dst, &p.src, tcp_len as u32, IPPROTO_TCP)
    };
    let (sport, dport) = (p.dport, p.sport);
    resize(ctx, 0, l3 + ip_hdr + tcp_len)?;
    reply_l2(ctx, 0)?;
    // The reply's own size: an IPv4 RST frame ends 40 bytes after l3, a
    // SYN-ACK with its MSS option 44.
    let t = if v4 {
        let h = ptr_at::<[u8; 40], _>(ctx, l3)? as *mut u8;
        // SAFETY: ptr_at checked the 40 bytes an IPv4 RST frame has after l3.
        unsafe {
            put_v4(
                h,
                (20 + tcp_len) as u16,
                IPPROTO_TCP,
                0,
                true,
                &p.dst,
                &p.src,
            );
            h.add(20)
        }
    } else {
        let h = ptr_at::<[u8; 60], _>(ctx, l3)? as *mut u8;
        // SAFETY: ptr_at checked the 60 bytes an IPv6 RST frame has after l3.
        unsafe {
            put_v6(h, tcp_len as u16, IPPROTO_TCP, &p.dst, &p.src);
            h.add(40)
        }
    };
    let mut sum = pseudo;
    if mss != 0 {
        let o = ptr_at::<[u8; 4], _>(ctx, l3 + ip_hdr + 20)? as *mut u8;
        let opt = [TCPOPT_MSS, 4, (mss >> 8) as u8, mss as u8];
        // SAFETY: ptr_at checked the option's 4 bytes after the header.
        unsafe {
            for (i, b) in opt.iter().enumerate() {
                *o.add(i) = *b;
            }
        }
        sum = checksum::add(sum, &opt);
    }
    // SAFETY: `t` is the TCP header inside the window checked above (20 bytes).
    unsafe {
        put16(t, 0, sport);
        put16(t, 2, dport);
        put16(t, 4, (seq >> 16) as u16);
        put16(t, 6, seq as u16);
        put16(t, 8, (ack >> 16) as u16);
        put16(t, 10, ack as u16);
        *t.add(12) = (tcp_len as u8 / 4) << 4;
        *t.add(13) = flags;
        put16(t, 14, window);
        put16(t, 16, 0);
        put16(t, 18, 0);
        let c = checksum::finish(checksum::add(sum, &*(t as *const [u8; 20])));
        put_bytes(t, 16, &c);
    }
    Some(())
}
