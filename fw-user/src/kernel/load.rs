//! Loading fw's eBPF object and pinning its maps and programs.
use std::time::SystemTime;

use aya::{
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use fw_common::{maps as names, Meta, PROG_EGRESS, PROG_INGRESS};

use crate::{
    error::{Error, Result},
    kernel::{maps::FwMaps, pins::PinDir, running},
    model::{config::Config, record::Record},
};

/// The eBPF object, built by build.rs from fw-ebpf.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fw-ebpf"));

/// Loads the object, pins maps and programs under `pins` and writes `cfg`,
/// attaching nothing. `fw up` builds on it; tests and benches run the
/// returned programs through BPF_PROG_TEST_RUN.
pub fn load_and_pin(pins: &PinDir, cfg: &Config) -> Result<Ebpf> {
    load_and_pin_recording(pins, cfg, None)
}

/// [`load_and_pin`], recording `file` as the config file fw runs.
pub fn load_and_pin_recording(pins: &PinDir, cfg: &Config, file: Option<&Record>) -> Result<Ebpf> {
    pins.prepare()?;
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(names::CONNTRACK, cfg.conntrack_entries)
        .map_max_entries(names::CT_UNCONFIRMED, cfg.conntrack_unconfirmed_entries)
        .map_max_entries(names::ALLOW_SRC, cfg.source_prefixes)
        .map_max_entries(names::BLOCK_V4, cfg.block_prefixes)
        .map_max_entries(names::BLOCK_V6, cfg.block_prefixes);
    for name in names::LIMIT_STATE {
        loader.map_max_entries(name, cfg.limit_sources);
    }
    let mut ebpf: Ebpf = loader.load(EBPF_OBJECT)?;
    // META is pinned last, with its content (below).
    for name in names::PINNED.into_iter().filter(|&n| n != names::META) {
        let map = ebpf.map(name).ok_or_else(|| Error::no_map(name))?;
        let path = pins.map(name);
        map.pin(&path).map_err(Error::pin(path))?;
    }
    let xdp: &mut Xdp = program(&mut ebpf, PROG_INGRESS)?;
    xdp.load().map_err(Error::program(PROG_INGRESS))?;
    let path = pins.prog(PROG_INGRESS);
    xdp.pin(&path).map_err(Error::pin(path))?;
    let tc: &mut SchedClassifier = program(&mut ebpf, PROG_EGRESS)?;
    tc.load().map_err(Error::program(PROG_EGRESS))?;
    let path = pins.prog(PROG_EGRESS);
    tc.pin(&path).map_err(Error::pin(path))?;

    let maps = FwMaps::new_unchecked(pins);
    maps.set_config(&cfg.kernel())?;
    maps.write_policy(&cfg.policy)?;
    maps.write_limits(&cfg.limits)?;
    running::set_recorded(&maps, file)?;
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
        ct_unconfirmed_entries: cfg.conntrack_unconfirmed_entries,
        ..Meta::default()
    };
    let map = ebpf
        .map_mut(names::META)
        .ok_or_else(|| Error::no_map(names::META))?;
    FwMaps::write_unpinned_meta(map, &meta)?;
    let path = pins.map(names::META);
    map.pin(&path).map_err(Error::pin(path))?;
    Ok(ebpf)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::no_program(name))?;
    p.try_into().map_err(Error::program(name))
}

/// Kernel id of the pinned program `name` (e.g. to find the maps it uses,
/// such as aya-log's buffer, which is not pinned).
pub fn program_id(pins: &PinDir, name: &'static str) -> Result<u32> {
    aya::programs::ProgramInfo::from_pin(pins.prog(name))
        .map(|info| info.id())
        .map_err(Error::program(name))
}
