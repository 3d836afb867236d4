//! The lockout guard: before ports are closed, look for what closing them
//! would cut off from reconnecting: established inbound flows (conntrack),
//! the SSH session running this command (SSH_CONNECTION), and connections
//! held by this process or its ancestors (the sshd behind a sudo or a shell).
//!
//! Closing a port never cuts an established flow (conntrack passes it); the
//! danger is the next connection: a dropped SSH session could not come back.
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt::Write as _,
    fs,
    net::{IpAddr, SocketAddr, UdpSocket},
};

use fw_common::{
    ct_timeout_ns, CT_F_OUTBOUND, CT_F_REPLIED, CT_TCP_ESTABLISHED, CT_UDP, IPPROTO_TCP,
    IPPROTO_UDP,
};

use crate::{
    error::{Error, Result},
    maps::FwMaps,
    policy::{collapse, Proto},
};

/// Why closing a port is dangerous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hazard {
    /// Live inbound flows on the port; `example` is one of them.
    Flows {
        port: u16,
        count: usize,
        example: String,
    },
    /// The SSH session in `SSH_CONNECTION` arrives on this port.
    SshSession { port: u16, client: String },
    /// A connection accepted on this port is held by this process or an
    /// ancestor (`pid`, `comm`): most likely the session running fw.
    SessionSocket { port: u16, pid: u32, comm: String },
}

impl Hazard {
    pub fn port(&self) -> u16 {
        match self {
            Hazard::Flows { port, .. }
            | Hazard::SshSession { port, .. }
            | Hazard::SessionSocket { port, .. } => *port,
        }
    }
}

/// What closing `closing` ports of `proto` would endanger (empty: safe).
pub fn check(maps: &FwMaps, proto: Proto, closing: &BTreeSet<u16>) -> Result<Vec<Hazard>> {
    let mut out = Vec::new();
    if closing.is_empty() {
        return Ok(out);
    }
    if proto == Proto::Tcp {
        if let Some((client, port)) = ssh_connection() {
            if closing.contains(&port) {
                out.push(Hazard::SshSession { port, client });
            }
        }
        for (port, pid, comm) in session_sockets() {
            if closing.contains(&port) {
                out.push(Hazard::SessionSocket { port, pid, comm });
            }
        }
    }
    let cfg = maps.config()?;
    let now = crate::clock::kernel_now_ns();
    let mut flows: BTreeMap<u16, (usize, String)> = BTreeMap::new();
    for (k, v) in maps.conntrack_entries()? {
        if k.proto != proto.number() || !closing.contains(&k.dport) {
            continue;
        }
        // Flows the host opened use the port only as their ephemeral end.
        if v.flags & CT_F_OUTBOUND != 0 {
            continue;
        }
        let live = now.saturating_sub(v.last_seen_ns) <= ct_timeout_ns(&cfg, v.state, v.flags);
        let established = match k.proto {
            IPPROTO_TCP => v.state == CT_TCP_ESTABLISHED,
            IPPROTO_UDP => v.state == CT_UDP && v.flags & CT_F_REPLIED != 0,
            _ => false,
        };
        if live && established {
            let peer = addr(&k.src, k.family);
            let e = flows.entry(k.dport).or_insert((0, String::new()));
            e.0 += 1;
            if e.1.is_empty() {
                e.1 = SocketAddr::new(peer, k.sport).to_string();
            }
        }
    }
    for (port, (count, example)) in flows {
        out.push(Hazard::Flows {
            port,
            count,
            example,
        });
    }
    out.sort_by_key(|h| h.port());
    Ok(out)
}

