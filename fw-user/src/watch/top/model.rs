//! What `fw top` shows, as plain data: fed with counter snapshots and
//! events, it yields the rows the view draws. No terminal here, so tests
//! can drive it with hand-made snapshots.
use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use fw_common::Reason;

use crate::{
    model::policy::{PortRange, Proto},
    watch::{events::LogEvent, stats::Stats},
};

/// Seconds of history kept for the sparklines (wider than any terminal).
pub const HISTORY: usize = 512;

#[derive(Clone, Debug, PartialEq)]
pub struct ReasonRow {
    pub reason: &'static str,
    /// "accept", "answer" (ICMP error/RST sent), "drop", "pass*" (dry run).
    pub verdict: &'static str,
    pub per_sec: f64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq)]
/// One open port range of the policy (as `fw ports` lists it).
pub struct PortRow {
    pub proto: Proto,
    pub range: PortRange,
    pub per_sec: f64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRow {
    pub addr: IpAddr,
    /// Events from this source since `fw top` started.
    pub events: u64,
    /// Target of its latest event, e.g. "tcp/8080", "icmp type 8".
    pub last: String,
    /// Reason of its latest event.
    pub last_reason: &'static str,
}

#[derive(Clone, Debug)]
struct SourceAgg {
    events: u64,
    last: String,
    last_reason: &'static str,
    /// Sequence number of the latest event: ties are broken by recency.
    seq: u64,
}

/// The state of the `fw top` screen.
#[derive(Clone, Debug, Default)]
pub struct TopModel {
    prev: Option<Stats>,
    pub interfaces: Vec<String>,
    pub reasons: Vec<ReasonRow>,
    pub ports: Vec<PortRow>,
    /// Packets per second accepted / rejected (anything not reaching the
    /// stack), oldest first.
    pub accepted: VecDeque<u64>,
    pub rejected: VecDeque<u64>,
    pub accepted_per_sec: f64,
    pub rejected_per_sec: f64,
    sources: HashMap<IpAddr, SourceAgg>,
    seq: u64,
    /// Events seen in total (the kernel samples them: at most
    /// `event_rate_per_cpu` per second per CPU).
    pub events_seen: u64,
    /// The latest news about fw itself (unloaded, loaded again), for the header.
    pub notice: Option<String>,
}

pub fn verdict(r: Reason) -> &'static str {
    match r {
        Reason::Reject | Reason::Syncookie => "answer",
        Reason::WouldReject => "pass*",
        r if r.accepted() => "accept",
        _ => "drop",
    }
}

impl TopModel {
    pub fn new() -> TopModel {
        TopModel::default()
    }

    /// Takes a new snapshot, `secs` after the previous one. The first only
    /// sets the baseline (rates 0).
    pub fn observe(&mut self, now: Stats, secs: f64) {
        let secs = if secs > 0.0 { secs } else { 1.0 };
        let prev = self.prev.as_ref();
        let rate = |new: u64, old: Option<u64>| match old {
            Some(old) => new.saturating_sub(old) as f64 / secs,
            None => 0.0,
        };
        self.reasons = Reason::ALL
            .iter()
            .map(|&r| {
                let total = now.reasons.get(r.name()).map_or(0, |c| c.packets);
                let old = prev.map(|p| p.reasons.get(r.name()).map_or(0, |c| c.packets));
                ReasonRow {
                    reason: r.name(),
                    verdict: verdict(r),
                    per_sec: rate(total, old),
                    total,
                }
            })
            .collect();
        let mut ports: Vec<PortRow> = now
            .ports
            .iter()
            .map(|p| {
                let old = prev.map(|prev| {
                    prev.ports
                        .iter()
                        .find(|q| q.proto == p.proto && q.range == p.range)
                        .map_or(0, |q| q.packets)
                });
                PortRow {
                    proto: p.proto,
                    range: p.range,
                    per_sec: rate(p.packets, old),
                    total: p.packets,
                }
            })
            .collect();
        ports.sort_by(|a, b| {
            b.per_sec
                .total_cmp(&a.per_sec)
                .then(b.total.cmp(&a.total))
                .then((a.proto, a.range).cmp(&(b.proto, b.range)))
        });
        self.ports = ports;
        self.accepted_per_sec = rate(now.accepted.packets, prev.map(|p| p.accepted.packets));
        self.rejected_per_sec = rate(now.dropped.packets, prev.map(|p| p.dropped.packets));
        if prev.is_some() {
            push(&mut self.accepted, self.accepted_per_sec.round() as u64);
            push(&mut self.rejected, self.rejected_per_sec.round() as u64);
        }
        self.interfaces = now.interfaces.keys().cloned().collect();
        self.prev = Some(now);
    }

