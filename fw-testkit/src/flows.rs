//! Stateful conformance cases: flows the server starts (TCP connect, UDP
//! query, ping) or accepts (TCP and UDP to port 80), then what the peer
//! sends about them: replies with every interesting TCP flag, replies from
//! the wrong port or identifier, ICMP errors quoting the server's packet
//! (from the peer or a router, about the flow, another port, or the wrong
//! direction). The follow-ups are built from the server's packet as
//! captured on the wire (sequence numbers, identifiers, the quote).
use std::net::IpAddr;

use crate::packet::{octets, Icmp, Packet, Tcp, Udp, ACK, FIN, L4, PSH, RST, SYN};

use crate::{
    agent::Open,
    corpus::{fill, pool_v4, pool_v6, router, server, Env},
    wire::{parse_frame, parse_ip},
};

/// How the flow starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    HostTcp,
    HostUdp,
    HostPing,
    /// The peer's SYN to port 80; the server's SYN-ACK is the flow's packet.
    PeerTcp,
    /// The peer's datagram to port 80; the echo is the flow's packet.
    PeerUdp,
}

#[derive(Clone, Copy, Debug)]
pub enum Ack {
    /// The server's sequence + 1.
    Right,
    /// Far off.
    Wrong,
    None,
}

#[derive(Clone, Copy, Debug)]
pub enum From {
    Peer,
    Router,
}

#[derive(Clone, Copy, Debug)]
pub enum Quote {
    /// The server's packet of the flow.
    Flow,
    /// The same with the server's port (or ping identifier) off by one.
    OtherPort,
    /// A packet of the flow in the peer's direction (errors never quote those).
    PeerDirection,
}

/// One packet the peer sends about the flow.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Tcp {
        flags: u8,
        ack: Ack,
        data: bool,
    },
    TcpFromOtherPort(u8),
    UdpReply,
    UdpReplyFromOtherPort,
    EchoReply,
    EchoReplyOtherId,
    EchoRequestSameId,
    Error {
        ty: u8,
        code: u8,
        from: From,
        quote: Quote,
    },
}

pub struct FlowCase {
    pub name: String,
    pub v6: bool,
    pub opener: Opener,
    pub steps: Vec<Step>,
    /// Run alone, with the server's counter of this ICMP type as the host's
    /// view (errors about flows the server accepted: no socket tells).
    pub observe_icmp: Option<u8>,
    pub peer: IpAddr,
    pub peer_port: u16,
    pub srv_port: u16,
    /// A named difference this case is expected to show, if any.
    pub tag: Option<&'static str>,
}

/// The peer's initial sequence number.
const PEER_ISN: u32 = 0x5000_0000;

fn unreach(v6: bool) -> (u8, u8) {
    if v6 {
        (1, 3)
    } else {
        (3, 1)
    }
}

fn errors(v6: bool, opener: Opener) -> Vec<(u8, u8)> {
    match (v6, opener) {
        (false, Opener::HostTcp) => vec![
            (3, 1),
            (3, 3),
            (3, 4),
            (3, 13),
            (11, 0),
            (12, 0),
            (4, 0),
            (5, 1),
            (19, 0),
        ],
        (true, Opener::HostTcp) => vec![
            (1, 3),
            (1, 4),
            (1, 1),
            (2, 0),
            (3, 0),
            (4, 0),
            (100, 0),
            (0, 0),
        ],
        (false, Opener::HostUdp) => vec![(3, 3), (3, 1), (11, 0), (12, 0)],
        (true, Opener::HostUdp) => vec![(1, 4), (1, 3), (3, 0), (4, 0)],
        (false, Opener::HostPing) => vec![(3, 1), (11, 0)],
        (true, Opener::HostPing) => vec![(1, 3), (3, 0)],
        (false, _) => vec![(3, 1), (3, 3), (11, 0)],
        (true, _) => vec![(1, 3), (1, 4), (3, 0)],
    }
}

