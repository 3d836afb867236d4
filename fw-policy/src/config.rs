//! The TOML config, validated into one struct. The default is the seed policy.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::{
    error::{Error, Result},
    limit::{Limit, Rate},
    policy::{parse_prefix, Policy, PortRange, Proto, RejectWith, SyncookieMode, ECHO},
};

/// Highest reject rate fw accepts (keeps the kernel's token math in range).
pub const MAX_RATE: u64 = 10_000_000;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub policy: Policy,
    pub reject_with: RejectWith,
    /// ICMP errors (or RSTs) per second, all CPUs together.
    pub reject_rate: u64,
    pub reject_burst: u64,
    /// Size of the confirmed conntrack table (`[conntrack] entries`).
    pub conntrack_entries: u32,
    /// Size of the unconfirmed conntrack table (`[conntrack]
    /// unconfirmed_entries`; without it a quarter of `entries`, at least
    /// 1024).
    pub conntrack_unconfirmed_entries: u32,
    /// Size of the source-prefix map (`[capacity] source_prefixes`).
    pub source_prefixes: u32,
    pub interfaces: Vec<String>,
    pub dry_run: bool,
    /// `[dhcp] client`: pass DHCPv4 server -> client replies (UDP 67 -> 68).
    pub dhcp_client: bool,
    /// `[block] with`: how packets from a blocked source are answered.
    pub block_with: RejectWith,
    /// Size of each blocklist trie, per family (`[capacity] block_prefixes`).
    pub block_prefixes: u32,
    /// `[[block.sets]]`: the block sets and their prefixes without end,
    /// sorted by name (timed bans are not part of the config).
    pub block_sets: Vec<BlockSet>,
    /// `[syncookies] mode`.
    pub syncookies: SyncookieMode,
    /// `[[limits]]`: per-source limits of new flows, sorted by protocol
    /// and port, no two on a common port.
    pub limits: Vec<Limit>,
    /// Size of each limit's state map (`[capacity] limit_sources`).
    pub limit_sources: u32,
}

/// One `[[block.sets]]` entry: a block set and the prefixes it holds
/// without end, written in the config (`prefixes = [...]`) or in a set
/// file the config names (`file = "..."`, one prefix a line, the formats
/// `fw block --file` reads), which scales to a million prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSet {
    pub name: String,
    /// The set file, as the config names it (relative: to the config's
    /// directory); `None`: the prefixes are in the config.
    pub file: Option<PathBuf>,
    /// The prefixes (of the set file, once [`Config::load_set_files`] read it).
    pub prefixes: BTreeSet<IpNet>,
}

