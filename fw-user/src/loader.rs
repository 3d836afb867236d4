//! Bringing fw up and down: load the embedded object, pin it, attach XDP
//! (ingress) and TC (egress) to interfaces, and undo all of it.
use std::{fs, path::PathBuf, time::SystemTime};

use aya::{
    programs::{links::FdLink, SchedClassifier, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use fw_common::{
    maps as names, IfaceMeta, Meta, CFG_DRY_RUN, MAX_IFACES, PROG_EGRESS, PROG_INGRESS,
    TC_MODE_CLSACT, TC_MODE_CLSACT_OWN, TC_MODE_TCX, XDP_MODE_GENERIC, XDP_MODE_NATIVE,
};

use crate::{
    config::Config,
    egress_hook::{self, Egress, Hook},
    error::{Error, Result},
    iface::{self, Iface},
    maps::FwMaps,
    persist::Record,
    pins::PinDir,
};

/// The eBPF object, built by build.rs from fw-ebpf.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fw-ebpf"));

/// How XDP is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Native (driver) mode where the driver supports it, else generic.
    #[default]
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

/// How fw's two programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub xdp: Mode,
    pub egress: Egress,
}

pub fn mode_name(m: u32) -> &'static str {
    match m {
        XDP_MODE_NATIVE => "native",
        XDP_MODE_GENERIC => "generic",
        _ => "unknown",
    }
}

/// fw's commands that change the kernel need root.
pub fn require_root(what: &'static str) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot(what));
    }
    Ok(())
}

/// What `fw up` did.
#[derive(Debug)]
pub struct UpReport {
    pub loaded: bool,
    /// Conntrack entries seeded from the socket table.
    pub seeded: usize,
    pub attached: Vec<Attached>,
    /// Half-done work of an interrupted `fw up`/`fw down` that was finished first.
    pub repaired: Vec<String>,
}

/// One interface `fw up` attached to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub name: String,
    /// XDP mode: "native" or "generic".
    pub xdp: &'static str,
    /// Egress hook: "tcx" or "clsact".
    pub egress: &'static str,
}

/// Loads fw (if not loaded under `pins`) and attaches it to `ifaces`.
/// `config` is applied on a fresh load, or when given explicitly; `file`
/// is the config file it came from, recorded as the one changes are
/// written back to.
pub fn up(
    pins: &PinDir,
    names_: &[String],
    hooks: Hooks,
    config: Option<&Config>,
    file: Option<&Record>,
) -> Result<UpReport> {
    require_root("fw up")?;
    let _lock = crate::lock::take()?;
    let default_cfg = Config::default();
    let mut wanted: Vec<String> = names_.to_vec();
    if wanted.is_empty() {
        if let Some(c) = config {
            wanted = c.interfaces.clone();
        }
    }
    if wanted.is_empty() {
        return Err(Error::NoInterface);
    }
    let mut ifaces = Vec::new();
    for n in &wanted {
        let i = iface::resolve(n)?;
        if !ifaces.contains(&i) {
            ifaces.push(i);
        }
    }
    // Looked at before `prepare` makes the (empty) subdirectories.
    let leftovers = !pins.is_loaded() && pins.has_anything();
    pins.prepare()?;
    let fresh = !pins.is_loaded();
    let mut repaired = Vec::new();
    if fresh {
        if leftovers {
            // A half-made load (killed `fw up`) or a half-removed one (killed
            // `fw down`): without META nothing records what it holds, and
            // unpinning its links detaches them.
            pins.remove_all()?;
            pins.prepare()?;
            repaired.push(leftovers_note(pins));
        }
        let cfg = config.unwrap_or(&default_cfg);
        if let Err(e) = load_and_pin_recording(pins, cfg, file) {
            let _ = pins.remove_all();
            return Err(e);
        }
    } else {
        let maps = FwMaps::open(pins)?;
        let mut meta = maps.meta()?;
        repaired = repair(pins, &maps, &mut meta, &ifaces)?
            .into_iter()
            .map(|r| r.1)
            .collect();
        // Refuse before changing anything else, so the running policy stays
        // (a fresh load has no interface yet: nothing to refuse there).
        if let Some(i) = ifaces.iter().find(|i| entry(&meta, &i.name).is_some()) {
            return Err(Error::AlreadyUp(i.name.clone()));
        }
        if let Some(cfg) = config {
            apply_config(pins, cfg)?;
            if file.is_some() {
                crate::persist::set_recorded(&maps, file)?;
            }
        }
    }
    let maps = FwMaps::open(pins)?;
    let mut meta = maps.meta()?;
    // Flows that exist already (the SSH session running this, say) go into
    // conntrack before ingress filtering starts, so nothing is cut.
    let sockets = crate::sockets::connected()?;
    let seeded = crate::conntrack::seed(&maps, &sockets)?;
    let mut report = UpReport {
        loaded: fresh,
        attached: Vec::new(),
        seeded,
        repaired,
    };
    for i in &ifaces {
        match attach(pins, &maps, &mut meta, i, hooks) {
            Ok(a) => report.attached.push(a),
            Err(e) => {
                // Leave nothing half-done: undo this call's attachments.
                for a in &report.attached {
                    let _ = detach(pins, &maps, &mut meta, &a.name);
                }
                if fresh {
                    let _ = pins.remove_all();
                }
                return Err(e);
            }
        }
    }
    Ok(report)
}

