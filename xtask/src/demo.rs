//! `cargo xtask demo`: fw between two network namespaces, with real sockets.
//!
//! The server namespace runs listeners for wanted (TCP 22, TCP 80, UDP 80) and
//! unwanted (TCP 8080, UDP 53) services; the client probes each over IPv4 and
//! IPv6, first without fw, then with `fw up` on the server's veth.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::Path,
    process::Output,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use fw_testkit::{
    fw_bin, install_interrupt_cleanup, spawn_tcp_listener, spawn_udp_echo, tcp_connect, try_fw_cmd,
    udp_probe, Netns, Outcome, Pair, PinDir, Server,
};

/// Every probe gives up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const ANY: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The services in the server namespace and whether the reference policy
/// (DESIGN.md) lets them through.
const SERVICES: [(Proto, u16, bool); 5] = [
    (Proto::Tcp, 22, true),
    (Proto::Tcp, 80, true),
    (Proto::Udp, 80, true),
    (Proto::Tcp, 8080, false),
    (Proto::Udp, 53, false),
];

struct Probe {
    proto: Proto,
    addr: IpAddr,
    port: u16,
    wanted: bool,
}

impl Probe {
    fn label(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{} {a}:{}", self.proto.name(), self.port),
            IpAddr::V6(a) => format!("{} [{a}]:{}", self.proto.name(), self.port),
        }
    }

    fn send(&self, client: &Netns) -> Outcome {
        match self.proto {
            Proto::Tcp => tcp_connect(client, self.addr, self.port, PROBE_TIMEOUT),
            Proto::Udp => udp_probe(client, self.addr, self.port, PROBE_TIMEOUT),
        }
    }

    fn expected(&self) -> &'static str {
        if self.wanted {
            "accept"
        } else {
            "reject"
        }
    }

    /// Whether `seen` is what the policy asks for (for a reject: anything but
    /// an answer from the service).
    fn judge(&self, seen: &Outcome) -> bool {
        seen.is_answered() == self.wanted
    }
}

/// Runs `fw down` when dropped, so an error or panic after `fw up` still
/// detaches (the namespace deletion afterwards would too, but this is tidier).
struct FwUp<'a> {
    ns: &'a Path,
    pin: &'a PinDir,
}

impl Drop for FwUp<'_> {
    fn drop(&mut self) {
        match try_fw_cmd(self.ns, self.pin, ["down"]) {
            Ok(out) if out.status.success() => println!("fw down: ok"),
            Ok(out) => eprintln!(
                "fw down failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("fw down: {e}"),
        }
    }
}

pub fn run(no_fw: bool, no_build: bool) -> Result<()> {
    crate::require_root()?;
    crate::setup::run()?;
    if !no_fw && !no_build {
        crate::cargo_build_release()?;
    }
    install_interrupt_cleanup().context("installing the Ctrl-C handler")?;

    println!("==> demo");
    let pair = Netns::try_pair("fwdemo").context("building the namespace pair")?;
    describe_rig(&pair);
    let servers = start_services(&pair)?;

    let probes: Vec<Probe> = SERVICES
        .iter()
        .flat_map(|&(proto, port, wanted)| {
            [IpAddr::from(pair.srv_v4()), pair.srv_v6().into()].map(|addr| Probe {
                proto,
                addr,
                port,
                wanted,
            })
        })
        .collect();

    println!("\nprobing without fw (each probe waits at most {PROBE_TIMEOUT:?})…");
    let before: Vec<Outcome> = probes.iter().map(|p| p.send(pair.cli())).collect();
    if let Some((p, seen)) = probes.iter().zip(&before).find(|(_, o)| !o.is_answered()) {
        print_table(&probes, &before, None);
        bail!(
            "the rig is broken: {} got \"{seen}\" without any firewall",
            p.label()
        );
    }

    if no_fw {
        print_table(&probes, &before, None);
        println!("\n--no-fw: rig and probes work; fw was not loaded.");
        drop(servers);
        return Ok(());
    }

    let pin = PinDir::new();
    let after = {
        println!("\nfw binary: {}", fw_bin().display());
        fw(&pair, &pin, &["up", pair.srv_veth()])?;
        let _up = FwUp {
            ns: pair.srv_path(),
            pin: &pin,
        };
        show(&pair, &pin, &["status"]);
        println!("\nprobing with fw on {}…", pair.srv_veth());
        let after: Vec<Outcome> = probes.iter().map(|p| p.send(pair.cli())).collect();
        print_table(&probes, &before, Some(&after));
        show(&pair, &pin, &["stats"]);
        after
    }; // fw down here
    drop(servers);
    drop(pin);
    drop(pair);
    println!("cleaned up: namespaces, listeners and pin dir removed");

    let wrong: Vec<String> = probes
        .iter()
        .zip(&after)
        .filter(|(p, seen)| !p.judge(seen))
        .map(|(p, seen)| format!("{} ({}, got \"{seen}\")", p.label(), p.expected()))
        .collect();
    if !wrong.is_empty() {
        bail!("fw did not apply the policy to: {}", wrong.join("; "));
    }
    println!("\nall probes behaved as the policy says.");
    Ok(())
}

