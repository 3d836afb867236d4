//! The port policy: allowed (proto, port) and ICMP echo-request, optionally
//! restricted to the prefixes of a source set; and the DHCPv4 client
//! exception.
use aya_ebpf::maps::lpm_trie::Key;
use fw_common::{
    port_flags, port_set, proto_index, Config, SrcKey, CFG_DHCP_CLIENT, IPPROTO_UDP, PORT_ALLOW,
    PORT_FROM_RESTRICTED, PORT_ICMP_ECHO, SRC_KEY_FIXED_BITS,
};

use crate::{
    maps::{ALLOW_SRC, PORTS},
    parse::{is_echo_request, is_icmp, Pkt},
};

/// The `PORTS` index of an allowed packet, or `None` when the policy does not
/// allow it.
#[inline(always)]
pub fn allowed(p: &Pkt) -> Option<u32> {
    let idx = if is_icmp(p) {
        // ICMP errors and NDP were judged before; of the rest only
        // echo-request has an entry (`fw allow icmp echo`).
        if !is_echo_request(p.proto, p.icmp_type) {
            return None;
        }
        PORT_ICMP_ECHO
    } else {
        proto_index(p.proto)? * 65536 + p.dport as u32
    };
    // One load: flags and set come from the same store (see fw_common::port_entry).
    let entry = *PORTS.get(idx)?;
    let flags = port_flags(entry);
    if flags & PORT_ALLOW == 0 {
        return None;
    }
    if flags & PORT_FROM_RESTRICTED != 0 && !source_allowed(p, port_set(entry)) {
        return None;
    }
    Some(idx)
}

#[inline(always)]
fn source_allowed(p: &Pkt, set: u16) -> bool {
    let bits = if p.family == 4 { 32 } else { 128 };
    let key = Key::new(
        SRC_KEY_FIXED_BITS + bits,
        SrcKey {
            set_be: set.to_be(),
            family: p.family,
            _pad: 0,
            addr: p.src,
        },
    );
    ALLOW_SRC.get(&key).is_some()
}

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;

/// A DHCPv4 server -> client message (UDP 67 -> 68, any address, broadcast
/// or not) while `[dhcp] client` is on. DHCP clients read through packet
/// sockets, which see a frame after XDP but before netfilter: behind the
/// reference ruleset the client gets every such reply (offer, ack, the
/// answers to renewals and rebinding, also unicast to an address the host
/// does not have yet), whatever INPUT then does with the IP packet. fw
/// cannot pass a frame to packet sockets only, so it passes it to the stack
/// (ufw's before.rules accepts the same). DHCPv6 clients use UDP sockets,
/// which the reference does filter: no exception for 547 -> 546.
#[inline(always)]
pub fn dhcp_client_reply(cfg: &Config, p: &Pkt) -> bool {
    cfg.flags & CFG_DHCP_CLIENT != 0
        && p.family == 4
        && p.proto == IPPROTO_UDP
        && p.sport == DHCP_SERVER_PORT
        && p.dport == DHCP_CLIENT_PORT
}
