//! `fw status`: where fw is attached, how, and what it runs, and whether
//! anything is wrong: every half state (a link pin removed, a hook detached
//! by someone else, a program pin gone, an interface gone, leftovers of an
//! interrupted command) makes fw "degraded", named in the headline and in
//! `problems`, so a status never says "up" over a hole in the filter.
use std::fmt::Write as _;

use fw_common::{PROG_EGRESS, PROG_INGRESS};
use serde::Serialize;

use crate::{
    error::Result,
    kernel::{
        egress, hooks, iface,
        load::program_id,
        maps::{CtTable, FwMaps},
        pins::PinDir,
        rundir, running,
        xdp::mode_name,
    },
    model::{
        names::name_from_bytes,
        policy::{Proto, RejectWith, SyncookieMode},
        record::FileState,
    },
};

#[derive(Debug, Serialize)]
pub struct IfaceStatus {
    pub name: String,
    pub ifindex: u32,
    pub mode: &'static str,
    pub egress: &'static str,
    /// The interface vanished while fw was attached.
    pub present: bool,
    /// Both link pins are there (false: a `fw down` was interrupted).
    pub attached: bool,
}

/// fw's health in one word (`fw status --json`'s `health`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Loaded, every interface filtered both ways, nothing half-done.
    Ok,
    /// Loaded (or leftovers are), but something in `problems` is wrong.
    Degraded,
    /// Nothing of fw here.
    NotLoaded,
}

/// One thing wrong with fw (`fw status --json`'s `problems`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The interface it concerns, if any.
    pub interface: Option<String>,
    /// Stable name: `ingress_link_missing`, `ingress_detached`,
    /// `egress_link_missing`, `egress_detached`, `interface_gone`,
    /// `program_pin_missing`, `stray_link`, `interrupted_apply`, `leftovers`.
    pub problem: &'static str,
    /// What it means and what to do, in words.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub health: Health,
    pub problems: Vec<Problem>,
    pub loaded: bool,
    pub pin_dir: String,
    pub interfaces: Vec<IfaceStatus>,
    pub ingress_prog_id: Option<u32>,
    pub egress_prog_id: Option<u32>,
    pub loaded_at: Option<u64>,
    pub reject_with: Option<&'static str>,
    pub reject_rate: Option<u64>,
    pub dry_run: bool,
    /// `[syncookies] mode` (`auto`, `always`, `off`).
    pub syncookies: Option<&'static str>,
    /// `net.ipv4.tcp_syncookies` of this namespace, which decides when the
    /// kernel hands out cookies (2: for every SYN).
    pub tcp_syncookies: Option<u32>,
    /// The confirmed table (`[conntrack] entries`): its size, live
    /// entries, and entries its LRU evicted so far (only ever when more
    /// confirmed flows are live than it holds).
    pub conntrack_max_entries: Option<u32>,
    pub conntrack_entries: Option<usize>,
    /// Kernel memory of both tables.
    pub conntrack_memory_bytes: Option<u64>,
    pub conntrack_evicted: Option<u64>,
    /// The unconfirmed table (`[conntrack] unconfirmed_entries`): a SYN or
    /// a first datagram nobody answered yet; a flood evicts only here.
    pub conntrack_unconfirmed_max_entries: Option<u32>,
    pub conntrack_unconfirmed_entries: Option<usize>,
    pub conntrack_unconfirmed_evicted: Option<u64>,
    /// Flows moved from the unconfirmed table to the confirmed one.
    pub conntrack_promoted: Option<u64>,
    /// Entries of the source-prefix map (ALLOW_SRC) in use, and its size
    /// (`[capacity] source_prefixes`).
    pub source_prefixes_used: Option<usize>,
    pub source_prefixes_max: Option<u32>,
    /// Distinct source lists (sets) the restricted ports use.
    pub source_sets: Option<usize>,
    /// The blocklists: sets and their sizes, entries, room, memory.
    pub blocklist: Option<crate::watch::blocks::Summary>,
    /// The per-source limits (`fw limit`), with the source prefixes each
    /// holds state for.
    pub limits: Option<Vec<LimitStatus>>,
    /// New flows rejected by a limit (reason `limited`), all limits.
    pub limited: Option<u64>,
    /// Size of each limit's state map (`[capacity] limit_sources`).
    pub limit_sources_max: Option<u32>,
    /// Pins without fw's META map: leftovers of an interrupted `fw up`/`fw down`.
    pub leftovers: bool,
    /// Link pins of interfaces fw does not list (an interrupted `fw up`).
    pub stray_links: Vec<String>,
    /// An `fw apply` that was killed halfway, in words.
    pub interrupted_apply: Option<String>,
    /// The config file fw runs and whether the running policy matches it.
    pub config: Option<FileState>,
    /// The rules with their counters (`fw status --verbose` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
}

