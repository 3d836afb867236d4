//! The config file fw runs: reading one, what fw records of it in its
//! pinned state (where it is, hashes of its text and of what it
//! configures), and how the running config compares with it.
use std::{
    fs,
    path::{Path, PathBuf},
};

use fw_common::{ConfigFile, CONFIG_PATH_MAX};
use serde::Serialize;

use crate::{
    config::Config,
    error::{Error, Result},
    policy::{collapse, PortRange, Proto},
};

/// FNV-1a: stable across builds and runs, unlike std's hasher; enough to
/// notice that a file changed (not a defence against forgery: only root
/// can write fw's pins and config).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A config file as read: where, its text, and what it configures.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    pub config: Config,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config {}", path.display()), e))?;
        let mut config = Config::from_toml(&text, path)?;
        config.load_set_files(path)?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
            config,
        })
    }

    /// What to record for this file: None when it is no regular file
    /// (`/dev/stdin`, a pipe), which fw could not write back to.
    pub fn record(&self) -> Option<Record> {
        let real = fs::canonicalize(&self.path).ok()?;
        let md = fs::metadata(&real).ok()?;
        (md.is_file() && real.as_os_str().len() <= CONFIG_PATH_MAX)
            .then(|| Record::of(real, &self.text, &self.config))
    }
}

/// Says that `path` (given to `fw up --config` or `fw apply`) is not
/// recorded, so changes do not go back to it.
pub fn unrecorded_note(path: &Path) -> String {
    format!(
        "{} is not a regular file (or its path is over {CONFIG_PATH_MAX} bytes): fw does \
         not record it, so later `fw allow`/`fw deny` are not written back to it",
        path.display()
    )
}

/// The file fw runs, as recorded in its pinned state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute, symlinks resolved.
    pub path: PathBuf,
    pub content_hash: u64,
    pub config_hash: u64,
}

impl Record {
    pub fn of(path: PathBuf, text: &str, config: &Config) -> Record {
        Record {
            path,
            content_hash: fnv1a(text.as_bytes()),
            config_hash: fnv1a(config.to_toml().as_bytes()),
        }
    }

    /// The pinned form (the caller checked the path's length).
    pub fn to_pinned(&self) -> ConfigFile {
        let mut rec = ConfigFile::default();
        let bytes = self.path.as_os_str().as_encoded_bytes();
        let n = bytes.len().min(CONFIG_PATH_MAX);
        rec.path[..n].copy_from_slice(&bytes[..n]);
        rec.path_len = n as u32;
        rec.content_hash = self.content_hash;
        rec.config_hash = self.config_hash;
        rec
    }

    pub fn from_pinned(rec: &ConfigFile) -> Option<Record> {
        let n = (rec.path_len as usize).min(CONFIG_PATH_MAX);
        if n == 0 {
            return None;
        }
        use std::os::unix::ffi::OsStrExt as _;
        Some(Record {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&rec.path[..n])),
            content_hash: rec.content_hash,
            config_hash: rec.config_hash,
        })
    }
}

/// How the file fw runs compares with the running policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileState {
    /// The file fw loaded or last applied; None: started without one.
    pub file: Option<String>,
    /// The running policy is what the file says.
    pub in_sync: bool,
    /// Someone changed the file since fw loaded or wrote it.
    pub edited_since_loaded: bool,
    /// What differs, in words, running first ("tcp 8080 open; the file closes it").
    pub differences: Vec<String>,
    /// The file cannot be read or does not load.
    pub error: Option<String>,
}

impl FileState {
    /// A one-line summary for `fw status`, with what to do.
    pub fn render(&self) -> String {
        let Some(p) = &self.file else {
            return "config: none (started without a config file: changes last until fw is \
                    unloaded; `fw save FILE` keeps them)"
                .into();
        };
        if let Some(e) = &self.error {
            return format!("config: {p}: cannot load it: {e}");
        }
        let edited = if self.edited_since_loaded {
            " (edited since fw loaded it)"
        } else {
            ""
        };
        if self.in_sync {
            return format!("config: {p}{edited}, the running policy matches it");
        }
        format!(
            "config: {p}{edited}: the running policy differs from it: {}. `fw save {p}` writes \
             the running policy into it; `fw apply {p}` goes back to it",
            self.differences.join("; ")
        )
    }
}

/// How the running config compares with the file fw runs (`recorded`).
pub fn compare(running: &Config, recorded: Option<Record>) -> FileState {
    let Some(rec) = recorded else {
        return FileState {
            differences: differences(&Config::default(), running, "the seed policy"),
            ..FileState::default()
        };
    };
    let mut st = FileState {
        file: Some(rec.path.display().to_string()),
        ..FileState::default()
    };
    match Source::read(&rec.path) {
        Ok(f) => {
            st.edited_since_loaded = fnv1a(f.text.as_bytes()) != rec.content_hash;
            st.differences = differences(&f.config, running, "the file");
            st.in_sync = st.differences.is_empty();
        }
        Err(e) => st.error = Some(e.to_string()),
    }
    st
}