impl BlockSet {
    /// The set file's path, relative ones taken from `config`'s directory.
    pub fn file_path(&self, config: &Path) -> Option<PathBuf> {
        let f = self.file.as_ref()?;
        Some(match config.parent() {
            Some(dir) if f.is_relative() => dir.join(f),
            _ => f.clone(),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::seed(),
            reject_with: RejectWith::HostUnreachable,
            reject_rate: 1000,
            reject_burst: 1000,
            conntrack_entries: fw_common::CT_DEFAULT_ENTRIES,
            conntrack_unconfirmed_entries: fw_common::ct_unconfirmed_default(
                fw_common::CT_DEFAULT_ENTRIES,
            ),
            source_prefixes: fw_common::SRC_DEFAULT_ENTRIES,
            interfaces: Vec::new(),
            dry_run: false,
            dhcp_client: true,
            block_with: RejectWith::Drop,
            block_prefixes: fw_common::BLOCK_DEFAULT_ENTRIES,
            block_sets: Vec::new(),
            syncookies: SyncookieMode::Auto,
            limits: Vec::new(),
            limit_sources: fw_common::LIMIT_DEFAULT_SOURCES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    dry_run: bool,
    ports: Option<Ports>,
    #[serde(default)]
    sources: Vec<Spanned<Source>>,
    reject: Option<Reject>,
    conntrack: Option<Conntrack>,
    dhcp: Option<Dhcp>,
    capacity: Option<Capacity>,
    block: Option<Block>,
    icmp: Option<Icmp>,
    syncookies: Option<Syncookies>,
    #[serde(default)]
    limits: Vec<Spanned<LimitSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Syncookies {
    mode: Option<SyncookieMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitSpec {
    proto: Spanned<String>,
    port: Spanned<PortSpec>,
    rate: Spanned<String>,
    per: Option<Spanned<i64>>,
    per6: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Icmp {
    /// Echo-request (v4 and v6) allowed.
    echo: Option<bool>,
    /// Only from these sources.
    echo_from: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ports {
    #[serde(default)]
    tcp: Vec<Spanned<PortSpec>>,
    #[serde(default)]
    udp: Vec<Spanned<PortSpec>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortSpec {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    proto: Spanned<String>,
    port: Spanned<PortSpec>,
    from: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reject {
    with: Option<RejectWith>,
    rate: Option<Spanned<u64>>,
    burst: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Conntrack {
    entries: Option<Spanned<u32>>,
    unconfirmed_entries: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dhcp {
    client: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Capacity {
    source_prefixes: Option<Spanned<u32>>,
    block_prefixes: Option<Spanned<u32>>,
    limit_sources: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    with: Option<RejectWith>,
    #[serde(default)]
    sets: Vec<Spanned<BlockSetSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSetSpec {
    name: Spanned<String>,
    prefixes: Option<Vec<Spanned<String>>>,
    file: Option<Spanned<String>>,
}

/// Bounds of `[capacity] source_prefixes`.
pub const SOURCE_PREFIXES: std::ops::RangeInclusive<u32> = 16..=4_194_304;
/// Bounds of `[capacity] block_prefixes` (per family).
pub const BLOCK_PREFIXES: std::ops::RangeInclusive<u32> = 16..=16_777_216;
/// Bounds of `[capacity] limit_sources` (per limit).
pub const LIMIT_SOURCES: std::ops::RangeInclusive<u32> = 1024..=1_048_576;

fn port_range(spec: &PortSpec) -> Result<PortRange> {
    match spec {
        PortSpec::Number(n) => {
            let s = n.to_string();
            if *n < 0 {
                return Err(Error::invalid("port", s, "ports are 1-65535"));
            }
            PortRange::new(*n as u32, *n as u32, &s)
        }
        PortSpec::Text(s) => s.parse(),
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// What `[ports]` missing means to fw: nothing (an empty or truncated file
/// must not quietly become the seed policy).
pub const NO_PORTS: &str = "the file has no [ports] table, so it does not say which ports to open \
     (an empty or truncated file?): add `[ports]` with the ports to open (the seed policy is \
     `tcp = [22, 80]` and `udp = [80]`); an empty `[ports]` opens none";

/// A limit as its `[[limits]]` table.
pub fn limit_table(l: &Limit) -> String {
    let port = if l.ports.lo == l.ports.hi {
        l.ports.lo.to_string()
    } else {
        format!("\"{}\"", l.ports)
    };
    format!(
        "[[limits]]\nproto = \"{}\"\nport = {port}\nrate = \"{}\"\nper = {}\nper6 = {}",
        l.proto, l.rate, l.per4, l.per6
    )
}

impl Config {
    /// Parses and validates TOML text; `origin` names it in errors. A
    /// value refused after parsing is named with its line, column and
    /// place in the file (`sources[1].from[0]`), as a syntax error is.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config> {
        let bad = |reason: String| Error::Config {
            path: origin.to_path_buf(),
            reason,
        };
        let at = |span: std::ops::Range<usize>, entry: String, e: Error| {
            let (line, column) = line_column(text, span.start);
            Error::ConfigAt {
                path: origin.to_path_buf(),
                line,
                column,
                entry,
                reason: e.to_string(),
            }
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let Some(ports) = &file.ports else {
            return Err(bad(NO_PORTS.into()));
        };
        let mut cfg = Config {
            policy: Policy::default(),
            ..Config::default()
        };
        for (proto, specs) in [(Proto::Tcp, &ports.tcp), (Proto::Udp, &ports.udp)] {
            for (i, spec) in specs.iter().enumerate() {
                let r = port_range(spec.get_ref())
                    .map_err(|e| at(spec.span(), format!("ports.{proto}[{i}]"), e))?;
                cfg.policy.allow(proto, r, &[]);
            }
        }
        for (i, src) in file.sources.iter().enumerate() {
            let entry = |key: &str| format!("sources[{i}].{key}");
            let s = src.get_ref();
            let proto: Proto = s
                .proto
                .get_ref()
                .parse()
                .map_err(|e| at(s.proto.span(), entry("proto"), e))?;
            let range =
                port_range(s.port.get_ref()).map_err(|e| at(s.port.span(), entry("port"), e))?;
            if s.from.get_ref().is_empty() {
                return Err(at(
                    s.from.span(),
                    entry("from"),
                    Error::invalid("source list", "[]", "list at least one prefix"),
                ));
            }
            let mut nets = Vec::new();
            for (j, net) in s.from.get_ref().iter().enumerate() {
                nets.push(
                    parse_prefix(net.get_ref())
                        .map_err(|e| at(net.span(), entry(&format!("from[{j}]")), e))?,
                );
            }
            // A source rule opens the port to those sources only.
            cfg.policy.deny(proto, range);
            cfg.policy.allow(proto, range, &nets);
        }
        if let Some(icmp) = &file.icmp {
            let echo = PortRange::single(ECHO);
            let mut nets = Vec::new();
            if let Some(from) = &icmp.echo_from {
                if icmp.echo != Some(true) {
                    return Err(at(
                        from.span(),
                        "icmp.echo_from".into(),
                        Error::invalid(
                            "source list",
                            "echo_from",
                            "echo_from needs `echo = true` next to it (it narrows the \
                             sources echo-requests are answered for)",
                        ),
                    ));
                }
                if from.get_ref().is_empty() {
                    return Err(at(
                        from.span(),
                        "icmp.echo_from".into(),
                        Error::invalid("source list", "[]", "list at least one prefix"),
                    ));
                }
                for (j, net) in from.get_ref().iter().enumerate() {
                    nets.push(
                        parse_prefix(net.get_ref())
                            .map_err(|e| at(net.span(), format!("icmp.echo_from[{j}]"), e))?,
                    );
                }
            }
            if icmp.echo == Some(true) {
                cfg.policy.allow(Proto::Icmp, echo, &nets);
            }
        }
        // A number outside its range, named by its table and key.
        let within = |span: std::ops::Range<usize>,
                      value: u64,
                      entry: &str,
                      range: std::ops::RangeInclusive<u64>,
                      unit: &str| {
            if range.contains(&value) {
                return Ok(value);
            }
            let key = entry.rsplit('.').next().unwrap_or(entry);
            Err(at(
                span,
                entry.into(),
                Error::invalid(
                    "value",
                    value.to_string(),
                    format!("{key} must be {}-{}{unit}", range.start(), range.end()),
                ),
            ))
        };
        let limit = |v: &Spanned<u64>, key: &str, unit: &str| {
            within(
                v.span(),
                *v.get_ref(),
                &format!("reject.{key}"),
                1..=MAX_RATE,
                unit,
            )
        };
        if let Some(r) = &file.reject {
            if let Some(w) = r.with {
                cfg.reject_with = w;
            }
            if let Some(rate) = &r.rate {
                cfg.reject_rate = limit(rate, "rate", " per second")?;
                cfg.reject_burst = cfg.reject_rate;
            }
            if let Some(burst) = &r.burst {
                cfg.reject_burst = limit(burst, "burst", "")?;
            }
        }
        if let Some(n) = file.conntrack.as_ref().and_then(|c| c.entries.as_ref()) {
            within(
                n.span(),
                u64::from(*n.get_ref()),
                "conntrack.entries",
                1024..=16_777_216,
                "",
            )?;
            cfg.conntrack_entries = *n.get_ref();
        }
        cfg.conntrack_unconfirmed_entries =
            fw_common::ct_unconfirmed_default(cfg.conntrack_entries);
        if let Some(n) = file
            .conntrack
            .as_ref()
            .and_then(|c| c.unconfirmed_entries.as_ref())
        {
            within(
                n.span(),
                u64::from(*n.get_ref()),
                "conntrack.unconfirmed_entries",
                u64::from(fw_common::CT_UNCONFIRMED_MIN)..=16_777_216,
                "",
            )?;
            cfg.conntrack_unconfirmed_entries = *n.get_ref();
        }
        // A `[capacity]` key within its bounds.
        let capacity = |key: &str,
                        v: Option<&Spanned<u32>>,
                        range: &std::ops::RangeInclusive<u32>|
         -> Result<Option<u32>> {
            let Some(n) = v else { return Ok(None) };
            within(
                n.span(),
                u64::from(*n.get_ref()),
                &format!("capacity.{key}"),
                u64::from(*range.start())..=u64::from(*range.end()),
                "",
            )?;
            Ok(Some(*n.get_ref()))
        };
        let cap = file.capacity.as_ref();
        if let Some(n) = capacity(
            "source_prefixes",
            cap.and_then(|c| c.source_prefixes.as_ref()),
            &SOURCE_PREFIXES,
        )? {
            cfg.source_prefixes = n;
        }
        if let Some(n) = capacity(
            "block_prefixes",
            cap.and_then(|c| c.block_prefixes.as_ref()),
            &BLOCK_PREFIXES,
        )? {
            cfg.block_prefixes = n;
        }
        if let Some(n) = capacity(
            "limit_sources",
            cap.and_then(|c| c.limit_sources.as_ref()),
            &LIMIT_SOURCES,
        )? {
            cfg.limit_sources = n;
        }
        for (i, spec) in file.limits.iter().enumerate() {
            let entry = |key: &str| format!("limits[{i}].{key}");
            let l = spec.get_ref();
            let proto: Proto = l
                .proto
                .get_ref()
                .parse()
                .map_err(|e| at(l.proto.span(), entry("proto"), e))?;
            let ports =
                port_range(l.port.get_ref()).map_err(|e| at(l.port.span(), entry("port"), e))?;
            let rate: Rate = l
                .rate
                .get_ref()
                .parse()
                .map_err(|e| at(l.rate.span(), entry("rate"), e))?;
            let per = |v: &Option<Spanned<i64>>, key: &str, default: u32| match v {
                None => Ok(default),
                Some(n) => u32::try_from(*n.get_ref()).map_err(|_| {
                    at(
                        n.span(),
                        entry(key),
                        Error::invalid("prefix length", n.get_ref().to_string(), "out of range"),
                    )
                }),
            };
            let per4 = per(&l.per, "per", crate::limit::DEFAULT_PER4)?;
            let per6 = per(&l.per6, "per6", crate::limit::DEFAULT_PER6)?;
            let limit = Limit::new(proto, ports, rate, per4, per6)
                .map_err(|e| at(spec.span(), format!("limits[{i}]"), e))?;
            cfg.limits.push(limit);
        }
        crate::limit::check_all(&mut cfg.limits).map_err(|e| bad(e.to_string()))?;
        if let Some(w) = file.block.as_ref().and_then(|b| b.with) {
            cfg.block_with = w;
        }
        for (i, set) in file.block.iter().flat_map(|b| &b.sets).enumerate() {
            let entry = |key: &str| format!("block.sets[{i}].{key}");
            let s = set.get_ref();
            let name = s.name.get_ref();
            crate::blocklist::check_set_name(name)
                .map_err(|e| at(s.name.span(), entry("name"), e))?;
            if cfg.block_sets.iter().any(|b| &b.name == name) {
                return Err(at(
                    s.name.span(),
                    entry("name"),
                    Error::invalid(
                        "set name",
                        name,
                        "another [[block.sets]] entry has that name: give each set one entry",
                    ),
                ));
            }
            let mut b = BlockSet {
                name: name.clone(),
                file: None,
                prefixes: BTreeSet::new(),
            };
            match (&s.prefixes, &s.file) {
                (Some(_), Some(f)) => {
                    return Err(at(
                        f.span(),
                        entry("file"),
                        Error::invalid(
                            "set",
                            name,
                            "give its prefixes either in the config (`prefixes = [...]`) or in                              a set file (`file = \"...\"`), not both",
                        ),
                    ))
                }
                (_, Some(f)) => {
                    if f.get_ref().trim().is_empty() {
                        return Err(at(
                            f.span(),
                            entry("file"),
                            Error::invalid("set file", "", "name the file of the set's prefixes"),
                        ));
                    }
                    b.file = Some(PathBuf::from(f.get_ref()));
                }
                (p, None) => {
                    for (j, net) in p.iter().flatten().enumerate() {
                        let n = parse_prefix(net.get_ref())
                            .map_err(|e| at(net.span(), entry(&format!("prefixes[{j}]")), e))?;
                        b.prefixes.insert(n);
                    }
                }
            }
            // An empty set in the config says nothing: the kernel has no such set.
            if b.file.is_some() || !b.prefixes.is_empty() {
                cfg.block_sets.push(b);
            }
        }
        if cfg.block_sets.len() > fw_common::BLOCK_MAX_SETS as usize {
            return Err(bad(format!(
                "the config names {} block sets, more than the {} fw can tell apart: merge some",
                cfg.block_sets.len(),
                fw_common::BLOCK_MAX_SETS
            )));
        }
        cfg.block_sets.sort_by(|a, b| a.name.cmp(&b.name));
        let needed = cfg.policy.source_entries();
        if needed > cfg.source_prefixes as usize {
            return Err(bad(format!(
                "the policy needs {needed} source-prefix entries (one per prefix of each \
                 distinct source list), more than [capacity] source_prefixes = {}: raise it \
                 or use fewer prefixes",
                cfg.source_prefixes
            )));
        }
        for (i, name) in file.interfaces.iter().enumerate() {
            crate::names::check_name(name.get_ref())
                .map_err(|e| at(name.span(), format!("interfaces[{i}]"), e))?;
        }
        cfg.interfaces = file
            .interfaces
            .into_iter()
            .map(|n| n.into_inner())
            .collect();
        cfg.dry_run = file.dry_run;
        if let Some(client) = file.dhcp.and_then(|d| d.client) {
            cfg.dhcp_client = client;
        }
        if let Some(mode) = file.syncookies.and_then(|s| s.mode) {
            cfg.syncookies = mode;
        }
        Ok(cfg)
    }

    /// Reads and parses a config file and the set files it names.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config {}", path.display()), e))?;
        let mut cfg = Config::from_toml(&text, path)?;
        cfg.load_set_files(path)?;
        Ok(cfg)
    }

    /// Reads the set files the config (from file `origin`) names into
    /// their sets. A bad line is an error naming the set file and line.
    pub fn load_set_files(&mut self, origin: &Path) -> Result<()> {
        for set in &mut self.block_sets {
            let Some(path) = set.file_path(origin) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::io(
                    format!(
                        "reading {}, the set file of block set `{}` in {}",
                        path.display(),
                        set.name,
                        origin.display()
                    ),
                    e,
                )
            })?;
            set.prefixes = crate::blocklist::parse_set_file(&text, &path)?;
        }
        Ok(())
    }

    /// The config with the prefixes of file-backed sets left out: what
    /// the config file's text itself says.
    pub fn without_set_contents(&self) -> Config {
        let mut c = self.clone();
        for s in &mut c.block_sets {
            if s.file.is_some() {
                s.prefixes.clear();
            }
        }
        c
    }

    /// The block set named `name`, if the config has it.
    pub fn block_set(&self, name: &str) -> Option<&BlockSet> {
        self.block_sets.iter().find(|s| s.name == name)
    }

    /// Set `name` holds `nets` without end too (made when new, prefixes
    /// in the config).
    pub fn block_add(&mut self, name: &str, nets: &[IpNet]) {
        if nets.is_empty() {
            return;
        }
        let set = match self.block_sets.iter().position(|s| s.name == name) {
            Some(i) => &mut self.block_sets[i],
            None => {
                self.block_sets.push(BlockSet {
                    name: name.to_string(),
                    file: None,
                    prefixes: BTreeSet::new(),
                });
                self.block_sets.sort_by(|a, b| a.name.cmp(&b.name));
                let i = self
                    .block_sets
                    .iter()
                    .position(|s| s.name == name)
                    .unwrap_or_default();
                &mut self.block_sets[i]
            }
        };
        set.prefixes.extend(nets.iter().copied());
    }

    /// Set `name` (every set: `None`) no longer holds `nets`; an inline
    /// set left empty goes.
    pub fn block_remove(&mut self, name: Option<&str>, nets: &[IpNet]) {
        for s in &mut self.block_sets {
            if name.is_none_or(|n| n == s.name) {
                for n in nets {
                    s.prefixes.remove(n);
                }
            }
        }
        self.block_sets
            .retain(|s| s.file.is_some() || !s.prefixes.is_empty());
    }

    /// Set `name` holds exactly `nets`, from set file `file` (absolute).
    pub fn block_replace(&mut self, name: &str, file: Option<PathBuf>, nets: BTreeSet<IpNet>) {
        self.block_sets.retain(|s| s.name != name);
        if file.is_some() || !nets.is_empty() {
            self.block_sets.push(BlockSet {
                name: name.to_string(),
                file,
                prefixes: nets,
            });
            self.block_sets.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// Puts `limit` in, replacing a limit of the same protocol and ports.
    /// Refused (config unchanged) when it overlaps another limit or would
    /// be one too many.
    pub fn limit_set(&mut self, limit: Limit) -> Result<()> {
        let mut next: Vec<Limit> = self
            .limits
            .iter()
            .filter(|l| (l.proto, l.ports) != (limit.proto, limit.ports))
            .copied()
            .collect();
        next.push(limit);
        crate::limit::check_all(&mut next)?;
        self.limits = next;
        Ok(())
    }

    /// Takes out the limit of exactly `proto` `ports`; false when there is
    /// none.
    pub fn limit_remove(&mut self, proto: Proto, ports: PortRange) -> bool {
        let before = self.limits.len();
        self.limits.retain(|l| (l.proto, l.ports) != (proto, ports));
        self.limits.len() != before
    }

    /// The config as TOML that [`Config::from_toml`] reads back unchanged.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let spec = |r: &PortRange| {
            if r.lo == r.hi {
                r.lo.to_string()
            } else {
                q(&r.to_string())
            }
        };
        let mut out = String::new();
        let ifaces: Vec<String> = self.interfaces.iter().map(|i| q(i)).collect();
        let _ = writeln!(out, "interfaces = [{}]", ifaces.join(", "));
        let _ = writeln!(out, "dry_run = {}", self.dry_run);
        let _ = writeln!(out, "\n[ports]");
        let mut restricted = Vec::new();
        for proto in Proto::ALL {
            let mut open = Vec::new();
            for (r, src) in self.policy.ranges(proto) {
                match src {
                    None => open.push(spec(&r)),
                    Some(nets) => restricted.push((proto, r, nets.clone())),
                }
            }
            let _ = writeln!(out, "{proto} = [{}]", open.join(", "));
        }
        for (proto, r, nets) in restricted {
            let from: Vec<String> = nets.iter().map(|n| q(&n.to_string())).collect();
            let _ = writeln!(
                out,
                "\n[[sources]]\nproto = \"{proto}\"\nport = {}\nfrom = [{}]",
                spec(&r),
                from.join(", ")
            );
        }
        let echo = self.policy.is_open(Proto::Icmp, ECHO);
        let _ = writeln!(out, "\n[icmp]\necho = {echo}");
        if let Some(nets) = self.policy.sources(Proto::Icmp, ECHO) {
            let from: Vec<String> = nets.iter().map(|n| q(&n.to_string())).collect();
            let _ = writeln!(out, "echo_from = [{}]", from.join(", "));
        }
        let _ = writeln!(
            out,
            "\n[reject]\nwith = \"{}\"\nrate = {}\nburst = {}",
            self.reject_with.name(),
            self.reject_rate,
            self.reject_burst
        );
        let _ = writeln!(
            out,
            "\n[conntrack]\nentries = {}\nunconfirmed_entries = {}",
            self.conntrack_entries, self.conntrack_unconfirmed_entries
        );
        let _ = writeln!(out, "\n[dhcp]\nclient = {}", self.dhcp_client);
        let _ = writeln!(out, "\n[syncookies]\nmode = \"{}\"", self.syncookies.name());
        let _ = writeln!(out, "\n[block]\nwith = \"{}\"", self.block_with.name());
        for set in &self.block_sets {
            let _ = writeln!(out, "\n[[block.sets]]\nname = {}", q(&set.name));
            match &set.file {
                Some(f) => {
                    let _ = writeln!(out, "file = {}", q(&f.to_string_lossy()));
                }
                None => {
                    let _ = writeln!(out, "prefixes = [");
                    for n in &set.prefixes {
                        let _ = writeln!(out, "    {},", q(&n.to_string()));
                    }
                    let _ = writeln!(out, "]");
                }
            }
        }
        for l in &self.limits {
            let _ = writeln!(out, "\n{}", limit_table(l));
        }
        let _ = writeln!(
            out,
            "\n[capacity]\nsource_prefixes = {}\nblock_prefixes = {}\nlimit_sources = {}",
            self.source_prefixes, self.block_prefixes, self.limit_sources
        );
        out
    }

    /// The kernel-side settings (the reject bucket is one bucket shared by
    /// all CPUs, so the rate is given as configured).
    pub fn kernel(&self) -> fw_common::Config {
        let mut k = fw_common::Config::DEFAULT;
        k.reject_kind = self.reject_with.kind() as u32;
        k.flags = 0;
        if self.dry_run {
            k.flags |= fw_common::CFG_DRY_RUN;
        }
        if self.dhcp_client {
            k.flags |= fw_common::CFG_DHCP_CLIENT;
        }
        k.reject_rate = self.reject_rate;
        k.reject_burst = self.reject_burst;
        k.block_kind = self.block_with.kind() as u32;
        k.syncookie_mode = self.syncookies.kernel();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::from_toml(s, Path::new("test.toml"))
    }

    #[test]
    fn default_is_seed() {
        let c = parse("[ports]\ntcp = [22, 80]\nudp = [80]\n").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn full() {
        let c = parse(
            r#"
            interfaces = ["veth0"]
            dry_run = true
            [ports]
            tcp = [22, "8000-8002"]
            udp = []
            [[sources]]
            proto = "tcp"
            port = 22
            from = ["198.51.100.0/24", "2001:db8::/32"]
            [reject]
            with = "tcp-reset"
            rate = 50
            [conntrack]
            entries = 4096
            "#,
        )
        .unwrap();
        assert!(c.dry_run);
        assert_eq!(c.reject_with, RejectWith::TcpReset);
        assert_eq!(c.policy.ports(Proto::Tcp).count(), 4);
        assert_eq!(c.policy.sources(Proto::Tcp, 22).map(|s| s.len()), Some(2));
        assert_eq!(c.kernel().reject_rate, 50);
    }

    #[test]
    fn toml_round_trip() {
        let c = parse(
            r#"
            interfaces = ["veth0"]
            [ports]
            tcp = [22, "8000-8002", 9000]
            udp = [53]
            [[sources]]
            proto = "tcp"
            port = "443-444"
            from = ["198.51.100.0/24", "2001:db8::/32"]
            [reject]
            with = "admin-prohibited"
            rate = 50
            burst = 70
            "#,
        )
        .unwrap();
        let text = c.to_toml();
        assert_eq!(parse(&text).unwrap(), c, "{text}");
        assert_eq!(
            parse(&Config::default().to_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn icmp_echo_and_its_sources() {
        let c = parse("[ports]\n").unwrap();
        assert!(
            !c.policy.is_open(Proto::Icmp, ECHO),
            "echo closed by default"
        );
        assert!(
            !Config::default().policy.is_open(Proto::Icmp, ECHO),
            "seed too"
        );
        let c = parse("[ports]\n[icmp]\necho = true\n").unwrap();
        assert!(c.policy.is_open(Proto::Icmp, ECHO));
        assert_eq!(c.policy.sources(Proto::Icmp, ECHO), None);
        let c = parse(
            "[ports]\n[icmp]\necho = true\necho_from = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.policy.sources(Proto::Icmp, ECHO).map(|s| s.len()),
            Some(2)
        );
        assert_eq!(
            c.policy.source_entries(),
            2,
            "echo's sources take trie entries"
        );
        assert_eq!(parse(&c.to_toml()).unwrap(), c, "{}", c.to_toml());
        for (text, needle) in [
            ("[ports]\n[icmp]\necho = \"yes\"\n", "invalid type"),
            (
                "[ports]\n[icmp]\ntimestamp = true\n",
                "unknown field `timestamp`",
            ),
            (
                "[ports]\n[icmp]\necho_from = [\"198.51.100.0/24\"]\n",
                "echo_from needs `echo = true`",
            ),
            (
                "[ports]\n[icmp]\necho = true\necho_from = []\n",
                "at least one prefix",
            ),
            (
                "[ports]\n[icmp]\necho = true\necho_from = [\"198.51.100.1/24\"]\n",
                "icmp.echo_from[0]",
            ),
            (
                "[ports]\n[[sources]]\nproto = \"icmp\"\nport = 8\nfrom = [\"198.51.100.0/24\"]\n",
                "ICMP echo is `echo = true` under [icmp]",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn limits_parse_round_trip_and_refuse_bad_input() {
        let c = parse(
            "[ports]\ntcp = [22]\n[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"6/30s\"\n\
             [[limits]]\nproto = \"udp\"\nport = \"5000-5010\"\nrate = \"10/1m\"\nper = 24\nper6 = 56\n\
             [capacity]\nlimit_sources = 2048\n",
        )
        .unwrap();
        assert_eq!(c.limits.len(), 2);
        assert_eq!((c.limits[0].per4, c.limits[0].per6), (32, 64));
        assert_eq!((c.limits[1].per4, c.limits[1].per6), (24, 56));
        assert_eq!(c.limit_sources, 2048);
        assert_eq!(parse(&c.to_toml()).unwrap(), c, "{}", c.to_toml());
        let lim = |body: &str| format!("[ports]\n[[limits]]\nproto = \"tcp\"\nport = 22\n{body}\n");
        for (text, needle) in [
            (lim("rate = \"0/30s\""), "limits[0].rate"),
            (lim("rate = \"6/0s\""), "window must be"),
            (lim("rate = \"6/3d\""), "unknown unit"),
            (lim("rate = \"6/30s\"\nper = 33"), "--per must be 1-32"),
            (lim("rate = \"6/30s\"\nper6 = 129"), "--per6 must be 1-128"),
            (lim("rate = \"6/30s\"\nper = -1"), "limits[0].per"),
            (lim("rate = \"6/30s\"\nburst = 3"), "unknown field"),
            (
                "[ports]\n[[limits]]\nproto = \"icmp\"\nport = 8\nrate = \"1/1s\"\n".into(),
                "limits[0].proto",
            ),
            (
                format!(
                    "{}[[limits]]\nproto = \"tcp\"\nport = \"20-30\"\nrate = \"1/1s\"\n",
                    lim("rate = \"6/30s\"")
                ),
                "overlaps",
            ),
            (
                "[ports]\n[capacity]\nlimit_sources = 10\n".into(),
                "limit_sources must be",
            ),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn dhcp_client_is_on_unless_turned_off() {
        use fw_common::CFG_DHCP_CLIENT;
        assert!(Config::default().dhcp_client);
        assert_ne!(Config::default().kernel().flags & CFG_DHCP_CLIENT, 0);
        let off = parse("[ports]\n[dhcp]\nclient = false\n").unwrap();
        assert!(!off.dhcp_client);
        assert_eq!(off.kernel().flags & CFG_DHCP_CLIENT, 0);
        assert_eq!(parse(&off.to_toml()).unwrap(), off);
        assert!(parse("[ports]\n[dhcp]\n").unwrap().dhcp_client);
    }

    #[test]
    fn rejects_bad_input() {
        for (text, needle) in [
            ("[ports]\ntcp = [0]", "1-65535"),
            ("[ports]\ntcp = [70000]", "1-65535"),
            ("[ports]\ntcp = [\"90-80\"]", "inverted"),
            ("[ports]\nsctp = [1]", "unknown field"),
            ("[reject]\nwith = \"bounce\"", "unknown variant"),
            ("", "no [ports] table"),
            (
                "[[sources]]\nproto = \"tcp\"\nport = 22\nfrom = [\"198.51.100.0/24\"]",
                "no [ports]",
            ),
            ("[ports]\n[reject]\nrate = 0", "rate"),
            ("[ports\n", "expected"),
            ("color = 1", "unknown field"),
            ("[dhcp]\nclient = 1", "invalid type"),
            ("[dhcp]\nserver = true", "unknown field"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.contains("test.toml"), "{e}");
        }
    }
}
