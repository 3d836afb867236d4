//! The `fw` command line: parses arguments and calls fw-user's library.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fw_user::{
    config::Config,
    control,
    loader::{self, Mode},
    maps::FwMaps,
    pins::{PinDir, DEFAULT_PIN_DIR},
    policy::{parse_prefix, PortRange, Proto},
    stats::Stats,
    status::Status,
};

/// fw: a host firewall in XDP. Loopback open, established/related open,
/// chosen ports open, everything else rejected with an ICMP error.
#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Where fw pins its programs, links and maps (on bpffs).
    #[arg(long, global = true, env = "FW_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load fw and attach it to interfaces (ingress XDP + egress TC), then exit.
    Up {
        /// Interfaces to filter (not lo). May come from the config instead.
        ifaces: Vec<String>,
        /// TOML config (default: the seed policy, TCP 22/80 and UDP 80 open).
        #[arg(long)]
        config: Option<PathBuf>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        /// Count what would be rejected, but let it pass.
        #[arg(long)]
        dry_run: bool,
    },
    /// Detach from interfaces (all when none named); unload when none is left.
    Down { ifaces: Vec<String> },
    /// Show where fw is attached and how.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Counters per reason, per open port and per interface.
    Stats {
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds (default 1) with rates, until Ctrl-C.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
    },
    /// Open ports (e.g. `fw allow tcp 443 8000-8080`); takes effect at once.
    Allow {
        proto: Proto,
        #[arg(required = true, value_name = "PORT|LO-HI")]
        ports: Vec<PortRange>,
        /// Only for these sources (CIDR, v4 or v6); repeatable.
        #[arg(long, value_name = "CIDR")]
        from: Vec<String>,
    },
    /// Close ports; established flows on them continue.
    Deny {
        proto: Proto,
        #[arg(required = true, value_name = "PORT|LO-HI")]
        ports: Vec<PortRange>,
    },
    /// List the open ports.
    Ports {
        #[arg(long)]
        json: bool,
    },
    /// List tracked flows (state, age, time left).
    Conntrack {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let pins = PinDir::new(&cli.pin_dir);
    match cli.cmd {
        Cmd::Up {
            ifaces,
            config,
            mode,
            dry_run,
        } => {
            let mut cfg = match &config {
                Some(path) => Some(Config::load(path)?),
                None => None,
            };
            if dry_run {
                cfg.get_or_insert_with(Config::default).dry_run = true;
            }
            let r = loader::up(&pins, &ifaces, mode, cfg.as_ref())?;
            for (name, mode) in &r.attached {
                println!("fw up on {name} (xdp {mode}, egress tcx)");
            }
            println!("{} existing flow(s) seeded into conntrack", r.seeded);
        }
        Cmd::Down { ifaces } => {
            let r = loader::down(&pins, &ifaces)?;
            for n in &r.detached {
                println!("fw down on {n}");
            }
            if r.unloaded {
                println!("fw unloaded; pins under {} removed", pins.root().display());
            } else if !r.was_loaded {
                println!("fw is not loaded; nothing to do");
            }
        }
        Cmd::Status { json } => {
            let st = Status::collect(&pins)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", st.render());
            }
        }
        Cmd::Stats { json, watch } => {
            let maps = FwMaps::open(&pins)?;
            match watch {
                None => {
                    let s = Stats::collect(&maps)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&s)?);
                    } else {
                        print!("{}", s.render(None));
                    }
                }
                Some(secs) => watch_stats(&maps, secs, json)?,
            }
        }
        Cmd::Allow { proto, ports, from } => {
            let nets = from.iter().map(|s| parse_prefix(s)).collect::<Result<Vec<_>, _>>()?;
            let c = control::allow(&pins, proto, &ports, &nets)?;
            println!("{} port(s) changed", c.changed);
            print!("{}", control::render_ports(&c.policy));
        }
        Cmd::Deny { proto, ports } => {
            let c = control::deny(&pins, proto, &ports)?;
            println!("{} port(s) changed", c.changed);
            print!("{}", control::render_ports(&c.policy));
        }
        Cmd::Conntrack { json } => {
            let rows = fw_user::conntrack::list(&FwMaps::open(&pins)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", fw_user::conntrack::render(&rows));
            }
        }
        Cmd::Ports { json } => {
            let p = FwMaps::open(&pins)?.policy()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&control::ports_json(&p))?);
            } else {
                print!("{}", control::render_ports(&p));
            }
        }
    }
    Ok(())
}

fn watch_stats(maps: &FwMaps, secs: f64, json: bool) -> anyhow::Result<()> {
    if !(0.1..=3600.0).contains(&secs) {
        anyhow::bail!("--watch {secs}: the interval must be 0.1-3600 seconds");
    }
    let period = std::time::Duration::from_secs_f64(secs);
    let mut prev = Stats::collect(maps)?;
    let mut prev_t = std::time::Instant::now();
    loop {
        std::thread::sleep(period);
        let now = Stats::collect(maps).context("reading counters")?;
        let dt = prev_t.elapsed().as_secs_f64();
        let rates = now.rates(&prev, dt);
        if json {
            let v = serde_json::json!({"stats": now, "rates": rates.iter().map(|(k, (p, b))| (k.to_string(), serde_json::json!({"packets_per_sec": p, "bytes_per_sec": b}))).collect::<serde_json::Map<_, _>>()});
            println!("{v}");
        } else {
            // Clear the screen and home the cursor, like watch(1).
            print!("\x1b[2J\x1b[H{}", now.render(Some(&rates)));
        }
        prev = now;
        prev_t = std::time::Instant::now();
    }
}
