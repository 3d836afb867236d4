//! fw's connection tracking seen from userspace: seeding from the socket
//! table at `fw up`, and the listing of `fw conntrack`.
use std::net::IpAddr;

use fw_common::{
    ct_state_name, ct_timeout_ns, Config, FlowKey, FlowValue, CT_F_OUTBOUND, CT_F_REPLIED,
    CT_F_SEEDED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED, CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_UDP,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
use serde::Serialize;

use crate::{error::Result, maps::FwMaps, sockets::FlowSocket};

fn addr_bytes(a: IpAddr) -> ([u8; 16], u8) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A v4 peer of a dual-stack socket arrives as plain IPv4.
            Some(v4) => {
                b[..4].copy_from_slice(&v4.octets());
                (b, 4)
            }
            None => (v6.octets(), 6),
        },
    }
}

fn bytes_addr(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

/// The conntrack entry for an existing socket, keyed as ingress sees its
/// peer's packets.
pub fn entry_for(s: &FlowSocket, now: u64) -> Option<(FlowKey, FlowValue)> {
    let (src, fam_r) = addr_bytes(s.remote);
    let (dst, fam_l) = addr_bytes(s.local);
    if fam_r != fam_l {
        return None;
    }
    // linux/tcp_states.h: 1 ESTABLISHED, 2 SYN_SENT, 3 SYN_RECV, 4..=9 closing ones.
    let state = match (s.proto, s.tcp_state) {
        (IPPROTO_UDP, _) => CT_UDP,
        (IPPROTO_TCP, 1) => CT_TCP_ESTABLISHED,
        (IPPROTO_TCP, 2) => CT_TCP_SYN_SENT,
        (IPPROTO_TCP, 3) => CT_TCP_SYN_RECV,
        (IPPROTO_TCP, 4..=9) => CT_TCP_CLOSING,
        _ => return None,
    };
    let key = FlowKey {
        src,
        dst,
        sport: s.remote_port,
        dport: s.local_port,
        proto: s.proto,
        family: fam_r,
        _pad: [0; 2],
    };
    let value = FlowValue {
        created_ns: now,
        last_seen_ns: now,
        state,
        flags: CT_F_SEEDED | CT_F_REPLIED,
        _pad: [0; 6],
    };
    Some((key, value))
}

/// Seeds conntrack with the flows of `sockets`; returns how many went in
/// (new or refreshed).
pub fn seed(maps: &FwMaps, sockets: &[FlowSocket]) -> Result<usize> {
    let now = crate::clock::kernel_now_ns();
    let entries: Vec<(FlowKey, FlowValue)> =
        sockets.iter().filter_map(|s| entry_for(s, now)).collect();
    maps.conntrack_seed(&entries)?;
    Ok(entries.len())
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

/// Live entries with their keys, oldest first.
fn entries(maps: &FwMaps) -> Result<Vec<(FlowKey, Row)>> {
    let cfg: Config = maps.config()?;
    let now = crate::clock::kernel_now_ns();
    let mut rows: Vec<(FlowKey, Row)> = maps
        .conntrack_entries()?
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
                age_secs: now.saturating_sub(v.created_ns) as f64 / 1e9,
                expires_in_secs: (timeout - idle) as f64 / 1e9,
            };
            Some((k, row))
        })
        .collect();
    rows.sort_by(|a, b| b.1.age_secs.total_cmp(&a.1.age_secs));
    Ok(rows)
}

/// What `fw conntrack --flush` did.
#[derive(Clone, Debug, Serialize)]
pub struct Flushed {
    /// Entries deleted.
    pub deleted: usize,
    /// Entries the filter matched that carry the session running the
    /// command, kept (without `--force`), and why.
    pub kept: Vec<Kept>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub flow: Row,
    pub why: String,
}

