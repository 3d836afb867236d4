//! The event stream: summaries of rejected and dropped packets that the
//! kernel side writes into the `EVENTS` ring buffer (rate-limited there by a
//! per-CPU token bucket, `Config.event_rate_per_cpu`), decoded for `fw log`
//! and `fw top`.
//!
//! `fw log --json` prints one [`LogEvent`] per line, this shape (keys always
//! present, `null` where a field does not apply):
//!
//! ```json
//! {"time": "2026-05-01T10:00:00.123Z", "ts_ns": 81234567890, "interface": "eth1",
//!  "ifindex": 3, "reason": "reject", "family": "ipv4", "proto": "tcp",
//!  "src": "192.0.2.2", "dst": "192.0.2.1", "sport": 40000, "dport": 8080,
//!  "icmp_type": null, "len": 54}
//! ```
//!
//! - `time`: wall clock (UTC, RFC 3339, milliseconds); `ts_ns`: the kernel's
//!   monotonic clock (`bpf_ktime_get_ns`), for ordering and deltas.
//! - `reason`: a counter reason name (`reject`, `reject_ratelimited`,
//!   `reject_silent`, `malformed`, `martian`, `fragment`, `would_reject`).
//! - `family`: `"ipv4"`, `"ipv6"`, or `null` for a packet fw could not parse
//!   (`malformed`: then `proto`, `src`, `dst` are `null` too).
//! - `proto`: `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"`, else the protocol number
//!   as a string (`"47"`).
//! - `sport`/`dport`: TCP and UDP only; `icmp_type`: ICMP and ICMPv6 only.
//! - `len`: bytes of the frame as it arrived (Ethernet header included).
use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
    time::{Duration, SystemTime},
};

use aya::maps::{MapData, RingBuf};
use fw_common::{Event, Reason, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    kernel::maps::FwMaps,
};

/// One decoded event (the JSON shape of `fw log --json`, see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    pub time: String,
    pub ts_ns: u64,
    pub interface: String,
    pub ifindex: u32,
    pub reason: &'static str,
    pub family: Option<&'static str>,
    pub proto: Option<String>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub len: u32,
}

impl LogEvent {
    /// Decodes a raw `Event`; `interface` and `time` are supplied by the
    /// caller (they need the interface table and the clocks).
    pub fn from_event(e: &Event, interface: String, time: SystemTime) -> LogEvent {
        let reason = Reason::from_u32(e.reason as u32).map_or("unknown", Reason::name);
        let (family, src, dst) = match e.family {
            4 => (Some("ipv4"), Some(v4(&e.src)), Some(v4(&e.dst))),
            6 => (
                Some("ipv6"),
                Some(IpAddr::V6(Ipv6Addr::from(e.src))),
                Some(IpAddr::V6(Ipv6Addr::from(e.dst))),
            ),
            _ => (None, None, None),
        };
        let parsed = family.is_some();
        let has_ports = parsed && matches!(e.proto, IPPROTO_TCP | IPPROTO_UDP);
        let is_icmp = parsed && matches!(e.proto, IPPROTO_ICMP | IPPROTO_ICMPV6);
        LogEvent {
            time: humantime::format_rfc3339_millis(time).to_string(),
            ts_ns: e.ts_ns,
            interface,
            ifindex: e.ifindex,
            reason,
            family,
            proto: parsed.then(|| proto_name(e.proto)),
            src,
            dst,
            sport: has_ports.then_some(e.sport),
            dport: has_ports.then_some(e.dport),
            icmp_type: is_icmp.then_some(e.icmp_type),
            len: e.len,
        }
    }

    /// The line `fw log` prints, e.g.
    /// `2026-05-01T10:00:00.123Z eth1 reject ipv4 tcp 192.0.2.2:40000 -> 192.0.2.1:8080 len=54`.
    pub fn line(&self) -> String {
        let mut s = format!("{} {} {}", self.time, self.interface, self.reason);
        if let (Some(family), Some(proto), Some(src), Some(dst)) =
            (self.family, &self.proto, self.src, self.dst)
        {
            let _ = write!(s, " {family} {proto} ");
            match (self.sport, self.dport) {
                (Some(sp), Some(dp)) => {
                    let _ = write!(
                        s,
                        "{} -> {}",
                        std::net::SocketAddr::new(src, sp),
                        std::net::SocketAddr::new(dst, dp)
                    );
                }
                _ => {
                    let _ = write!(s, "{src} -> {dst}");
                }
            }
            if let Some(t) = self.icmp_type {
                let _ = write!(s, " type={t}");
            }
        }
        let _ = write!(s, " len={}", self.len);
        s
    }
}

