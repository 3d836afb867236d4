//! Checks of the frames fw sends back (XDP_TX): ICMP errors and TCP resets,
//! parsed with etherparse, checksums recomputed here independently of the
//! kernel side's checksum code.
use etherparse::{Ipv4Header, Ipv6Header, PacketHeaders, TcpHeader, TransportHeader};

use crate::packet::{
    checksum::{ones_sum, pseudo_sum, sum_ok},
    l3_offset,
};

/// RFC 1812 4.3.2.3: the quote of an ICMPv4 error (576 - 20 - 8).
pub const V4_QUOTE_MAX: usize = 548;
/// RFC 4443 2.4(c): the quote of an ICMPv6 error (1280 - 40 - 8).
pub const V6_QUOTE_MAX: usize = 1232;

/// The reply's L2 header: MACs swapped, everything after them (VLAN tags,
/// ethertype) as in the request.
fn check_l2(input: &[u8], out: &[u8]) -> usize {
    let l3 = l3_offset(input);
    assert!(
        out.len() > l3,
        "reply shorter than its L2 header: {out:02x?}"
    );
    assert_eq!(
        out[0..6],
        input[6..12],
        "reply's destination MAC is not the sender's"
    );
    assert_eq!(
        out[6..12],
        input[0..6],
        "reply's source MAC is not the one the request went to"
    );
    assert_eq!(
        out[12..l3],
        input[12..l3],
        "reply's VLAN tags / ethertype differ from the request's"
    );
    assert_eq!(l3_offset(out), l3);
    l3
}

/// The IP packet inside `frame` per its own length field (no L2 padding).
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    let l3 = l3_offset(frame);
    let ip = &frame[l3..];
    let len = match ip[0] >> 4 {
        4 => u16::from_be_bytes([ip[2], ip[3]]) as usize,
        6 => 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize,
        v => panic!("not IP (version {v})"),
    };
    &ip[..len.min(ip.len())]
}

/// `out` is the ICMP (v4) or ICMPv6 error `ty`/`code` answering `input`.
pub fn assert_icmp_error(input: &[u8], out: &[u8], ty: u8, code: u8) {
    let l3 = check_l2(input, out);
    let orig = ip_packet(input);
    let ip = &out[l3..];
    match orig[0] >> 4 {
        4 => {
            let (h, rest) = Ipv4Header::from_slice(ip).expect("reply's IPv4 header parses");
            assert_eq!(h.header_len(), 20, "reply has no IP options");
            assert!(
                sum_ok(&ip[..20]),
                "IPv4 header checksum of the reply is wrong: {:02x?}",
                &ip[..20]
            );
            assert_eq!(
                h.total_len as usize,
                ip.len(),
                "IPv4 total length = frame length - L2"
            );
            assert_eq!(h.time_to_live, 64);
            assert_eq!(h.protocol.0, 1, "reply is ICMP");
            assert_eq!(
                h.source,
                orig[16..20],
                "reply comes from the address the request went to"
            );
            assert_eq!(
                h.destination,
                orig[12..16],
                "reply goes to the request's source"
            );
            assert!(
                !h.more_fragments && h.fragment_offset.value() == 0,
                "reply is not a fragment"
            );
            // Linux: TOS = request's TOS bits | precedence "internetwork control".
            assert_eq!(
                h.dscp.value() << 2 | h.ecn.value(),
                (orig[1] & 0x1e) | 0xc0,
                "TOS"
            );
            assert!(
                ip.len() <= 576,
                "ICMPv4 error longer than 576 bytes: {}",
                ip.len()
            );
            let icmp = rest;
            assert_eq!((icmp[0], icmp[1]), (ty, code), "ICMP type/code");
            assert_eq!(icmp[4..8], [0, 0, 0, 0], "unused word is zero");
            assert!(sum_ok(icmp), "ICMP checksum of the reply is wrong");
            let want = orig.len().min(V4_QUOTE_MAX);
            assert_eq!(icmp.len() - 8, want, "quote length");
            assert_eq!(
                &icmp[8..],
                &orig[..want],
                "quote is the start of the original IP packet"
            );
        }
        6 => {
            let (h, rest) = Ipv6Header::from_slice(ip).expect("reply's IPv6 header parses");
            assert_eq!(h.payload_length as usize, rest.len(), "IPv6 payload length");
            assert_eq!(
                h.next_header.0, 58,
                "reply is ICMPv6 (no extension headers)"
            );
            assert_eq!(h.hop_limit, 64);
            assert_eq!(h.traffic_class, 0);
            assert_eq!(h.flow_label.value(), 0);
            assert_eq!(
                h.source,
                orig[24..40],
                "reply comes from the address the request went to"
            );
            assert_eq!(
                h.destination,
                orig[8..24],
                "reply goes to the request's source"
            );
            assert!(
                ip.len() <= 1280,
                "ICMPv6 error longer than the minimum MTU: {}",
                ip.len()
            );
            let icmp = rest;
            assert_eq!((icmp[0], icmp[1]), (ty, code), "ICMPv6 type/code");
            assert_eq!(icmp[4..8], [0, 0, 0, 0], "unused word is zero");
            let pseudo = pseudo_sum(&h.source, &h.destination, 58, icmp.len());
            assert_eq!(
                ones_sum(icmp, pseudo),
                0xffff,
                "ICMPv6 checksum of the reply is wrong"
            );
            // Cross-check with etherparse's own calculator.
            let ph = PacketHeaders::from_ethernet_slice(out).expect("reply parses");
            let Some(TransportHeader::Icmpv6(ih)) = ph.transport else {
                panic!("reply is not ICMPv6: {:?}", ph.transport);
            };
            let c = ih
                .icmp_type
                .calc_checksum(h.source, h.destination, ph.payload.slice())
                .unwrap();
            assert_eq!(
                c, ih.checksum,
                "etherparse disagrees with the ICMPv6 checksum"
            );
            let want = orig.len().min(V6_QUOTE_MAX);
            assert_eq!(icmp.len() - 8, want, "quote length");
            assert_eq!(
                &icmp[8..],
                &orig[..want],
                "quote is the start of the original IP packet"
            );
        }
        v => panic!("request is not IP (version {v})"),
    }
}

