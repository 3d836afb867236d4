//! The `fw` command line: parses arguments and calls fw-user's library.
//!
//! Output goes through `out!`/`outln!`: a closed standard output (`fw stats
//! | head`) ends the command quietly with status 0, as other Unix tools end,
//! instead of the panic of `println!`. Notes on stderr never fail.
use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::{CommandFactory as _, Parser, Subcommand};
use fw_user::{
    kernel::{
        conntrack as kernel_ct,
        egress::Egress,
        maps::FwMaps,
        pins::{PinDir, DEFAULT_PIN_DIR},
        shutdown::Shutdown,
        sys::require_root,
        xdp::Mode,
    },
    model::{
        blocklist::{self, DEFAULT_SET},
        config::Config,
        limit,
        policy::{parse_prefix, PortRange, Proto, Target},
        record::{unrecorded_note, Source},
    },
    ops::{
        apply, block, conntrack as ops_ct, control, foreground, limit as ops_limit,
        persist::{self, Save, Saved},
        up_down,
    },
    watch::{
        blocks, conntrack, exporter, log,
        stats::{self, Stats},
        status::{Health, Status},
        top,
    },
};

/// fw: a host firewall in XDP. Loopback open, established/related open,
/// chosen ports open, everything else rejected with an ICMP error.
#[derive(Parser)]
#[command(name = "fw", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Where fw pins its programs, links and maps (on bpffs).
    #[arg(long, global = true, env = "FW_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `fw up --mode`: how XDP is attached.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ModeArg {
    /// Native (driver) mode where the driver supports it, else generic.
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Native => Mode::Native,
            ModeArg::Generic => Mode::Generic,
        }
    }
}

/// `fw up --egress`: which egress hook `fw up` uses.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum EgressArg {
    /// tcx where the kernel has it (6.6+), else clsact.
    Auto,
    /// tcx only.
    Tcx,
    /// The clsact qdisc (netlink), as on kernels before 6.6.
    Clsact,
}

impl From<EgressArg> for Egress {
    fn from(e: EgressArg) -> Egress {
        match e {
            EgressArg::Auto => Egress::Auto,
            EgressArg::Tcx => Egress::Tcx,
            EgressArg::Clsact => Egress::Clsact,
        }
    }
}

