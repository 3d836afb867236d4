//! Layer 2: the Ethernet header with 802.1Q / 802.1ad tags, and the
//! non-IP frames tests send (ARP, other ethertypes).
use std::net::Ipv4Addr;

use super::names::{BROADCAST_MAC, ETH_ARP, TPID_8021AD, TPID_8021Q};

/// Pushes the Ethernet header onto `out`: destination, source, one
/// (TPID, TCI) pair per tag (outermost first), then `ethertype`.
pub fn push_eth(
    out: &mut Vec<u8>,
    src: [u8; 6],
    dst: [u8; 6],
    tags: &[(u16, u16)],
    ethertype: u16,
) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    // On the wire each tag's TPID sits where the ethertype would.
    for &(tpid, tci) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&tci.to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// The Ethernet header alone, as [`push_eth`] writes it.
pub fn l2(src: [u8; 6], dst: [u8; 6], tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + 4 * tags.len());
    push_eth(&mut out, src, dst, tags, ethertype);
    out
}

/// A broadcast ARP request from `mac`/`ip` for `target`.
pub fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = l2(mac, BROADCAST_MAC, &[], ETH_ARP);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// A frame of `ethertype` carrying 46 zero bytes (the Ethernet minimum).
pub fn other_ethertype(src: [u8; 6], dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = l2(src, dst, &[], ethertype);
    f.extend_from_slice(&[0u8; 46]);
    f
}

/// The offset of the IP header in `frame` (after up to two VLAN tags).
pub fn l3_offset(frame: &[u8]) -> usize {
    let mut off = 12;
    for _ in 0..2 {
        let t = u16::from_be_bytes([frame[off], frame[off + 1]]);
        if t == TPID_8021Q || t == TPID_8021AD {
            off += 4;
        }
    }
    off + 2
}