/// One per-source limit as it runs.
#[derive(Clone, Debug, Serialize)]
pub struct LimitStatus {
    pub proto: Proto,
    pub ports: String,
    pub lo: u16,
    pub hi: u16,
    /// `N/WINDOW`, e.g. `6/30s`.
    pub rate: String,
    pub per: u8,
    pub per6: u8,
    /// Source prefixes it holds counts for now.
    pub sources: usize,
}

/// The whole policy as rules with counters, like `ufw status verbose` or
/// `iptables -L -v -n`: what passes always, every open port range with its
/// sources, and the default for the rest. JSON (in `fw status --verbose
/// --json`, key `rules`):
///
/// ```json
/// {"default": {"reject_with": "host-unreachable", "rate": 1000, "burst": 1000,
///   "dry_run": false, "rejected": 5, "reject_ratelimited": 0, "reject_silent": 0},
///  "always": ["lo", "established", "related", "ndp", "dhcp"],
///  "ports": [{"proto": "tcp", "ports": "22", "lo": 22, "hi": 22, "new_flows": 3,
///    "live_flows": 1}, {..., "from": ["198.51.100.0/24"]}]}
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Rules {
    pub default: DefaultRule,
    /// What passes before any port rule (lo is never filtered at all).
    pub always: Vec<&'static str>,
    pub ports: Vec<PortRule>,
}

/// The last rule: what is done with a new flow no port rule admits.
#[derive(Clone, Debug, Serialize)]
pub struct DefaultRule {
    pub reject_with: &'static str,
    pub rate: u64,
    pub burst: u64,
    pub dry_run: bool,
    /// Packets answered (ICMP error or RST), over the rate (dropped), and
    /// dropped where no answer is allowed; `would_reject` in a dry run.
    pub rejected: u64,
    pub reject_ratelimited: u64,
    pub reject_silent: u64,
    pub would_reject: u64,
}

/// One open port range of the running policy, as `fw ports` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct PortRule {
    pub proto: Proto,
    pub ports: String,
    pub lo: u16,
    pub hi: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
    /// Packets that opened a flow here (what `iptables -L -v` counts on a
    /// port's ACCEPT rule behind the ESTABLISHED one).
    pub new_flows: u64,
    /// Inbound flows to these ports in conntrack now (not expired).
    pub live_flows: usize,
}

