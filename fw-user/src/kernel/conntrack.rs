//! fw's connection tracking table as it stands: its live entries, decoded.
use std::net::IpAddr;

use fw_common::{
    ct_state_name, ct_timeout_ns, Config, FlowKey, FlowValue, CT_F_OUTBOUND, CT_F_REPLIED,
    CT_F_SEEDED, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
use serde::Serialize;

use crate::{
    error::Result,
    kernel::{
        clock::kernel_now_ns,
        maps::{CtTable, FwMaps},
    },
};

fn bytes_addr(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

/// One row of `fw conntrack`.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub proto: &'static str,
    /// The peer (source of inbound packets).
    pub remote: IpAddr,
    pub remote_port: u16,
    pub local: IpAddr,
    pub local_port: u16,
    pub state: &'static str,
    pub origin: &'static str,
    pub replied: bool,
    /// In the confirmed table (traffic went both ways, or the host started
    /// it); false: a SYN or a first datagram nobody answered yet.
    pub confirmed: bool,
    pub age_secs: f64,
    pub expires_in_secs: f64,
}

/// Whether an entry still counts at kernel time `now`: one idle longer than
/// its state's timeout is absent for the kernel side, until the LRU reuses it.
pub fn is_live(cfg: &Config, now: u64, v: &FlowValue) -> bool {
    now.saturating_sub(v.last_seen_ns) <= ct_timeout_ns(cfg, v.state, v.flags)
}

/// Which entries `fw conntrack` lists or `--flush` deletes, like
/// `conntrack -L -p PROTO`: every given condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `tcp`, `udp`, `icmp` or `icmpv6`.
    pub proto: Option<&'static str>,
    /// The local or the remote port (TCP and UDP only).
    pub port: Option<u16>,
    /// The remote peer's address is in this prefix.
    pub src: Option<ipnet::IpNet>,
}

impl Filter {
    pub fn matches(&self, r: &Row) -> bool {
        self.proto.is_none_or(|p| p == r.proto)
            && self.port.is_none_or(|p| {
                matches!(r.proto, "tcp" | "udp") && (r.local_port == p || r.remote_port == p)
            })
            && self.src.is_none_or(|n| n.contains(&r.remote))
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// Live entries, oldest first.
pub fn list(maps: &FwMaps) -> Result<Vec<Row>> {
    Ok(entries(maps)?.into_iter().map(|(_, r)| r).collect())
}

/// Live entries of both tables with their keys, oldest first.
pub fn entries(maps: &FwMaps) -> Result<Vec<(FlowKey, Row)>> {
    let mut rows = Vec::new();
    for t in CtTable::ALL {
        rows.extend(table_entries(maps, t)?);
    }
    rows.sort_by(|a, b| b.1.age_secs.total_cmp(&a.1.age_secs));
    Ok(rows)
}

/// Live entries of `table` with their keys, in no order.
pub fn table_entries(maps: &FwMaps, table: CtTable) -> Result<Vec<(FlowKey, Row)>> {
    let cfg: Config = maps.config()?;
    let now = kernel_now_ns();
    let rows: Vec<(FlowKey, Row)> = maps
        .table_entries(table)?
        .into_iter()
        .filter_map(|(k, v)| {
            if !is_live(&cfg, now, &v) {
                return None;
            }
            let idle = now.saturating_sub(v.last_seen_ns);
            let timeout = ct_timeout_ns(&cfg, v.state, v.flags);
            let proto = match k.proto {
                IPPROTO_TCP => "tcp",
                IPPROTO_UDP => "udp",
                IPPROTO_ICMP => "icmp",
                IPPROTO_ICMPV6 => "icmpv6",
                _ => "other",
            };
            let row = Row {
                proto,
                remote: bytes_addr(&k.src, k.family),
                remote_port: k.sport,
                local: bytes_addr(&k.dst, k.family),
                local_port: k.dport,
                state: ct_state_name(v.state),
                origin: if v.flags & CT_F_SEEDED != 0 {
                    "seeded"
                } else if v.flags & CT_F_OUTBOUND != 0 {
                    "outbound"
                } else {
                    "inbound"
                },
                replied: v.flags & CT_F_REPLIED != 0,
                confirmed: table == CtTable::Confirmed,
                age_secs: now.saturating_sub(v.created_ns) as f64 / 1e9,
                expires_in_secs: (timeout - idle) as f64 / 1e9,
            };
            Some((k, row))
        })
        .collect();
    Ok(rows)
}
