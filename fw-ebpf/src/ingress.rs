//! The XDP program: parse, then the seed policy in order (fragments,
//! ESTABLISHED, RELATED, NDP, ports, DHCP client replies, REJECT), then
//! count.
use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use fw_common::{Config, Reason, CFG_DRY_RUN};

use crate::{
    conntrack, counters, events, frag,
    frame::Frame,
    maps::{CONFIG, PKT},
    parse::{
        self, is_icmp, is_martian, is_ndp, is_related_candidate, Parsed, Pkt, FRAG_FIRST,
        FRAG_LATER,
    },
    policy, reject,
};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let len = ctx.len() as u32;
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // Userspace writes the config before attaching; without it fw is not set up.
    let Some(cfg) = CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let slot = counters::iface_slot(ifindex);
    let Some(p) = PKT.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
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
    if p.frag == FRAG_LATER {
        return match frag::lookup(p) {
            Some(v) if v.pass != 0 => (
                xdp_action::XDP_PASS,
                Reason::from_u32(v.reason).unwrap_or(Reason::Fragment),
            ),
            _ => (xdp_action::XDP_DROP, Reason::Fragment),
        };
    }
    let (action, reason) = verdict(ctx, p, cfg, now);
    if p.frag == FRAG_FIRST {
        frag::remember(p, reason, action == xdp_action::XDP_PASS);
    }
    (action, reason)
}

#[inline(always)]
fn verdict(ctx: &XdpContext, p: &Pkt, cfg: &Config, now: u64) -> (u32, Reason) {
    if conntrack::ingress(cfg, p, now) {
        return (xdp_action::XDP_PASS, Reason::Established);
    }
    if is_icmp(p) {
        if is_related_candidate(p.proto, p.icmp_type) {
            if let Some(q) = parse::quoted(ctx, p) {
                if conntrack::known(cfg, &conntrack::quoted_key(&q, p.family), now) {
                    return (xdp_action::XDP_PASS, Reason::Related);
                }
            }
        }
        if is_ndp(p) {
            return (xdp_action::XDP_PASS, Reason::Ndp);
        }
    }
    if let Some(idx) = policy::allowed(p) {
        counters::count_port(idx);
        conntrack::accept_new(p, now);
        return (xdp_action::XDP_PASS, Reason::Port);
    }
    // After conntrack and the ports: a unicast renewal's answer to the
    // client's UDP socket stays `established`, an open udp 68 stays `port`,
    // as under the reference. Not a flow of its own (netfilter's INPUT
    // never accepts it either).
    if policy::dhcp_client_reply(cfg, p) {
        return (xdp_action::XDP_PASS, Reason::Dhcp);
    }
    if cfg.flags & CFG_DRY_RUN != 0 {
        return (xdp_action::XDP_PASS, Reason::WouldReject);
    }
    reject::answer(ctx, p, cfg, now)
}
