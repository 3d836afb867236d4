//! The policy model: which (protocol, port) pairs are open, optionally only to
//! some source prefixes, and how everything else is answered. Parsing of the
//! user's port and prefix syntax lives here too.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    str::FromStr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo (`fw allow icmp echo`): one port-like entry, "port"
    /// [`ECHO`], for IPv4 echo-request and ICMPv6 echo-request alike.
    Icmp,
}

/// The one "port" of [`Proto::Icmp`]: echo-request (the IPv4 type number;
/// ICMPv6's 128 shares the entry).
pub const ECHO: u16 = fw_common::icmp::ECHO_REQUEST as u16;

impl Proto {
    /// The protocols with ports (`[ports]`, port ranges).
    pub const ALL: [Proto; 2] = [Proto::Tcp, Proto::Udp];
    /// Every protocol of the policy: the port protocols, then ICMP echo.
    pub const EVERY: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];

    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => fw_common::IPPROTO_TCP,
            Proto::Udp => fw_common::IPPROTO_UDP,
            Proto::Icmp => fw_common::IPPROTO_ICMP,
        }
    }

    /// Index of the first entry of this protocol in the PORTS map.
    pub fn map_base(self) -> u32 {
        match self {
            Proto::Tcp => 0,
            Proto::Udp => 65536,
            Proto::Icmp => fw_common::PORT_ICMP_BASE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    /// The port numbers this protocol can have open (ICMP: echo only).
    pub fn port_numbers(self) -> std::ops::RangeInclusive<u16> {
        match self {
            Proto::Icmp => ECHO..=ECHO,
            _ => 1..=65535,
        }
    }

    /// A range of this protocol as the user writes it: `8000-8080`, or
    /// `echo` for ICMP.
    pub fn range_text(self, r: PortRange) -> String {
        match self {
            Proto::Icmp => "echo".into(),
            _ => r.to_string(),
        }
    }

    /// Ranges as the user writes them, space-separated.
    pub fn ranges_text(self, v: &[PortRange]) -> String {
        v.iter()
            .map(|&r| self.range_text(r))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The protocol of a command line (`fw allow`/`fw deny`): tcp, udp,
    /// or icmp (with `echo`).
    pub fn from_cli(s: &str) -> Result<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "icmp" => Ok(Proto::Icmp),
            _ => s.parse().map_err(|_| {
                Error::invalid(
                    "protocol",
                    s,
                    "expected `tcp` or `udp` (with ports), or `icmp` (with `echo`)",
                )
            }),
        }
    }

    /// The entries `targets` name for this protocol: ports or ranges for
    /// tcp/udp, `echo` for icmp; a mismatch is refused.
    pub fn ranges_of(self, targets: &[Target]) -> Result<Vec<PortRange>> {
        targets
            .iter()
            .map(|t| match (self, t) {
                (Proto::Icmp, Target::Echo) => Ok(PortRange::single(ECHO)),
                (Proto::Icmp, Target::Ports(r)) => Err(Error::invalid(
                    "ICMP type",
                    r.to_string(),
                    "ICMP has no ports: the one ICMP entry fw opens is `echo` \
                     (`fw allow icmp echo`)",
                )),
                (_, Target::Echo) => Err(Error::invalid(
                    "port",
                    "echo",
                    format!("{self} has ports, not `echo`: ping is `fw allow icmp echo`"),
                )),
                (_, Target::Ports(r)) => Ok(*r),
            })
            .collect()
    }
}

