//! The XDP program: parse, then the blocklists, then the seed policy in
//! order (fragments, ESTABLISHED, RELATED, NDP, ports with their per-source
//! limits and SYN cookies for an open port's flooded listener, DHCP client
//! replies, REJECT), then count.
use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use fw_common::{Config, Reason, RejectKind, CFG_DRY_RUN};

use crate::{
    block, conntrack, counters, events, frag,
    frame::Frame,
    limit,
    maps::{CONFIG, PKT},
    parse::{
        self, is_icmp, is_martian, is_ndp, is_related_candidate, Parsed, Pkt, FRAG_FIRST,
        FRAG_LATER,
    },
    policy, reject, syncookie,
};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let len = ctx.len() as u32;
    // SAFETY: ctx.ctx is the kernel's xdp_md, valid for the program run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // Userspace writes the config before attaching; without it fw is not set up.
    let Some(cfg) = CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a helper without arguments, always callable from XDP.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let slot = counters::iface_slot(ifindex);
    let Some(p) = PKT.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: the per-CPU scratch value, valid for the program run; no other reference to it.
    let p = unsafe { &mut *p };
    match parse::parse(ctx, p) {
        Parsed::Ip => {}
        Parsed::NonIp => {
            counters::count(slot, Reason::NonIp, len as u64);
            return xdp_action::XDP_PASS;
        }
        Parsed::Malformed => {
            counters::count(slot, Reason::Malformed, len as u64);
            events::emit(cfg, now, ifindex, len, Reason::Malformed, None);
            return xdp_action::XDP_DROP;
        }
    }
    let (action, reason) = decide(ctx, p, cfg, now);
    counters::count(slot, reason, len as u64);
    if !reason.accepted() || reason == Reason::WouldReject {
        events::emit(cfg, now, ifindex, len, reason, Some(p));
    }
    action
}

#[inline(always)]
fn decide(ctx: &XdpContext, p: &Pkt, cfg: &Config, now: u64) -> (u32, Reason) {
    if is_martian(p) {
        return (xdp_action::XDP_DROP, Reason::Martian);
    }
    // Before everything else, later fragments and established flows
    // included: a banned source's sessions end (as with a ban at the top of
    // INPUT). Loopback never gets here (fw does not attach to lo).
    let blocked = block::blocked(p, now);
    let judged = if blocked {
        banned(cfg, RejectKind::from_u32(cfg.block_kind), Reason::Blocked)
    } else if p.frag == FRAG_LATER {
        return match frag::lookup(p) {
            Some(v) if v.pass != 0 => (
                xdp_action::XDP_PASS,
                Reason::from_u32(v.reason).unwrap_or(Reason::Fragment),
            ),
            _ => (xdp_action::XDP_DROP, Reason::Fragment),
        };
    } else {
        verdict(ctx, p, cfg, now)
    };
    // One place answers, for the policy's rejects, the blocked and the
    // limited alike (one copy of the answering code in the program).
    let (action, reason) = match judged {
        Judged::Done(action, reason) => (action, reason),
        Judged::Reject(kind, None) => reject::answer(ctx, p, cfg, kind, now),
        Judged::Reject(kind, Some(counted)) => {
            // Answered when the kind says so and the packet may be
            // answered at all (within the reject rate); counted as
            // blocked or limited either way.
            let (action, _) = reject::answer(ctx, p, cfg, kind, now);
            let sent = action == xdp_action::XDP_TX;
            let action = if sent { action } else { xdp_action::XDP_DROP };
            (action, counted)
        }
    };
    if !blocked && p.frag == FRAG_FIRST {
        frag::remember(p, reason, action == xdp_action::XDP_PASS);
    }
    (action, reason)
}

/// What the policy made of a packet: decided, or to be rejected as `kind`
/// (counted as the reason given, or as the answer went without one).
enum Judged {
    Done(u32, Reason),
    Reject(RejectKind, Option<Reason>),
}

/// A banned packet (blocked, limited): rejected as `kind` and counted as
/// `reason`; passed as `would_reject` in dry-run mode.
#[inline(always)]
fn banned(cfg: &Config, kind: RejectKind, reason: Reason) -> Judged {
    if cfg.flags & CFG_DRY_RUN != 0 {
        Judged::Done(xdp_action::XDP_PASS, Reason::WouldReject)
    } else {
        Judged::Reject(kind, Some(reason))
    }
}

#[inline(always)]
fn verdict(ctx: &XdpContext, p: &Pkt, cfg: &Config, now: u64) -> Judged {
    let shadowed = match conntrack::ingress(cfg, p, now) {
        conntrack::Track::Known => return Judged::Done(xdp_action::XDP_PASS, Reason::Established),
        conntrack::Track::New { shadowed } => shadowed,
    };
    if is_icmp(p) {
        if is_related_candidate(p.proto, p.icmp_type) {
            if let Some(q) = parse::quoted(ctx, p) {
                if conntrack::known(cfg, &conntrack::quoted_key(&q, p.family), now) {
                    return Judged::Done(xdp_action::XDP_PASS, Reason::Related);
                }
            }
        }
        if is_ndp(p) {
            return Judged::Done(xdp_action::XDP_PASS, Reason::Ndp);
        }
    }
    if let Some(idx) = policy::allowed(p) {
        // New flows only (established ones returned above), before they
        // are counted or recorded: a limited SYN leaves no flow behind.
        if limit::over(cfg, p, now) {
            return banned(cfg, RejectKind::from_u32(cfg.reject_kind), Reason::Limited);
        }
        // Before anything is recorded: a cookie answer keeps no state.
        match syncookie::answer(ctx, p, cfg) {
            syncookie::Cookie::Pass => {}
            syncookie::Cookie::Sent => return Judged::Done(xdp_action::XDP_TX, Reason::Syncookie),
            syncookie::Cookie::Lost => {
                return Judged::Done(xdp_action::XDP_DROP, Reason::Syncookie)
            }
        }
        counters::count_port(idx);
        conntrack::accept_new(p, now, shadowed);
        return Judged::Done(xdp_action::XDP_PASS, Reason::Port);
    }
    // After conntrack and the ports: a unicast renewal's answer to the
    // client's UDP socket stays `established`, an open udp 68 stays `port`,
    // as under the reference. Not a flow of its own (netfilter's INPUT
    // never accepts it either).
    if policy::dhcp_client_reply(cfg, p) {
        return Judged::Done(xdp_action::XDP_PASS, Reason::Dhcp);
    }
    if cfg.flags & CFG_DRY_RUN != 0 {
        return Judged::Done(xdp_action::XDP_PASS, Reason::WouldReject);
    }
    Judged::Reject(RejectKind::from_u32(cfg.reject_kind), None)
}
