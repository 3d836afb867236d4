//! fw's state as Prometheus metrics (text format 0.0.4), read fresh from
//! the maps at every scrape, named like node_exporter's (units in the name,
//! `_total` on counters, HELP and TYPE on every family, no label whose value
//! is a changing list):
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `fw_packets_total` | counter | `interface`, `reason` | packets fw's ingress saw |
//! | `fw_bytes_total` | counter | `interface`, `reason` | their bytes (whole frames) |
//! | `fw_port_new_flows_total` | counter | `proto`, `ports` | new flows accepted per open port range |
//! | `fw_conntrack_entries` | gauge | — | live confirmed conntrack entries (expired ones excluded) |
//! | `fw_conntrack_capacity` | gauge | — | entries the confirmed table holds at most |
//! | `fw_conntrack_evictions_total` | counter | — | confirmed entries the full table's LRU evicted |
//! | `fw_conntrack_unconfirmed_entries` | gauge | — | live unconfirmed entries (a SYN or first datagram nobody answered) |
//! | `fw_conntrack_unconfirmed_capacity` | gauge | — | entries the unconfirmed table holds at most |
//! | `fw_conntrack_unconfirmed_evictions_total` | counter | — | unconfirmed entries its LRU evicted (floods) |
//! | `fw_conntrack_promotions_total` | counter | — | flows moved from the unconfirmed table to the confirmed one |
//! | `fw_interface_attached` | gauge | `interface` | 1: fw filters it both ways; 0: a hook is detached |
//! | `fw_build_info` | gauge | `version` | always 1 |
//! | `fw_scrape_duration_seconds` | gauge | — | time this scrape took to read the maps |
//!
//! `interface="other"` holds counts of interfaces fw is no longer up on (and
//! of unknown ones); it only appears when non-zero. `ports` is a range of
//! the running policy as `fw ports` lists it (`"22"`, `"5000-5010"`): one
//! series per range, however many ports it spans.
use std::{collections::BTreeMap, time::Instant};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

use crate::{
    error::{Error, Result},
    kernel::{
        conntrack::is_live,
        hooks::{egress_state, ingress_state},
        link::HookState,
        maps::{CtTable, FwMaps},
    },
    model::names::name_from_bytes,
    watch::stats::{Count, Stats},
};

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label value for counts no current interface accounts for.
const OTHER_IFACE: &str = "other";

/// Everything one scrape reports.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub stats: Stats,
    /// Confirmed conntrack entries not expired, the table's size, its
    /// LRU evictions.
    pub conntrack_entries: u64,
    pub conntrack_capacity: u64,
    pub conntrack_evicted: u64,
    /// The same of the unconfirmed table.
    pub conntrack_unconfirmed_entries: u64,
    pub conntrack_unconfirmed_capacity: u64,
    pub conntrack_unconfirmed_evicted: u64,
    /// Flows moved from the unconfirmed table to the confirmed one.
    pub conntrack_promoted: u64,
    /// Every interface fw is up on, and whether both its hooks are attached.
    pub interfaces: BTreeMap<String, bool>,
    /// How long reading the maps took.
    pub scrape_seconds: f64,
}

