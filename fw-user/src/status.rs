//! `fw status`: where fw is attached, how, and what it runs.
use std::fmt::Write as _;

use aya::programs::ProgramInfo;
use fw_common::{PROG_EGRESS, PROG_INGRESS};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    iface,
    loader::mode_name,
    maps::FwMaps,
    pins::PinDir,
    policy::RejectWith,
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

#[derive(Debug, Serialize)]
pub struct Status {
    pub loaded: bool,
    pub pin_dir: String,
    pub interfaces: Vec<IfaceStatus>,
    pub ingress_prog_id: Option<u32>,
    pub egress_prog_id: Option<u32>,
    pub loaded_at: Option<u64>,
    pub reject_with: Option<&'static str>,
    pub reject_rate: Option<u64>,
    pub dry_run: bool,
    pub conntrack_max_entries: Option<u32>,
    pub conntrack_entries: Option<usize>,
    pub conntrack_memory_bytes: Option<u64>,
    /// Entries the full table's LRU evicted so far.
    pub conntrack_evicted: Option<u64>,
    /// Pins without fw's META map: leftovers of an interrupted `fw up`/`fw down`.
    pub leftovers: bool,
    /// Link pins of interfaces fw does not list (an interrupted `fw up`).
    pub stray_links: Vec<String>,
    /// An `fw apply` that was killed halfway, in words.
    pub interrupted_apply: Option<String>,
}

impl Status {
    pub fn collect(pins: &PinDir) -> Result<Status> {
        let mut st = Status {
            loaded: false,
            pin_dir: pins.root().display().to_string(),
            interfaces: Vec::new(),
            ingress_prog_id: None,
            egress_prog_id: None,
            loaded_at: None,
            reject_with: None,
            reject_rate: None,
            dry_run: false,
            conntrack_max_entries: None,
            conntrack_entries: None,
            conntrack_memory_bytes: None,
            conntrack_evicted: None,
            leftovers: false,
            stray_links: Vec::new(),
            interrupted_apply: None,
        };
        pins.check_readable()?;
        if !pins.is_loaded() {
            st.leftovers = pins.has_anything();
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
        st.conntrack_max_entries = Some(meta.ct_entries);
        st.conntrack_entries = Some(crate::conntrack::list(&maps)?.len());
        st.conntrack_memory_bytes = maps.conntrack_memlock()?;
        st.conntrack_evicted = Some(maps.conntrack_evicted(maps.conntrack_count()?)?);
        let id = |name: &'static str| -> Result<u32> {
            ProgramInfo::from_pin(pins.prog(name))
                .map(|i| i.id())
                .map_err(|source| Error::Program {
                    name,
                    source: Box::new(source),
                })
        };
        st.ingress_prog_id = Some(id(PROG_INGRESS)?);
        st.egress_prog_id = Some(id(PROG_EGRESS)?);
        st.interrupted_apply = crate::apply::interrupted(pins).map(|i| i.to_string());
        st.stray_links = crate::loader::half_state(pins, &meta)
            .stray_links
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        for m in meta.ifaces.iter().filter(|m| m.slot != 0) {
            st.interfaces.push(IfaceStatus {
                name: iface::name_from_bytes(&m.name),
                ifindex: m.ifindex,
                mode: mode_name(m.xdp_mode),
                egress: crate::egress_hook::mode_name(m.tc_mode),
                present: iface::exists(m.ifindex),
                attached: crate::loader::attached(pins, m),
            });
        }
        Ok(st)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.loaded {
            let _ = writeln!(out, "fw is not loaded (pin dir {})", self.pin_dir);
            if self.leftovers {
                let _ = writeln!(
                    out,
                    "but {} holds leftovers of an interrupted `fw up` or `fw down` (pins without \
                     fw's META map; links among them may still be attached): `fw down` removes them",
                    self.pin_dir
                );
            }
            return out;
        }
        let _ = writeln!(out, "fw is up (pin dir {})", self.pin_dir);
        let _ = writeln!(
            out,
            "programs: ingress id {}, egress id {}",
            self.ingress_prog_id.unwrap_or(0),
            self.egress_prog_id.unwrap_or(0)
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
            "conntrack: {} live of {} entries, {} evicted (table full), {:.1} MiB of kernel memory",
            self.conntrack_entries.unwrap_or(0),
            self.conntrack_max_entries.unwrap_or(0),
            self.conntrack_evicted.unwrap_or(0),
            self.conntrack_memory_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0)
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:<8} {:<6}",
            "interface", "ifindex", "xdp", "egress"
        );
        for i in &self.interfaces {
            let _ = writeln!(
                out,
                "{:<16} {:>7} {:<8} {:<6}{}",
                i.name,
                i.ifindex,
                i.mode,
                i.egress,
                if !i.present {
                    "  (gone: run `fw down` to clean up)"
                } else if !i.attached {
                    "  (link pins missing: an interrupted `fw down`; run `fw down` or `fw up` again)"
                } else {
                    ""
                }
            );
        }
        if let Some(i) = &self.interrupted_apply {
            let _ = writeln!(out, "warning: {i}");
        }
        for l in &self.stray_links {
            let _ = writeln!(
                out,
                "stray link {l}: attached by an interrupted `fw up` but not recorded; \
                 the next `fw up` or `fw down` detaches it"
            );
        }
        out
    }
}
