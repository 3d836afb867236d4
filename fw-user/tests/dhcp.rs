//! DHCP with real clients against a real server: dnsmasq in the peer
//! namespace, busybox udhcpc and ISC dhclient in the namespace fw guards
//! (which has no IPv4 address until its client configures one). Outcomes
//! are checked against the seed iptables/ip6tables ruleset on the same rig:
//! DHCPv4 clients read through packet sockets (after XDP, before netfilter)
//! and get and renew their lease behind the reference, so they must behind
//! fw too; a DHCPv6 client reads through a UDP socket and gets no lease
//! behind either.
//!
//! Run as root: `cargo test --release -p fw-user --test dhcp -- --test-threads=1`.
use std::time::Duration;

use fw_testkit::{daemon::Daemon, wait_until, TempDir};
use fw_testkit::{fw_ok, fw_stats, reason_packets, require_root, seed, Netns, Pair, PinDir};

/// The DHCP server (the peer) and the pool it hands out.
const SERVER_V4: &str = "198.51.100.1";
const POOL_V4: &str = "198.51.100.50,198.51.100.60,255.255.255.0,2m";
const LEASED_V4: &str = "198.51.100.";
const POOL_V6: &str = "2001:db8::50,2001:db8::60,64,2m";
/// Longest wait for one DHCP exchange (the clients retry every second or so).
const EXCHANGE: Duration = Duration::from_secs(20);
/// How long a DHCPv6 client is given before it counts as failed (it gets a
/// lease within two seconds on this rig when nothing filters).
const V6_TRY: Duration = Duration::from_secs(6);
/// The seed policy with the DHCP client exception turned off.
const DHCP_OFF: &str = "[ports]\ntcp = [22, 80]\nudp = [80]\n[dhcp]\nclient = false\n";
const DHCP_ON: &str = "[ports]\ntcp = [22, 80]\nudp = [80]\n[dhcp]\nclient = true\n";

/// What guards the DHCP client's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// The seed iptables/ip6tables ruleset.
    Reference,
    /// `fw up IFACE`, defaults only.
    Fw,
}