fn leftovers_note(pins: &PinDir) -> String {
    format!(
        "removed the leftovers of an interrupted `fw up` or `fw down` under {} (pins without fw's META map)",
        pins.root().display()
    )
}

/// Where the pins disagree with META: what a `fw up` or `fw down` killed
/// halfway leaves behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HalfState {
    /// Link pins of interfaces META does not list (`fw up` killed between
    /// pinning a link and recording the interface): still attached, unseen.
    pub stray_links: Vec<(PathBuf, u32)>,
    /// Interfaces META lists with a link pin missing (`fw down` killed
    /// between unpinning and recording it): not, or half, attached.
    pub unlinked: Vec<String>,
}

impl HalfState {
    pub fn is_empty(&self) -> bool {
        self.stray_links.is_empty() && self.unlinked.is_empty()
    }
}

/// Both of fw's programs are attached to the interface of `m` (or it is
/// gone, which detached them).
pub fn attached(pins: &PinDir, m: &IfaceMeta) -> bool {
    let egress = if egress_hook::is_clsact(m.tc_mode) {
        !iface::exists(m.ifindex)
            || egress_hook::fw_filter_present(m.ifindex, program_id(pins, PROG_EGRESS).ok())
    } else {
        pins.tc_link(m.ifindex).exists()
    };
    pins.xdp_link(m.ifindex).exists() && egress
}

/// How one of fw's hooks on an interface stands, as the kernel sees it
/// (not only the pins: [`attached`] trusts those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    Attached,
    /// The link pin is gone (removed by hand, or an interrupted `fw down`):
    /// unpinning the link detached it.
    PinMissing,
    /// The link (or clsact filter) no longer runs fw's program on this
    /// interface: detached by someone else (`bpftool link detach`, `tc
    /// filter del`), or the interface is gone.
    Detached,
}

/// The kernel's view of the link pinned at `path`: attached to `ifindex`
/// and running `prog` (when fw's program pin says which it is).
fn link_state(path: &std::path::Path, ifindex: u32, prog: Option<u32>) -> HookState {
    match crate::bpf_batch::pinned_link_target(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HookState::PinMissing,
        Err(_) => HookState::Detached,
        Ok(t) if t.ifindex == ifindex && prog.is_none_or(|p| p == t.prog_id) => HookState::Attached,
        Ok(_) => HookState::Detached,
    }
}