fn addr(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

/// The refusal, in words: what, why, what `--force` would do.
pub fn explain(proto: Proto, hazards: &[Hazard], command: &str) -> String {
    let ports: BTreeSet<u16> = hazards.iter().map(Hazard::port).collect();
    let list: Vec<String> = collapse(ports).iter().map(|r| r.to_string()).collect();
    let mut s = format!("refusing to close {proto} {}: ", list.join(" "));
    let mut reasons = Vec::new();
    for h in hazards {
        reasons.push(match h {
            Hazard::Flows {
                port,
                count,
                example,
            } => {
                format!("{proto} {port} carries {count} established flow(s) (e.g. from {example})")
            }
            Hazard::SshSession { port, client } => format!(
                "{proto} {port} is the port of the SSH session running this command \
                 (SSH_CONNECTION, client {client})"
            ),
            Hazard::SessionSocket { port, pid, comm } => format!(
                "{proto} {port} carries a connection held by `{comm}` (pid {pid}), \
                 which runs this command"
            ),
        });
    }
    s.push_str(&reasons.join("; "));
    let _ = write!(
        s,
        ".\nEstablished flows keep working after the change (fw passes flows it knows), \
         but new connections to the port will be rejected: a session that drops could \
         not reconnect. Run `{command} --force` to close it anyway, or `fw apply FILE \
         --confirm SECS` to try a change with automatic rollback."
    );
    s
}

/// The server port of `SSH_CONNECTION` ("client_ip client_port server_ip
/// server_port") when the server address belongs to this network namespace
/// (fw entered into another namespace filters none of that session).
fn ssh_connection() -> Option<(String, u16)> {
    let v = std::env::var("SSH_CONNECTION").ok()?;
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    let port: u16 = f[3].parse().ok()?;
    let local = match f[2].parse::<IpAddr>() {
        Ok(ip) => is_local(ip),
        // Unparsable (a scoped address?): assume it is ours.
        Err(_) => true,
    };
    local.then(|| (format!("{}:{}", f[0], f[1]), port))
}

/// Whether `ip` is an address of this network namespace: only then can it
/// be bound. Any other failure than EADDRNOTAVAIL counts as local (safe side).
fn is_local(ip: IpAddr) -> bool {
    match UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// How far up the process tree to look.
const MAX_ANCESTORS: usize = 64;

/// Local ports of established TCP connections accepted by a listener (so
/// the port is a service port, not an ephemeral one) and held by this
/// process or one of its ancestors: (port, pid, comm). Best effort: what
/// cannot be read is skipped.
fn session_sockets() -> Vec<(u16, u32, String)> {
    // Best effort, as the rest of the guard: no table, no session found.
    let table = crate::sockets::tcp().unwrap_or_default();
    let listening: HashSet<u16> = table
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .map(|s| s.local_port)
        .collect();
    let established: BTreeMap<u64, u16> = table
        .iter()
        .filter(|s| s.state == TCP_ESTABLISHED && listening.contains(&s.local_port))
        .map(|s| (s.inode, s.local_port))
        .collect();
    let mut out = Vec::new();
    if established.is_empty() {
        return out;
    }
    let mut seen_ports = HashSet::new();
    let mut pid = std::process::id();
    for _ in 0..MAX_ANCESTORS {
        for inode in socket_inodes(pid) {
            if let Some(&port) = established.get(&inode) {
                if seen_ports.insert(port) {
                    out.push((port, pid, comm(pid)));
                }
            }
        }
        match parent(pid) {
            Some(p) if p > 1 => pid = p,
            _ => break,
        }
    }
    out
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_LISTEN: u8 = 10;

fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Parent pid from /proc/PID/stat ("pid (comm) state ppid ..."; comm may
/// hold spaces and parentheses, so split after the last ')').
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Turns hazards into the guard's error.
pub fn refuse(proto: Proto, hazards: &[Hazard], command: &str) -> Error {
    Error::Lockout(explain(proto, hazards, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_parent_is_found() {
        let me = std::process::id();
        assert!(parent(me).is_some());
    }

    #[test]
    fn explains_with_force_hint() {
        let h = [
            Hazard::Flows {
                port: 22,
                count: 2,
                example: "198.51.100.7:50000".into(),
            },
            Hazard::SshSession {
                port: 22,
                client: "198.51.100.7:50000".into(),
            },
        ];
        let s = explain(Proto::Tcp, &h, "fw deny tcp 22");
        assert!(s.starts_with("refusing to close tcp 22: "), "{s}");
        assert!(s.contains("2 established flow(s)"), "{s}");
        assert!(s.contains("SSH_CONNECTION"), "{s}");
        assert!(s.contains("fw deny tcp 22 --force"), "{s}");
        assert!(s.contains("keep working"), "{s}");
    }

    #[test]
    fn loopback_is_local_documentation_address_is_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("198.51.100.254".parse().unwrap()));
    }
}