fn v4(a: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

/// "tcp", "udp", "icmp", "icmpv6", else the number.
pub fn proto_name(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// Reads `fw_common::Event` records out of a ring buffer item (records are
/// written whole by the kernel side; a short one is skipped).
pub fn parse_record(raw: &[u8]) -> Option<Event> {
    if raw.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: Event is plain old data (repr(C), integers only) and `raw` is
    // long enough; the read tolerates any alignment.
    Some(unsafe { std::ptr::read_unaligned(raw.as_ptr().cast::<Event>()) })
}

/// Wall-clock time of a kernel timestamp.
pub fn wall_time(ts_ns: u64) -> SystemTime {
    let age = crate::kernel::clock::kernel_now_ns().saturating_sub(ts_ns);
    SystemTime::now()
        .checked_sub(Duration::from_nanos(age))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Follows the `EVENTS` ring buffer of a loaded fw.
pub struct EventReader {
    maps: FwMaps,
    ring: RingBuf<MapData>,
    names: HashMap<u32, String>,
    /// Events older than this (kernel clock) are skipped.
    since_ns: u64,
}

impl EventReader {
    /// Opens the ring buffer. With `backlog`, events already waiting in it
    /// are shown too; without, only those that happen from now on: a buffer
    /// nobody read fills up and then keeps its *oldest* events, so the
    /// backlog is rarely what one wants to see.
    pub fn open(maps: &FwMaps, backlog: bool) -> Result<EventReader> {
        let since_ns = if backlog {
            0
        } else {
            crate::kernel::clock::kernel_now_ns()
        };
        let mut r = EventReader {
            maps: maps.clone(),
            ring: maps.events()?,
            names: HashMap::new(),
            since_ns,
        };
        r.reload_names()?;
        Ok(r)
    }

    /// Switches to the ring buffer of a new load of fw (see
    /// [`crate::watch::instance`]), keeping the start time: all of the new load's
    /// events happened after this reader began.
    pub fn reopen(&mut self, maps: &FwMaps) -> Result<()> {
        self.ring = maps.events()?;
        self.maps = maps.clone();
        self.reload_names()
    }

    fn reload_names(&mut self) -> Result<()> {
        let meta = self.maps.meta()?;
        self.names = meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0)
            .map(|m| (m.ifindex, crate::model::names::name_from_bytes(&m.name)))
            .collect();
        Ok(())
    }

    fn iface_name(&mut self, ifindex: u32) -> String {
        if !self.names.contains_key(&ifindex) {
            // An interface fw went up on after we started.
            let _ = self.reload_names();
        }
        if let Some(n) = self.names.get(&ifindex) {
            return n.clone();
        }
        crate::kernel::sys::if_indextoname(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
    }

    /// Waits up to `timeout` for events to read; false when none came.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        crate::kernel::sys::wait_readable(self.ring.as_raw_fd(), timeout)
            .map_err(|e| Error::io("waiting for events (poll on the EVENTS ring buffer)", e))
    }

    /// Takes every event waiting in the ring buffer, at most `max`.
    pub fn drain(&mut self, max: usize) -> Vec<LogEvent> {
        let mut raw = Vec::new();
        while raw.len() < max {
            let Some(item) = self.ring.next() else { break };
            if let Some(e) = parse_record(&item) {
                if e.ts_ns >= self.since_ns {
                    raw.push(e);
                }
            }
        }
        raw.into_iter()
            .map(|e| {
                let name = self.iface_name(e.ifindex);
                LogEvent::from_event(&e, name, wall_time(e.ts_ns))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(family: u8, proto: u8) -> Event {
        let mut e = Event {
            ts_ns: 5,
            ifindex: 3,
            len: 54,
            reason: Reason::Reject as u8,
            family,
            proto,
            icmp_type: 8,
            sport: 40000,
            dport: 8080,
            ..Event::default()
        };
        if family == 4 {
            e.src[..4].copy_from_slice(&[192, 0, 2, 2]);
            e.dst[..4].copy_from_slice(&[192, 0, 2, 1]);
        } else {
            e.src = "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets();
            e.dst = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        }
        e
    }

    #[test]
    fn tcp_v4_line_and_json() {
        let ev = LogEvent::from_event(
            &event(4, IPPROTO_TCP),
            "eth1".into(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            ev.line(),
            "1970-01-01T00:00:00.000Z eth1 reject ipv4 tcp 192.0.2.2:40000 -> 192.0.2.1:8080 len=54"
        );
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["src"], "192.0.2.2");
        assert_eq!(j["dport"], 8080);
        assert_eq!(j["icmp_type"], serde_json::Value::Null);
        assert_eq!(j["family"], "ipv4");
        assert_eq!(j.as_object().unwrap().len(), 13);
    }

    #[test]
    fn icmp_v6_and_unparsed() {
        let ev = LogEvent::from_event(
            &event(6, IPPROTO_ICMPV6),
            "eth1".into(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(ev.sport, None);
        assert!(
            ev.line()
                .ends_with("ipv6 icmpv6 2001:db8::2 -> 2001:db8::1 type=8 len=54"),
            "{}",
            ev.line()
        );
        let tcp6 = LogEvent::from_event(
            &event(6, IPPROTO_TCP),
            "eth1".into(),
            SystemTime::UNIX_EPOCH,
        );
        assert!(
            tcp6.line()
                .contains("[2001:db8::2]:40000 -> [2001:db8::1]:8080"),
            "{}",
            tcp6.line()
        );
        let mut m = event(0, 0);
        m.reason = Reason::Malformed as u8;
        let ev = LogEvent::from_event(&m, "eth1".into(), SystemTime::UNIX_EPOCH);
        assert_eq!(ev.line(), "1970-01-01T00:00:00.000Z eth1 malformed len=54");
        assert_eq!(ev.proto, None);
    }

    #[test]
    fn records_parse() {
        let e = event(4, IPPROTO_UDP);
        // SAFETY: viewing a POD struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&e as *const Event).cast::<u8>(),
                std::mem::size_of::<Event>(),
            )
        };
        assert_eq!(parse_record(bytes), Some(e));
        assert_eq!(parse_record(&bytes[..10]), None);
        assert_eq!(proto_name(47), "47");
    }
}