/// Whether fw's XDP program really filters the interface of `m`.
pub fn ingress_state(pins: &PinDir, m: &IfaceMeta) -> HookState {
    link_state(
        &pins.xdp_link(m.ifindex),
        m.ifindex,
        program_id(pins, PROG_INGRESS).ok(),
    )
}

/// Whether fw's egress program really sees what the interface of `m` sends.
pub fn egress_state(pins: &PinDir, m: &IfaceMeta) -> HookState {
    let prog = program_id(pins, PROG_EGRESS).ok();
    if egress_hook::is_clsact(m.tc_mode) {
        return if egress_hook::fw_filter_present(m.ifindex, prog) {
            HookState::Attached
        } else {
            HookState::Detached
        };
    }
    link_state(&pins.tc_link(m.ifindex), m.ifindex, prog)
}

pub fn half_state(pins: &PinDir, meta: &Meta) -> HalfState {
    let listed: Vec<u32> = meta
        .ifaces
        .iter()
        .filter(|m| m.slot != 0)
        .map(|m| m.ifindex)
        .collect();
    HalfState {
        stray_links: pins
            .link_pins()
            .into_iter()
            .filter(|(_, idx)| !listed.contains(idx))
            .collect(),
        unlinked: meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0 && !attached(pins, m))
            .map(|m| iface::name_from_bytes(&m.name))
            .collect(),
    }
}

/// Finishes what an interrupted `fw up`/`fw down` left: unpins stray links
/// (which detaches them), completes half-done detaches, and drops the entry
/// of an interface in `bringing_up` that was deleted and made again (same
/// name, new ifindex). Returns what it did, in words.
fn repair(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    bringing_up: &[Iface],
) -> Result<Vec<(u32, String)>> {
    let half = half_state(pins, meta);
    let mut done = Vec::new();
    for (path, ifindex) in &half.stray_links {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("unpinning {}", path.display()), e)),
        }
        maps.set_iface_slot(*ifindex, 0)?;
        done.push((
            *ifindex,
            format!(
                "detached {} (ifindex {ifindex}), left attached by an interrupted `fw up`",
                path.display()
            ),
        ));
    }
    for name in &half.unlinked {
        let ifindex = entry(meta, name).map_or(0, |m| m.ifindex);
        detach(pins, maps, meta, name)?;
        done.push((
            ifindex,
            format!("finished detaching {name}, left half-detached by an interrupted `fw down`"),
        ));
    }
    for i in bringing_up {
        let stale = entry(meta, &i.name).filter(|m| m.ifindex != i.index);
        if let Some(m) = stale {
            let old = m.ifindex;
            detach(pins, maps, meta, &i.name)?;
            done.push((
                old,
                format!(
                    "dropped the entry of {} (ifindex {old}): the interface was deleted and made again (ifindex {})",
                    i.name, i.index
                ),
            ));
        }
    }
    Ok(done)
}

/// Loads the object, pins maps and programs under `pins` and writes `cfg`,
/// attaching nothing. `fw up` builds on it; tests and benches run the
/// returned programs through BPF_PROG_TEST_RUN.
pub fn load_and_pin(pins: &PinDir, cfg: &Config) -> Result<Ebpf> {
    load_and_pin_recording(pins, cfg, None)
}

