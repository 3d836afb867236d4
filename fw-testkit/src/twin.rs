//! The two rigs the conformance tests compare: the same namespace pair, the
//! same listeners and neighbors, with either the seed iptables/ip6tables
//! ruleset or fw on the server veth.
use std::{
    fs::File,
    io::{Read, Seek, Write},
    net::IpAddr,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use crate::{in_netns, seed, spawn_tcp_listener, spawn_udp_echo, Netns, Rig, Server};

use crate::raw;

/// Which policy the rig's server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Iptables,
    Fw,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Iptables => "iptables",
            Side::Fw => "fw",
        }
    }
}

/// The ports the rigs serve and allow, beyond the seed's.
pub struct Ports;

impl Ports {
    /// Allowed (in both rigs, beyond the seed), nothing listening.
    pub const TCP_OPEN_IDLE: u16 = 8000;
    /// Not allowed, listening.
    pub const TCP_CLOSED_LISTENING: u16 = 8080;
    pub const UDP_OPEN: u16 = 80;
    pub const UDP_OPEN_IDLE: u16 = 8000;
    pub const UDP_CLOSED_LISTENING: u16 = 53;

    pub fn tcp_all() -> [u16; 5] {
        [22, 80, 8000, 8080, 443]
    }
    pub fn udp_all() -> [u16; 4] {
        [80, 8000, 53, 9999]
    }
}

/// Extra rules both rigs get (inserted before the final REJECT): the idle
/// open ports.
const EXTRA_RULES: &[&str] = &[
    "-A INPUT -p tcp --dport 8000 -j ACCEPT",
    "-A INPUT -p udp --dport 8000 -j ACCEPT",
];

/// ICMP error rate limits out of the way: the comparison is about verdicts.
const SYSCTLS: &[&str] = &[
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
    "net.ipv4.icmp_msgs_per_sec=100000",
    "net.ipv4.icmp_msgs_burst=100000",
    // Ping sockets for the flows the server starts (root's group).
    "net.ipv4.ping_group_range=0 0",
];

/// One of the two rigs: a [`Rig`] whose server runs `side`'s policy, its
/// listeners, and both veth ends' MACs.
pub struct Twin {
    pub side: Side,
    pub rig: Rig,
    pub srv_mac: [u8; 6],
    pub cli_mac: [u8; 6],
    _servers: Vec<Server>,
}

/// Runs `ip -batch -` in `ns` with `lines` on stdin.
fn ip_batch(ns: &Netns, lines: &str) {
    let mut child = ns
        .command("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip -batch runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write ip batch");
    let out = child.wait_with_output().expect("ip -batch ends");
    assert!(
        out.status.success(),
        "ip -batch in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `dev` has no tentative IPv6 address: the kernel's own
/// link-local one goes through duplicate address detection (about a
/// second), and packets to it are dropped meanwhile.
fn wait_dad(ns: &Netns, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns
            .command("ip")
            .args(["-6", "addr", "show", "dev", dev, "tentative"])
            .output()
            .expect("ip runs");
        if out.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dev} in {} still has tentative addresses after 10 s",
            ns.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mac_in(ns: &Path, iface: &str) -> [u8; 6] {
    let iface = iface.to_string();
    in_netns(ns, move || raw::mac_of(&iface))
        .expect("setns")
        .expect("mac")
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Twin {
    /// A fresh pair with listeners, sysctls, permanent neighbor entries for
    /// `neighbors` (the probes' source addresses, all on the client veth's
    /// MAC: the client stack does not own them, so it stays silent) and the
    /// policy of `side`.
    pub fn build(side: Side, prefix: &str, neighbors: &[IpAddr]) -> Twin {
        let rig = Rig::new(prefix);
        let pair = &rig.pair;
        let any6: IpAddr = "::".parse().expect("addr");
        let mut servers = Vec::new();
        for p in [22, 80, 8080] {
            servers.push(spawn_tcp_listener(pair.srv_path(), any6, p).expect("tcp listener"));
        }
        for p in [80, 53] {
            servers.push(spawn_udp_echo(pair.srv_path(), any6, p).expect("udp echo"));
        }
        for s in SYSCTLS {
            pair.srv().sh(&["sysctl", "-qw", s]);
        }
        let srv_mac = mac_in(pair.srv_path(), pair.srv_veth());
        let cli_mac = mac_in(pair.cli_path(), pair.cli_veth());
        let mut batch = String::new();
        for n in neighbors {
            batch.push_str(&format!(
                "neigh replace {n} lladdr {} dev {} nud permanent\n",
                mac_text(cli_mac),
                pair.srv_veth()
            ));
        }
        ip_batch(pair.srv(), &batch);
        wait_dad(pair.srv(), pair.srv_veth());
        let twin = Twin {
            side,
            rig,
            srv_mac,
            cli_mac,
            _servers: servers,
        };
        match side {
            Side::Iptables => twin.iptables(),
            Side::Fw => twin.fw_up(),
        }
        twin
    }

    fn iptables(&self) {
        for (tool, rules) in [
            ("iptables", seed::IPTABLES_V4),
            ("ip6tables", seed::IPTABLES_V6),
        ] {
            let (last, head) = rules.split_last().expect("rules");
            for r in head.iter().chain(EXTRA_RULES).chain([last]) {
                let mut a = vec![tool];
                a.extend(r.split(' '));
                self.rig.pair.srv().sh(&a);
            }
        }
    }

    fn fw_up(&self) {
        let cfg = self.rig.file(
            "fw.toml",
            "[ports]\ntcp = [22, 80, 8000]\nudp = [80, 8000]\n\
             [reject]\nrate = 100000\nburst = 100000\n",
        );
        self.rig
            .up(&["--config", cfg.to_str().expect("utf-8 path")]);
    }
}

/// The server's SNMP counters (`/proc/net/snmp`, `snmp6`), opened from
/// inside its namespace so any thread can read them.
pub struct Snmp {
    v4: File,
    v6: File,
}

impl Snmp {
    pub fn open(ns: &Path) -> Snmp {
        in_netns(ns, || Snmp {
            v4: File::open("/proc/thread-self/net/snmp").expect("snmp"),
            v6: File::open("/proc/thread-self/net/snmp6").expect("snmp6"),
        })
        .expect("setns")
    }

    fn read(f: &mut File) -> String {
        let mut s = String::new();
        f.rewind().expect("rewind");
        f.read_to_string(&mut s).expect("read snmp");
        s
    }

    /// The counter `name`: `IcmpMsg.InType3`-style for /proc/net/snmp
    /// (section.field), or a plain snmp6 name like `Icmp6InType1`.
    pub fn get(&mut self, name: &str) -> u64 {
        if let Some((section, field)) = name.split_once('.') {
            let text = Self::read(&mut self.v4);
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [head, vals] = pair else { continue };
                let Some(h) = head.strip_prefix(&format!("{section}:")) else {
                    continue;
                };
                let v = vals.split_once(':').map(|x| x.1).unwrap_or("");
                for (k, v) in h.split_whitespace().zip(v.split_whitespace()) {
                    if k == field {
                        return v.parse().unwrap_or(0);
                    }
                }
            }
            0
        } else {
            let text = Self::read(&mut self.v6);
            text.lines()
                .filter_map(|l| l.split_once(char::is_whitespace))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0)
        }
    }
}