/// Every case, both families.
pub fn cases() -> Vec<FlowCase> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let mut list: Vec<(String, Opener, Vec<Step>, bool)> = Vec::new();
        let t = |flags, ack| Step::Tcp {
            flags,
            ack,
            data: false,
        };
        let data = Step::Tcp {
            flags: PSH | ACK,
            ack: Ack::Right,
            data: true,
        };
        for (what, steps) in [
            ("SYN-ACK", vec![t(SYN | ACK, Ack::Right)]),
            (
                "SYN-ACK acking a wrong sequence",
                vec![t(SYN | ACK, Ack::Wrong)],
            ),
            ("RST+ACK", vec![t(RST | ACK, Ack::Right)]),
            ("RST", vec![t(RST, Ack::None)]),
            ("bare ACK", vec![t(ACK, Ack::Right)]),
            ("FIN+ACK", vec![t(FIN | ACK, Ack::Right)]),
            ("FIN", vec![t(FIN, Ack::None)]),
            ("SYN (simultaneous open)", vec![t(SYN, Ack::None)]),
            ("SYN+FIN", vec![t(SYN | FIN, Ack::None)]),
            ("no flags", vec![t(0, Ack::None)]),
            ("data before the handshake", vec![data]),
            ("SYN-ACK, then data", vec![t(SYN | ACK, Ack::Right), data]),
            (
                "SYN-ACK, then RST+ACK",
                vec![t(SYN | ACK, Ack::Right), t(RST | ACK, Ack::Right)],
            ),
            (
                "SYN-ACK, then FIN+ACK",
                vec![t(SYN | ACK, Ack::Right), t(FIN | ACK, Ack::Right)],
            ),
            (
                "SYN-ACK, then SYN+FIN",
                vec![t(SYN | ACK, Ack::Right), t(SYN | FIN, Ack::None)],
            ),
            (
                "RST+ACK, then SYN-ACK",
                vec![t(RST | ACK, Ack::Right), t(SYN | ACK, Ack::Right)],
            ),
            (
                "SYN-ACK, then SYN",
                vec![t(SYN | ACK, Ack::Right), t(SYN, Ack::None)],
            ),
            (
                "SYN-ACK twice",
                vec![t(SYN | ACK, Ack::Right), t(SYN | ACK, Ack::Right)],
            ),
            (
                "bare ACK, then SYN",
                vec![t(ACK, Ack::Right), t(SYN, Ack::None)],
            ),
            (
                "SYN-ACK, then RST+ACK, then ACK",
                vec![
                    t(SYN | ACK, Ack::Right),
                    t(RST | ACK, Ack::Right),
                    t(ACK, Ack::Right),
                ],
            ),
            (
                "SYN-ACK from another port",
                vec![Step::TcpFromOtherPort(SYN | ACK)],
            ),
        ] {
            list.push((what.to_string(), Opener::HostTcp, steps, false));
        }
        for (what, s) in [
            ("reply", Step::UdpReply),
            ("reply from another port", Step::UdpReplyFromOtherPort),
        ] {
            list.push((what.to_string(), Opener::HostUdp, vec![s], false));
        }
        for (what, s) in [
            ("echo reply", Step::EchoReply),
            ("echo reply, another identifier", Step::EchoReplyOtherId),
            (
                "echo request with the same identifier",
                Step::EchoRequestSameId,
            ),
        ] {
            list.push((what.to_string(), Opener::HostPing, vec![s], false));
        }
        for opener in [
            Opener::HostTcp,
            Opener::HostUdp,
            Opener::HostPing,
            Opener::PeerTcp,
            Opener::PeerUdp,
        ] {
            let observe = matches!(opener, Opener::PeerTcp | Opener::PeerUdp);
            let err = |ty, code, from, quote| Step::Error {
                ty,
                code,
                from,
                quote,
            };
            for (ty, code) in errors(v6, opener) {
                list.push((
                    format!("ICMP error {ty}/{code} from the peer"),
                    opener,
                    vec![err(ty, code, From::Peer, Quote::Flow)],
                    observe,
                ));
            }
            let (ty, code) = unreach(v6);
            for (what, from, quote) in [
                ("from a router", From::Router, Quote::Flow),
                ("about another port", From::Peer, Quote::OtherPort),
                (
                    "quoting the peer's direction",
                    From::Peer,
                    Quote::PeerDirection,
                ),
            ] {
                list.push((
                    format!("ICMP error {ty}/{code} {what}"),
                    opener,
                    vec![err(ty, code, from, quote)],
                    observe,
                ));
            }
        }
        for (i, (what, opener, steps, observe)) in list.into_iter().enumerate() {
            let i = i as u32;
            let who = match opener {
                Opener::HostTcp => "server's TCP connect",
                Opener::HostUdp => "server's UDP query",
                Opener::HostPing => "server's ping",
                Opener::PeerTcp => "peer's TCP connect to 80",
                Opener::PeerUdp => "peer's UDP to 80",
            };
            let observe_icmp = observe.then(|| match &steps[0] {
                Step::Error { ty, .. } => *ty,
                _ => 0,
            });
            let peered = matches!(opener, Opener::PeerTcp | Opener::PeerUdp);
            // fw does not follow sequence numbers (see the named list).
            let tag = what.contains("wrong sequence").then_some("tcp-sequence");
            out.push(FlowCase {
                name: format!("{} {who}: {what}", if v6 { "v6" } else { "v4" }),
                v6,
                opener,
                steps,
                observe_icmp,
                peer: if v6 { pool_v6(i) } else { pool_v4(i) },
                peer_port: 30000 + i as u16,
                srv_port: if peered { 80 } else { 20000 + i as u16 },
                tag,
            });
        }
    }
    out
}