/// [`load_and_pin`], recording `file` as the config file fw runs.
fn load_and_pin_recording(pins: &PinDir, cfg: &Config, file: Option<&Record>) -> Result<Ebpf> {
    pins.prepare()?;
    let mut ebpf: Ebpf = EbpfLoader::new()
        .map_max_entries(names::CONNTRACK, cfg.conntrack_entries)
        .map_max_entries(names::ALLOW_SRC, cfg.source_prefixes)
        .load(EBPF_OBJECT)?;
    // META is pinned last, with its content (below).
    for name in names::PINNED.into_iter().filter(|&n| n != names::META) {
        let map = ebpf.map(name).ok_or_else(|| Error::Map {
            name,
            source: Box::new(aya::maps::MapError::InvalidName {
                name: name.to_string(),
            }),
        })?;
        let path = pins.map(name);
        map.pin(&path).map_err(|source| Error::Pin {
            path,
            source: Box::new(source),
        })?;
    }
    let xdp: &mut Xdp = program(&mut ebpf, PROG_INGRESS)?;
    xdp.load().map_err(|source| Error::Program {
        name: PROG_INGRESS,
        source: Box::new(source),
    })?;
    let path = pins.prog(PROG_INGRESS);
    xdp.pin(&path).map_err(|source| Error::Pin {
        path,
        source: Box::new(source),
    })?;
    let tc: &mut SchedClassifier = program(&mut ebpf, PROG_EGRESS)?;
    tc.load().map_err(|source| Error::Program {
        name: PROG_EGRESS,
        source: Box::new(source),
    })?;
    let path = pins.prog(PROG_EGRESS);
    tc.pin(&path).map_err(|source| Error::Pin {
        path,
        source: Box::new(source),
    })?;

    let maps = FwMaps::new_unchecked(pins);
    maps.set_config(&cfg.kernel())?;
    maps.write_policy(&cfg.policy)?;
    crate::persist::set_recorded(&maps, file)?;
    // META last, pinned only once written: its pin is what marks fw as
    // loaded, so a load killed before this point is mere leftovers.
    let meta = Meta {
        loaded_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        reject_rate: cfg.reject_rate,
        reject_burst: cfg.reject_burst,
        ct_entries: cfg.conntrack_entries,
        ..Meta::default()
    };
    let map = ebpf.map_mut(names::META).ok_or_else(|| Error::Map {
        name: names::META,
        source: Box::new(aya::maps::MapError::InvalidName {
            name: names::META.to_string(),
        }),
    })?;
    FwMaps::write_unpinned_meta(map, &meta)?;
    let path = pins.map(names::META);
    map.pin(&path).map_err(|source| Error::Pin {
        path,
        source: Box::new(source),
    })?;
    Ok(ebpf)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or(Error::Program {
        name,
        source: Box::new(aya::programs::ProgramError::UnexpectedProgramType),
    })?;
    p.try_into().map_err(|source| Error::Program {
        name,
        source: Box::new(source),
    })
}

/// Kernel id of the pinned program `name` (e.g. to find the maps it uses,
/// such as aya-log's buffer, which is not pinned).
pub fn program_id(pins: &PinDir, name: &'static str) -> Result<u32> {
    aya::programs::ProgramInfo::from_pin(pins.prog(name))
        .map(|info| info.id())
        .map_err(|source| Error::Program {
            name,
            source: Box::new(source),
        })
}

/// Replaces the running policy and settings with `cfg` (no reload). The
/// caller holds [`crate::lock`].
pub fn apply_config(pins: &PinDir, cfg: &Config) -> Result<()> {
    let maps = FwMaps::open(pins)?;
    let mut k = cfg.kernel();
    // Keep timeouts the running instance was loaded with.
    let running = maps.config()?;
    k.ct_tcp_syn_ns = running.ct_tcp_syn_ns;
    k.ct_tcp_established_ns = running.ct_tcp_established_ns;
    k.ct_tcp_closing_ns = running.ct_tcp_closing_ns;
    k.ct_udp_ns = running.ct_udp_ns;
    k.ct_udp_stream_ns = running.ct_udp_stream_ns;
    k.ct_icmp_ns = running.ct_icmp_ns;
    // Never a window where a packet both configs pass is rejected: the
    // policy diff leaves ports open in both untouched (write_policy), and
    // dry run goes on before the policy narrows, off only after it widened.
    let dry_run_first = k.flags & CFG_DRY_RUN != 0 && running.flags & CFG_DRY_RUN == 0;
    if dry_run_first {
        maps.set_config(&k)?;
    }
    if let Err(e) = maps.write_policy(&cfg.policy) {
        // The policy is back as it was (or the error says it is not): so
        // are the settings.
        if dry_run_first {
            let _ = maps.set_config(&running);
        }
        return Err(e);
    }
    if !dry_run_first {
        maps.set_config(&k)?;
    }
    let mut meta = maps.meta()?;
    meta.reject_rate = cfg.reject_rate;
    meta.reject_burst = cfg.reject_burst;
    maps.set_meta(&meta)
}

