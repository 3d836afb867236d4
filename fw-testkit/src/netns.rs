//! Network namespace guards: a pair of namespaces joined by a veth pair.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use crate::{
    cleanup,
    cmd::{command, run, run_args},
    error::{Error, Result},
    xdp::attach_xdp_pass,
};

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Server address (documentation range, RFC 5737).
pub const SRV_V4: Ipv4Addr = crate::packet::HOST4;
/// Client address (documentation range, RFC 5737).
pub const CLI_V4: Ipv4Addr = crate::packet::PEER4;
/// Server address (documentation range, RFC 3849).
pub const SRV_V6: Ipv6Addr = crate::packet::HOST6;
/// Client address (documentation range, RFC 3849).
pub const CLI_V6: Ipv6Addr = crate::packet::PEER6;
/// Prefix length of the IPv4 test subnet.
pub const V4_PREFIX_LEN: u8 = 24;
/// Prefix length of the IPv6 test subnet.
pub const V6_PREFIX_LEN: u8 = 64;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Longest accepted prefix, to keep namespace names short.
const PREFIX_MAX: usize = 16;
/// Letters of the prefix kept in veth names.
const VETH_SHORT_MAX: usize = 6;
/// How long to wait for the veth to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for killed namespace processes to go away.
const KILL_WAIT: Duration = Duration::from_secs(2);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Which end of a [`Pair`] a namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The host under test (where fw runs).
    Server,
    /// The peer that sends traffic.
    Client,
}

impl Role {
    fn tag(self) -> &'static str {
        match self {
            Role::Server => "srv",
            Role::Client => "cli",
        }
    }
}

