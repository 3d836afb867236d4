//! Statistics: counters per reason (and per interface), hits per open port,
//! as JSON (stable shape, see README) or an aligned table.
use std::{collections::BTreeMap, fmt::Write as _};

use fw_common::{Counter, Reason};
use serde::Serialize;

use crate::{
    error::Result,
    kernel::maps::FwMaps,
    model::policy::{PortRange, Proto},
    watch::instance::{Change, Note, Tracker},
};
use ipnet::IpNet;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl From<Counter> for Count {
    fn from(c: Counter) -> Self {
        Count {
            packets: c.packets,
            bytes: c.bytes,
        }
    }
}

/// New flows accepted on one open port range of the running policy, as
/// `fw ports` lists it (neighbouring ports with the same sources together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortHits {
    pub proto: Proto,
    pub range: PortRange,
    /// The sources the range is open to (`None`: everyone).
    pub from: Option<Vec<IpNet>>,
    pub packets: u64,
}

/// `{"proto", "ports": "LO-HI" (or "P"), "lo", "hi", "port" (= lo, the
/// key of the per-port shape before ranges), "from" (only when restricted),
/// "packets"}`. ICMP echo is `{"proto": "icmp", "ports": "echo"}` with
/// lo = hi = port = 8 (the IPv4 echo-request type).
impl Serialize for PortHits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("PortHits", 7)?;
        st.serialize_field("proto", &self.proto)?;
        st.serialize_field("ports", &self.proto.range_text(self.range))?;
        st.serialize_field("lo", &self.range.lo)?;
        st.serialize_field("hi", &self.range.hi)?;
        st.serialize_field("port", &self.range.lo)?;
        if let Some(from) = &self.from {
            let from: Vec<String> = from.iter().map(|n| n.to_string()).collect();
            st.serialize_field("from", &from)?;
        }
        st.serialize_field("packets", &self.packets)?;
        st.end()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IfaceStats {
    pub reasons: BTreeMap<&'static str, Count>,
}

/// A snapshot of every counter. `fw stats --json` prints it as one object
/// (keys are stable; new ones may be added):
///
/// ```json
/// {
///   "reasons": {"established": {"packets": 120, "bytes": 9800}, "port": {...}, ...},
///   "accepted": {"packets": 130, "bytes": 10500},
///   "dropped": {"packets": 7, "bytes": 420},
///   "ports": [{"proto": "tcp", "ports": "22", "lo": 22, "hi": 22, "port": 22, "packets": 3}, ...],
///   "interfaces": {"eth1": {"reasons": {"established": {"packets": 120, "bytes": 9800}, ...}}}
/// }
/// ```
///
/// - `reasons`: every counter reason (DESIGN.md names), zeros included,
///   summed over CPUs and interfaces. Each packet fw saw is in exactly one.
/// - `accepted`: reasons that reach the stack (`non_ip`, `established`,
///   `related`, `ndp`, `port`, `dhcp`, `would_reject`); `dropped`: all the others
///   (`reject` is answered with an ICMP error or RST, then dropped).
/// - `ports`: the open port ranges of the running policy in order (TCP, then
///   UDP), as `fw ports` lists them, with the packets that opened a new flow
///   in them (reason `port`): `{"proto": "udp", "ports": "5000-5010", "lo":
///   5000, "hi": 5010, "port": 5000, "packets": 4}`, plus `"from": [CIDR,
///   ...]` for a range open only to some sources. A single port's entry
///   keeps its old keys (`port` is the range's first port).
/// - `interfaces`: the same `reasons` per interface fw is up on.
///
/// `fw stats --watch SECS --json` prints one line per interval:
/// `{"stats": <the object above>, "rates": {"<reason>": {"packets_per_sec": 1.5,
/// "bytes_per_sec": 90.0}, ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// All interfaces together, every reason present (zeros included).
    pub reasons: BTreeMap<&'static str, Count>,
    /// Packets that reached the stack / were rejected or dropped.
    pub accepted: Count,
    pub dropped: Count,
    pub ports: Vec<PortHits>,
    pub interfaces: BTreeMap<String, IfaceStats>,
}