fn attach(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    i: &Iface,
    hooks: Hooks,
) -> Result<Attached> {
    let slot_idx = meta
        .ifaces
        .iter()
        .position(|m| m.slot == 0)
        .ok_or(Error::TooManyInterfaces(MAX_IFACES))?;
    let slot = slot_idx as u32 + 1;
    // Counters first, so the very first packet lands in this interface's slot.
    maps.set_iface_slot(i.index, slot)?;
    let entry = |xdp_mode, tc_mode| IfaceMeta {
        ifindex: i.index,
        slot,
        xdp_mode,
        tc_mode,
        name: iface::name_bytes(&i.name),
    };

    // Egress before ingress: replies to what the host sends must be known
    // before the ingress policy starts judging them.
    let tc_mode = match attach_egress(pins, maps, meta, slot_idx, i, hooks.egress, entry) {
        Ok(m) => m,
        Err(e) => {
            let _ = maps.set_iface_slot(i.index, 0);
            return Err(e);
        }
    };
    let (xdp_mode, xdp) = match attach_xdp(pins, i, hooks.xdp) {
        Ok(v) => v,
        Err(e) => {
            let _ = detach_egress(pins, i.index, tc_mode);
            let _ = maps.set_iface_slot(i.index, 0);
            if meta.ifaces[slot_idx].slot != 0 {
                meta.ifaces[slot_idx] = IfaceMeta::default();
                let _ = maps.set_meta(meta);
            }
            return Err(e);
        }
    };
    meta.ifaces[slot_idx] = entry(xdp_mode, tc_mode);
    maps.set_meta(meta)?;
    Ok(Attached {
        name: i.name.clone(),
        xdp,
        egress: egress_hook::mode_name(tc_mode),
    })
}

/// Attaches `fw_egress` to `i` on the first hook of `egress` the kernel
/// has; returns the `tc_mode` to record.
fn attach_egress(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    slot_idx: usize,
    i: &Iface,
    egress: Egress,
    entry: impl Fn(u32, u32) -> IfaceMeta,
) -> Result<u32> {
    let mut last = None;
    for &hook in egress.tries() {
        let r = match hook {
            Hook::Tcx => egress_hook::attach_tcx(pins, i).map(|()| TC_MODE_TCX),
            Hook::Clsact => attach_clsact(pins, maps, meta, slot_idx, i, &entry),
        };
        match r {
            Err(e) if hook == Hook::Tcx && egress_hook::lacks_tcx(&e) => last = Some(e),
            r => return r,
        }
    }
    Err(last.expect("at least one hook is tried"))
}

/// Puts `fw_egress` on `i`'s clsact egress (adding the qdisc if there is
/// none); returns the `tc_mode` to record. The interface's entry is in
/// META before the qdisc and filter go on: a filter has no pin, so META is
/// how a later command finds (and removes) what a killed `fw up` left.
fn attach_clsact(
    pins: &PinDir,
    maps: &FwMaps,
    meta: &mut Meta,
    slot_idx: usize,
    i: &Iface,
    entry: impl Fn(u32, u32) -> IfaceMeta,
) -> Result<u32> {
    let mode = |own| {
        if own {
            TC_MODE_CLSACT_OWN
        } else {
            TC_MODE_CLSACT
        }
    };
    let mut own = !egress_hook::has_clsact(i)?;
    meta.ifaces[slot_idx] = entry(0, mode(own));
    let mut steps = || -> Result<()> {
        maps.set_meta(meta)?;
        if own && !egress_hook::add_clsact(i)? {
            // Somebody else added one in the meantime: theirs to keep.
            own = false;
            meta.ifaces[slot_idx] = entry(0, mode(own));
            maps.set_meta(meta)?;
        }
        egress_hook::attach_clsact(pins, i)
    };
    match steps() {
        Ok(()) => Ok(mode(own)),
        Err(e) => {
            let prog = program_id(pins, PROG_EGRESS).ok();
            let _ = egress_hook::detach_clsact(i.index, own, prog);
            meta.ifaces[slot_idx] = IfaceMeta::default();
            let _ = maps.set_meta(meta);
            Err(e)
        }
    }
}