/// What follows the protocol on the command line: a port or range, or
/// `echo` (echo-request, the one ICMP type fw opens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Ports(PortRange),
    Echo,
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if !t.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
            || !t.contains(char::is_alphabetic)
        {
            return s.parse().map(Target::Ports);
        }
        match t.to_ascii_lowercase().as_str() {
            "echo" | "echo-request" => Ok(Target::Echo),
            _ => Err(Error::invalid(
                "port",
                s,
                "expected a number 1-65535 or a range LO-HI like 8000-8080, or after `icmp` the \
                 one ICMP type fw opens, `echo` (echo-request: ICMP type 8 and ICMPv6 type 128, \
                 answered by the kernel); ICMP errors about known flows pass as related, \
                 neighbour discovery always passes, every other ICMP type is rejected",
            )),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proto {
    type Err = Error;
    /// The protocols with ports (a config's `[[sources]]`); ICMP echo is
    /// `[icmp]` there and [`Proto::from_cli`] on the command line.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(Error::invalid(
                "protocol",
                s,
                "expected `tcp` or `udp` (ICMP echo is `echo = true` under [icmp])",
            )),
        }
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    pub fn new(lo: u32, hi: u32, input: &str) -> Result<Self> {
        for p in [lo, hi] {
            if p == 0 || p > 65535 {
                return Err(Error::invalid(
                    "port",
                    input,
                    "ports are 1-65535 (port 0 is not a port a client can use)",
                ));
            }
        }
        if lo > hi {
            return Err(Error::invalid(
                "port range",
                input,
                format!("the range is inverted; did you mean {hi}-{lo}?"),
            ));
        }
        Ok(PortRange {
            lo: lo as u16,
            hi: hi as u16,
        })
    }

    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.lo..=self.hi
    }

    pub fn len(self) -> usize {
        (self.hi - self.lo) as usize + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for PortRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let num = |x: &str| -> Result<u32> {
            x.trim().parse::<u32>().map_err(|_| {
                Error::invalid(
                    "port",
                    s,
                    "expected a number 1-65535 or a range LO-HI like 8000-8080",
                )
            })
        };
        match t.split_once('-') {
            Some((lo, hi)) => PortRange::new(num(lo)?, num(hi)?, s),
            None => {
                let p = num(t)?;
                PortRange::new(p, p, s)
            }
        }
    }
}

/// Collapses ascending ports into ranges: [22, 23, 24, 80] -> 22-24, 80.
pub fn collapse(ports: impl IntoIterator<Item = u16>) -> Vec<PortRange> {
    let mut out: Vec<PortRange> = Vec::new();
    for port in ports {
        match out.last_mut() {
            Some(r) if r.hi as u32 + 1 == port as u32 => r.hi = port,
            _ => out.push(PortRange::single(port)),
        }
    }
    out
}

/// Parses a source prefix: `198.51.100.0/24`, `2001:db8::/32`, or a bare
/// address (a /32 or /128). Host bits must be zero, to catch typos.
pub fn parse_prefix(s: &str) -> Result<IpNet> {
    let t = s.trim();
    if let Ok(addr) = t.parse::<IpAddr>() {
        let net = IpNet::from(addr);
        refuse_v4_mapped(net, s)?;
        return Ok(net);
    }
    let net: IpNet = t.parse().map_err(|_| {
        Error::invalid(
            "source prefix",
            s,
            "expected an address or CIDR such as 198.51.100.0/24 or 2001:db8::/32",
        )
    })?;
    if net.trunc() != net {
        return Err(Error::invalid(
            "source prefix",
            s,
            format!("host bits are set; did you mean {}?", net.trunc()),
        ));
    }
    refuse_v4_mapped(net, s)?;
    Ok(net)
}

/// An IPv4-mapped IPv6 prefix (inside ::ffff:0:0/96) never matches: IPv4
/// packets arrive as IPv4, and no IPv6 packet carries such a source.
fn refuse_v4_mapped(net: IpNet, input: &str) -> Result<()> {
    let IpNet::V6(n) = net else { return Ok(()) };
    let (Some(v4), Some(len)) = (n.addr().to_ipv4_mapped(), n.prefix_len().checked_sub(96)) else {
        return Ok(());
    };
    let v4 = ipnet::Ipv4Net::new(v4, len).map_or_else(|_| v4.to_string(), |p| p.to_string());
    Err(Error::invalid(
        "source prefix",
        input,
        format!(
            "an IPv4-mapped IPv6 prefix never matches: IPv4 traffic is matched by IPv4 \
             prefixes; use {v4} instead"
        ),
    ))
}

/// The whole port policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    open: BTreeMap<Proto, BTreeSet<u16>>,
    /// Ports open only to these sources (absent: open to everyone).
    sources: BTreeMap<(Proto, u16), BTreeSet<IpNet>>,
}

impl Policy {
    /// The seed policy: TCP 22 and 80, UDP 80.
    pub fn seed() -> Self {
        let mut p = Policy::default();
        p.allow(Proto::Tcp, PortRange::single(22), &[]);
        p.allow(Proto::Tcp, PortRange::single(80), &[]);
        p.allow(Proto::Udp, PortRange::single(80), &[]);
        p
    }

