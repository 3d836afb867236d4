//! The lockout guard: before a change, look for who it would shut out. A
//! peer is shut out when it could open a new connection under the running
//! policy and could not under the new one (the port closes, or its sources
//! no longer hold the peer's address). The peers looked at: established
//! inbound flows (conntrack), the SSH session running this command
//! (SSH_CONNECTION), and connections held by this process or its ancestors
//! (the sshd behind a sudo or a shell).
//!
//! A change never cuts an established flow (conntrack passes it); the
//! danger is the next connection: a dropped SSH session could not come back.
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt::Write as _,
    fs,
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
};

use fw_common::{ct_timeout_ns, CT_F_OUTBOUND, CT_F_REPLIED, CT_TCP_ESTABLISHED, CT_UDP};

use crate::{
    error::{Error, Result},
    kernel::maps::FwMaps,
    model::policy::{collapse, Policy, Proto},
};

/// Who a change would shut out on one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// Live inbound flows; `example` is one of them.
    Flows { count: usize, example: String },
    /// The SSH session in `SSH_CONNECTION`.
    SshSession { client: String },
    /// A connection accepted on the port and held by this process or an
    /// ancestor (`pid`, `comm`): most likely the session running fw.
    SessionSocket {
        pid: u32,
        comm: String,
        peer: String,
    },
}

/// A port on which a change would shut someone out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hazard {
    pub proto: Proto,
    pub port: u16,
    pub who: Who,
}

/// Ports open under `old` that `new` closes or gives another source list:
/// the only ones a peer can lose.
fn narrowed(old: &Policy, new: &Policy) -> BTreeSet<(Proto, u16)> {
    Proto::ALL
        .into_iter()
        .flat_map(|proto| old.ports(proto).map(move |port| (proto, port)))
        .filter(|&(proto, port)| {
            !new.is_open(proto, port)
                || (new.sources(proto, port).is_some()
                    && new.sources(proto, port) != old.sources(proto, port))
        })
        .collect()
}

/// Whether `peer` (None: an address fw cannot read) could connect to
/// (proto, port) under `old` and not under `new`.
fn shut_out(old: &Policy, new: &Policy, proto: Proto, port: u16, peer: Option<IpAddr>) -> bool {
    match peer {
        Some(ip) => old.admits(proto, port, ip) && !new.admits(proto, port, ip),
        // Unknown: any narrowing of an open port may shut it out.
        None => old.is_open(proto, port) && narrowed(old, new).contains(&(proto, port)),
    }
}

/// Who moving from `old` to `new` would shut out (empty: safe).
pub fn check(maps: &FwMaps, old: &Policy, new: &Policy) -> Result<Vec<Hazard>> {
    let mut out = Vec::new();
    let at_risk = narrowed(old, new);
    if at_risk.is_empty() {
        return Ok(out);
    }
    let lost = |proto, port, peer| {
        at_risk.contains(&(proto, port)) && shut_out(old, new, proto, port, peer)
    };
    for c in session_connections() {
        if lost(Proto::Tcp, c.local_port, c.peer_ip) {
            out.push(Hazard {
                proto: Proto::Tcp,
                port: c.local_port,
                who: c.who,
            });
        }
    }
    let cfg = maps.config()?;
    let now = crate::kernel::clock::kernel_now_ns();
    let mut flows: BTreeMap<(Proto, u16), (usize, String)> = BTreeMap::new();
    for (k, v) in maps.conntrack_entries()? {
        let proto = match k.proto {
            fw_common::IPPROTO_TCP => Proto::Tcp,
            fw_common::IPPROTO_UDP => Proto::Udp,
            _ => continue,
        };
        // Flows the host opened use the port only as their ephemeral end.
        if v.flags & CT_F_OUTBOUND != 0 {
            continue;
        }
        let live = now.saturating_sub(v.last_seen_ns) <= ct_timeout_ns(&cfg, v.state, v.flags);
        let established = match proto {
            Proto::Tcp => v.state == CT_TCP_ESTABLISHED,
            Proto::Udp => v.state == CT_UDP && v.flags & CT_F_REPLIED != 0,
            // Not a port: pings are not guarded (never reached: skipped above).
            Proto::Icmp => false,
        };
        let peer = addr(&k.src, k.family);
        if live && established && lost(proto, k.dport, Some(peer)) {
            let e = flows.entry((proto, k.dport)).or_insert((0, String::new()));
            e.0 += 1;
            if e.1.is_empty() {
                e.1 = SocketAddr::new(peer, k.sport).to_string();
            }
        }
    }
    for ((proto, port), (count, example)) in flows {
        out.push(Hazard {
            proto,
            port,
            who: Who::Flows { count, example },
        });
    }
    out.sort_by_key(|h| (h.proto, h.port));
    Ok(out)
}

