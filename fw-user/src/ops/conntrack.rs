//! Changing conntrack from userspace: seeding it from the socket table at
//! `fw up` (so flows that exist already, such as the SSH session running
//! it, are not cut), and `fw conntrack --flush`.
use std::net::IpAddr;

use fw_common::{
    FlowKey, FlowValue, CT_F_REPLIED, CT_F_SEEDED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED,
    CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_UDP, IPPROTO_TCP, IPPROTO_UDP,
};
use serde::Serialize;

use crate::{
    error::Result,
    kernel::{
        clock::kernel_now_ns,
        conntrack::{entries, Filter, Row},
        maps::{CtTable, FwMaps},
        sockets::FlowSocket,
        sys::require_root,
    },
    ops::{guard, lock},
};

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
        _pad: [0; 2],
        host_isn: 0,
    };
    Some((key, value))
}

/// Seeds conntrack with the flows of `sockets`; returns how many went in
/// (new or refreshed).
pub fn seed(maps: &FwMaps, sockets: &[FlowSocket]) -> Result<usize> {
    let now = kernel_now_ns();
    let entries: Vec<(FlowKey, FlowValue)> =
        sockets.iter().filter_map(|s| entry_for(s, now)).collect();
    maps.conntrack_seed(&entries)?;
    Ok(entries.len())
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
    require_root("fw conntrack --flush")?;
    let _lock = lock::take()?;
    let session = if force {
        Vec::new()
    } else {
        guard::session_connections()
    };
    let mut kept = Vec::new();
    let mut doomed: [Vec<FlowKey>; 2] = [Vec::new(), Vec::new()];
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
            None => doomed[usize::from(!row.confirmed)].push(key),
        }
    }
    let [confirmed, unconfirmed] = doomed;
    let deleted = maps.conntrack_remove_all(CtTable::Confirmed, &confirmed)?
        + maps.conntrack_remove_all(CtTable::Unconfirmed, &unconfirmed)?;
    Ok(Flushed { deleted, kept })
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
}