    /// Opens `range`; with `from`, only to those sources (added to any
    /// already there). Returns the ports whose state changed.
    pub fn allow(&mut self, proto: Proto, range: PortRange, from: &[IpNet]) -> usize {
        let set = self.open.entry(proto).or_default();
        let mut changed = 0;
        for port in range.ports() {
            let newly_open = set.insert(port);
            if from.is_empty() {
                // Open to all: drops any restriction.
                if self.sources.remove(&(proto, port)).is_some() || newly_open {
                    changed += 1;
                }
            } else {
                let restricted = self.sources.contains_key(&(proto, port));
                if newly_open || restricted {
                    let srcs = self.sources.entry((proto, port)).or_default();
                    let before = srcs.len();
                    srcs.extend(from.iter().copied());
                    if newly_open || srcs.len() != before {
                        changed += 1;
                    }
                }
                // Already open to everyone: a source list would narrow it;
                // keep it open (the caller says so).
            }
        }
        changed
    }

    /// Closes `range`. Returns the ports that were open.
    pub fn deny(&mut self, proto: Proto, range: PortRange) -> usize {
        let mut changed = 0;
        if let Some(set) = self.open.get_mut(&proto) {
            for port in range.ports() {
                if set.remove(&port) {
                    changed += 1;
                }
                self.sources.remove(&(proto, port));
            }
            // No empty set left behind: a policy with a protocol's last
            // port closed equals the same policy read from a file.
            if set.is_empty() {
                self.open.remove(&proto);
            }
        }
        changed
    }

    /// Removes `from` from the source lists of `range` (as `ufw delete`
    /// removes one rule); a port whose last source goes is closed. Checked
    /// whole first: every port must be open to a source list holding every
    /// prefix of `from`, or nothing changes and the error names what is
    /// there. Returns the ports whose state changed.
    pub fn remove_sources(
        &mut self,
        proto: Proto,
        range: PortRange,
        from: &[IpNet],
    ) -> Result<usize> {
        // Ports of `range` in runs of the same state, checked run by run.
        let mut runs: Vec<(PortRange, bool, Option<&BTreeSet<IpNet>>)> = Vec::new();
        for port in range.ports() {
            let state = (self.is_open(proto, port), self.sources(proto, port));
            match runs.last_mut() {
                Some((r, open, src)) if (*open, *src) == state => r.hi = port,
                _ => runs.push((PortRange::single(port), state.0, state.1)),
            }
        }
        let list = |nets: &mut dyn Iterator<Item = &IpNet>| {
            nets.map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
        };
        for (r, open, src) in runs {
            let rt = proto.range_text(r);
            let reason = match src {
                _ if !open => format!("{proto} {rt} is not open"),
                None => format!(
                    "{proto} {rt} is open to everyone, with no source list to remove {} from \
                     (`fw deny {proto} {rt}` closes it)",
                    list(&mut from.iter())
                ),
                Some(nets) => {
                    let missing: Vec<&IpNet> = from.iter().filter(|n| !nets.contains(n)).collect();
                    if missing.is_empty() {
                        continue;
                    }
                    format!(
                        "{} is not a source of {proto} {rt}, which is open only from {}",
                        list(&mut missing.into_iter()),
                        list(&mut nets.iter())
                    )
                }
            };
            return Err(Error::NoSuchSource(format!(
                "{reason}: nothing was changed"
            )));
        }
        let mut changed = 0;
        for port in range.ports() {
            let Some(nets) = self.sources.get_mut(&(proto, port)) else {
                continue;
            };
            let before = nets.len();
            nets.retain(|n| !from.contains(n));
            if nets.len() != before {
                changed += 1;
            }
            if nets.is_empty() {
                self.deny(proto, PortRange::single(port));
            }
        }
        Ok(changed)
    }

    pub fn is_open(&self, proto: Proto, port: u16) -> bool {
        self.open.get(&proto).is_some_and(|s| s.contains(&port))
    }

