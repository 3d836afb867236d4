//! `fw conntrack`: fw's connection tracking table, shown.
use std::net::IpAddr;

use crate::kernel::conntrack::Row;

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
        "{:<6} {:<wr$} {:<wl$} {:<11} {:<8} {:<9} {:>6} {:>7}",
        "proto", "remote", "local", "state", "origin", "confirmed", "age", "expires"
    );
    for (r, (remote, local)) in rows.iter().zip(&eps) {
        let _ = writeln!(
            out,
            "{:<6} {:<wr$} {:<wl$} {:<11} {:<8} {:<9} {:>6} {:>7}",
            r.proto,
            remote,
            local,
            r.state,
            r.origin,
            if r.confirmed { "yes" } else { "no" },
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