impl Stats {
    pub fn collect(maps: &FwMaps) -> Result<Stats> {
        let rows = maps.counters()?;
        let meta = maps.meta()?;
        let mut reasons: BTreeMap<&'static str, Count> = Reason::ALL
            .iter()
            .map(|r| (r.name(), Count::default()))
            .collect();
        let (mut accepted, mut dropped) = (Count::default(), Count::default());
        for row in &rows {
            for r in Reason::ALL {
                let c = row[r as usize];
                let e = reasons.entry(r.name()).or_default();
                e.packets += c.packets;
                e.bytes += c.bytes;
                let side = if r.accepted() {
                    &mut accepted
                } else {
                    &mut dropped
                };
                side.packets += c.packets;
                side.bytes += c.bytes;
            }
        }
        let mut interfaces = BTreeMap::new();
        for m in meta.ifaces.iter().filter(|m| m.slot != 0) {
            let Some(row) = rows.get(m.slot as usize) else {
                continue;
            };
            let reasons = Reason::ALL
                .iter()
                .map(|&r| (r.name(), Count::from(row[r as usize])))
                .collect();
            interfaces.insert(
                crate::model::names::name_from_bytes(&m.name),
                IfaceStats { reasons },
            );
        }
        let policy = maps.policy()?;
        let mut ports = Vec::new();
        for proto in Proto::EVERY {
            let ranges = policy.ranges(proto);
            let list: Vec<PortRange> = ranges.iter().map(|(r, _)| *r).collect();
            let hits = maps.port_hits_ranges(proto, &list)?;
            for ((range, from), packets) in ranges.into_iter().zip(hits) {
                ports.push(PortHits {
                    proto,
                    range,
                    from: from.map(|f| f.iter().copied().collect()),
                    packets,
                });
            }
        }
        Ok(Stats {
            reasons,
            accepted,
            dropped,
            ports,
            interfaces,
        })
    }

    /// Per-second rates between two snapshots taken `secs` apart.
    pub fn rates(&self, earlier: &Stats, secs: f64) -> BTreeMap<&'static str, (f64, f64)> {
        self.reasons
            .iter()
            .map(|(k, c)| {
                let before = earlier.reasons.get(k).copied().unwrap_or_default();
                let pps = c.packets.saturating_sub(before.packets) as f64 / secs;
                let bps = c.bytes.saturating_sub(before.bytes) as f64 / secs;
                (*k, (pps, bps))
            })
            .collect()
    }

    /// The table `fw stats` prints, aligned like `iptables -L -v -n`.
    pub fn render(&self, rates: Option<&BTreeMap<&'static str, (f64, f64)>>) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{:<20} {:>8} {:>8}  {:<6}",
            "reason", "pkts", "bytes", "verdict"
        );
        if rates.is_some() {
            let _ = write!(out, " {:>9} {:>9}", "pkts/s", "bytes/s");
        }
        out.push('\n');
        for r in Reason::ALL {
            let c = self.reasons.get(r.name()).copied().unwrap_or_default();
            let verdict = match r {
                Reason::Reject | Reason::Syncookie => "answer",
                Reason::WouldReject => "pass*",
                r if r.accepted() => "accept",
                _ => "drop",
            };
            let _ = write!(
                out,
                "{:<20} {:>8} {:>8}  {:<6}",
                r.name(),
                human(c.packets),
                human(c.bytes),
                verdict
            );
            if let Some(rates) = rates {
                let (pps, bps) = rates.get(r.name()).copied().unwrap_or_default();
                let _ = write!(
                    out,
                    " {:>9} {:>9}",
                    human(pps.round() as u64),
                    human(bps.round() as u64)
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>8}\n{:<20} {:>8} {:>8}",
            "total accepted",
            human(self.accepted.packets),
            human(self.accepted.bytes),
            "total rejected",
            human(self.dropped.packets),
            human(self.dropped.bytes)
        );
        let _ = writeln!(
            out,
            "(pass* = would be rejected, passed because fw is up with --dry-run)"
        );
        if !self.ports.is_empty() {
            let _ = writeln!(out, "\n{:<6} {:>11} {:>8}", "proto", "ports", "new");
            for p in &self.ports {
                let _ = write!(
                    out,
                    "{:<6} {:>11} {:>8}",
                    p.proto.name(),
                    p.proto.range_text(p.range),
                    human(p.packets)
                );
                if let Some(from) = &p.from {
                    let from: Vec<String> = from.iter().map(|n| n.to_string()).collect();
                    let _ = write!(out, "  from {}", from.join(" "));
                }
                out.push('\n');
            }
        }
        if self.interfaces.len() > 1 {
            let _ = writeln!(
                out,
                "\n{:<16} {:>8} {:>8}",
                "interface", "accepted", "rejected"
            );
            for (name, s) in &self.interfaces {
                let (mut a, mut d) = (0, 0);
                for r in Reason::ALL {
                    let c = s.reasons.get(r.name()).map(|c| c.packets).unwrap_or(0);
                    if r.accepted() {
                        a += c;
                    } else {
                        d += c;
                    }
                }
                let _ = writeln!(out, "{name:<16} {:>8} {:>8}", human(a), human(d));
            }
        }
        out
    }
}