fn describe_rig(pair: &Pair) {
    println!(
        "server: netns {} veth {} ({}, {})",
        pair.srv_ns(),
        pair.srv_veth(),
        pair.srv_v4(),
        pair.srv_v6()
    );
    println!(
        "client: netns {} veth {} ({}, {})",
        pair.cli_ns(),
        pair.cli_veth(),
        pair.cli_v4(),
        pair.cli_v6()
    );
}

fn start_services(pair: &Pair) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (proto, port, wanted) in SERVICES {
        let server = match proto {
            Proto::Tcp => spawn_tcp_listener(pair.srv(), ANY, port),
            Proto::Udp => spawn_udp_echo(pair.srv(), ANY, port),
        }
        .with_context(|| format!("starting {} {port} in {}", proto.name(), pair.srv_ns()))?;
        let kind = if proto == Proto::Udp {
            "echo"
        } else {
            "listener"
        };
        let role = if wanted { "wanted" } else { "unwanted" };
        println!("server: {} {port} {kind} up ({role})", proto.name());
        servers.push(server);
    }
    Ok(servers)
}

/// Runs fw in the server namespace; a failure is an error carrying fw's stderr.
fn fw(pair: &Pair, pin: &PinDir, args: &[&str]) -> Result<Output> {
    println!("$ fw {}", args.join(" "));
    let out = try_fw_cmd(pair.srv_path(), pin, args).with_context(|| {
        format!(
            "running fw {} (build it with `cargo xtask build`)",
            args.join(" ")
        )
    })?;
    print_output(&out);
    if !out.status.success() {
        bail!("fw {} failed ({})", args.join(" "), out.status);
    }
    Ok(out)
}

/// Like [`fw`], but a failure is only reported: the demo goes on.
fn show(pair: &Pair, pin: &PinDir, args: &[&str]) {
    println!();
    if let Err(e) = fw(pair, pin, args) {
        eprintln!("({e:#}; continuing)");
    }
}

fn print_output(out: &Output) {
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("  {line}");
    }
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("  {line}");
    }
}

fn print_table(probes: &[Probe], before: &[Outcome], after: Option<&[Outcome]>) {
    let label_w = probes.iter().map(|p| p.label().len()).max().unwrap_or(0);
    let before_w = before
        .iter()
        .map(|o| o.to_string().len())
        .max()
        .unwrap_or(0);
    let after_w = after
        .map(|a| a.iter().map(|o| o.to_string().len()).max().unwrap_or(0))
        .unwrap_or(0);
    let mut header = format!(
        "{:<label_w$}  {:<6}  {:<before_w$}",
        "client sends", "policy", "without fw"
    );
    if after.is_some() {
        header.push_str(&format!("  {:<after_w$}  check", "with fw"));
    }
    println!("\n{}", header.trim_end());
    for (i, p) in probes.iter().enumerate() {
        let before = before.get(i).map(ToString::to_string).unwrap_or_default();
        let mut row = format!(
            "{:<label_w$}  {:<6}  {before:<before_w$}",
            p.label(),
            p.expected()
        );
        if let Some(seen) = after.and_then(|a| a.get(i)) {
            let check = match (p.judge(seen), p.wanted, seen) {
                (true, true, _) => "ok",
                (true, false, o) if o.is_host_unreachable() => "ok",
                (true, false, _) => "blocked, but the reference answers host-unreachable",
                (false, true, _) => "WRONG: not answered",
                (false, false, _) => "WRONG: not blocked",
            };
            row.push_str(&format!("  {:<after_w$}  {check}", seen.to_string()));
        }
        println!("{}", row.trim_end());
    }
}
