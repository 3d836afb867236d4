//! What every frame fw sends back (XDP_TX) must be, whatever came in: a
//! frame etherparse parses, addressed back to the sender, with valid IPv4
//! header, ICMP, ICMPv6 and TCP checksums, and never an answer to something
//! no answer is allowed for (RFC 1122 3.2.2, RFC 4443 2.4). Where the
//! request itself parses cleanly, the verdict tests' exact checks apply too.
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::packet::{
    checksum::{ones_sum, pseudo_sum, sum_ok},
    l3_offset,
};
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use fw_user::model::policy::RejectWith;

use crate::check::{assert_icmp_error, assert_tcp_reset};

/// ICMP type and code fw uses for `kind` (tcp-reset answers non-TCP like
/// host-unreachable).
fn icmp_type_code(kind: RejectWith, v6: bool) -> (u8, u8) {
    match (kind, v6) {
        (RejectWith::PortUnreachable, false) => (3, 3),
        (RejectWith::AdminProhibited, false) => (3, 13),
        (_, false) => (3, 1),
        (RejectWith::PortUnreachable, true) => (1, 4),
        (RejectWith::AdminProhibited, true) => (1, 1),
        (_, true) => (1, 3),
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The answerability rules, read straight from the request's bytes.
fn request_may_be_answered(input: &[u8], l3: usize) -> Result<(), String> {
    ensure!(
        input[0] & 1 == 0,
        "answered an L2 broadcast/multicast (destination MAC {:02x?})",
        &input[..6]
    );
    let ip = &input[l3..];
    match ip[0] >> 4 {
        4 => {
            let (src, dst) = (&ip[12..16], &ip[16..20]);
            ensure!(
                dst[0] & 0xf0 != 0xe0 && dst != [255; 4],
                "answered an IPv4 multicast/broadcast destination {dst:?}"
            );
            ensure!(src != [0; 4], "answered the unspecified source 0.0.0.0");
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            ensure!(frag & 0x1fff == 0, "answered a non-first fragment");
        }
        6 => {
            ensure!(
                ip.len() >= 40,
                "answered a frame too short for an IPv6 header"
            );
            let (src, dst) = (&ip[8..24], &ip[24..40]);
            ensure!(dst[0] != 0xff, "answered an IPv6 multicast destination");
            ensure!(src != [0; 16], "answered the unspecified source ::");
        }
        v => return Err(format!("answered a request of IP version {v}")),
    }
    Ok(())
}

/// Checks `out`, sent with XDP_TX in answer to `input` under `kind`.
pub fn check_tx(input: &[u8], out: &[u8], kind: RejectWith) -> Result<(), String> {
    ensure!(
        kind != RejectWith::Drop,
        "XDP_TX although reject_with = drop"
    );
    let l3 = l3_offset(input);
    ensure!(
        input.len() >= l3 + 20,
        "answered a frame too short for an IP header"
    );
    request_may_be_answered(input, l3)?;
    ensure!(out.len() > l3, "reply shorter than its L2 header");
    ensure!(
        out[..6] == input[6..12] && out[6..12] == input[..6],
        "reply's MACs are not the request's, swapped"
    );
    ensure!(
        out[12..l3] == input[12..l3],
        "reply's VLAN tags / ethertype differ from the request's"
    );
    let h = PacketHeaders::from_ethernet_slice(out)
        .map_err(|e| format!("reply does not parse: {e}"))?;
    let req_ip = &input[l3..];
    let ip = &out[l3..];
    let (v6, l4, src, dst) = match &h.net {
        Some(NetHeaders::Ipv4(v4, _)) => {
            ensure!(v4.header_len() == 20, "reply has IPv4 options");
            ensure!(sum_ok(&ip[..20]), "reply's IPv4 header checksum is wrong");
            ensure!(
                v4.total_len as usize == ip.len(),
                "reply's IPv4 total length {} != {} bytes after L2",
                v4.total_len,
                ip.len()
            );
            ensure!(
                !v4.more_fragments && v4.fragment_offset.value() == 0,
                "reply is a fragment"
            );
            ensure!(req_ip[0] >> 4 == 4, "IPv4 reply to a non-IPv4 request");
            ensure!(
                ip[12..16] == req_ip[16..20] && ip[16..20] == req_ip[12..16],
                "reply's addresses are not the request's, swapped"
            );
            (false, &ip[20..], &ip[12..16], &ip[16..20])
        }
        Some(NetHeaders::Ipv6(v6, _)) => {
            ensure!(
                v6.payload_length as usize + 40 == ip.len(),
                "reply's IPv6 payload length {} != {} bytes after the header",
                v6.payload_length,
                ip.len().saturating_sub(40)
            );
            ensure!(req_ip[0] >> 4 == 6, "IPv6 reply to a non-IPv6 request");
            ensure!(
                ip[8..24] == req_ip[24..40] && ip[24..40] == req_ip[8..24],
                "reply's addresses are not the request's, swapped"
            );
            (true, &ip[40..], &ip[8..24], &ip[24..40])
        }
        other => return Err(format!("reply is not IP: {other:?}")),
    };
    match &h.transport {
        Some(TransportHeader::Icmpv4(_)) | Some(TransportHeader::Icmpv6(_)) => {
            let init = if v6 {
                pseudo_sum(src, dst, 58, l4.len())
            } else {
                0
            };
            ensure!(
                ones_sum(l4, init) == 0xffff,
                "reply's ICMP{} checksum is wrong",
                if v6 { "v6" } else { "" }
            );
            let (ty, code) = icmp_type_code(kind, v6);
            ensure!(
                (l4[0], l4[1]) == (ty, code),
                "reply is ICMP {}/{}, want {ty}/{code} for {}",
                l4[0],
                l4[1],
                kind.name()
            );
            exact(|| assert_icmp_error(input, out, ty, code))
        }
        Some(TransportHeader::Tcp(t)) => {
            ensure!(
                kind == RejectWith::TcpReset,
                "TCP reply under {}",
                kind.name()
            );
            ensure!(t.rst, "TCP reply without RST");
            ensure!(
                ones_sum(l4, pseudo_sum(src, dst, 6, l4.len())) == 0xffff,
                "reply's TCP checksum is wrong"
            );
            // The exact RST check reads the request with etherparse: only
            // where that sees the same complete TCP segment fw did.
            match PacketHeaders::from_ethernet_slice(input) {
                Ok(req) if matches!(req.transport, Some(TransportHeader::Tcp(_))) => {
                    exact(|| assert_tcp_reset(input, out))
                }
                _ => Ok(()),
            }
        }
        other => Err(format!("reply is neither ICMP nor TCP: {other:?}")),
    }
}

/// Runs one of the verdict tests' exact checks, its panic as an error.
fn exact(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "exact check failed".into())
    })
}