/// `--wait`, on the commands that take fw's lock.
#[derive(clap::Args)]
struct Wait {
    /// How long to wait for another fw command holding fw's lock
    /// (/run/fw/lock) to finish.
    #[arg(long = "wait", value_name = "SECS", default_value_t = 30)]
    secs: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load fw and attach it to interfaces (ingress XDP + egress TC), then exit.
    #[command(
        after_help = "Examples:\n  fw up eth1\n  fw up eth1 eth2 --config /etc/fw/fw.toml\n  fw up eth1 --dry-run --foreground"
    )]
    Up {
        /// Interfaces to filter (not lo). May come from the config instead.
        ifaces: Vec<String>,
        /// TOML config (default: the seed policy, TCP 22/80 and UDP 80 open).
        #[arg(long)]
        config: Option<PathBuf>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
        mode: ModeArg,
        /// Egress hook of the conntrack program.
        #[arg(long, value_enum, default_value_t = EgressArg::Auto)]
        egress: EgressArg,
        /// Count what would be rejected, but let it pass.
        #[arg(long)]
        dry_run: bool,
        /// Stay attached, showing kernel-side messages; Ctrl-C/SIGTERM detaches.
        #[arg(long)]
        foreground: bool,
        /// With --config on a running fw: replace its policy even if that
        /// shuts out the SSH session's peer or established flows.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Detach from interfaces (all when none named); unload when none is left.
    #[command(after_help = "Examples:\n  fw down\n  fw down eth1")]
    Down {
        /// Interfaces to detach from (default: all).
        #[arg(value_name = "IFACE")]
        ifaces: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show where fw is attached and how; with --verbose, every rule and its counters.
    #[command(
        after_help = "Examples:\n  fw status\n  fw status --verbose\n  fw status --verbose --json"
    )]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also list the rules, like `ufw status verbose`: what always
        /// passes, every open port range with its sources, new flows and live
        /// flows, and the default reject with its counters.
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Follow rejected/dropped packets (sampled by the kernel), one line each.
    #[command(
        after_help = "Examples:\n  fw log\n  fw log --count 10 --timeout 60\n  fw log --json --backlog"
    )]
    Log {
        /// One JSON object per line (shape in the README, "Watching fw").
        #[arg(long)]
        json: bool,
        /// Exit after N events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit after SECS seconds (an error if --count events did not arrive by then).
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Also show events buffered before this command started.
        #[arg(long)]
        backlog: bool,
    },
    /// Live view: rates per reason, top ports and sources; q quits.
    #[command(after_help = "Examples:\n  fw top\n  sudo fw top")]
    Top,
    /// Serve Prometheus metrics at http://ADDR/metrics until Ctrl-C.
    #[command(after_help = "Examples:\n  fw exporter\n  fw exporter --listen 127.0.0.1:9101")]
    Exporter {
        /// Address and port to listen on (loopback by default: the metrics
        /// describe this host's firewall).
        #[arg(long, value_name = "ADDR", default_value = exporter::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// Counters per reason, per open port and per interface.
    #[command(after_help = "Examples:\n  fw stats\n  fw stats --json\n  fw stats --watch 2")]
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds (default 1) with rates, until Ctrl-C.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
    },
    /// Open ports (e.g. `fw allow tcp 443 8000-8080`), or answer pings
    /// (`fw allow icmp echo`); takes effect at once.
    #[command(
        after_help = "Examples:\n  fw allow tcp 443\n  fw allow tcp 8000-8080 --from 192.0.2.0/24\n  fw allow icmp echo --from 198.51.100.0/24"
    )]
    Allow {
        /// Protocol: tcp, udp, or icmp (with `echo`).
        #[arg(value_parser = Proto::from_cli)]
        proto: Proto,
        /// Ports or ranges, e.g. 443 8000-8080; for icmp: echo
        /// (echo-request, IPv4 and IPv6).
        #[arg(required = true, value_name = "PORT|LO-HI|echo")]
        ports: Vec<Target>,
        /// Only for these sources (CIDR, v4 or v6); repeatable.
        #[arg(long, value_name = "CIDR")]
        from: Vec<String>,
        /// Change the running policy only, not the config file fw runs (a
        /// reload or reboot then undoes the change).
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Close ports (or stop answering pings: `fw deny icmp echo`), or remove
    /// sources from them; established flows continue.
    #[command(
        after_help = "Examples:\n  fw deny tcp 80\n  fw deny tcp 22 --from 198.51.100.0/24\n  fw deny icmp echo"
    )]
    Deny {
        /// Protocol: tcp, udp, or icmp (with `echo`).
        #[arg(value_parser = Proto::from_cli)]
        proto: Proto,
        /// Ports or ranges, e.g. 443 8000-8080; for icmp: echo.
        #[arg(required = true, value_name = "PORT|LO-HI|echo")]
        ports: Vec<Target>,
        /// Remove only this source from the ports' source lists (as `ufw
        /// delete` removes one rule); the port closes when its last source
        /// goes. Repeatable.
        #[arg(long, value_name = "CIDR")]
        from: Vec<String>,
        /// Close them even when the lockout guard objects (established flows,
        /// or the SSH session running this command, on a port). Established
        /// flows keep working either way; new connections are rejected.
        #[arg(long)]
        force: bool,
        /// Change the running policy only, not the config file fw runs (a
        /// reload or reboot then undoes the change).
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Print the running policy as a config file (like iptables-save), or
    /// write it into FILE (an existing fw config is edited in place, its
    /// comments kept).
    #[command(after_help = "Examples:\n  fw save\n  fw save /etc/fw/fw.toml")]
    Save {
        /// Where to write it (atomically); stdout when not given.
        file: Option<PathBuf>,
        #[command(flatten)]
        wait: Wait,
    },
    /// List the open ports.
    #[command(after_help = "Examples:\n  fw ports\n  fw ports --json")]
    Ports {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace the running policy and reject settings with a config file's.
    #[command(
        after_help = "Examples:\n  fw apply /etc/fw/fw.toml\n  fw apply new.toml --confirm 60\n  fw apply new.toml --force"
    )]
    Apply {
        /// TOML config, validated in full before anything changes.
        file: PathBuf,
        /// Roll back to the current config unless confirmed within SECS
        /// seconds (Enter here, or `fw confirm` from another shell); 1-3600.
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        confirm: Option<u64>,
        /// Apply even when the lockout guard objects: the file closes a port, or
        /// narrows its sources, that an established flow or the SSH session
        /// running this command could then not reconnect to.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Check a config file as `fw apply` would (syntax, values, interfaces,
    /// capacity, the lockout guard), changing nothing; exit 0 when it is good.
    #[command(
        after_help = "Examples:\n  fw check /etc/fw/fw.toml\n  fw check new.toml && fw apply new.toml\n  fw check new.toml --force"
    )]
    Check {
        /// TOML config to check.
        file: PathBuf,
        /// Leave out the lockout guard (what `fw apply --force` leaves out).
        #[arg(long)]
        force: bool,
    },
    /// Keep the config of a pending `fw apply --confirm`.
    #[command(
        after_help = "Examples:\n  fw apply new.toml --confirm 60   # then, from another shell:\n  fw confirm"
    )]
    Confirm,
    /// Print a shell completion script (e.g. `fw completions bash > /etc/bash_completion.d/fw`).
    #[command(
        after_help = "Examples:\n  fw completions bash > /usr/share/bash-completion/completions/fw\n  fw completions zsh > /usr/local/share/zsh/site-functions/_fw"
    )]
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
    /// Print the man page fw(8), generated from these definitions (roff).
    #[command(
        hide = true,
        after_help = "Examples:\n  fw man > /usr/local/share/man/man8/fw.8\n  fw man | man -l -"
    )]
    Man,
    /// Block sources: their packets are dropped before anything else,
    /// established flows included (`[block] with` can answer them instead).
    #[command(
        after_help = "Examples:\n  fw block 203.0.113.7\n  fw block 198.51.100.0/24 2001:db8:bad::/48 --for 1h --set abuse\n  fw block --file /etc/fw/drop.txt --set spamhaus"
    )]
    Block {
        /// Addresses or prefixes (v4 or v6), e.g. 203.0.113.7 198.51.100.0/24.
        #[arg(value_name = "ADDR|CIDR", required_unless_present = "file")]
        prefixes: Vec<String>,
        /// End the block after DURATION (600, 600s, 10m, 1h30m, 2d); without
        /// it the block has no end. Blocking a prefix again sets a new end.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// The block set to put them in (made when new; default `default`).
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// Replace the whole set with FILE's prefixes (one per line, `#`/`;`
        /// comments, or `ipset save` output); needs --set.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["prefixes", "duration"])]
        file: Option<PathBuf>,
        /// Block even a prefix holding the SSH session (or another connection)
        /// running this command: it would drop at once.
        #[arg(long)]
        force: bool,
        /// Change the running blocklist only: not written to the config file
        /// (bans with --for are never written there).
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Unblock sources: take them out of a block set (of every set without --set).
    #[command(
        after_help = "Examples:\n  fw unblock 203.0.113.7\n  fw unblock 198.51.100.0/24 --set abuse\n  fw unblock --all --set fail2ban"
    )]
    Unblock {
        /// Addresses or prefixes, as they were blocked.
        #[arg(value_name = "ADDR|CIDR", required_unless_present = "all")]
        prefixes: Vec<String>,
        /// Only from this set.
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// Every prefix of the set given with --set.
        #[arg(long, requires = "set", conflicts_with = "prefixes")]
        all: bool,
        /// Change the running blocklist only: not written to the config file.
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Limit new connections (or UDP flows) per source to an open port,
    /// like `ufw limit`: a source (or its /--per prefix) opening more than
    /// N in the window is rejected (reason `limited`, answered as `[reject]
    /// with` says) until the rate it tries falls under N. Established flows
    /// are never limited.
    #[command(
        after_help = "--per groups IPv4 sources (default 32: each address), --per6 IPv6 sources \
(default 64: each /64); one limit per port, at most 8 limits.\n\n\
Examples:\n  fw limit tcp 22 --rate 6/30s\n  fw limit tcp 22 --rate 6/30s --per 24 --per6 56\n  fw limit udp 5060-5061 --rate 100/1m"
    )]
    Limit {
        /// Protocol: tcp or udp.
        #[arg(value_parser = Proto::from_cli)]
        proto: Proto,
        /// The port or range (it must be open: `fw allow` it first).
        #[arg(value_name = "PORT|LO-HI")]
        port: String,
        /// New flows per window from one source prefix: N/WINDOW, the
        /// window in s, m or h (6/30s, 100/1m, 10/h).
        #[arg(long, value_name = "N/WINDOW")]
        rate: String,
        /// IPv4 sources are counted per prefix of this length (1-32).
        #[arg(long, value_name = "BITS", default_value_t = fw_user::model::limit::DEFAULT_PER4)]
        per: u32,
        /// IPv6 sources are counted per prefix of this length (1-128).
        #[arg(long, value_name = "BITS", default_value_t = fw_user::model::limit::DEFAULT_PER6)]
        per6: u32,
        /// Change the running limits only, not the config file fw runs.
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove the limit of a port (or range), as `fw limit` set it.
    #[command(
        after_help = "Examples:\n  fw unlimit tcp 22\n  fw unlimit udp 5060-5061\n  fw unlimit tcp 22 --runtime"
    )]
    Unlimit {
        /// Protocol: tcp or udp.
        #[arg(value_parser = Proto::from_cli)]
        proto: Proto,
        /// The port or range, as it was limited.
        #[arg(value_name = "PORT|LO-HI")]
        port: String,
        /// Change the running limits only, not the config file fw runs.
        #[arg(long)]
        runtime: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// List blocked prefixes: set, time left, packets dropped.
    #[command(
        after_help = "Examples:\n  fw blocks\n  fw blocks --set fail2ban\n  fw blocks --json"
    )]
    Blocks {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this set's prefixes.
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
    },
    /// List tracked flows (state, age, time left), or delete them with --flush.
    #[command(
        after_help = "Examples:\n  fw conntrack --proto tcp --port 22\n  fw conntrack --src 198.51.100.0/24 --json\n  fw conntrack --flush --proto udp"
    )]
    Conntrack {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only flows of this protocol.
        #[arg(long, value_enum, value_name = "PROTO")]
        proto: Option<CtProto>,
        /// Only TCP/UDP flows with this port at either end.
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Only flows whose remote peer is in this prefix (CIDR or address).
        #[arg(long, value_name = "CIDR")]
        src: Option<String>,
        /// Delete the flows listed (all, or those the filters match); their
        /// next packet is judged as a new flow. The flows of the session
        /// running this command (SSH_CONNECTION, connections its processes
        /// hold) are kept unless --force.
        #[arg(long)]
        flush: bool,
        /// With --flush: delete the session's own flows too.
        #[arg(long, requires = "flush")]
        force: bool,
        /// With --flush: how long to wait for another fw command holding
        /// fw's lock (/run/fw/lock) to finish.
        #[arg(long, value_name = "SECS", requires = "flush")]
        wait: Option<u64>,
    },
}