impl FlowCase {
    /// What the server opens for this case, if it starts the flow.
    pub fn open(&self) -> Option<Open> {
        let srv = server(self.v6);
        let local = std::net::SocketAddr::new(srv, self.srv_port);
        let peer = std::net::SocketAddr::new(self.peer, self.peer_port);
        match self.opener {
            Opener::HostTcp => Some(Open::Tcp { local, peer }),
            Opener::HostUdp => Some(Open::Udp { local, peer }),
            Opener::HostPing => Some(Open::Ping {
                local: srv,
                ident: self.srv_port,
                peer: self.peer,
            }),
            _ => None,
        }
    }

    fn proto(&self) -> u8 {
        match self.opener {
            Opener::HostTcp | Opener::PeerTcp => 6,
            Opener::HostUdp | Opener::PeerUdp => 17,
            Opener::HostPing => {
                if self.v6 {
                    58
                } else {
                    1
                }
            }
        }
    }

    fn pkt(&self, env: &Env, l4: L4) -> Packet {
        Packet::new(env.cli_mac, env.srv_mac, self.peer, server(self.v6), l4)
    }

    /// The peer's first packet, for flows the peer starts.
    pub fn peer_opener(&self, env: &Env) -> Option<Vec<u8>> {
        let l4 = match self.opener {
            Opener::PeerTcp => L4::Tcp(Tcp {
                sport: self.peer_port,
                dport: 80,
                seq: PEER_ISN,
                ack: 0,
                flags: SYN,
                options: Vec::new(),
                payload: Vec::new(),
                ..Tcp::default()
            }),
            Opener::PeerUdp => L4::Udp(Udp {
                sport: self.peer_port,
                dport: 80,
                payload: fill(16, self.peer_port),
                ..Udp::default()
            }),
            _ => return None,
        };
        Some(self.pkt(env, l4).frames().remove(0))
    }

    /// Whether `frame` (from the server) is this flow's packet: the SYN,
    /// query or echo request it sent, or its answer to the peer's opener.
    pub fn is_flow_packet(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let (_, ip) = parse_frame(frame)?;
        let p = parse_ip(ip, true)?;
        if p.dst != self.peer || p.proto != self.proto() || p.l4.len() < 8 {
            return None;
        }
        let ports = (
            u16::from_be_bytes([p.l4[0], p.l4[1]]),
            u16::from_be_bytes([p.l4[2], p.l4[3]]),
        );
        let ok = match self.opener {
            Opener::HostPing => p.l4[0] == if self.v6 { 128 } else { 8 },
            _ => ports == (self.srv_port, self.peer_port),
        };
        ok.then(|| ip.to_vec())
    }