    pub fn ports(&self, proto: Proto) -> impl Iterator<Item = u16> + '_ {
        self.open.get(&proto).into_iter().flatten().copied()
    }

    pub fn sources(&self, proto: Proto, port: u16) -> Option<&BTreeSet<IpNet>> {
        self.sources.get(&(proto, port))
    }

    pub fn all_sources(&self) -> impl Iterator<Item = (Proto, u16, &IpNet)> {
        self.sources
            .iter()
            .flat_map(|(&(proto, port), nets)| nets.iter().map(move |n| (proto, port, n)))
    }

    /// Whether a new connection from `peer` to (proto, port) passes: the
    /// port is open, to everyone or to a prefix holding `peer`.
    pub fn admits(&self, proto: Proto, port: u16, peer: IpAddr) -> bool {
        if !self.is_open(proto, port) {
            return false;
        }
        // A v4-mapped IPv6 peer (dual-stack socket) arrives as IPv4.
        let peer = peer.to_canonical();
        self.sources(proto, port)
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&peer)))
    }

    /// The distinct source lists (source sets) and the ports restricted to
    /// each: the kernel stores each list once, whatever the number of ports.
    pub fn source_sets(&self) -> BTreeMap<&BTreeSet<IpNet>, Vec<(Proto, u16)>> {
        let mut out: BTreeMap<&BTreeSet<IpNet>, Vec<(Proto, u16)>> = BTreeMap::new();
        for (&(proto, port), nets) in &self.sources {
            if self.is_open(proto, port) {
                out.entry(nets).or_default().push((proto, port));
            }
        }
        out
    }

    /// Source-prefix entries the policy needs in the kernel (one per prefix
    /// of each distinct source list).
    pub fn source_entries(&self) -> usize {
        self.source_sets().keys().map(|s| s.len()).sum()
    }

    /// Open ports of `proto` collapsed into ranges; ports with the same
    /// source list collapse together.
    pub fn ranges(&self, proto: Proto) -> Vec<(PortRange, Option<&BTreeSet<IpNet>>)> {
        let mut out: Vec<(PortRange, Option<&BTreeSet<IpNet>>)> = Vec::new();
        for port in self.ports(proto) {
            let src = self.sources(proto, port);
            match out.last_mut() {
                Some((r, s)) if r.hi as u32 + 1 == port as u32 && *s == src => r.hi = port,
                _ => out.push((PortRange::single(port), src)),
            }
        }
        out
    }
}

/// `[syncookies] mode`: when fw answers a SYN to an open TCP port itself
/// with a SYN cookie (see fw-ebpf's syncookie stage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncookieMode {
    /// While the kernel says the listener is flooded (its listen queue is
    /// full), as the kernel's own cookies (`tcp_syncookies = 1`).
    #[default]
    Auto,
    /// Every SYN to an open port, which the kernel allows only with
    /// `net.ipv4.tcp_syncookies = 2` (`fw up` warns otherwise).
    Always,
    /// Never: SYNs go to the stack.
    Off,
}

impl SyncookieMode {
    pub const ALL: [SyncookieMode; 3] = [
        SyncookieMode::Auto,
        SyncookieMode::Always,
        SyncookieMode::Off,
    ];

    /// The kernel's `Config.syncookie_mode`.
    pub fn kernel(self) -> u32 {
        match self {
            SyncookieMode::Auto => fw_common::SYNCOOKIE_AUTO,
            SyncookieMode::Always => fw_common::SYNCOOKIE_ALWAYS,
            SyncookieMode::Off => fw_common::SYNCOOKIE_OFF,
        }
    }

    /// From the kernel's value (unknown values read as the default).
    pub fn from_kernel(v: u32) -> Self {
        match v {
            fw_common::SYNCOOKIE_ALWAYS => SyncookieMode::Always,
            fw_common::SYNCOOKIE_OFF => SyncookieMode::Off,
            _ => SyncookieMode::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncookieMode::Auto => "auto",
            SyncookieMode::Always => "always",
            SyncookieMode::Off => "off",
        }
    }
}

/// How rejected packets are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectWith {
    #[default]
    HostUnreachable,
    PortUnreachable,
    AdminProhibited,
    TcpReset,
    Drop,
}

impl RejectWith {
    pub fn kind(self) -> fw_common::RejectKind {
        use fw_common::RejectKind as K;
        match self {
            RejectWith::HostUnreachable => K::HostUnreachable,
            RejectWith::PortUnreachable => K::PortUnreachable,
            RejectWith::AdminProhibited => K::AdminProhibited,
            RejectWith::TcpReset => K::TcpReset,
            RejectWith::Drop => K::Drop,
        }
    }