/// `fw stats --watch`: a fresh table (or one JSON object per line) every
/// `period`, with rates since the previous one, until `stop` or until the
/// reader of `out` goes away. Across `fw down; fw up` it follows the new
/// load of fw (see [`crate::watch::instance`]), telling `notes`; while fw is not
/// loaded it prints nothing and waits.
pub fn watch(
    maps: &FwMaps,
    period: std::time::Duration,
    json: bool,
    stop: &crate::kernel::shutdown::Shutdown,
    out: &mut impl std::io::Write,
    clear_screen: bool,
    notes: &mut dyn FnMut(&Note),
) -> Result<()> {
    let mut tracker = Tracker::new(maps.pins())?;
    let mut maps = maps.clone();
    let mut prev = Some(Stats::collect(&maps)?);
    let mut prev_t = std::time::Instant::now();
    while !stop.requested() {
        // Sleep in small steps so Ctrl-C is prompt.
        let until = prev_t + period;
        while std::time::Instant::now() < until && !stop.requested() {
            std::thread::sleep(std::time::Duration::from_millis(50).min(period));
        }
        if stop.requested() {
            break;
        }
        let change = tracker.check()?;
        if let Some(n) = tracker.note(change) {
            notes(&n);
        }
        let now = match change {
            Change::Unloaded | Change::Waiting => Ok(None),
            Change::Reloaded => {
                // A new load: its counters start at zero, no rate spans the two.
                prev = None;
                FwMaps::open(tracker.pins())
                    .and_then(|m| {
                        maps = m;
                        Stats::collect(&maps)
                    })
                    .map(Some)
            }
            Change::Same => Stats::collect(&maps).map(Some),
        };
        let now = match now {
            Ok(now) => now,
            // Unloaded while we read: the next look tells.
            Err(_) if !tracker.pins().is_loaded() => {
                tracker.forget();
                None
            }
            Err(e) => return Err(e),
        };
        let elapsed = prev_t.elapsed().as_secs_f64();
        prev_t = std::time::Instant::now();
        let (Some(now), Some(before)) = (now.clone(), prev.take()) else {
            prev = now;
            continue;
        };
        let rates = now.rates(&before, elapsed);
        let written = if json {
            let rates: serde_json::Map<String, serde_json::Value> = rates
                .iter()
                .map(|(k, (p, b))| {
                    let v = serde_json::json!({"packets_per_sec": p, "bytes_per_sec": b});
                    (k.to_string(), v)
                })
                .collect();
            let line = serde_json::json!({"stats": now, "rates": rates});
            writeln!(out, "{line}")
        } else {
            // Clear the screen and home the cursor, like watch(1), but only
            // on a terminal: a pipe or file gets plain tables one after another.
            let clear = if clear_screen { "\x1b[2J\x1b[H" } else { "" };
            write!(out, "{clear}{}", now.render(Some(&rates)))
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            // `fw stats --watch | head`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(crate::error::Error::io("writing stats", e)),
        }
        prev = Some(now);
    }
    Ok(())
}

/// 1234 -> "1234", 12345 -> "12K", 1234567 -> "1.2M" (like iptables -v).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 100_000 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = "";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{}{unit}", v.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_numbers() {
        assert_eq!(human(0), "0");
        assert_eq!(human(99_999), "99999");
        assert_eq!(human(123_456), "123K");
        assert_eq!(human(1_234_567), "1.2M");
        assert_eq!(human(5_000_000_000), "5.0G");
    }
}