/// A named network namespace (`/run/netns/NAME`), removed on drop together
/// with every process in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`) and brings its `lo` up.
    pub fn create(name: &str) -> Result<Netns> {
        run_args("ip", ["netns", "add", name])?;
        // From here on, Drop removes it.
        cleanup::register_netns(name);
        let ns = Netns {
            name: name.to_owned(),
            path: Path::new(NETNS_RUN_DIR).join(name),
        };
        run_args("ip", ["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a server and a client namespace joined by a veth pair; see [`Pair`].
    /// Leftovers of `prefix` from dead processes are swept first.
    ///
    /// # Panics
    /// With the reason, if the rig cannot be built (use [`Netns::try_pair`] to handle it).
    pub fn pair(prefix: &str) -> Pair {
        Self::try_pair(prefix)
            .unwrap_or_else(|e| panic!("cannot build the namespace pair {prefix:?}: {e}"))
    }

    /// Like [`Netns::pair`], returning the error instead of panicking.
    pub fn try_pair(prefix: &str) -> Result<Pair> {
        Pair::new(prefix)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `nsenter --net=` and [`in_netns`](crate::in_netns).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs `program` inside this namespace
    /// (`nsenter --net=PATH program`); add arguments to it.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = command("nsenter");
        cmd.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `args` (program first) inside the namespace, asserting it
    /// succeeds (limit [`crate::CMD_TIMEOUT`]); returns its stdout.
    #[track_caller]
    pub fn sh(&self, args: &[&str]) -> String {
        crate::run_ok(self.command(args[0]).args(&args[1..]))
    }

    /// Pids of the processes in this namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        netns_pids(&self.name)
    }
}

impl AsRef<Path> for Netns {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        cleanup::unregister_netns(&self.name);
        remove_netns(&self.name);
    }
}

/// Two namespaces joined by a veth pair:
///
/// | side   | namespace           | veth        | addresses                     |
/// |--------|---------------------|-------------|-------------------------------|
/// | server | `<prefix>-srv-P-N`  | `<short>sN` | 192.0.2.1/24, 2001:db8::1/64  |
/// | client | `<prefix>-cli-P-N`  | `<short>cN` | 192.0.2.2/24, 2001:db8::2/64  |
///
/// (P = pid, N = per-process counter). `lo` is up in both and IPv6 addresses
/// skip DAD. So that frames the server's XDP program sends back with `XDP_TX`
/// (fw's ICMP rejects) reach the client's stack, the client veth has GRO on
/// and a minimal native `XDP_PASS` program: on kernel 6.18 GRO alone is not
/// enough, the frames stay queued until some later packet flushes them. A test
/// that wants its own XDP program on the client veth calls
/// [`Pair::release_client_xdp`] first.
///
/// Dropping the pair kills the processes in both namespaces and deletes them
/// (and so the veth).
#[derive(Debug)]
pub struct Pair {
    client_xdp: Option<OwnedFd>,
    srv_veth: String,
    cli_veth: String,
    // Dropped after Pair::drop, server first.
    srv: Netns,
    cli: Netns,
}

impl Pair {
    fn new(prefix: &str) -> Result<Pair> {
        validate_prefix(prefix)?;
        sweep(prefix)?;
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let srv = Netns::create(&ns_name(prefix, Role::Server, pid, n))?;
        let cli = Netns::create(&ns_name(prefix, Role::Client, pid, n))?;
        let mut pair = Pair {
            client_xdp: None,
            srv_veth: veth_name(prefix, Role::Server, n),
            cli_veth: veth_name(prefix, Role::Client, n),
            srv,
            cli,
        };
        pair.client_xdp = Some(pair.wire()?);
        Ok(pair)
    }

    /// Creates and configures the veth pair; returns the client's XDP link.
    fn wire(&self) -> Result<OwnedFd> {
        let (srv, cli) = (self.srv.name(), self.cli.name());
        let (sv, cv) = (self.srv_veth.as_str(), self.cli_veth.as_str());
        // Both ends are created directly inside their namespaces: the names
        // never appear in the root namespace.
        run_args(
            "ip",
            [
                "link", "add", sv, "netns", srv, "type", "veth", "peer", "name", cv, "netns", cli,
            ],
        )?;
        for (ns, dev, v4, v6) in [(srv, sv, SRV_V4, SRV_V6), (cli, cv, CLI_V4, CLI_V6)] {
            let v4 = format!("{v4}/{V4_PREFIX_LEN}");
            let v6 = format!("{v6}/{V6_PREFIX_LEN}");
            run_args("ip", ["-n", ns, "addr", "add", &v4, "dev", dev])?;
            run_args("ip", ["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"])?;
            run_args("ip", ["-n", ns, "link", "set", dev, "up"])?;
        }
        run(self.cli.command("ethtool").args(["-K", cv, "gro", "on"]))?;
        let client_xdp = attach_xdp_pass(self.cli.path(), cv)?;
        self.wait_up(&self.srv, sv)?;
        self.wait_up(&self.cli, cv)?;
        Ok(client_xdp)
    }

    /// Detaches the client veth's `XDP_PASS` program (see [`Pair`]), so a
    /// test can attach its own. Without an XDP program there, frames sent by
    /// the server with `XDP_TX` may not reach the client's stack.
    pub fn release_client_xdp(&mut self) {
        self.client_xdp = None;
    }

    /// True while the client veth has the testkit's `XDP_PASS` program.
    pub fn has_client_xdp(&self) -> bool {
        self.client_xdp.is_some()
    }

    fn wait_up(&self, ns: &Netns, dev: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = run_args("ip", ["-n", ns.name(), "-o", "link", "show", "dev", dev])?;
            if out.contains("LOWER_UP") && out.contains("state UP") {
                return Ok(());
            }
            if start.elapsed() >= LINK_UP_TIMEOUT {
                return Err(Error::LinkDown {
                    netns: ns.name().to_owned(),
                    veth: dev.to_owned(),
                    timeout: LINK_UP_TIMEOUT,
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds `addr` (v4 /24 or v6 /64, no DAD wait) to the client veth: a
    /// second peer, for [`crate::tcp_connect_from`].
    pub fn add_client_addr(&self, addr: IpAddr) -> Result<()> {
        let a = match addr {
            IpAddr::V4(a) => format!("{a}/{V4_PREFIX_LEN}"),
            IpAddr::V6(a) => format!("{a}/{V6_PREFIX_LEN}"),
        };
        run_args(
            "ip",
            [
                "-n",
                self.cli.name(),
                "addr",
                "add",
                &a,
                "dev",
                &self.cli_veth,
                "nodad",
            ],
        )
        .map(|_| ())
    }

    /// The server namespace (where fw runs).
    pub fn srv(&self) -> &Netns {
        &self.srv
    }
    /// The client namespace.
    pub fn cli(&self) -> &Netns {
        &self.cli
    }
    /// Name of the server namespace.
    pub fn srv_ns(&self) -> &str {
        self.srv.name()
    }
    /// Name of the client namespace.
    pub fn cli_ns(&self) -> &str {
        self.cli.name()
    }
    /// `/run/netns/<server ns>`.
    pub fn srv_path(&self) -> &Path {
        self.srv.path()
    }
    /// `/run/netns/<client ns>`.
    pub fn cli_path(&self) -> &Path {
        self.cli.path()
    }
    /// The veth end in the server namespace (attach fw here).
    pub fn srv_veth(&self) -> &str {
        &self.srv_veth
    }
    /// The veth end in the client namespace.
    pub fn cli_veth(&self) -> &str {
        &self.cli_veth
    }
    /// 192.0.2.1
    pub fn srv_v4(&self) -> Ipv4Addr {
        SRV_V4
    }
    /// 192.0.2.2
    pub fn cli_v4(&self) -> Ipv4Addr {
        CLI_V4
    }
    /// 2001:db8::1
    pub fn srv_v6(&self) -> Ipv6Addr {
        SRV_V6
    }
    /// 2001:db8::2
    pub fn cli_v6(&self) -> Ipv6Addr {
        CLI_V6
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth too, but a socket that
        // outlives this guard keeps its namespace (and so the veth) alive:
        // delete the veth explicitly. Best effort: it may not exist yet.
        if link_exists(self.srv.name(), &self.srv_veth) {
            if let Err(e) = run_args("ip", ["-n", self.srv.name(), "link", "del", &self.srv_veth]) {
                eprintln!("fw-testkit: cleanup: {e}");
            }
        }
    }
}

fn link_exists(ns: &str, dev: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(ns).exists()
        && run_args("ip", ["-n", ns, "link", "show", "dev", dev]).is_ok()
}

/// Namespace name for `prefix`, role, pid and counter: `<prefix>-srv-<pid>-<n>`.
pub fn ns_name(prefix: &str, role: Role, pid: u32, n: u32) -> String {
    format!("{prefix}-{}-{pid}-{n}", role.tag())
}

/// Parses a name made by [`ns_name`] for `prefix`: `Some((role, pid, n))`.
pub fn parse_ns_name(prefix: &str, name: &str) -> Option<(Role, u32, u32)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (role, rest) = if let Some(r) = rest.strip_prefix("srv-") {
        (Role::Server, r)
    } else {
        (Role::Client, rest.strip_prefix("cli-")?)
    };
    let (pid, n) = rest.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || !all_digits(n) {
        return None;
    }
    Some((role, pid.parse().ok()?, n.parse().ok()?))
}

/// veth name: up to 6 letters/digits of the prefix, `s` or `c`, the counter;
/// never longer than 15 bytes (the kernel's limit).
pub fn veth_name(prefix: &str, role: Role, n: u32) -> String {
    let side = match role {
        Role::Server => 's',
        Role::Client => 'c',
    };
    let digits = n.to_string();
    let room = IFNAME_MAX - 1 - digits.len();
    let short: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(room.min(VETH_SHORT_MAX))
        .collect();
    format!("{short}{side}{digits}")
}

fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= PREFIX_MAX
        && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadPrefix(prefix.to_owned()))
    }
}

/// True if a process with this pid exists.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence/permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the namespaces named by `prefix` whose creating process is gone
/// (leftovers of a crashed or killed run). Namespaces of live processes, such
/// as a parallel test binary, are left alone. Returns the names removed.
pub fn sweep(prefix: &str) -> Result<Vec<String>> {
    validate_prefix(prefix)?;
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: format!("listing {NETNS_RUN_DIR}"),
                source,
            })
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, pid, _)) = parse_ns_name(prefix, &name) {
            if !pid_alive(pid) {
                remove_netns(&name);
                removed.push(name);
            }
        }
    }
    Ok(removed)
}