/// `file` (named `what` in the text) and `running` compared, in words;
/// empty when they agree on everything a load sets (interfaces aside: `fw
/// up IFACE` may name them).
pub fn differences(file: &Config, running: &Config, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (f, r) = (&file.policy, &running.policy);
    for proto in Proto::EVERY {
        let list = |v: Vec<PortRange>| proto.ranges_text(&v);
        let opened = collapse(r.ports(proto).filter(|&p| !f.is_open(proto, p)));
        if !opened.is_empty() {
            out.push(format!("{proto} {} open, {what} closes it", list(opened)));
        }
        let closed = collapse(f.ports(proto).filter(|&p| !r.is_open(proto, p)));
        if !closed.is_empty() {
            out.push(format!("{proto} {} closed, {what} opens it", list(closed)));
        }
        let resourced = collapse(
            r.ports(proto)
                .filter(|&p| f.is_open(proto, p) && f.sources(proto, p) != r.sources(proto, p)),
        );
        if !resourced.is_empty() {
            out.push(format!(
                "{proto} {} open to other sources than {what} says",
                list(resourced)
            ));
        }
    }
    if file.reject_with != running.reject_with {
        out.push(format!(
            "reject with {}, {what} says {}",
            running.reject_with.name(),
            file.reject_with.name()
        ));
    }
    if (file.reject_rate, file.reject_burst) != (running.reject_rate, running.reject_burst) {
        out.push(format!(
            "reject rate {}/s burst {}, {what} says {}/s burst {}",
            running.reject_rate, running.reject_burst, file.reject_rate, file.reject_burst
        ));
    }
    if file.dry_run != running.dry_run {
        out.push(format!(
            "dry run {}, {what} says {}",
            on_off(running.dry_run),
            on_off(file.dry_run)
        ));
    }
    if file.source_prefixes != running.source_prefixes {
        out.push(format!(
            "source_prefixes {}, {what} says {} (from the next load on)",
            running.source_prefixes, file.source_prefixes
        ));
    }
    if file.dhcp_client != running.dhcp_client {
        out.push(format!(
            "DHCP client replies {}, {what} says {}",
            if running.dhcp_client {
                "passed"
            } else {
                "not passed"
            },
            if file.dhcp_client {
                "pass them"
            } else {
                "do not"
            }
        ));
    }
    if file.conntrack_entries != running.conntrack_entries {
        out.push(format!(
            "conntrack entries {}, {what} says {} (from the next load on)",
            running.conntrack_entries, file.conntrack_entries
        ));
    }
    if file.conntrack_unconfirmed_entries != running.conntrack_unconfirmed_entries {
        out.push(format!(
            "unconfirmed conntrack entries {}, {what} says {} (from the next load on)",
            running.conntrack_unconfirmed_entries, file.conntrack_unconfirmed_entries
        ));
    }
    if file.syncookies != running.syncookies {
        out.push(format!(
            "syncookies mode {}, {what} says {}",
            running.syncookies.name(),
            file.syncookies.name()
        ));
    }
    if file.block_with != running.block_with {
        out.push(format!(
            "blocked sources answered with {}, {what} says {}",
            running.block_with.name(),
            file.block_with.name()
        ));
    }
    if file.block_prefixes != running.block_prefixes {
        out.push(format!(
            "block_prefixes {}, {what} says {} (from the next load on)",
            running.block_prefixes, file.block_prefixes
        ));
    }
    if file.limit_sources != running.limit_sources {
        out.push(format!(
            "limit_sources {}, {what} says {} (from the next load on)",
            running.limit_sources, file.limit_sources
        ));
    }
    out.extend(block_set_differences(file, running, what));
    out.extend(limit_differences(file, running, what));
    out
}

/// The limits of `file` and `running` compared, in words.
pub fn limit_differences(file: &Config, running: &Config, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in running.limits.iter().filter(|l| !file.limits.contains(l)) {
        out.push(format!(
            "limit {} in place, {what} does not have it",
            l.describe()
        ));
    }
    for l in file.limits.iter().filter(|l| !running.limits.contains(l)) {
        out.push(format!("no limit {}, {what} has it", l.describe()));
    }
    out
}

/// The block sets of `file` and `running` compared (prefixes without end;
/// timed bans are no part of a config), in words.
pub fn block_set_differences(file: &Config, running: &Config, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = file
        .block_sets
        .iter()
        .chain(&running.block_sets)
        .map(|s| s.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let empty = std::collections::BTreeSet::new();
    for name in names {
        let f = file.block_set(name).map_or(&empty, |s| &s.prefixes);
        let r = running.block_set(name).map_or(&empty, |s| &s.prefixes);
        if f == r {
            continue;
        }
        let more = r.difference(f).count();
        let fewer = f.difference(r).count();
        let mut parts = Vec::new();
        if more > 0 {
            parts.push(format!("{more} prefix(es) {what} does not have"));
        }
        if fewer > 0 {
            parts.push(format!("{fewer} fewer than {what} says"));
        }
        out.push(format!("block set {name} holds {}", parts.join(" and ")));
    }
    out
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