/// `out` is the TCP RST answering `input`, built as Linux nf_send_reset does.
pub fn assert_tcp_reset(input: &[u8], out: &[u8]) {
    let l3 = check_l2(input, out);
    let req = PacketHeaders::from_ethernet_slice(input).expect("request parses");
    let Some(TransportHeader::Tcp(rt)) = &req.transport else {
        panic!("request is not TCP");
    };
    let req_payload = req.payload.slice().len() as u32;
    let orig = ip_packet(input);
    let ip = &out[l3..];
    let tcp = match orig[0] >> 4 {
        4 => {
            let (h, rest) = Ipv4Header::from_slice(ip).expect("reply's IPv4 header parses");
            assert_eq!(h.header_len(), 20);
            assert!(
                sum_ok(&ip[..20]),
                "IPv4 header checksum of the RST is wrong"
            );
            assert_eq!(h.total_len, 40);
            assert_eq!(ip.len(), 40, "RST frame carries nothing after TCP");
            assert_eq!(h.time_to_live, 64);
            assert_eq!(h.protocol.0, 6);
            assert!(h.dont_fragment, "nf_send_reset sets DF");
            assert_eq!(h.identification, 0);
            assert_eq!(h.source, orig[16..20]);
            assert_eq!(h.destination, orig[12..16]);
            let pseudo = pseudo_sum(&h.source, &h.destination, 6, 20);
            assert_eq!(
                ones_sum(rest, pseudo),
                0xffff,
                "TCP checksum of the RST is wrong"
            );
            let (th, _) = TcpHeader::from_slice(rest).unwrap();
            let c = th
                .calc_checksum_ipv4_raw(h.source, h.destination, &[])
                .unwrap();
            assert_eq!(c, th.checksum, "etherparse disagrees with the RST checksum");
            th
        }
        _ => {
            let (h, rest) = Ipv6Header::from_slice(ip).expect("reply's IPv6 header parses");
            assert_eq!(h.payload_length, 20);
            assert_eq!(ip.len(), 60);
            assert_eq!(h.next_header.0, 6);
            assert_eq!(h.hop_limit, 64);
            assert_eq!(h.source, orig[24..40]);
            assert_eq!(h.destination, orig[8..24]);
            let pseudo = pseudo_sum(&h.source, &h.destination, 6, 20);
            assert_eq!(
                ones_sum(rest, pseudo),
                0xffff,
                "TCP checksum of the RST is wrong"
            );
            let (th, _) = TcpHeader::from_slice(rest).unwrap();
            let c = th
                .calc_checksum_ipv6_raw(h.source, h.destination, &[])
                .unwrap();
            assert_eq!(c, th.checksum, "etherparse disagrees with the RST checksum");
            th
        }
    };
    assert_eq!(tcp.source_port, rt.destination_port);
    assert_eq!(tcp.destination_port, rt.source_port);
    assert_eq!(tcp.header_len(), 20);
    assert!(tcp.rst && !tcp.syn && !tcp.fin && !tcp.psh && !tcp.urg);
    assert_eq!(tcp.window_size, 0);
    if rt.ack {
        // RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST>.
        assert!(!tcp.ack, "RST answering an ACK carries no ACK");
        assert_eq!(tcp.sequence_number, rt.acknowledgment_number);
        assert_eq!(tcp.acknowledgment_number, 0);
    } else {
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; SYN and FIN count.
        assert!(tcp.ack, "RST answering a non-ACK segment acknowledges it");
        assert_eq!(tcp.sequence_number, 0);
        let len = req_payload + rt.syn as u32 + rt.fin as u32;
        assert_eq!(
            tcp.acknowledgment_number,
            rt.sequence_number.wrapping_add(len)
        );
    }
}