/// A protocol `fw conntrack` filters on.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CtProto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl CtProto {
    fn name(self) -> &'static str {
        match self {
            CtProto::Tcp => "tcp",
            CtProto::Udp => "udp",
            CtProto::Icmp => "icmp",
            CtProto::Icmpv6 => "icmpv6",
        }
    }
}

/// Standard output was closed by its reader: what the command did, it did.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
struct StdoutClosed;

/// `fw status` found fw degraded (and printed why).
#[derive(Debug, thiserror::Error)]
#[error("fw is degraded")]
struct Degraded;

/// What `fw status` exits with when fw is degraded (1 is "could not tell").
const EXIT_DEGRADED: u8 = 3;

/// Writes to stdout; a reader that went away becomes [`StdoutClosed`].
fn emit(args: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => Ok(r?),
    }
}

macro_rules! out {
    ($($t:tt)*) => { emit(format_args!($($t)*))? };
}

macro_rules! outln {
    ($($t:tt)*) => { emit(format_args!("{}\n", format_args!($($t)*)))? };
}

/// A line on stderr (a closed stderr is no reason to fail).
fn note(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) if e.is::<Degraded>() => ExitCode::from(EXIT_DEGRADED),
        Err(e) => {
            // Messages that already name fw ("fw is not loaded ...") get
            // no second "fw: " in front.
            let msg = format!("{e:#}");
            if msg.starts_with("fw ") {
                note(format_args!("{msg}"));
            } else {
                note(format_args!("fw: {msg}"));
            }
            ExitCode::FAILURE
        }
    }
}