    /// The frames of every step, built from the flow's packet `flow` (the
    /// IP packet the server sent).
    pub fn follow_ups(&self, env: &Env, flow: &[u8]) -> Vec<Vec<u8>> {
        let p = parse_ip(flow, false).expect("the flow's packet parses");
        let l4 = p.l4;
        let srv_seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
        let ident = u16::from_be_bytes([l4[4], l4[5]]);
        let echo_seq = u16::from_be_bytes([l4[6], l4[7]]);
        // For the peer's own SYN the next sequence is ISN+1.
        let mut seq = if self.opener == Opener::PeerTcp {
            PEER_ISN + 1
        } else {
            PEER_ISN
        };
        let mut out = Vec::new();
        for step in &self.steps {
            let tcp = |sport: u16, flags: u8, seq: u32, ack: u32, payload: Vec<u8>| {
                L4::Tcp(Tcp {
                    sport,
                    dport: self.srv_port,
                    seq,
                    ack,
                    flags,
                    options: Vec::new(),
                    payload,
                    ..Tcp::default()
                })
            };
            let echo = |ty: u8, id: u16| {
                L4::Icmp(Icmp {
                    ty,
                    code: 0,
                    rest: [
                        (id >> 8) as u8,
                        id as u8,
                        (echo_seq >> 8) as u8,
                        echo_seq as u8,
                    ],
                    body: b"ping".to_vec(),
                })
            };
            let (reply, request) = if self.v6 { (129, 128) } else { (0, 8) };
            let l4 = match *step {
                Step::Tcp { flags, ack, data } => {
                    let ack = match ack {
                        Ack::Right => srv_seq.wrapping_add(1),
                        Ack::Wrong => srv_seq.wrapping_add(100_000),
                        Ack::None => 0,
                    };
                    let payload = if data {
                        fill(20, self.peer_port)
                    } else {
                        Vec::new()
                    };
                    let l = tcp(self.peer_port, flags, seq, ack, payload.clone());
                    seq = seq
                        .wrapping_add(payload.len() as u32)
                        .wrapping_add((flags & (SYN | FIN) != 0) as u32);
                    l
                }
                Step::TcpFromOtherPort(flags) => tcp(
                    self.peer_port + 1,
                    flags,
                    seq,
                    srv_seq.wrapping_add(1),
                    Vec::new(),
                ),
                Step::UdpReply | Step::UdpReplyFromOtherPort => L4::Udp(Udp {
                    sport: self.peer_port + matches!(step, Step::UdpReplyFromOtherPort) as u16,
                    dport: self.srv_port,
                    payload: b"answer".to_vec(),
                    ..Udp::default()
                }),
                Step::EchoReply => echo(reply, ident),
                Step::EchoReplyOtherId => echo(reply, ident.wrapping_add(1)),
                Step::EchoRequestSameId => echo(request, ident),
                Step::Error {
                    ty,
                    code,
                    from,
                    quote,
                } => {
                    let body = match quote {
                        Quote::Flow => flow.to_vec(),
                        Quote::OtherPort => {
                            let mut q = flow.to_vec();
                            let at = q.len() - l4.len();
                            // Source port, or the ping identifier.
                            let i = if self.opener == Opener::HostPing {
                                at + 4
                            } else {
                                at
                            };
                            let v = u16::from_be_bytes([q[i], q[i + 1]]).wrapping_add(1);
                            q[i..i + 2].copy_from_slice(&v.to_be_bytes());
                            q
                        }
                        Quote::PeerDirection => {
                            let l = match self.proto() {
                                6 => tcp(
                                    self.peer_port,
                                    ACK,
                                    seq,
                                    srv_seq.wrapping_add(1),
                                    Vec::new(),
                                ),
                                17 => L4::Udp(Udp {
                                    sport: self.peer_port,
                                    dport: self.srv_port,
                                    payload: b"answer".to_vec(),
                                    ..Udp::default()
                                }),
                                _ => echo(reply, ident),
                            };
                            self.pkt(env, l).ip_packet()
                        }
                    };
                    let rest = match (self.v6, ty) {
                        (false, 3) if code == 4 => [0, 0, 0x05, 0x78],
                        (false, 12) => [20, 0, 0, 0],
                        (false, 5) => {
                            let r = octets(router(false));
                            [r[0], r[1], r[2], r[3]]
                        }
                        (true, 2) => [0, 0, 0x05, 0x00],
                        (true, 4) => [0, 0, 0, 6],
                        _ => [0; 4],
                    };
                    let l = L4::Icmp(Icmp {
                        ty,
                        code,
                        rest,
                        body,
                    });
                    let mut pkt = self.pkt(env, l);
                    if let From::Router = from {
                        pkt.src = router(self.v6);
                    }
                    out.extend(pkt.frames());
                    continue;
                }
            };
            out.extend(self.pkt(env, l4).frames());
        }
        out
    }

    /// The counter that shows the server's stack got an ICMP message of
    /// type `ty` (see `twin::Snmp::get`).
    pub fn icmp_counter(&self, ty: u8) -> String {
        if self.v6 {
            format!("Icmp6InType{ty}")
        } else {
            format!("IcmpMsg.InType{ty}")
        }
    }
}
