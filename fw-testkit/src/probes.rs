//! The crafted packets the differential tests send, v4 and v6.
use std::net::IpAddr;

use crate::packet::l4::WINDOW;
use crate::packet::{
    Csum, Ext, Fam, Frag, Packet, Tcp, ACK, BROADCAST_MAC, L4, PROTO_TCP, PROTO_UDP, RST, SYN,
};

use crate::raw::Probe;

/// Addresses and MACs of a rig, from the client's side.
#[derive(Clone, Copy, Debug)]
pub struct Ends {
    pub cli_mac: [u8; 6],
    pub srv_mac: [u8; 6],
    pub cli: IpAddr,
    pub srv: IpAddr,
}

/// What to send.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Syn(u16),
    /// A bare ACK (no connection).
    Ack(u16),
    Rst(u16),
    Udp(u16),
    Echo,
    /// TCP SYN carrying IPv4 options / an IPv6 hop-by-hop header.
    SynWithOptions(u16),
    /// A UDP datagram in two fragments, in order.
    FragmentedUdp(u16),
    /// An ICMP port-unreachable quoting a flow nobody opened.
    IcmpErrorUnknown,
    /// UDP to the server's address but the broadcast MAC.
    L2BroadcastUdp(u16),
    /// UDP from 127.0.0.1 / ::1.
    LoopbackSource(u16),
}

pub fn describe(kind: Kind, v6: bool) -> String {
    format!("{} {kind:?}", if v6 { "v6" } else { "v4" })
}

impl Ends {
    /// A packet from the client to the server, as a peer's stack sends one
    /// (identification 0, DF set).
    fn packet(&self, l4: L4) -> Packet {
        let mut p = Packet::new(self.cli_mac, self.srv_mac, self.cli, self.srv, l4);
        p.ip_id = 0;
        p.df = true;
        p
    }
}

fn tcp(sport: u16, dport: u16, flags: u8, ack: u32, window: u16) -> L4 {
    L4::Tcp(Tcp {
        sport,
        dport,
        seq: 1000,
        ack,
        flags,
        window,
        ..Tcp::default()
    })
}

/// Frames for `kind` from source port `sport`, and how to recognise answers.
pub fn frames(e: &Ends, kind: Kind, sport: u16) -> (Vec<Vec<u8>>, Probe) {
    let fam = Fam::of(e.srv);
    let probe = |proto: u8, dport: u16| Probe {
        server: e.srv,
        proto,
        sport,
        dport,
    };
    let udp = |p: u16, payload: &[u8]| e.packet(L4::udp(sport, p, payload.to_vec()));
    match kind {
        Kind::Syn(p) => (
            vec![e.packet(tcp(sport, p, SYN, 0, WINDOW)).frame()],
            probe(PROTO_TCP, p),
        ),
        Kind::Ack(p) => (
            vec![e.packet(tcp(sport, p, ACK, 77, WINDOW)).frame()],
            probe(PROTO_TCP, p),
        ),
        Kind::Rst(p) => (
            vec![e.packet(tcp(sport, p, RST, 0, 0)).frame()],
            probe(PROTO_TCP, p),
        ),
        Kind::Udp(p) => (vec![udp(p, b"probe").frame()], probe(PROTO_UDP, p)),
        Kind::Echo => {
            let [a, b] = sport.to_be_bytes();
            let echo = L4::icmp(fam.echo_request(), 0, [a, b, 0, 1], b"ping".to_vec());
            (vec![e.packet(echo).frame()], probe(fam.icmp_proto(), 0))
        }
        Kind::SynWithOptions(p) => {
            // Four NOPs (IHL 6), or a hop-by-hop header of padding.
            let mut syn = e.packet(tcp(sport, p, SYN, 0, WINDOW));
            match fam {
                Fam::V4 => syn.v4_opts = vec![1, 1, 1, 1],
                Fam::V6 => syn.exts = vec![Ext::hbh(&[])],
            }
            (vec![syn.frame()], probe(PROTO_TCP, p))
        }
        Kind::FragmentedUdp(p) => {
            // 128 bytes of UDP cut after 64, in order.
            let mut d = udp(p, &[0x5a; 120]);
            d.frag = Frag::Pieces {
                id: sport as u32 | 0x4000,
                ranges: vec![(0, 64), (64, 128)],
                more_on_last: false,
            };
            (d.frames(), probe(PROTO_UDP, p))
        }
        Kind::IcmpErrorUnknown => {
            // Quoted: a UDP header "the server sent" from port 9 to the
            // client's sport, no checksums.
            let mut quote = Packet::new(
                e.srv_mac,
                e.cli_mac,
                e.srv,
                e.cli,
                L4::udp(9, sport, vec![]),
            );
            quote.ip_id = 0;
            quote.df = true;
            quote.ip_csum = Csum::Zero;
            quote.l4_csum = Csum::Zero;
            let err = L4::icmp(fam.unreach(), fam.port_unreach_code(), [0; 4], quote.ip());
            (vec![e.packet(err).frame()], probe(PROTO_UDP, 9))
        }
        Kind::L2BroadcastUdp(p) => (
            vec![udp(p, b"probe").l2_dst(BROADCAST_MAC).frame()],
            probe(PROTO_UDP, p),
        ),
        Kind::LoopbackSource(p) => (
            vec![udp(p, b"martian").from(fam.loopback()).frame()],
            probe(PROTO_UDP, p),
        ),
    }
}