fn addr(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

/// The command the guard refused, to say how to go ahead anyway.
#[derive(Clone, Copy, Debug)]
pub enum Refused<'a> {
    /// `fw deny ...`, as typed.
    Deny(&'a str),
    /// `fw apply FILE [--confirm SECS]`.
    Apply {
        file: &'a Path,
        confirm: Option<u64>,
    },
    /// `fw check FILE`: what `fw apply FILE` would refuse.
    Check { file: &'a Path },
    /// `fw up IFACE --config FILE` (or `--dry-run`) on a running fw, which
    /// replaces the running policy as `fw apply` does.
    Up,
}

/// A (protocol, port) pair.
type PortKey = (Proto, u16);

fn ports_of(v: &[PortKey]) -> String {
    let mut by_proto: BTreeMap<Proto, Vec<u16>> = BTreeMap::new();
    for &(proto, port) in v {
        by_proto.entry(proto).or_default().push(port);
    }
    by_proto
        .iter()
        .map(|(proto, ports)| {
            let list: Vec<String> = collapse(ports.iter().copied())
                .iter()
                .map(|r| r.to_string())
                .collect();
            format!("{proto} {}", list.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal, in words: what, who, why, and what to do instead.
pub fn explain(hazards: &[Hazard], new: &Policy, refused: Refused<'_>) -> String {
    let ports: BTreeSet<(Proto, u16)> = hazards.iter().map(|h| (h.proto, h.port)).collect();
    let (closed, narrowed): (Vec<PortKey>, Vec<PortKey>) = ports
        .iter()
        .partition(|&&(proto, port)| !new.is_open(proto, port));
    let mut what = Vec::new();
    if !closed.is_empty() {
        what.push(format!("close {}", ports_of(&closed)));
    }
    if !narrowed.is_empty() {
        what.push(format!("narrow the sources of {}", ports_of(&narrowed)));
    }
    let mut s = format!("refusing to {}: ", what.join(" and "));
    let mut reasons = Vec::new();
    for h in hazards {
        let (proto, port) = (h.proto, h.port);
        reasons.push(match &h.who {
            Who::SshSession { .. } => format!("{proto} {port} is the port of {}", h.who),
            _ => format!("{proto} {port} carries {}", h.who),
        });
    }
    s.push_str(&reasons.join("; "));
    for &(proto, port) in &narrowed {
        if let Some(nets) = new.sources(proto, port) {
            let list: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            let _ = write!(
                s,
                "; the new policy opens {proto} {port} only from {}, which does not hold \
                 these peers",
                list.join(" ")
            );
        }
    }
    s.push_str(
        ".\nEstablished flows keep working after the change (fw passes flows it knows), but \
         new connections from these peers would be rejected: a session that drops could not \
         reconnect. ",
    );
    let _ = match refused {
        Refused::Check { file } => write!(
            s,
            "`fw apply {f}` would refuse it. Keep these peers' addresses in the port's \
             sources (the `from` of its [[sources]] entry), or apply it anyway with \
             `fw apply {f} --force` (`fw check {f} --force` checks the rest without the guard).",
            f = file.display()
        ),
        Refused::Up => write!(
            s,
            "fw is running, so `fw up --config` replaces its policy as `fw apply` would. \
             Add --force to `fw up` to do it anyway, or bring the interface up without \
             --config and try the file on probation with `fw apply FILE --confirm SECS --force`."
        ),
        Refused::Deny(cmd) => write!(
            s,
            "Run `{cmd} --force` to close it anyway, or try it on probation with \
             `fw apply FILE --confirm SECS --force`, which rolls back unless confirmed."
        ),
        Refused::Apply {
            file,
            confirm: None,
        } => write!(
            s,
            "Keep these peers' addresses in the port's sources (the `from` of its \
             [[sources]] entry), or run `fw apply {f} --force` to apply it anyway; \
             `fw apply {f} --confirm SECS --force` applies it on probation and rolls back \
             unless confirmed.",
            f = file.display()
        ),
        Refused::Apply {
            file,
            confirm: Some(secs),
        } => write!(
            s,
            "Keep these peers' addresses in the port's sources (the `from` of its \
             [[sources]] entry), or add --force to apply it on probation anyway: \
             `fw apply {f} --confirm {secs} --force`. The probation alone does not lift the \
             guard: a session that drops during it could not come back to confirm, and would \
             stay locked out until the rollback after {secs} s.",
            f = file.display()
        ),
    };
    s
}

/// A TCP connection of the session running this command (one fw must not
/// cut without being told to): the SSH session in `SSH_CONNECTION`, or a
/// connection held by this process or an ancestor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConnection {
    /// The peer's address and port (None: fw cannot read it; then every
    /// connection to `local_port` may be it).
    pub peer_ip: Option<IpAddr>,
    pub peer_port: Option<u16>,
    /// This host's port (the service port the session came in on).
    pub local_port: u16,
    pub who: Who,
}

impl SessionConnection {
    /// Whether an inbound TCP flow from `peer` to `local_port` may be this one.
    pub fn is(&self, peer: SocketAddr, local_port: u16) -> bool {
        local_port == self.local_port
            && self.peer_ip.is_none_or(|ip| ip == peer.ip().to_canonical())
            && self.peer_port.is_none_or(|p| p == peer.port())
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Flows { count, example } => {
                write!(f, "{count} established flow(s) (e.g. from {example})")
            }
            Who::SshSession { client } => write!(
                f,
                "the SSH session running this command (SSH_CONNECTION, client {client})"
            ),
            Who::SessionSocket { pid, comm, peer } => write!(
                f,
                "a connection from {peer} held by `{comm}` (pid {pid}), which runs this command"
            ),
        }
    }
}

/// The connections of the session running this command, as the lockout
/// guard sees them (best effort: what cannot be read is left out).
pub fn session_connections() -> Vec<SessionConnection> {
    let mut out = Vec::new();
    if let Some((ip, peer_port, client, port)) = ssh_connection() {
        out.push(SessionConnection {
            peer_ip: ip,
            peer_port,
            local_port: port,
            who: Who::SshSession { client },
        });
    }
    for (port, pid, comm, peer) in session_sockets() {
        out.push(SessionConnection {
            peer_ip: Some(peer.ip()),
            peer_port: Some(peer.port()),
            local_port: port,
            who: Who::SessionSocket {
                pid,
                comm,
                peer: peer.to_string(),
            },
        });
    }
    out
}

/// The server port of `SSH_CONNECTION` ("client_ip client_port server_ip
/// server_port") when the server address belongs to this network namespace
/// (fw entered into another namespace filters none of that session).
/// Returns (client address and port if readable, client in words, server port).
fn ssh_connection() -> Option<(Option<IpAddr>, Option<u16>, String, u16)> {
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
    let ip = f[0].parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    let client_port = f[1].parse::<u16>().ok();
    let client = match (ip, client_port) {
        (Some(ip), Some(p)) => SocketAddr::new(ip, p).to_string(),
        (Some(ip), None) => ip.to_string(),
        _ => format!("{} {}", f[0], f[1]),
    };
    local.then_some((ip, client_port, client, port))
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

/// Established TCP connections accepted by a listener (so the port is a
/// service port, not an ephemeral one) and held by this process or one of
/// its ancestors: (local port, pid, comm, peer). Best effort: what cannot
/// be read is skipped.
fn session_sockets() -> Vec<(u16, u32, String, SocketAddr)> {
    // The process tree's TCP sockets first (a few readdirs and xattrs): a
    // tree holding none (fail2ban-server, cron, a script) needs no read of
    // the socket table, which was most of a single `fw block`'s cost.
    let mut tree: Vec<(u32, u64)> = Vec::new();
    let mut pid = std::process::id();
    for _ in 0..MAX_ANCESTORS {
        tree.extend(socket_inodes(pid).into_iter().map(|i| (pid, i)));
        match parent(pid) {
            Some(p) if p > 1 => pid = p,
            _ => break,
        }
    }
    if tree.is_empty() {
        return Vec::new();
    }
    // Best effort, as the rest of the guard: no table, no session found.
    let table = crate::kernel::sockets::tcp().unwrap_or_default();
    let listening: HashSet<u16> = table
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .map(|s| s.local_port)
        .collect();
    let established: BTreeMap<u64, (u16, SocketAddr)> = table
        .iter()
        .filter(|s| s.state == TCP_ESTABLISHED && listening.contains(&s.local_port))
        .map(|s| {
            let peer = SocketAddr::new(s.remote.to_canonical(), s.remote_port);
            (s.inode, (s.local_port, peer))
        })
        .collect();
    let mut out = Vec::new();
    if established.is_empty() {
        return out;
    }
    let mut seen_ports = HashSet::new();
    for (pid, inode) in tree {
        if let Some(&(port, peer)) = established.get(&inode) {
            if seen_ports.insert(port) {
                out.push((port, pid, comm(pid), peer));
            }
        }
    }
    out
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_LISTEN: u8 = 10;

/// The inodes of the TCP sockets (v4 or v6) process `pid` holds.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let l = fs::read_link(e.path()).ok()?;
            let l = l.to_string_lossy();
            let inode = l
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            is_tcp(&e.path()).then_some(inode)
        })
        .collect()
}

/// Whether the socket behind `/proc/PID/fd/N` is TCP, by sockfs's
/// `system.sockprotoname` ("TCP", "TCPv6"; "UNIX", "UDP", ...). Unreadable
/// counts as TCP (the guard stays on the safe side).
fn is_tcp(fd_link: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(fd_link.as_os_str().as_bytes()) else {
        return true;
    };
    let mut buf = [0u8; 32];
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // kernel writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return true;
    };
    let name = &buf[..n.min(buf.len())];
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    name.starts_with(b"TCP")
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

/// The peers of the session running this command that blocking `nets`
/// would cut: the SSH session's client (`SSH_CONNECTION`) and the peers of
/// connections this process or its ancestors hold (the sshd behind a sudo
/// or a shell). A block cuts established flows too, so these sessions
/// would drop at once and could not come back. Each with the prefix that
/// covers it.
pub fn block_hazards(nets: &[ipnet::IpNet]) -> Vec<(ipnet::IpNet, Who)> {
    session_connections()
        .into_iter()
        .filter_map(|c| {
            let ip = c.peer_ip?.to_canonical();
            let net = nets.iter().find(|n| n.contains(&ip))?;
            Some((*net, c.who))
        })
        .collect()
}

/// The refusal of a block, in words, with the command to go ahead anyway.
pub fn explain_block(hazards: &[(ipnet::IpNet, Who)], cmd: &str) -> String {
    let who: Vec<String> = hazards
        .iter()
        .map(|(net, who)| format!("{net} holds the peer of {who}"))
        .collect();
    format!(
        "refusing to block: {}.\nA block cuts established flows as well: this session would \
         drop at once and could not reconnect. Block a narrower prefix, or run `{cmd} --force` \
         to block it anyway.",
        who.join("; ")
    )
}

/// Refuses the move from `old` to `new` when it would shut someone out.
pub fn guard(maps: &FwMaps, old: &Policy, new: &Policy, refused: Refused<'_>) -> Result<()> {
    let hazards = check(maps, old, new)?;
    if hazards.is_empty() {
        Ok(())
    } else {
        Err(Error::Lockout(explain(&hazards, new, refused)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_parent_is_found() {
        let me = std::process::id();
        assert!(parent(me).is_some());
    }

    fn policy(toml: &str) -> Policy {
        crate::model::config::Config::from_toml(toml, Path::new("t.toml"))
            .unwrap()
            .policy
    }

    #[test]
    fn a_peer_is_shut_out_when_the_new_policy_no_longer_admits_it() {
        let old = Policy::seed();
        let narrow = policy(
            "[ports]\ntcp = [80]\n[[sources]]\nproto = \"tcp\"\nport = 22\nfrom = [\"198.51.100.0/24\"]\n",
        );
        let inside = "198.51.100.7".parse().ok();
        let outside = "2001:db8:1::2".parse().ok();
        let mapped = "::ffff:198.51.100.7".parse().ok();
        assert!(shut_out(&old, &narrow, Proto::Tcp, 22, outside));
        assert!(!shut_out(&old, &narrow, Proto::Tcp, 22, inside));
        assert!(!shut_out(&old, &narrow, Proto::Tcp, 22, mapped));
        // Unreadable peer: any narrowing counts.
        assert!(shut_out(&old, &narrow, Proto::Tcp, 22, None));
        // Ports that keep their state shut nobody out.
        assert!(!shut_out(&old, &narrow, Proto::Tcp, 80, outside));
        assert!(!shut_out(&old, &narrow, Proto::Tcp, 80, None));
        // Closing: everyone; back from narrow to open: nobody.
        let mut closed = old.clone();
        closed.deny(Proto::Tcp, "22".parse().unwrap());
        assert!(shut_out(&old, &closed, Proto::Tcp, 22, inside));
        assert!(!shut_out(&narrow, &old, Proto::Tcp, 22, outside));
        // A peer the old policy did not admit either loses nothing.
        assert!(!shut_out(&narrow, &closed, Proto::Tcp, 22, outside));
        assert_eq!(
            narrowed(&old, &narrow).into_iter().collect::<Vec<_>>(),
            [(Proto::Tcp, 22), (Proto::Udp, 80)]
        );
    }

    #[test]
    fn explains_with_force_hint() {
        let h = [
            Hazard {
                proto: Proto::Tcp,
                port: 22,
                who: Who::Flows {
                    count: 2,
                    example: "198.51.100.7:50000".into(),
                },
            },
            Hazard {
                proto: Proto::Tcp,
                port: 22,
                who: Who::SshSession {
                    client: "198.51.100.7:50000".into(),
                },
            },
        ];
        let mut closed = Policy::seed();
        closed.deny(Proto::Tcp, "22".parse().unwrap());
        let s = explain(&h, &closed, Refused::Deny("fw deny tcp 22"));
        assert!(s.starts_with("refusing to close tcp 22: "), "{s}");
        assert!(s.contains("2 established flow(s)"), "{s}");
        assert!(s.contains("SSH_CONNECTION"), "{s}");
        assert!(s.contains("fw deny tcp 22 --force"), "{s}");
        assert!(s.contains("keep working"), "{s}");
        assert!(s.contains("--confirm SECS --force"), "{s}");
    }

    #[test]
    fn the_confirm_refusal_says_what_to_do_instead() {
        let h = [Hazard {
            proto: Proto::Tcp,
            port: 22,
            who: Who::SshSession {
                client: "[2001:db8:1::2]:50000".into(),
            },
        }];
        let narrow = policy(
            "[ports]\n[[sources]]\nproto = \"tcp\"\nport = 22\nfrom = [\"198.51.100.0/24\"]\n",
        );
        let file = Path::new("/etc/fw/fw.toml");
        let s = explain(
            &h,
            &narrow,
            Refused::Apply {
                file,
                confirm: Some(60),
            },
        );
        assert!(
            s.starts_with("refusing to narrow the sources of tcp 22: "),
            "{s}"
        );
        assert!(s.contains("only from 198.51.100.0/24"), "{s}");
        assert!(
            s.contains("`fw apply /etc/fw/fw.toml --confirm 60 --force`"),
            "{s}"
        );
        assert!(
            !s.contains("--confirm SECS`"),
            "no advice to retry the same: {s}"
        );
        let s = explain(
            &h,
            &narrow,
            Refused::Apply {
                file,
                confirm: None,
            },
        );
        assert!(s.contains("`fw apply /etc/fw/fw.toml --force`"), "{s}");
    }

    #[test]
    fn loopback_is_local_documentation_address_is_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("198.51.100.254".parse().unwrap()));
    }
}