impl Rules {
    pub fn collect(maps: &FwMaps) -> Result<Rules> {
        let stats = crate::watch::stats::Stats::collect(maps)?;
        let cfg = maps.config()?;
        let meta = maps.meta()?;
        let flows = crate::kernel::conntrack::list(maps)?;
        let count = |r: fw_common::Reason| stats.reasons.get(r.name()).map_or(0, |c| c.packets);
        let mut always = vec!["lo", "established", "related", "ndp"];
        if cfg.flags & fw_common::CFG_DHCP_CLIENT != 0 {
            always.push("dhcp");
        }
        let ports = stats
            .ports
            .iter()
            .map(|p| PortRule {
                proto: p.proto,
                ports: p.proto.range_text(p.range),
                lo: p.range.lo,
                hi: p.range.hi,
                from: p
                    .from
                    .as_ref()
                    .map(|f| f.iter().map(|n| n.to_string()).collect()),
                new_flows: p.packets,
                live_flows: flows
                    .iter()
                    .filter(|f| {
                        f.origin != "outbound"
                            && match p.proto {
                                // Peers' pings, v4 and v6.
                                Proto::Icmp => matches!(f.proto, "icmp" | "icmpv6"),
                                _ => {
                                    f.proto == p.proto.name()
                                        && (p.range.lo..=p.range.hi).contains(&f.local_port)
                                }
                            }
                    })
                    .count(),
            })
            .collect();
        use fw_common::Reason as R;
        Ok(Rules {
            default: DefaultRule {
                reject_with: RejectWith::from_kind(fw_common::RejectKind::from_u32(
                    cfg.reject_kind,
                ))
                .name(),
                rate: meta.reject_rate,
                burst: meta.reject_burst,
                dry_run: cfg.flags & fw_common::CFG_DRY_RUN != 0,
                rejected: count(R::Reject),
                reject_ratelimited: count(R::RejectRatelimited),
                reject_silent: count(R::RejectSilent),
                would_reject: count(R::WouldReject),
            },
            always,
            ports,
        })
    }