    pub fn from_kind(k: fw_common::RejectKind) -> Self {
        use fw_common::RejectKind as K;
        match k {
            K::HostUnreachable => RejectWith::HostUnreachable,
            K::PortUnreachable => RejectWith::PortUnreachable,
            K::AdminProhibited => RejectWith::AdminProhibited,
            K::TcpReset => RejectWith::TcpReset,
            K::Drop => RejectWith::Drop,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RejectWith::HostUnreachable => "host-unreachable",
            RejectWith::PortUnreachable => "port-unreachable",
            RejectWith::AdminProhibited => "admin-prohibited",
            RejectWith::TcpReset => "tcp-reset",
            RejectWith::Drop => "drop",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_ranges() {
        assert_eq!("22".parse::<PortRange>().unwrap(), PortRange::single(22));
        assert_eq!(
            "8000-8080".parse::<PortRange>().unwrap(),
            PortRange { lo: 8000, hi: 8080 }
        );
        for bad in ["0", "65536", "80-22", "x", "", "1-", "-5", "22-0"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad} accepted");
        }
        let e = "80-22".parse::<PortRange>().unwrap_err().to_string();
        assert!(e.contains("22-80"), "{e}");
    }

    #[test]
    fn seed_collapses() {
        let mut p = Policy::seed();
        p.allow(Proto::Tcp, "23-25".parse().unwrap(), &[]);
        let r: Vec<String> = p
            .ranges(Proto::Tcp)
            .iter()
            .map(|(r, _)| r.to_string())
            .collect();
        assert_eq!(r, ["22-25", "80"]);
        assert_eq!(p.deny(Proto::Tcp, "22-24".parse().unwrap()), 3);
        assert_eq!(p.deny(Proto::Tcp, "22-24".parse().unwrap()), 0);
        assert!(p.is_open(Proto::Udp, 80));
    }

    #[test]
    fn collapses_ranges() {
        let r: Vec<String> = collapse([1, 2, 3, 5, 65534, 65535])
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(r, ["1-3", "5", "65534-65535"]);
        assert!(collapse([]).is_empty());
    }

    #[test]
    fn removing_a_source_narrows_and_the_last_closes() {
        let (a, b) = (
            parse_prefix("198.51.100.0/24").unwrap(),
            parse_prefix("2001:db8::/32").unwrap(),
        );
        let mut p = Policy::seed();
        p.allow(Proto::Tcp, "8000-8001".parse().unwrap(), &[a, b]);
        let before = p.clone();
        for (range, from, want) in [
            (
                "8000-8002",
                vec![a],
                "tcp 8002 is not open: nothing was changed",
            ),
            (
                "22",
                vec![a],
                "tcp 22 is open to everyone, with no source list to remove 198.51.100.0/24 from \
                 (`fw deny tcp 22` closes it)",
            ),
            (
                "8000-8001",
                vec![a, parse_prefix("203.0.113.0/24").unwrap()],
                "203.0.113.0/24 is not a source of tcp 8000-8001, which is open only from \
                 198.51.100.0/24 2001:db8::/32",
            ),
        ] {
            let e = p
                .remove_sources(Proto::Tcp, range.parse().unwrap(), &from)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{range}: {e}");
            assert_eq!(p, before, "{range}: nothing changed");
        }
        assert_eq!(
            p.remove_sources(Proto::Tcp, "8000-8001".parse().unwrap(), &[a])
                .unwrap(),
            2
        );
        assert_eq!(p.sources(Proto::Tcp, 8000).map(|s| s.len()), Some(1));
        assert_eq!(
            p.remove_sources(Proto::Tcp, "8000".parse().unwrap(), &[b])
                .unwrap(),
            1
        );
        assert!(!p.is_open(Proto::Tcp, 8000), "its last source gone: closed");
        assert!(p.admits(Proto::Tcp, 8001, "2001:db8::7".parse().unwrap()));
        assert!(!p.admits(Proto::Tcp, 8001, "198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn sources() {
        let mut p = Policy::default();
        let net = parse_prefix("198.51.100.0/24").unwrap();
        assert_eq!(p.allow(Proto::Tcp, PortRange::single(22), &[net]), 1);
        assert_eq!(p.allow(Proto::Tcp, PortRange::single(22), &[net]), 0);
        assert!(p.sources(Proto::Tcp, 22).is_some());
        assert_eq!(p.allow(Proto::Tcp, PortRange::single(22), &[]), 1);
        assert!(p.sources(Proto::Tcp, 22).is_none());
        assert!(parse_prefix("198.51.100.1/24").is_err());
        assert!(parse_prefix("2001:db8::/32").is_ok());
        let e = parse_prefix("::ffff:198.51.100.0/120")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use 198.51.100.0/24 instead"), "{e}");
        let e = parse_prefix("::ffff:198.51.100.7").unwrap_err().to_string();
        assert!(e.contains("use 198.51.100.7/32 instead"), "{e}");
        // Shorter prefixes cover real IPv6 addresses too.
        assert!(parse_prefix("::/64").is_ok());
    }
}
