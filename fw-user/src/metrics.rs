//! fw's state as Prometheus metrics (text format 0.0.4), read fresh from
//! the maps at every scrape:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fw_packets_total` | counter | `interface`, `reason` |
//! | `fw_bytes_total` | counter | `interface`, `reason` |
//! | `fw_port_packets_total` | counter | `proto`, `port` (open ports; new flows accepted) |
//! | `fw_conntrack_entries` | gauge | — (entries in the table, expired ones included) |
//! | `fw_conntrack_evictions_total` | counter | — (entries the full table's LRU evicted) |
//! | `fw_up` | gauge, always 1 | `version`, `interfaces` (comma-separated) |
//!
//! `interface="other"` holds counts of interfaces fw is no longer up on (and
//! of unknown ones); it only appears when non-zero.
use std::collections::BTreeMap;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

use crate::{
    error::{Error, Result},
    maps::FwMaps,
    stats::{Count, Stats},
};

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label value for counts no current interface accounts for.
const OTHER_IFACE: &str = "other";

/// Everything one scrape reports.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub stats: Stats,
    pub conntrack_entries: u64,
    pub conntrack_evicted: u64,
}

impl Snapshot {
    pub fn collect(maps: &FwMaps) -> Result<Snapshot> {
        let (conntrack_entries, conntrack_evicted) = maps.conntrack_census()?;
        Ok(Snapshot {
            stats: Stats::collect(maps)?,
            conntrack_entries,
            conntrack_evicted,
        })
    }

    /// Per (interface, reason) counts; the remainder of the totals that no
    /// current interface accounts for goes to `interface="other"`.
    fn per_interface(&self) -> BTreeMap<(&str, &'static str), Count> {
        let mut out = BTreeMap::new();
        let mut rest: BTreeMap<&'static str, Count> = self.stats.reasons.clone();
        for (iface, s) in &self.stats.interfaces {
            for (&reason, &c) in &s.reasons {
                out.insert((iface.as_str(), reason), c);
                let r = rest.entry(reason).or_default();
                r.packets = r.packets.saturating_sub(c.packets);
                r.bytes = r.bytes.saturating_sub(c.bytes);
            }
        }
        for (reason, c) in rest {
            if c.packets != 0 || c.bytes != 0 {
                out.insert((OTHER_IFACE, reason), c);
            }
        }
        out
    }
}

#[derive(Debug)]
struct FwCollector(Snapshot);

impl Collector for FwCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let per_iface = self.0.per_interface();
        for (name, help, pick) in [
            (
                "packets",
                "Packets seen by fw's XDP ingress, by interface and verdict reason.",
                (|c: &Count| c.packets) as fn(&Count) -> u64,
            ),
            (
                "bytes",
                "Bytes (whole frames) seen by fw's XDP ingress, by interface and verdict reason.",
                |c: &Count| c.bytes,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((iface, reason), c) in &per_iface {
                let labels = [("interface", *iface), ("reason", *reason)];
                ConstCounter::new(pick(c)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "port_packets",
            "New flows accepted per open port (packets counted under reason `port`).",
            None,
            MetricType::Counter,
        )?;
        for p in &self.0.stats.ports {
            let port = p.port.to_string();
            let labels = [("proto", p.proto.name()), ("port", port.as_str())];
            ConstCounter::new(p.packets).encode(m.encode_family(&labels)?)?;
        }
        let m = enc.encode_descriptor(
            "conntrack_entries",
            "Entries in fw's conntrack table (expired ones included until reused).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.0.conntrack_entries as i64).encode(m)?;
        let m = enc.encode_descriptor(
            "conntrack_evictions",
            "Conntrack entries the full table's LRU evicted to make room.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.0.conntrack_evicted).encode(m)?;
        let mut m = enc.encode_descriptor(
            "up",
            "fw is loaded (always 1); labels say which version and where.",
            None,
            MetricType::Gauge,
        )?;
        let ifaces: Vec<&str> = self.0.stats.interfaces.keys().map(String::as_str).collect();
        let ifaces = ifaces.join(",");
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("interfaces", ifaces.as_str()),
        ];
        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        Ok(())
    }
}

/// Prometheus text exposition of `snap`.
pub fn encode(snap: Snapshot) -> Result<String> {
    let mut registry = Registry::with_prefix("fw");
    registry.register_collector(Box::new(FwCollector(snap)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .map_err(|_| Error::io("encoding metrics", std::io::Error::other("formatter error")))?;
    Ok(out)
}

/// One scrape: reads the maps under `maps` and encodes them.
pub fn scrape(maps: &FwMaps) -> Result<String> {
    encode(Snapshot::collect(maps)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        policy::Proto,
        stats::{IfaceStats, PortHits},
    };
    use fw_common::Reason;

    fn count(packets: u64) -> Count {
        Count {
            packets,
            bytes: packets * 60,
        }
    }

    #[test]
    fn names_labels_and_other() {
        let mut reasons: BTreeMap<&'static str, Count> = Reason::ALL
            .iter()
            .map(|r| (r.name(), Count::default()))
            .collect();
        reasons.insert("reject", count(7));
        reasons.insert("port", count(3));
        let mut eth1 = reasons.clone();
        eth1.insert("reject", count(5));
        let stats = Stats {
            reasons,
            accepted: count(3),
            dropped: count(7),
            ports: vec![PortHits {
                proto: Proto::Tcp,
                port: 22,
                packets: 3,
            }],
            interfaces: [("eth1".to_string(), IfaceStats { reasons: eth1 })].into(),
        };
        let text = encode(Snapshot {
            stats,
            conntrack_entries: 4,
            conntrack_evicted: 0,
        })
        .unwrap();
        for line in [
            "# TYPE fw_packets_total counter",
            "fw_packets_total{interface=\"eth1\",reason=\"reject\"} 5",
            "fw_packets_total{interface=\"other\",reason=\"reject\"} 2",
            "fw_bytes_total{interface=\"eth1\",reason=\"port\"} 180",
            "fw_packets_total{interface=\"eth1\",reason=\"malformed\"} 0",
            "fw_port_packets_total{proto=\"tcp\",port=\"22\"} 3",
            "fw_conntrack_entries 4",
            "fw_up{version=\"0.1.0\",interfaces=\"eth1\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("interface=\"other\",reason=\"port\""),
            "{text}"
        );
    }
}