    /// The table `fw status --verbose` prints under the status.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let d = &self.default;
        let _ = writeln!(
            out,
            "\ndefault: reject new inbound flows with {}, at most {}/s (burst {}){}",
            d.reject_with,
            d.rate,
            d.burst,
            if d.dry_run {
                " (dry run: passed and counted instead)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "         {} answered, {} over the rate, {} dropped unanswerable{}",
            d.rejected,
            d.reject_ratelimited,
            d.reject_silent,
            if d.dry_run || d.would_reject > 0 {
                format!(", {} would-be rejects passed", d.would_reject)
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "always passed: {}", self.always.join(", "));
        let _ = writeln!(
            out,
            "\n{:<6} {:>11} {:>10} {:>10}  from",
            "proto", "ports", "new flows", "live flows"
        );
        for p in &self.ports {
            let from = p
                .from
                .as_ref()
                .map_or("anywhere".to_string(), |f| f.join(" "));
            let _ = writeln!(
                out,
                "{:<6} {:>11} {:>10} {:>10}  {from}",
                p.proto.name(),
                p.ports,
                p.new_flows,
                p.live_flows
            );
        }
        if self.ports.is_empty() {
            let _ = writeln!(out, "(no port is open)");
        }
        out
    }
}

impl Status {
    pub fn collect(pins: &PinDir) -> Result<Status> {
        let mut st = Status {
            health: Health::NotLoaded,
            problems: Vec::new(),
            loaded: false,
            pin_dir: pins.root().display().to_string(),
            interfaces: Vec::new(),
            ingress_prog_id: None,
            egress_prog_id: None,
            loaded_at: None,
            reject_with: None,
            reject_rate: None,
            dry_run: false,
            syncookies: None,
            tcp_syncookies: None,
            conntrack_max_entries: None,
            conntrack_entries: None,
            conntrack_memory_bytes: None,
            conntrack_evicted: None,
            conntrack_unconfirmed_max_entries: None,
            conntrack_unconfirmed_entries: None,
            conntrack_unconfirmed_evicted: None,
            conntrack_promoted: None,
            source_prefixes_used: None,
            source_prefixes_max: None,
            source_sets: None,
            blocklist: None,
            limits: None,
            limited: None,
            limit_sources_max: None,
            leftovers: false,
            stray_links: Vec::new(),
            interrupted_apply: None,
            config: None,
            rules: None,
        };
        pins.check_readable()?;
        if !pins.is_loaded() {
            st.leftovers = pins.has_anything();
            if st.leftovers {
                st.problems.push(Problem {
                    interface: None,
                    problem: "leftovers",
                    detail: format!(
                        "{} holds leftovers of an interrupted `fw up` or `fw down` (pins without \
                         fw's META map; links among them may still be attached): `fw down` removes them",
                        st.pin_dir
                    ),
                });
                st.health = Health::Degraded;
            }
            return Ok(st);
        }
        let maps = FwMaps::open(pins)?;
        let meta = maps.meta()?;
        let cfg = maps.config()?;
        st.loaded = true;
        st.loaded_at = Some(meta.loaded_at);
        st.reject_with =
            Some(RejectWith::from_kind(fw_common::RejectKind::from_u32(cfg.reject_kind)).name());
        st.reject_rate = Some(meta.reject_rate);
        st.dry_run = cfg.flags & fw_common::CFG_DRY_RUN != 0;
        st.syncookies = Some(SyncookieMode::from_kernel(cfg.syncookie_mode).name());
        st.tcp_syncookies = crate::kernel::sys::tcp_syncookies();
        st.conntrack_max_entries = Some(meta.ct_entries);
        st.conntrack_unconfirmed_max_entries = Some(meta.ct_unconfirmed_entries);
        let live = |t| crate::kernel::conntrack::table_entries(&maps, t).map(|r| r.len());
        st.conntrack_entries = Some(live(CtTable::Confirmed)?);
        st.conntrack_unconfirmed_entries = Some(live(CtTable::Unconfirmed)?);
        st.conntrack_memory_bytes = maps.conntrack_memlock()?;
        st.conntrack_evicted = Some(maps.conntrack_census(CtTable::Confirmed)?.1);
        st.conntrack_unconfirmed_evicted = Some(maps.conntrack_census(CtTable::Unconfirmed)?.1);
        st.conntrack_promoted = Some(maps.conntrack_stat(fw_common::CT_STAT_PROMOTED)?);
        let layout = maps.source_layout()?;
        st.source_prefixes_used = Some(layout.keys);
        st.source_prefixes_max = Some(layout.max_entries);
        st.source_sets = Some(layout.sets_in_use());
        st.blocklist = Some(crate::watch::blocks::summary(&maps)?);
        let mut limits = Vec::new();
        for (slot, l) in maps.limits()? {
            limits.push(LimitStatus {
                proto: l.proto,
                ports: l.proto.range_text(l.ports),
                lo: l.ports.lo,
                hi: l.ports.hi,
                rate: l.rate.to_string(),
                per: l.per4,
                per6: l.per6,
                sources: maps.limit_states(slot)?.len(),
            });
        }
        st.limits = Some(limits);
        st.limit_sources_max = Some(maps.limit_capacity()?);
        st.limited = Some(
            maps.counters()?
                .iter()
                .map(|c| c[fw_common::Reason::Limited as usize].packets)
                .sum(),
        );
        st.ingress_prog_id = program_id(pins, PROG_INGRESS).ok();
        st.egress_prog_id = program_id(pins, PROG_EGRESS).ok();
        for (name, id) in [
            (PROG_INGRESS, st.ingress_prog_id),
            (PROG_EGRESS, st.egress_prog_id),
        ] {
            if id.is_none() {
                st.problems.push(Problem {
                    interface: None,
                    problem: "program_pin_missing",
                    detail: format!(
                        "the pin of program {name} is gone: what is attached keeps running, but \
                         fw cannot attach to more interfaces; `fw down` then `fw up` reloads it"
                    ),
                });
            }
        }
        st.interrupted_apply = rundir::interrupted(pins).map(|i| i.to_string());
        if let Some(i) = &st.interrupted_apply {
            st.problems.push(Problem {
                interface: None,
                problem: "interrupted_apply",
                detail: i.clone(),
            });
        }
        st.config = Some(running::file_state(&maps)?);
        st.stray_links = hooks::half_state(pins, &meta)
            .stray_links
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        for l in &st.stray_links {
            st.problems.push(Problem {
                interface: None,
                problem: "stray_link",
                detail: format!(
                    "stray link {l}: attached by an interrupted `fw up` but not recorded; \
                     the next `fw up` or `fw down` detaches it"
                ),
            });
        }
        for m in meta.ifaces.iter().filter(|m| m.slot != 0) {
            let name = name_from_bytes(&m.name);
            let present = iface::exists(m.ifindex);
            st.interfaces.push(IfaceStatus {
                name: name.clone(),
                ifindex: m.ifindex,
                mode: mode_name(m.xdp_mode),
                egress: egress::mode_name(m.tc_mode),
                present,
                attached: hooks::attached(pins, m),
            });
            st.problems.extend(iface_problems(pins, m, &name, present));
        }
        st.health = if st.problems.is_empty() {
            Health::Ok
        } else {
            Health::Degraded
        };
        Ok(st)
    }