/// The host (fw's side, the DHCP client) is the pair's server namespace,
/// dnsmasq runs in the peer (client) namespace.
struct Lab {
    // Dropped in this order: daemons, fw's pins, files, namespaces.
    dnsmasq: Option<Daemon>,
    pins: Option<PinDir>,
    tmp: TempDir,
    pair: Pair,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let pair = Netns::pair("fwdhcp");
        let (host, peer) = (pair.srv(), pair.cli());
        host.sh(&["ip", "-4", "addr", "flush", "dev", pair.srv_veth()]);
        peer.sh(&["ip", "-4", "addr", "flush", "dev", pair.cli_veth()]);
        let server = format!("{SERVER_V4}/24");
        peer.sh(&["ip", "addr", "add", &server, "dev", pair.cli_veth()]);
        // DHCPv6 runs between link-local addresses: wait until DAD is done.
        for (ns, dev) in [(host, pair.srv_veth()), (peer, pair.cli_veth())] {
            assert!(
                wait_until(Duration::from_secs(5), || link_local_ready(ns, dev)),
                "no usable link-local address on {dev} in {}",
                ns.name()
            );
        }
        let tmp = TempDir::new("dhcp-test");
        let mut lab = Lab {
            dnsmasq: None,
            pins: None,
            tmp,
            pair,
        };
        lab.start_dnsmasq();
        lab
    }

    fn host(&self) -> &Netns {
        self.pair.srv()
    }

    fn iface(&self) -> &str {
        self.pair.srv_veth()
    }

    fn guard(&mut self, g: Guard) {
        match g {
            Guard::Reference => seed::apply_iptables(self.host()).expect("seed ruleset"),
            Guard::Fw => {
                let pins = PinDir::new();
                fw_ok(self.pair.srv_path(), &pins, ["up", self.iface()]);
                self.pins = Some(pins);
            }
        }
    }

    /// `fw up IFACE --config` with `config`.
    fn fw_up_with(&mut self, config: &str) {
        let cfg = self.tmp.file("fw.toml", config, 0o600);
        let pins = PinDir::new();
        fw_ok(
            self.pair.srv_path(),
            &pins,
            ["up", self.iface(), "--config", &cfg],
        );
        self.pins = Some(pins);
    }

    fn fw(&self, args: &[&str]) -> String {
        let pins = self.pins.as_ref().expect("fw is up");
        fw_ok(self.pair.srv_path(), pins, args)
    }

    /// fw's packet count for `reason`.
    fn count(&self, reason: &str) -> u64 {
        let pins = self.pins.as_ref().expect("fw is up");
        reason_packets(&fw_stats(self.pair.srv_path(), pins), reason)
    }

    fn start_dnsmasq(&mut self) {
        let iface = format!("--interface={}", self.pair.cli_veth());
        let v4 = format!("--dhcp-range={POOL_V4}");
        let v6 = format!("--dhcp-range={POOL_V6}");
        let leases = format!("--dhcp-leasefile={}", self.tmp.join("dnsmasq.leases"));
        let pid = format!("--pid-file={}", self.tmp.join("dnsmasq.pid"));
        let args = [
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--bind-interfaces",
            &iface,
            &v4,
            &v6,
            // Renew after 2 s, rebind after 4 s: the lease itself can be no
            // shorter than dnsmasq's minimum of 2 minutes.
            "--dhcp-option=option:T1,2",
            "--dhcp-option=option:T2,4",
            &leases,
            &pid,
        ];
        let log = self.tmp.join("dnsmasq.log");
        let d = Daemon::start(self.pair.cli(), "dnsmasq", &args, &log);
        assert!(
            wait_until(Duration::from_secs(5), || d.log().contains("sockets bound")),
            "dnsmasq did not start: {}",
            d.log()
        );
        self.dnsmasq = Some(d);
    }

    fn dnsmasq_log(&self) -> String {
        self.dnsmasq.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// busybox udhcpc on the host interface; its script records each event
    /// in `udhcpc.events` and configures the leased address.
    fn udhcpc(&self, extra: &[&str]) -> Daemon {
        let script = self.tmp.file(
            "udhcpc.sh",
            &format!(
                "#!/bin/sh\necho \"$1 $ip\" >> {}\n\
                 case \"$1\" in bound|renew) ip addr replace \"$ip/$mask\" dev \"$interface\" ;; esac\n",
                self.tmp.join("udhcpc.events")
            ),
            0o700,
        );
        let mut args = vec!["udhcpc", "-f", "-i", self.iface(), "-s", &script, "-T", "1"];
        args.extend_from_slice(extra);
        Daemon::start(self.host(), "busybox", &args, &self.tmp.join("udhcpc.log"))
    }

    /// ISC dhclient (`-6`: DHCPv6) on the host interface, in the foreground,
    /// with its files in the temp dir and a script that records each event
    /// in `NAME.events` and configures a leased IPv4 address (never the
    /// system's dhclient-script, which would rewrite /etc/resolv.conf).
    fn dhclient(&self, v6: bool) -> Daemon {
        let name = if v6 { "dhclient6" } else { "dhclient" };
        let script = self.tmp.file(
            &format!("{name}.sh"),
            &format!(
                "#!/bin/sh\necho \"$reason $new_ip_address$new_ip6_address\" >> {}\n\
                 case \"$reason\" in BOUND|RENEW|REBIND|REBOOT) \
                 ip addr replace \"$new_ip_address/24\" dev \"$interface\" ;; esac\nexit 0\n",
                self.tmp.join(&format!("{name}.events"))
            ),
            0o700,
        );
        let conf = self.tmp.file(
            "dhclient.conf",
            "timeout 20;\nretry 1;\ninitial-interval 1;\n",
            0o600,
        );
        let leases = self.tmp.join(&format!("{name}.leases"));
        let _ = std::fs::remove_file(&leases);
        let pid = self.tmp.join(&format!("{name}.pid"));
        let mut args = vec!["-d", "-v", "-1", "-cf", &conf, "-lf", &leases, "-pf", &pid];
        args.extend(["-sf", &script]);
        if v6 {
            args.insert(0, "-6");
        }
        args.push(self.iface());
        let log = self.tmp.join(&format!("{name}.log"));
        Daemon::start(self.host(), "dhclient", &args, &log)
    }

    /// The events a client's script recorded, e.g. `["bound 198.51.100.50"]`.
    fn events(&self, client: &str) -> Vec<String> {
        self.tmp
            .read(&format!("{client}.events"))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `client` recorded more than `seen` events starting with
    /// one of `kinds`; panics with the logs if it does not within `EXCHANGE`.
    #[track_caller]
    fn expect_event(&self, client: &Daemon, name: &str, kinds: &[&str], seen: usize) -> usize {
        let count = || {
            self.events(name)
                .iter()
                .filter(|e| kinds.iter().any(|k| e.starts_with(&format!("{k} "))))
                .count()
        };
        assert!(
            wait_until(EXCHANGE, || count() > seen),
            "{name}: no {kinds:?} event within {EXCHANGE:?}; events {:?}\n{name}:\n{}\ndnsmasq:\n{}",
            self.events(name),
            client.log(),
            self.dnsmasq_log()
        );
        count()
    }

    /// Whether the host interface holds a leased IPv4 address.
    fn has_lease(&self) -> bool {
        let out = self
            .host()
            .command("ip")
            .args(["-4", "-o", "addr", "show", "dev", self.iface()])
            .output()
            .expect("ip addr show");
        String::from_utf8_lossy(&out.stdout).contains(LEASED_V4)
    }

    /// Drops the client's unicast renewals to the server on their way out,
    /// before fw's egress program sees them: so the rebinding broadcast
    /// that follows is answered as if the last renewal were long ago (no
    /// flow either firewall knows).
    fn lose_unicast_renewals(&self, lose: bool) {
        let op = if lose { "-A" } else { "-D" };
        self.host().sh(&[
            "iptables", op, "OUTPUT", "-d", SERVER_V4, "-p", "udp", "--dport", "67", "-j", "DROP",
        ]);
    }

    /// Packets the reference's final REJECT rule (`tool`: iptables or
    /// ip6tables) has seen.
    fn reference_rejects(&self, tool: &str) -> u64 {
        let out = self
            .host()
            .command(tool)
            .args(["-L", "INPUT", "-v", "-n", "-x"])
            .output()
            .expect("iptables -L");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains("REJECT"))
            .unwrap_or_else(|| panic!("no REJECT rule in {tool} INPUT: {text}"));
        last.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("packet count of {last:?}"))
    }

    /// DHCPv6 advertisements dnsmasq sent so far.
    fn advertised(&self) -> usize {
        self.dnsmasq_log().matches("DHCPADVERTISE").count()
    }

    /// Runs a fresh dhclient -6 for at most `limit`: did it get a lease?
    fn dhcpv6_lease(&self, limit: Duration) -> bool {
        let before = self.events("dhclient6").len();
        let client = self.dhclient(true);
        let bound = wait_until(limit, || {
            self.events("dhclient6")[before..]
                .iter()
                .any(|e| e.starts_with("BOUND6 "))
        });
        drop(client);
        bound
    }
}