fn netns_pids(name: &str) -> Result<Vec<i32>> {
    let out = run_args("ip", ["netns", "pids", name])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Kills every process in namespace `name`, then deletes it. Best effort:
/// problems are printed, never raised (this runs in `Drop`).
pub(crate) fn remove_netns(name: &str) {
    if !Path::new(NETNS_RUN_DIR).join(name).exists() {
        return;
    }
    let own = i32::try_from(std::process::id()).unwrap_or(-1);
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let pids: Vec<i32> = match netns_pids(name) {
            Ok(pids) => pids.into_iter().filter(|&p| p > 0 && p != own).collect(),
            Err(e) => {
                eprintln!("fw-testkit: cleanup of {name}: {e}");
                Vec::new()
            }
        };
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            // SAFETY: plain kill(2) on a pid listed as living in our test namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = run_args("ip", ["netns", "del", name]) {
        eprintln!("fw-testkit: cleanup of {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_names_round_trip() {
        let name = ns_name("fwt", Role::Server, 4242, 7);
        assert_eq!(name, "fwt-srv-4242-7");
        assert_eq!(parse_ns_name("fwt", &name), Some((Role::Server, 4242, 7)));
        let name = ns_name("fw-x", Role::Client, 1, 0);
        assert_eq!(parse_ns_name("fw-x", &name), Some((Role::Client, 1, 0)));
    }

    #[test]
    fn parse_rejects_other_prefixes_and_shapes() {
        assert_eq!(parse_ns_name("fwt", "fwt-x-srv-1-0"), None);
        assert_eq!(parse_ns_name("fw", "fwt-srv-1-0"), None);
        assert_eq!(parse_ns_name("fwt", "fwt-srv-1"), None);
        assert_eq!(parse_ns_name("fwt", "fwt-srv-1-"), None);
        assert_eq!(parse_ns_name("fwt", "fwt-srv-a-1"), None);
        assert_eq!(parse_ns_name("fwt", "fwt-dmz-1-1"), None);
        assert_eq!(parse_ns_name("fwt", "fwt-srv-1-2-3"), None);
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        for prefix in ["fwdemo", "a", "very-long-prefix", "x1"] {
            for n in [0, 9, 10, 12345, u32::MAX] {
                for role in [Role::Server, Role::Client] {
                    let v = veth_name(prefix, role, n);
                    assert!(v.len() <= IFNAME_MAX, "{v} too long");
                    assert!(v.ends_with(&n.to_string()), "{v}");
                    assert!(v.chars().all(|c| c.is_ascii_alphanumeric()), "{v}");
                }
            }
        }
        assert_eq!(veth_name("fwdemo", Role::Server, 3), "fwdemos3");
        assert_eq!(veth_name("fw-test", Role::Client, 12), "fwtestc12");
        assert_ne!(
            veth_name("fwt", Role::Server, 1),
            veth_name("fwt", Role::Client, 1)
        );
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in ["fwt", "fwdemo", "a-b-1", "abcdefghijklmnop"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1fw",
            "-fw",
            "fw t",
            "fw/x",
            "fw.x",
            "abcdefghijklmnopq",
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        // Above the largest possible pid_max (2^22).
        assert!(!pid_alive(4_194_305));
    }
}
