//! Named documentation addresses (RFC 5737, RFC 3849), locally administered
//! MACs, and the numbers frames are made of: ethertypes, IP protocols, IPv6
//! extension headers, TCP flags, and the ICMP types per address family.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host under test (the server end of a [`crate::Pair`]).
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The peer that sends to the host (the client end).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

pub const HOST4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A router on the path (sends ICMP errors about the host's packets).
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// IPv6 extension header numbers.
pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const AUTH: u8 = 51;
pub const DEST_OPTS: u8 = 60;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// The letters of a TCP flag byte (SAFRPU order), `-` for none.
pub fn flag_names(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (SYN, 'S'),
        (ACK, 'A'),
        (FIN, 'F'),
        (RST, 'R'),
        (PSH, 'P'),
        (URG, 'U'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if flags & 0xc0 != 0 {
        s.push_str(&format!("+{:#04x}", flags & 0xc0));
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// An address family, with its named addresses and ICMP numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    pub const ALL: [Fam; 2] = [Fam::V4, Fam::V6];

    pub fn of(a: IpAddr) -> Fam {
        match a {
            IpAddr::V4(_) => Fam::V4,
            IpAddr::V6(_) => Fam::V6,
        }
    }

    pub fn host(self) -> IpAddr {
        match self {
            Fam::V4 => HOST4.into(),
            Fam::V6 => HOST6.into(),
        }
    }

    pub fn peer(self) -> IpAddr {
        match self {
            Fam::V4 => PEER4.into(),
            Fam::V6 => PEER6.into(),
        }
    }

    pub fn router(self) -> IpAddr {
        match self {
            Fam::V4 => ROUTER4.into(),
            Fam::V6 => ROUTER6.into(),
        }
    }

    pub fn loopback(self) -> IpAddr {
        match self {
            Fam::V4 => Ipv4Addr::LOCALHOST.into(),
            Fam::V6 => Ipv6Addr::LOCALHOST.into(),
        }
    }

    /// The family's ICMP protocol number.
    pub fn icmp_proto(self) -> u8 {
        match self {
            Fam::V4 => PROTO_ICMP,
            Fam::V6 => PROTO_ICMPV6,
        }
    }

    pub fn echo_request(self) -> u8 {
        match self {
            Fam::V4 => 8,
            Fam::V6 => 128,
        }
    }

    pub fn echo_reply(self) -> u8 {
        match self {
            Fam::V4 => 0,
            Fam::V6 => 129,
        }
    }

    /// Destination unreachable type.
    pub fn unreach(self) -> u8 {
        match self {
            Fam::V4 => 3,
            Fam::V6 => 1,
        }
    }

    /// The seed's reject code: host unreachable (v4 1, v6 "address unreachable" 3).
    pub fn host_unreach_code(self) -> u8 {
        match self {
            Fam::V4 => 1,
            Fam::V6 => 3,
        }
    }

    /// Port unreachable (v4 3, v6 4).
    pub fn port_unreach_code(self) -> u8 {
        match self {
            Fam::V4 => 3,
            Fam::V6 => 4,
        }
    }
}

/// The address's bytes (4 or 16).
pub fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// IPv6 solicited-node multicast address of `a` and its MAC.
pub fn solicited_node(a: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = a.octets();
    let ip = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    );
    let mac = [0x33, 0x33, 0xff, o[13], o[14], o[15]];
    (ip, mac)
}