/// Undoes [`attach_egress`] on interface `ifindex`.
fn detach_egress(pins: &PinDir, ifindex: u32, tc_mode: u32) -> Result<()> {
    if egress_hook::is_clsact(tc_mode) {
        let prog = program_id(pins, PROG_EGRESS).ok();
        return egress_hook::detach_clsact(ifindex, tc_mode == TC_MODE_CLSACT_OWN, prog);
    }
    let path = pins.tc_link(ifindex);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("unpinning {}", path.display()), e)),
    }
}

fn attach_xdp(pins: &PinDir, i: &Iface, mode: Mode) -> Result<(u32, &'static str)> {
    let mut xdp = Xdp::from_pin(
        pins.prog(PROG_INGRESS),
        aya_obj::programs::XdpAttachType::Interface,
    )
    .map_err(|source| Error::Program {
        name: PROG_INGRESS,
        source: Box::new(source),
    })?;
    let tries: &[(XdpMode, u32, &'static str)] = match mode {
        Mode::Auto => &[
            (XdpMode::Driver, XDP_MODE_NATIVE, "native"),
            (XdpMode::Skb, XDP_MODE_GENERIC, "generic"),
        ],
        Mode::Native => &[(XdpMode::Driver, XDP_MODE_NATIVE, "native")],
        Mode::Generic => &[(XdpMode::Skb, XDP_MODE_GENERIC, "generic")],
    };
    let mut last = None;
    for &(m, code, name) in tries {
        match while_link_released(|| xdp.attach_to_if_index(i.index, m)) {
            Ok(id) => {
                let link = xdp.take_link(id).map_err(|source| Error::Program {
                    name: PROG_INGRESS,
                    source: Box::new(source),
                })?;
                pin_link(link, pins.xdp_link(i.index))?;
                return Ok((code, name));
            }
            Err(e) => last = Some((name, e)),
        }
    }
    let (name, source) = last.expect("at least one mode is tried");
    Err(Error::XdpAttach {
        iface: i.name.clone(),
        mode: name,
        hint: if mode == Mode::Native {
            " (the driver may lack native XDP: try `--mode generic`)"
        } else {
            " (is another XDP program attached? see `ip link show`)"
        },
        source: Box::new(source),
    })
}

/// Pins an attachment's link at `path`: the pin, not this process, then
/// keeps it attached.
pub(crate) fn pin_link<L>(link: L, path: PathBuf) -> Result<()>
where
    L: TryInto<FdLink, Error = aya::programs::links::LinkError>,
{
    let fd: FdLink = link.try_into().map_err(|e| Error::Link {
        path: path.clone(),
        source: Box::new(e),
    })?;
    fd.pin(&path).map_err(|source| Error::Pin {
        path,
        source: Box::new(source),
    })?;
    Ok(())
}

/// Runs `attach` again while it fails with EEXIST/EBUSY, for up to a
/// second: the kernel releases an unpinned link from a work queue, so right
/// after a detach (a `fw down` then `fw up`, or a repair) the old link may
/// still hold the hook for a moment.
pub(crate) fn while_link_released<T>(
    mut attach: impl FnMut() -> std::result::Result<T, aya::programs::ProgramError>,
) -> std::result::Result<T, aya::programs::ProgramError> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match attach() {
            Err(e) if busy(&e) && std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// The error (or one of its causes) is EEXIST or EBUSY.
fn busy(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(io.raw_os_error(), Some(libc::EEXIST | libc::EBUSY));
        }
        cur = c.source();
    }
    false
}