/// `fw conntrack --flush [FILTER]`: deletes the live entries `filter`
/// matches (all without one). Unless `force`, the flows of the session
/// running this command (the lockout guard's SSH_CONNECTION and the
/// connections its process tree holds) are kept: deleting one could cut
/// that session (its next packet would be judged as a new flow).
pub fn flush(maps: &FwMaps, filter: &Filter, force: bool) -> Result<Flushed> {
    crate::loader::require_root("fw conntrack --flush")?;
    let _lock = crate::lock::take()?;
    let session = if force {
        Vec::new()
    } else {
        crate::guard::session_connections()
    };
    let mut kept = Vec::new();
    let mut doomed = Vec::new();
    for (key, row) in entries(maps)? {
        if !filter.matches(&row) {
            continue;
        }
        let peer = std::net::SocketAddr::new(row.remote, row.remote_port);
        let mine = (row.proto == "tcp" && row.origin != "outbound")
            .then(|| session.iter().find(|c| c.is(peer, row.local_port)))
            .flatten();
        match mine {
            Some(c) => kept.push(Kept {
                flow: row,
                why: c.who.to_string(),
            }),
            None => doomed.push(key),
        }
    }
    Ok(Flushed {
        deleted: maps.conntrack_remove_all(&doomed)?,
        kept,
    })
}

/// A duration as `conntrack -L` users read it: `42s`, `2m3s`, `5h7m`, `4d23h`.
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// The `fw conntrack` table: columns as wide as their widest entry, so an
/// IPv4 row fits 100 columns.
pub fn render(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let eps: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                fmt_ep(r.remote, r.remote_port, r.proto),
                fmt_ep(r.local, r.local_port, r.proto),
            )
        })
        .collect();
    let wr = eps.iter().map(|e| e.0.len()).max().unwrap_or(0).max(6);
    let wl = eps.iter().map(|e| e.1.len()).max().unwrap_or(0).max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<wr$} {:<wl$} {:<11} {:<8} {:>6} {:>7}",
        "proto", "remote", "local", "state", "origin", "age", "expires"
    );
    for (r, (remote, local)) in rows.iter().zip(&eps) {
        let _ = writeln!(
            out,
            "{:<6} {:<wr$} {:<wl$} {:<11} {:<8} {:>6} {:>7}",
            r.proto,
            remote,
            local,
            r.state,
            r.origin,
            human_secs(r.age_secs),
            human_secs(r.expires_in_secs)
        );
    }
    let _ = writeln!(out, "{} entries", rows.len());
    out
}

/// A flow in words: `192.0.2.2:50022 -> 192.0.2.1:22`.
pub fn flow_text(r: &Row) -> String {
    format!(
        "{} -> {}",
        fmt_ep(r.remote, r.remote_port, r.proto),
        fmt_ep(r.local, r.local_port, r.proto)
    )
}

fn fmt_ep(a: IpAddr, port: u16, proto: &str) -> String {
    match (a, proto) {
        (_, "icmp" | "icmpv6") if port != 0 => format!("{a} id {port}"),
        (_, "icmp" | "icmpv6") => a.to_string(),
        (IpAddr::V6(_), _) => format!("[{a}]:{port}"),
        _ => format!("{a}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_key_is_ingress_view() {
        let s = FlowSocket {
            proto: IPPROTO_TCP,
            tcp_state: 1,
            local: "192.0.2.1".parse().unwrap(),
            local_port: 22,
            remote: "::ffff:198.51.100.9".parse().unwrap(),
            remote_port: 50000,
        };
        let (k, v) = entry_for(&s, 5).unwrap();
        assert_eq!(k.family, 4);
        assert_eq!(&k.src[..4], &[198, 51, 100, 9]);
        assert_eq!(&k.dst[..4], &[192, 0, 2, 1]);
        assert_eq!((k.sport, k.dport), (50000, 22));
        assert_eq!(v.state, CT_TCP_ESTABLISHED);
    }

    #[test]
    fn durations_read_like_conntrack() {
        for (secs, want) in [
            (0.4, "0s"),
            (59.9, "59s"),
            (123.0, "2m3s"),
            (3600.0, "1h0m"),
            (18_420.0, "5h7m"),
            (431_999.0, "4d23h"),
            (-1.0, "0s"),
        ] {
            assert_eq!(human_secs(secs), want, "{secs}");
        }
    }
}