    /// [`Status::collect`] plus the rules with their counters.
    pub fn collect_verbose(pins: &PinDir) -> Result<Status> {
        let mut st = Status::collect(pins)?;
        if st.loaded {
            st.rules = Some(Rules::collect(&FwMaps::open(pins)?)?);
        }
        Ok(st)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.loaded {
            let _ = writeln!(out, "fw is not loaded (pin dir {})", self.pin_dir);
            for p in &self.problems {
                let _ = writeln!(out, "but {}", p.detail);
            }
            return out;
        }
        match self.problems.len() {
            0 => {
                let _ = writeln!(out, "fw is up (pin dir {})", self.pin_dir);
            }
            n => {
                let _ = writeln!(
                    out,
                    "fw is DEGRADED (pin dir {}): {n} problem{}",
                    self.pin_dir,
                    if n == 1 { "" } else { "s" }
                );
                for p in &self.problems {
                    match &p.interface {
                        Some(i) => {
                            let _ = writeln!(out, "  {i}: {}", p.detail);
                        }
                        None => {
                            let _ = writeln!(out, "  {}", p.detail);
                        }
                    }
                }
            }
        }
        let id = |i: Option<u32>| i.map_or("(pin missing)".to_string(), |i| i.to_string());
        let _ = writeln!(
            out,
            "programs: ingress id {}, egress id {}",
            id(self.ingress_prog_id),
            id(self.egress_prog_id)
        );
        let _ = writeln!(
            out,
            "reject: {} at most {}/s{}",
            self.reject_with.unwrap_or("?"),
            self.reject_rate.unwrap_or(0),
            if self.dry_run {
                " (dry run: nothing is rejected)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "syncookies: {} (net.ipv4.tcp_syncookies = {}){}",
            self.syncookies.unwrap_or("?"),
            self.tcp_syncookies
                .map_or("unreadable".to_string(), |v| v.to_string()),
            if self.syncookies == Some("always") && self.tcp_syncookies != Some(2) {
                ": \"always\" needs 2, cookies only while a listener is flooded"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "conntrack: {} confirmed of {} entries, {} evicted (table full); {} unconfirmed of {} \
             entries, {} evicted; {} promoted; {:.1} MiB of kernel memory",
            self.conntrack_entries.unwrap_or(0),
            self.conntrack_max_entries.unwrap_or(0),
            self.conntrack_evicted.unwrap_or(0),
            self.conntrack_unconfirmed_entries.unwrap_or(0),
            self.conntrack_unconfirmed_max_entries.unwrap_or(0),
            self.conntrack_unconfirmed_evicted.unwrap_or(0),
            self.conntrack_promoted.unwrap_or(0),
            self.conntrack_memory_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0)
        );
        if let Some(c) = &self.config {
            let _ = writeln!(out, "{}", c.render());
        }
        let _ = writeln!(
            out,
            "source prefixes: {} of {} entries in use ([capacity] source_prefixes), {} source set(s)",
            self.source_prefixes_used.unwrap_or(0),
            self.source_prefixes_max.unwrap_or(0),
            self.source_sets.unwrap_or(0)
        );
        if let Some(b) = &self.blocklist {
            let sets: Vec<String> = b
                .sets
                .iter()
                .map(|s| format!("{} ({} v4, {} v6)", s.name, s.v4, s.v6))
                .collect();
            let _ = writeln!(
                out,
                "blocklist: {} v4 + {} v6 of {} entries per family ([capacity] block_prefixes), \
                 {:.1} MiB of kernel memory; sets: {}",
                b.v4_entries,
                b.v6_entries,
                b.max_per_family,
                b.memory_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
                if sets.is_empty() {
                    "none".to_string()
                } else {
                    sets.join(", ")
                }
            );
        }
        if let Some(limits) = &self.limits {
            let shown: Vec<String> = limits
                .iter()
                .map(|l| {
                    format!(
                        "{} {} {} per /{} (IPv6 /{}), {} source(s)",
                        l.proto, l.ports, l.rate, l.per, l.per6, l.sources
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "limits: {}; {} new flow(s) limited; {} sources per limit ([capacity] limit_sources)",
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join("; ")
                },
                self.limited.unwrap_or(0),
                self.limit_sources_max.unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:<8} {:<6}",
            "interface", "ifindex", "xdp", "egress"
        );
        for i in &self.interfaces {
            let trouble = self
                .problems
                .iter()
                .any(|p| p.interface.as_deref() == Some(i.name.as_str()));
            let _ = writeln!(
                out,
                "{:<16} {:>7} {:<8} {:<6}{}",
                i.name,
                i.ifindex,
                i.mode,
                i.egress,
                if trouble {
                    "  (DEGRADED, see above)"
                } else {
                    ""
                }
            );
        }
        if let Some(r) = &self.rules {
            out.push_str(&r.render());
        }
        out
    }
}

/// What is wrong with interface `m` (named `name`), as the kernel sees it.
fn iface_problems(
    pins: &PinDir,
    m: &fw_common::IfaceMeta,
    name: &str,
    present: bool,
) -> Vec<Problem> {
    use crate::kernel::{
        hooks::{egress_state, ingress_state},
        link::HookState,
    };
    let problem = |problem, detail: String| Problem {
        interface: Some(name.to_string()),
        problem,
        detail,
    };
    if !present {
        return vec![problem(
            "interface_gone",
            format!(
                "the interface is gone (ifindex {}); one made again under this name is not \
                 filtered: run `fw down {name}` (then `fw up {name}` if it is back)",
                m.ifindex
            ),
        )];
    }
    let repair = format!("run `fw down {name}` then `fw up {name}`");
    let mut out = Vec::new();
    match ingress_state(pins, m) {
        HookState::Attached => {}
        HookState::PinMissing => out.push(problem(
            "ingress_link_missing",
            format!(
                "the XDP link pin {} is gone, which detached fw's ingress filter: traffic \
                 on {name} passes unfiltered; {repair}",
                pins.xdp_link(m.ifindex).display()
            ),
        )),
        HookState::Detached => out.push(problem(
            "ingress_detached",
            format!(
                "fw's XDP program no longer runs on {name} (its link was detached by \
                 someone else): traffic on {name} passes unfiltered; {repair}"
            ),
        )),
    }
    match egress_state(pins, m) {
        HookState::Attached => {}
        HookState::PinMissing => out.push(problem(
            "egress_link_missing",
            format!(
                "the egress link pin {} is gone, which detached fw's egress program: \
                 replies to flows the host starts on {name} are rejected; {repair}",
                pins.tc_link(m.ifindex).display()
            ),
        )),
        HookState::Detached => out.push(problem(
            "egress_detached",
            format!(
                "fw's egress program no longer runs on {name} (detached by someone else): \
                 replies to flows the host starts on {name} are rejected; {repair}"
            ),
        )),
    }
    out
}