    /// Forgets the last snapshot: the next one is a new load of fw's, whose
    /// counters start at zero, and only sets the baseline again.
    pub fn restart(&mut self) {
        self.prev = None;
    }

    /// Counts one event towards its source.
    pub fn observe_event(&mut self, ev: &LogEvent) {
        self.events_seen += 1;
        let Some(src) = ev.src else { return };
        self.seq += 1;
        let target = match (&ev.proto, ev.dport, ev.icmp_type) {
            (Some(p), Some(port), _) => format!("{p}/{port}"),
            (Some(p), None, Some(t)) => format!("{p} type {t}"),
            (Some(p), _, _) => p.clone(),
            _ => String::new(),
        };
        let seq = self.seq;
        let agg = self.sources.entry(src).or_insert(SourceAgg {
            events: 0,
            last: String::new(),
            last_reason: ev.reason,
            seq,
        });
        agg.events += 1;
        agg.last = target;
        agg.last_reason = ev.reason;
        agg.seq = seq;
    }

    /// The `n` sources with the most events (the most recent first on ties).
    pub fn top_sources(&self, n: usize) -> Vec<SourceRow> {
        let mut v: Vec<(&IpAddr, &SourceAgg)> = self.sources.iter().collect();
        v.sort_by(|a, b| b.1.events.cmp(&a.1.events).then(b.1.seq.cmp(&a.1.seq)));
        v.into_iter()
            .take(n)
            .map(|(addr, a)| SourceRow {
                addr: *addr,
                events: a.events,
                last: a.last.clone(),
                last_reason: a.last_reason,
            })
            .collect()
    }
}

fn push(q: &mut VecDeque<u64>, v: u64) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::stats::{Count, PortHits};
    use std::collections::BTreeMap;

    pub(crate) fn stats(port22: u64, reject: u64) -> Stats {
        let mut reasons: BTreeMap<&'static str, Count> = Reason::ALL
            .iter()
            .map(|r| (r.name(), Count::default()))
            .collect();
        reasons.insert(
            "port",
            Count {
                packets: port22,
                bytes: port22 * 54,
            },
        );
        reasons.insert(
            "reject",
            Count {
                packets: reject,
                bytes: reject * 54,
            },
        );
        Stats {
            reasons,
            accepted: Count {
                packets: port22,
                bytes: 0,
            },
            dropped: Count {
                packets: reject,
                bytes: 0,
            },
            ports: vec![
                PortHits {
                    proto: Proto::Tcp,
                    range: PortRange::single(22),
                    from: None,
                    packets: port22,
                },
                PortHits {
                    proto: Proto::Tcp,
                    range: PortRange { lo: 80, hi: 90 },
                    from: None,
                    packets: 0,
                },
            ],
            interfaces: BTreeMap::new(),
        }
    }

    #[test]
    fn rates_history_and_ports() {
        let mut m = TopModel::new();
        m.observe(stats(10, 100), 1.0);
        assert!(m.accepted.is_empty());
        assert_eq!(
            m.reasons
                .iter()
                .find(|r| r.reason == "reject")
                .unwrap()
                .per_sec,
            0.0
        );
        m.observe(stats(14, 300), 2.0);
        let reject = m.reasons.iter().find(|r| r.reason == "reject").unwrap();
        assert_eq!(
            (reject.per_sec, reject.total, reject.verdict),
            (100.0, 300, "answer")
        );
        assert_eq!(m.ports[0].range, PortRange::single(22));
        assert_eq!(m.ports[0].per_sec, 2.0);
        assert_eq!(m.accepted.iter().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.rejected.iter().copied().collect::<Vec<_>>(), vec![100]);
    }
}