fn link_local_ready(ns: &Netns, dev: &str) -> bool {
    let out = ns
        .command("ip")
        .args(["-6", "-o", "addr", "show", "dev", dev, "scope", "link"])
        .output()
        .expect("ip addr show");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("fe80::") && !text.contains("tentative")
}

/// udhcpc's first lease, a rebinding (broadcast renewal, answered to the
/// client's address) and a unicast renewal, behind `g`.
fn udhcpc_lifecycle(g: Guard) {
    let mut lab = Lab::new();
    lab.guard(g);
    let client = lab.udhcpc(&["-t", "5"]);
    lab.expect_event(&client, "udhcpc", &["bound"], 0);
    assert!(
        lab.has_lease(),
        "{g:?}: udhcpc bound but the address is missing"
    );
    let fw = g == Guard::Fw;
    if fw {
        // The offer and the ack; without the exception both are rejected.
        assert!(lab.count("dhcp") >= 2, "{}", lab.fw(&["stats"]));
    }
    let dhcp = if fw { lab.count("dhcp") } else { 0 };
    // SIGUSR1: renew now. With the unicast requests lost, udhcpc broadcasts.
    lab.lose_unicast_renewals(true);
    client.signal(libc::SIGUSR1);
    let renewals = lab.expect_event(&client, "udhcpc", &["renew"], 0);
    assert!(
        client.log().contains("broadcasting renew"),
        "{g:?}: renewed without rebinding:\n{}",
        client.log()
    );
    if fw {
        assert!(lab.count("dhcp") > dhcp, "{}", lab.fw(&["stats"]));
    }
    // A unicast renewal: the client's own UDP socket asks, the answer is
    // part of that flow (ESTABLISHED), not the DHCP exception.
    lab.lose_unicast_renewals(false);
    let (dhcp, established) = if fw {
        (lab.count("dhcp"), lab.count("established"))
    } else {
        (0, 0)
    };
    client.signal(libc::SIGUSR1);
    lab.expect_event(&client, "udhcpc", &["renew"], renewals);
    if fw {
        assert_eq!(lab.count("dhcp"), dhcp, "{}", lab.fw(&["stats"]));
        assert!(
            lab.count("established") > established,
            "{}",
            lab.fw(&["stats"])
        );
    }
    assert!(lab.has_lease(), "{g:?}: lease lost");
}