impl Cmd {
    /// `--wait` of a command that takes fw's lock.
    fn wait(&self) -> Option<u64> {
        match self {
            Cmd::Up { wait, .. }
            | Cmd::Down { wait, .. }
            | Cmd::Allow { wait, .. }
            | Cmd::Deny { wait, .. }
            | Cmd::Save { wait, .. }
            | Cmd::Block { wait, .. }
            | Cmd::Unblock { wait, .. }
            | Cmd::Limit { wait, .. }
            | Cmd::Unlimit { wait, .. }
            | Cmd::Apply { wait, .. } => Some(wait.secs),
            Cmd::Conntrack { wait, .. } => *wait,
            _ => None,
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let pins = PinDir::new(&cli.pin_dir);
    if let Some(w) = cli.cmd.wait() {
        fw_user::ops::lock::set_wait(std::time::Duration::from_secs(w));
    }
    match cli.cmd {
        Cmd::Up {
            ifaces,
            config,
            mode,
            egress,
            dry_run,
            foreground,
            force,
            ..
        } => {
            let hooks = up_down::Hooks {
                xdp: mode.into(),
                egress: egress.into(),
            };
            require_root("fw up")?;
            let source = config.as_deref().map(Source::read).transpose()?;
            let record = source.as_ref().and_then(Source::record);
            if let (Some(path), None) = (&config, &record) {
                note(format_args!("fw: note: {}", unrecorded_note(path)));
            }
            let mut cfg = source.map(|s| s.config);
            if dry_run {
                cfg.get_or_insert_with(Config::default).dry_run = true;
            }
            let given = cfg.as_ref().map(|config| up_down::Given {
                config,
                file: record.as_ref(),
                force,
            });
            let print_up = |r: &up_down::UpReport| -> anyhow::Result<()> {
                for n in &r.repaired {
                    outln!("repaired: {n}");
                }
                for a in &r.attached {
                    outln!("fw up on {} (xdp {}, egress {})", a.name, a.xdp, a.egress);
                }
                outln!("{} existing flow(s) seeded into conntrack", r.seeded);
                for w in &r.warnings {
                    eprintln!("fw: warning: {w}");
                }
                Ok(())
            };
            if foreground {
                let stop = Shutdown::on_signals()?;
                foreground::init_tracing();
                // Staying attached matters more than being heard: a closed
                // stdout does not end a foreground fw.
                let d = foreground::run(&pins, &ifaces, hooks, given, &stop, |r| {
                    let _ = print_up(r);
                })?;
                for n in &d.detached {
                    outln!("fw down on {n}");
                }
                if d.unloaded {
                    outln!("fw unloaded; pins under {} removed", pins.root().display());
                }
            } else {
                print_up(&up_down::up(&pins, &ifaces, hooks, given)?)?;
            }
        }
        Cmd::Log {
            json,
            count,
            timeout,
            backlog,
        } => {
            let timeout = timeout.map(|t| seconds("--timeout", t)).transpose()?;
            let maps = FwMaps::open(&pins)?;
            let opts = log::LogOptions {
                json,
                count,
                timeout,
                backlog,
            };
            let mut follow = log::Log::open(&maps, &opts)?;
            note(format_args!(
                "fw log: following events under {} (Ctrl-C stops)",
                pins.root().display()
            ));
            follow.follow(
                &Shutdown::on_signals()?,
                &mut std::io::stdout().lock(),
                &mut |n| note(format_args!("fw log: {n}")),
            )?;
        }
        // Reading the maps comes first: a user who may not read them is
        // told that before anything about the terminal.
        Cmd::Top => top::run(&FwMaps::open(&pins)?, &Shutdown::on_signals()?)?,
        Cmd::Exporter { listen } => {
            exporter::serve(&pins, listen, &Shutdown::on_signals()?, |addr| {
                note(format_args!(
                    "fw exporter: serving http://{addr}/metrics (Ctrl-C stops)"
                ))
            })?;
        }
        Cmd::Down { ifaces, .. } => {
            require_root("fw down")?;
            if let Some(w) = persist::unload_warning_for(&pins, &ifaces) {
                note(format_args!("fw: {w}"));
            }
            let r = up_down::down(&pins, &ifaces)?;
            for note in &r.repaired {
                outln!("repaired: {note}");
            }
            for n in &r.detached {
                outln!("fw down on {n}");
            }
            if r.unloaded {
                outln!("fw unloaded; pins under {} removed", pins.root().display());
            } else if !r.was_loaded {
                outln!("fw is not loaded; nothing to do");
            }
        }
        Cmd::Status { json, verbose } => {
            let st = if verbose {
                Status::collect_verbose(&pins)?
            } else {
                Status::collect(&pins)?
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                out!("{}", st.render());
            }
            if st.health == Health::Degraded {
                return Err(Degraded.into());
            }
        }
        Cmd::Stats { json, watch } => {
            let maps = FwMaps::open(&pins)?;
            match watch {
                None => {
                    let s = Stats::collect(&maps)?;
                    if json {
                        outln!("{}", serde_json::to_string_pretty(&s)?);
                    } else {
                        out!("{}", s.render(None));
                    }
                }
                Some(secs) => stats::watch(
                    &maps,
                    watch_interval(secs)?,
                    json,
                    &Shutdown::on_signals()?,
                    &mut std::io::stdout().lock(),
                    std::io::IsTerminal::is_terminal(&std::io::stdout()),
                    &mut |n| note(format_args!("fw stats: {n}")),
                )?,
            }
        }
        Cmd::Allow {
            proto,
            ports,
            from,
            runtime,
            ..
        } => {
            require_root("fw allow")?;
            let ports = proto.ranges_of(&ports)?;
            let nets = from
                .iter()
                .map(|s| parse_prefix(s))
                .collect::<Result<Vec<_>, _>>()?;
            let c = control::allow(&pins, proto, &ports, &nets, save_mode(runtime))?;
            out!("{}", c.render(true));
            saved_note(&c.saved, c.changed())?;
            pending_note(&pins, c.changed());
        }
        Cmd::Deny {
            proto,
            ports,
            from,
            force,
            runtime,
            ..
        } => {
            require_root("fw deny")?;
            let ports = proto.ranges_of(&ports)?;
            let nets = from
                .iter()
                .map(|s| parse_prefix(s))
                .collect::<Result<Vec<_>, _>>()?;
            let c = control::deny(&pins, proto, &ports, &nets, force, save_mode(runtime))?;
            out!("{}", c.render(false));
            saved_note(&c.saved, c.changed())?;
            pending_note(&pins, c.changed());
        }
        Cmd::Save { file: None, .. } => out!("{}", persist::saved_text(&FwMaps::open(&pins)?)?),
        Cmd::Save {
            file: Some(file), ..
        } => {
            let r = persist::save_to(&pins, &file)?;
            let how = if r.unchanged {
                "already holds the running policy; left as it was"
            } else if r.edited {
                "now holds the running policy (edited in place, comments kept)"
            } else {
                "now holds the running policy"
            };
            outln!("{} {how}", file.display());
            if r.recorded {
                outln!("later `fw allow`/`fw deny` are written to it too");
            }
        }
        Cmd::Apply {
            file,
            confirm,
            force,
            ..
        } => {
            let plan = apply::plan(&pins, &file, force, confirm)?;
            for n in &plan.notes {
                note(format_args!("fw: note: {n}"));
            }
            // A closed stdout must not stop the apply (nor its rollback):
            // its error comes last.
            let shown = emit(format_args!("{}", plan.summary()));
            match confirm {
                None => {
                    apply::apply(&pins, &plan)?;
                    pending_note(&pins, 1);
                    shown?;
                    outln!("applied {}", file.display());
                }
                Some(secs) => {
                    apply::apply_with_confirm(&pins, &plan, secs, &mut std::io::stdout())?;
                    shown?;
                }
            }
        }
        Cmd::Check { file, force } => {
            let c = apply::check(&pins, &file, force)?;
            for n in &c.notes {
                note(format_args!("fw: note: {n}"));
            }
            outln!("{}: ok", file.display());
            if let Some(summary) = &c.summary {
                outln!("`fw apply {}` would change:", file.display());
                for l in summary.lines() {
                    outln!("  {l}");
                }
            }
        }
        Cmd::Confirm => {
            let r = apply::confirm(&pins)?;
            if r.waiter_gone {
                outln!(
                    "confirmed; note: the waiting `fw apply` (pid {}) had died, its config was live and stays",
                    r.pid
                );
            } else {
                outln!(
                    "confirmed: the config applied by `fw apply` (pid {}) stays",
                    r.pid
                );
            }
        }
        Cmd::Completions { shell } => {
            // Into a buffer first: generate() panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "fw", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
        }
        Cmd::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .section("8")
                .render(&mut page)?;
            out!("{}", String::from_utf8_lossy(&page));
        }
        Cmd::Conntrack {
            json,
            proto,
            port,
            src,
            flush,
            force,
            ..
        } => {
            if flush {
                require_root("fw conntrack --flush")?;
            }
            let filter = kernel_ct::Filter {
                proto: proto.map(CtProto::name),
                port,
                src: src.as_deref().map(parse_prefix).transpose()?,
            };
            let maps = FwMaps::open(&pins)?;
            if flush {
                let r = ops_ct::flush(&maps, &filter, force)?;
                for k in &r.kept {
                    note(format_args!(
                        "fw: kept {} {}: {}; --force deletes it too",
                        k.flow.proto,
                        conntrack::flow_text(&k.flow),
                        k.why
                    ));
                }
                if json {
                    outln!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    outln!("deleted {} flow(s)", r.deleted);
                }
                return Ok(());
            }
            let rows: Vec<_> = kernel_ct::list(&maps)?
                .into_iter()
                .filter(|r| filter.matches(r))
                .collect();
            if json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                out!("{}", conntrack::render(&rows));
            }
        }
        Cmd::Block {
            prefixes,
            duration,
            set,
            file,
            force,
            runtime,
            wait: _,
        } => {
            require_root("fw block")?;
            let r = match file {
                Some(file) => {
                    let Some(set) = set else {
                        anyhow::bail!(
                            "fw block --file needs --set NAME: the set the file's prefixes replace"
                        );
                    };
                    blocklist::check_set_name(&set)?;
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        anyhow::anyhow!("reading the set file {}: {e}", file.display())
                    })?;
                    let nets = blocklist::parse_set_file(&text, &file)?;
                    block::replace_set(&pins, &set, &nets, force, &file, save_mode(runtime))?
                }
                None => {
                    let nets = prefixes
                        .iter()
                        .map(|s| parse_prefix(s))
                        .collect::<Result<Vec<_>, _>>()?;
                    let until = duration
                        .as_deref()
                        .map(blocklist::parse_duration)
                        .transpose()?;
                    let set = set.as_deref().unwrap_or(DEFAULT_SET);
                    block::block(&pins, &nets, set, until, force, save_mode(runtime))?
                }
            };
            out!("{}", r.render());
            if let Some(s) = &r.saved {
                saved_note(s, r.changed())?;
            }
        }
        Cmd::Unblock {
            prefixes,
            set,
            all,
            runtime,
            wait: _,
        } => {
            require_root("fw unblock")?;
            let r = match (all, set.as_deref()) {
                (true, Some(set)) => block::unblock_all(&pins, set, save_mode(runtime))?,
                _ => {
                    let nets = prefixes
                        .iter()
                        .map(|s| parse_prefix(s))
                        .collect::<Result<Vec<_>, _>>()?;
                    block::unblock(&pins, &nets, set.as_deref(), save_mode(runtime))?
                }
            };
            out!("{}", r.render());
            if let Some(s) = &r.saved {
                saved_note(s, r.changed())?;
            }
        }
        Cmd::Limit {
            proto,
            port,
            rate,
            per,
            per6,
            runtime,
            wait: _,
        } => {
            require_root("fw limit")?;
            let ports: PortRange = port.parse()?;
            let rate: limit::Rate = rate.parse()?;
            let l = limit::Limit::new(proto, ports, rate, per, per6)?;
            let r = ops_limit::limit(&pins, l, save_mode(runtime))?;
            out!("{}", r.render());
            saved_note(&r.saved, usize::from(!r.unchanged))?;
        }
        Cmd::Unlimit {
            proto,
            port,
            runtime,
            wait: _,
        } => {
            require_root("fw unlimit")?;
            let ports: PortRange = port.parse()?;
            let r = ops_limit::unlimit(&pins, proto, ports, save_mode(runtime))?;
            out!("{}", r.render());
            saved_note(&r.saved, 1)?;
        }
        Cmd::Blocks { json, set } => {
            let rows = blocks::list(&FwMaps::open(&pins)?, set.as_deref())?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                out!("{}", blocks::render(&rows));
            }
        }
        Cmd::Ports { json } => {
            let p = FwMaps::open(&pins)?.policy()?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&control::ports_json(&p))?
                );
            } else {
                out!("{}", control::render_ports(&p));
            }
        }
    }
    Ok(())
}

