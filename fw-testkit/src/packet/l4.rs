//! Layer 4: TCP, UDP, ICMP / ICMPv6 (after the packet's family), other
//! protocols' bytes, and the checksum each carries.
use super::{
    checksum::{finish, ones_sum, pseudo_sum, Csum},
    ip::Len,
    names::{ACK, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
};

/// The window every built TCP segment advertises unless told otherwise.
pub const WINDOW: u16 = 64240;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options, padded with zeros to 4 bytes.
    pub options: Vec<u8>,
    /// The data offset in 4-byte words; `None`: the right one.
    pub doff: Option<u8>,
    pub payload: Vec<u8>,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
            flags: 0,
            window: WINDOW,
            options: Vec::new(),
            doff: None,
            payload: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    /// The length field.
    pub len: Len,
    pub payload: Vec<u8>,
}

/// ICMP or ICMPv6: type, code, the second word, then the body (data, or
/// the quote of an error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Icmp {
    pub ty: u8,
    pub code: u8,
    pub rest: [u8; 4],
    pub body: Vec<u8>,
}

/// Layer 4 of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    /// ICMP or ICMPv6, after the packet's family.
    Icmp(Icmp),
    /// Bytes as they are (no checksum), protocol `proto`.
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
    /// Bytes of protocol `proto` whose last two (at an even offset) make
    /// the Internet checksum over them come out right, the way
    /// netfilter's REJECT verifies any protocol before answering (with the
    /// pseudo-header for IPv6 and for TCP/UDP).
    Summed {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl L4 {
    /// TCP with `flags`; an ACK acknowledges 0x5000_0001.
    pub fn tcp(sport: u16, dport: u16, flags: u8) -> L4 {
        L4::Tcp(Tcp {
            sport,
            dport,
            flags,
            seq: 0x1000_0000,
            ack: if flags & ACK != 0 { 0x5000_0001 } else { 0 },
            ..Tcp::default()
        })
    }

    pub fn udp(sport: u16, dport: u16, payload: Vec<u8>) -> L4 {
        L4::Udp(Udp {
            sport,
            dport,
            payload,
            ..Udp::default()
        })
    }

    pub fn icmp(ty: u8, code: u8, rest: [u8; 4], body: Vec<u8>) -> L4 {
        L4::Icmp(Icmp {
            ty,
            code,
            rest,
            body,
        })
    }

    /// The protocol number (`v6` picks ICMPv6 for [`L4::Icmp`]).
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp(_) => PROTO_TCP,
            L4::Udp(_) => PROTO_UDP,
            L4::Icmp(_) if v6 => PROTO_ICMPV6,
            L4::Icmp(_) => PROTO_ICMP,
            L4::Raw { proto, .. } | L4::Summed { proto, .. } => *proto,
        }
    }

    /// The source and destination ports (TCP, UDP).
    pub fn ports_mut(&mut self) -> Option<(&mut u16, &mut u16)> {
        match self {
            L4::Tcp(Tcp { sport, dport, .. }) | L4::Udp(Udp { sport, dport, .. }) => {
                Some((sport, dport))
            }
            _ => None,
        }
    }

    /// The header and payload, the checksum over the pseudo-header of
    /// `src`/`dst` (4 or 16 bytes each) filled as `csum` says.
    pub fn bytes(&self, src: &[u8], dst: &[u8], csum: Csum) -> Vec<u8> {
        let v6 = src.len() == 16;
        let (mut out, at) = match self {
            L4::Tcp(t) => {
                let mut opts = t.options.clone();
                while !opts.len().is_multiple_of(4) {
                    opts.push(0);
                }
                let doff = t.doff.unwrap_or(((20 + opts.len()) / 4) as u8);
                let mut h = Vec::with_capacity(20 + opts.len() + t.payload.len());
                h.extend_from_slice(&t.sport.to_be_bytes());
                h.extend_from_slice(&t.dport.to_be_bytes());
                h.extend_from_slice(&t.seq.to_be_bytes());
                h.extend_from_slice(&t.ack.to_be_bytes());
                h.push(doff << 4);
                h.push(t.flags);
                h.extend_from_slice(&t.window.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 0]);
                h.extend_from_slice(&opts);
                h.extend_from_slice(&t.payload);
                (h, Some(16))
            }
            L4::Udp(u) => {
                let mut h = Vec::with_capacity(8 + u.payload.len());
                h.extend_from_slice(&u.sport.to_be_bytes());
                h.extend_from_slice(&u.dport.to_be_bytes());
                h.extend_from_slice(&u.len.apply(8 + u.payload.len()).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&u.payload);
                (h, Some(6))
            }
            L4::Icmp(i) => {
                let mut h = vec![i.ty, i.code, 0, 0];
                h.extend_from_slice(&i.rest);
                h.extend_from_slice(&i.body);
                (h, Some(2))
            }
            L4::Raw { bytes, .. } => (bytes.clone(), None),
            L4::Summed { bytes, .. } => {
                let mut b = bytes.clone();
                if b.len() % 2 == 1 {
                    b.push(0);
                }
                let at = b.len().saturating_sub(2);
                (b, Some(at))
            }
        };
        if let Some(at) = at {
            let proto = self.proto(v6);
            // IPv4 has a pseudo-header for TCP and UDP only (ICMPv4 has
            // none, and netfilter checks other protocols without one).
            let init = if v6 || proto == PROTO_TCP || proto == PROTO_UDP {
                pseudo_sum(src, dst, proto, out.len())
            } else {
                0
            };
            out[at..at + 2].copy_from_slice(&[0, 0]);
            let c = finish(ones_sum(&out, init), csum, matches!(self, L4::Udp(_)));
            out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        out
    }
}