impl Snapshot {
    pub fn collect(maps: &FwMaps) -> Result<Snapshot> {
        let t0 = Instant::now();
        let cfg = maps.config()?;
        let now = crate::kernel::clock::kernel_now_ns();
        let (_, conntrack_entries, conntrack_evicted) =
            maps.conntrack_census_live(CtTable::Confirmed, |v| is_live(&cfg, now, v))?;
        let (_, conntrack_unconfirmed_entries, conntrack_unconfirmed_evicted) =
            maps.conntrack_census_live(CtTable::Unconfirmed, |v| is_live(&cfg, now, v))?;
        let conntrack_promoted = maps.conntrack_stat(fw_common::CT_STAT_PROMOTED)?;
        let meta = maps.meta()?;
        let interfaces = meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0)
            .map(|m| {
                let ok = ingress_state(maps.pins(), m) == HookState::Attached
                    && egress_state(maps.pins(), m) == HookState::Attached;
                (name_from_bytes(&m.name), ok)
            })
            .collect();
        let stats = Stats::collect(maps)?;
        Ok(Snapshot {
            stats,
            conntrack_entries,
            conntrack_capacity: meta.ct_entries.into(),
            conntrack_evicted,
            conntrack_unconfirmed_entries,
            conntrack_unconfirmed_capacity: meta.ct_unconfirmed_entries.into(),
            conntrack_unconfirmed_evicted,
            conntrack_promoted,
            interfaces,
            scrape_seconds: t0.elapsed().as_secs_f64(),
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

/// Encodes one family with no labels.
fn single(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &dyn EncodeMetric,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for FwCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snap = &self.0;
        let per_iface = snap.per_interface();
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
            "port_new_flows",
            "New flows accepted per open port range of the running policy (reason `port`).",
            None,
            MetricType::Counter,
        )?;
        for p in &snap.stats.ports {
            let ports = p.proto.range_text(p.range);
            let labels = [("proto", p.proto.name()), ("ports", ports.as_str())];
            ConstCounter::new(p.packets).encode(m.encode_family(&labels)?)?;
        }
        single(
            &mut enc,
            "conntrack_entries",
            "Live entries in fw's confirmed conntrack table (expired ones excluded).",
            &ConstGauge::new(snap.conntrack_entries as i64),
        )?;
        single(
            &mut enc,
            "conntrack_capacity",
            "Entries fw's confirmed conntrack table holds at most ([conntrack] entries).",
            &ConstGauge::new(snap.conntrack_capacity as i64),
        )?;
        single(
            &mut enc,
            "conntrack_evictions",
            "Confirmed conntrack entries the full table's LRU evicted to make room.",
            &ConstCounter::new(snap.conntrack_evicted),
        )?;
        single(
            &mut enc,
            "conntrack_unconfirmed_entries",
            "Live entries in fw's unconfirmed conntrack table (a SYN or a first datagram nobody answered yet).",
            &ConstGauge::new(snap.conntrack_unconfirmed_entries as i64),
        )?;
        single(
            &mut enc,
            "conntrack_unconfirmed_capacity",
            "Entries the unconfirmed conntrack table holds at most ([conntrack] unconfirmed_entries).",
            &ConstGauge::new(snap.conntrack_unconfirmed_capacity as i64),
        )?;
        single(
            &mut enc,
            "conntrack_unconfirmed_evictions",
            "Unconfirmed conntrack entries the full table's LRU evicted to make room (a flood of new flows).",
            &ConstCounter::new(snap.conntrack_unconfirmed_evicted),
        )?;
        single(
            &mut enc,
            "conntrack_promotions",
            "Flows moved from the unconfirmed conntrack table to the confirmed one.",
            &ConstCounter::new(snap.conntrack_promoted),
        )?;
        let mut m = enc.encode_descriptor(
            "interface_attached",
            "1 if fw filters the interface both ways (XDP ingress and egress hook attached), 0 if a hook is detached.",
            None,
            MetricType::Gauge,
        )?;
        for (name, ok) in &snap.interfaces {
            ConstGauge::new(i64::from(*ok))
                .encode(m.encode_family(&[("interface", name.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "build_info",
            "The fw build serving these metrics (always 1).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64)
            .encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        single(
            &mut enc,
            "scrape_duration_seconds",
            "Seconds this scrape took to read fw's maps.",
            &ConstGauge::new(snap.scrape_seconds),
        )?;
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
        model::policy::{PortRange, Proto},
        watch::stats::{IfaceStats, PortHits},
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
            ports: vec![
                PortHits {
                    proto: Proto::Tcp,
                    range: PortRange::single(22),
                    from: None,
                    packets: 3,
                },
                PortHits {
                    proto: Proto::Udp,
                    range: PortRange { lo: 1, hi: 65535 },
                    from: None,
                    packets: 0,
                },
            ],
            interfaces: [("eth1".to_string(), IfaceStats { reasons: eth1 })].into(),
        };
        let text = encode(Snapshot {
            stats,
            conntrack_entries: 4,
            conntrack_capacity: 262_144,
            conntrack_evicted: 0,
            conntrack_unconfirmed_entries: 2,
            conntrack_unconfirmed_capacity: 65_536,
            conntrack_unconfirmed_evicted: 7,
            conntrack_promoted: 3,
            interfaces: [("eth1".to_string(), true), ("eth2".to_string(), false)].into(),
            scrape_seconds: 0.25,
        })
        .unwrap();
        for line in [
            "# TYPE fw_packets_total counter",
            "fw_packets_total{interface=\"eth1\",reason=\"reject\"} 5",
            "fw_packets_total{interface=\"other\",reason=\"reject\"} 2",
            "fw_bytes_total{interface=\"eth1\",reason=\"port\"} 180",
            "fw_packets_total{interface=\"eth1\",reason=\"malformed\"} 0",
            "fw_port_new_flows_total{proto=\"tcp\",ports=\"22\"} 3",
            "fw_port_new_flows_total{proto=\"udp\",ports=\"1-65535\"} 0",
            "fw_conntrack_entries 4",
            "fw_conntrack_capacity 262144",
            "fw_conntrack_unconfirmed_entries 2",
            "fw_conntrack_unconfirmed_capacity 65536",
            "fw_conntrack_unconfirmed_evictions_total 7",
            "fw_conntrack_promotions_total 3",
            "fw_interface_attached{interface=\"eth1\"} 1",
            "fw_interface_attached{interface=\"eth2\"} 0",
            "fw_build_info{version=\"0.1.0\"} 1",
            "fw_scrape_duration_seconds 0.25",
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