/// Where in `meta` the interface fw is up on under `name` is listed.
fn position(meta: &Meta, name: &str) -> Option<usize> {
    meta.ifaces
        .iter()
        .position(|m| m.slot != 0 && iface::name_from_bytes(&m.name) == name)
}

/// The `Meta` entry of the interface fw is up on under `name`, if any.
pub(crate) fn entry<'a>(meta: &'a Meta, name: &str) -> Option<&'a IfaceMeta> {
    position(meta, name).map(|p| &meta.ifaces[p])
}

/// Detaches `name`: unpinning a link nobody else holds destroys it.
fn detach(pins: &PinDir, maps: &FwMaps, meta: &mut Meta, name: &str) -> Result<()> {
    let pos = position(meta, name).ok_or_else(|| Error::NotUpOn(name.to_string()))?;
    let m = meta.ifaces[pos];
    let path = pins.xdp_link(m.ifindex);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("unpinning {}", path.display()), e)),
    }
    detach_egress(pins, m.ifindex, m.tc_mode)?;
    maps.set_iface_slot(m.ifindex, 0)?;
    meta.ifaces[pos] = IfaceMeta::default();
    maps.set_meta(meta)
}

/// What `fw down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub detached: Vec<String>,
    /// Everything was removed (no interface left).
    pub unloaded: bool,
    pub was_loaded: bool,
    /// Half-done work of an interrupted `fw up`/`fw down` that was finished.
    pub repaired: Vec<String>,
}

/// Detaches `names_` (all when empty); unloads when none is left.
pub fn down(pins: &PinDir, names_: &[String]) -> Result<DownReport> {
    require_root("fw down")?;
    let _lock = crate::lock::take()?;
    let mut report = DownReport::default();
    if !pins.is_loaded() {
        if pins.has_anything() {
            // Leftovers of an interrupted `fw up` or `fw down`: clean them.
            pins.remove_all()?;
            report.unloaded = true;
            report.repaired.push(leftovers_note(pins));
            return Ok(report);
        }
        if let Some(n) = names_.first() {
            return Err(Error::NotUpOn(n.clone()));
        }
        return Ok(report);
    }
    report.was_loaded = true;
    let maps = match FwMaps::open(pins) {
        Ok(m) => m,
        Err(Error::StalePin { .. }) if names_.is_empty() => {
            // Pins of another fw build: they can still be removed, which
            // detaches whatever they hold.
            pins.remove_all()?;
            report.unloaded = true;
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let mut meta = maps.meta()?;
    let before = meta;
    let repaired = repair(pins, &maps, &mut meta, &[])?;
    let listed = |meta: &Meta, n: &str| entry(meta, n).map(|m| m.ifindex);
    let mut targets = Vec::new();
    if names_.is_empty() {
        targets = meta
            .ifaces
            .iter()
            .filter(|m| m.slot != 0)
            .map(|m| iface::name_from_bytes(&m.name))
            .collect();
    }
    for n in names_ {
        if listed(&meta, n).is_some() {
            targets.push(n.clone());
            continue;
        }
        // The repair may just have finished detaching it.
        let idx = listed(&before, n).or_else(|| iface::resolve(n).ok().map(|i| i.index));
        if idx.is_some_and(|i| repaired.iter().any(|r| r.0 == i)) {
            report.detached.push(n.clone());
            continue;
        }
        return Err(Error::NotUpOn(n.clone()));
    }
    report.repaired = repaired.into_iter().map(|r| r.1).collect();
    for n in &targets {
        detach(pins, &maps, &mut meta, n)?;
        report.detached.push(n.clone());
    }
    if meta.ifaces.iter().all(|m| m.slot == 0) {
        drop(maps);
        pins.remove_all()?;
        report.unloaded = true;
    }
    Ok(report)
}