fn save_mode(runtime: bool) -> Save {
    if runtime {
        Save::Runtime
    } else {
        Save::WriteBack
    }
}

/// Says where a change went: stdout when saved, stderr when it was not
/// (when it changed anything).
fn saved_note(saved: &Saved, changed: usize) -> anyhow::Result<()> {
    if let Some(l) = saved.line() {
        outln!("{l}");
    }
    if let Some(w) = saved.warning().filter(|_| changed > 0) {
        note(format_args!("fw: {w}"));
    }
    Ok(())
}

/// Warns when a pending `fw apply --confirm` would undo a change on rollback.
fn pending_note(pins: &PinDir, changed: usize) {
    if changed > 0 {
        if let Some(w) = apply::pending_warning(pins) {
            note(format_args!("fw: {w}"));
        }
    }
}

/// The `fw stats --watch` period (0.1 s to an hour).
fn watch_interval(secs: f64) -> anyhow::Result<std::time::Duration> {
    if !(0.1..=3600.0).contains(&secs) {
        anyhow::bail!("--watch {secs}: the interval must be 0.1-3600 seconds");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// A `--timeout`-style number of seconds (0.1 s to a day).
fn seconds(option: &str, secs: f64) -> anyhow::Result<std::time::Duration> {
    if !(0.1..=86400.0).contains(&secs) {
        anyhow::bail!("{option} {secs}: give 0.1 to 86400 seconds");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}