#[test]
fn udhcpc_gets_and_renews_its_lease_as_behind_the_reference() {
    udhcpc_lifecycle(Guard::Reference);
    udhcpc_lifecycle(Guard::Fw);
}

#[test]
fn with_dhcp_client_off_udhcpc_gets_no_lease_until_it_is_turned_on() {
    let mut lab = Lab::new();
    lab.fw_up_with(DHCP_OFF);
    let mut client = lab.udhcpc(&["-n", "-q", "-t", "3"]);
    assert_eq!(
        client.wait(EXCHANGE),
        Some(1),
        "udhcpc -n: {}",
        client.log()
    );
    assert!(client.log().contains("no lease"), "{}", client.log());
    assert!(!lab.has_lease());
    assert_eq!(lab.count("dhcp"), 0);
    assert!(
        lab.count("reject") + lab.count("reject_silent") >= 1,
        "{}",
        lab.fw(&["stats"])
    );
    drop(client);
    let cfg = lab.tmp.file("on.toml", DHCP_ON, 0o600);
    let applied = lab.fw(&["apply", &cfg]);
    assert!(applied.contains("dhcp client replies passed"), "{applied}");
    let mut client = lab.udhcpc(&["-n", "-q", "-t", "5"]);
    assert_eq!(client.wait(EXCHANGE), Some(0), "{}", client.log());
    assert!(lab.has_lease());
    assert!(lab.count("dhcp") >= 2, "{}", lab.fw(&["stats"]));
}

#[test]
fn dhclient_gets_and_renews_its_lease_under_fw() {
    let mut lab = Lab::new();
    lab.guard(Guard::Fw);
    let client = lab.dhclient(false);
    lab.expect_event(&client, "dhclient", &["BOUND"], 0);
    assert!(lab.has_lease(), "dhclient bound but the address is missing");
    let dhcp = lab.count("dhcp");
    assert!(dhcp >= 2, "{}", lab.fw(&["stats"]));
    // T2 passes with every unicast renewal lost: dhclient rebinds by
    // broadcast, dnsmasq answers the client's address.
    lab.lose_unicast_renewals(true);
    let renewed = lab.expect_event(&client, "dhclient", &["RENEW", "REBIND"], 0);
    assert!(lab.count("dhcp") > dhcp, "{}", lab.fw(&["stats"]));
    // Renewals by unicast again: answered as part of the client's flow.
    lab.lose_unicast_renewals(false);
    let (dhcp, established) = (lab.count("dhcp"), lab.count("established"));
    lab.expect_event(&client, "dhclient", &["RENEW", "REBIND"], renewed);
    assert!(
        lab.count("established") > established,
        "{}",
        lab.fw(&["stats"])
    );
    assert_eq!(lab.count("dhcp"), dhcp);
    assert!(lab.has_lease(), "lease lost");
}

/// DHCPv6: the client's Solicit goes to ff02::1:2, the server answers from
/// its own link-local address to the client's, port 547 -> 546. That is no
/// flow netfilter knows, and the reference rejects it; fw does the same
/// (README: open udp 546 for a DHCPv6 client).
#[test]
fn dhcpv6_gets_no_lease_behind_the_reference_nor_fw() {
    let mut lab = Lab::new();
    assert!(
        lab.dhcpv6_lease(EXCHANGE),
        "without a firewall the rig must give a DHCPv6 lease:\n{}",
        lab.dnsmasq_log()
    );
    lab.guard(Guard::Reference);
    let advertised = lab.advertised();
    assert!(!lab.dhcpv6_lease(V6_TRY), "reference: got a DHCPv6 lease");
    assert!(lab.advertised() > advertised, "{}", lab.dnsmasq_log());
    assert!(lab.reference_rejects("ip6tables") >= 1);
    lab.host().sh(&["ip6tables", "-F", "INPUT"]);
    lab.host().sh(&["iptables", "-F", "INPUT"]);

    lab.guard(Guard::Fw);
    let advertised = lab.advertised();
    assert!(!lab.dhcpv6_lease(V6_TRY), "fw: got a DHCPv6 lease");
    assert!(lab.advertised() > advertised, "{}", lab.dnsmasq_log());
    assert!(lab.count("reject") >= 1, "{}", lab.fw(&["stats"]));
    assert_eq!(lab.count("dhcp"), 0);
    // What the README advises.
    lab.fw(&["allow", "udp", "546", "--from", "fe80::/10"]);
    assert!(
        lab.dhcpv6_lease(EXCHANGE),
        "fw with udp 546 open: no DHCPv6 lease:\n{}",
        lab.dnsmasq_log()
    );
}
