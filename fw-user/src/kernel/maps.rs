//! Typed access to fw's pinned maps: the only place that reads or writes them.
use std::{
    collections::BTreeMap,
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd as _,
};

use aya::maps::{
    lpm_trie::{Key, LpmTrie},
    Array, HashMap, Map, MapData, MapInfo, PerCpuArray, RingBuf,
};
use fw_common::{
    maps as names, BlockSet, BlockValue, Bucket, Config, ConfigFile, Counter, FlowKey, FlowValue,
    FragKey, FragValue, LimitKey, LimitState, LimitTable, Meta, SrcKey, COUNTER_ENTRIES,
    IFACE_SLOTS, LAYOUT_VERSION, PORT_ENTRIES, REASON_COUNT, REASON_SLOTS, SRC_KEY_FIXED_BITS,
};
use ipnet::IpNet;

use crate::{
    error::{Error, Result},
    kernel::{
        batch::{self, MappedU32},
        pins::PinDir,
    },
    model::{
        limit::Limit,
        policy::{Policy, PortRange, Proto},
        source_sets::{self, Layout},
    },
};

/// (name, key size, value size) of every pinned map: a pin whose sizes differ
/// was made by another fw build.
fn expected_layout() -> Vec<(&'static str, u32, u32)> {
    let mut v = vec![
        (names::COUNTERS, 4, size_of::<Counter>() as u32),
        (names::IFACE_SLOT, 4, 4),
        (names::PORTS, 4, 4),
        (names::PORT_HITS, 4, 8),
        (names::ALLOW_SRC, 4 + size_of::<SrcKey>() as u32, 1),
        (names::CONFIG, 4, size_of::<Config>() as u32),
        (names::RATE_STATE, 4, size_of::<Bucket>() as u32),
        (
            names::CONNTRACK,
            size_of::<FlowKey>() as u32,
            size_of::<FlowValue>() as u32,
        ),
        (
            names::CT_UNCONFIRMED,
            size_of::<FlowKey>() as u32,
            size_of::<FlowValue>() as u32,
        ),
        (
            names::FRAGS,
            size_of::<FragKey>() as u32,
            size_of::<FragValue>() as u32,
        ),
        (names::EVENTS, 0, 0),
        (names::CT_STATS, 4, 8),
        (names::CONFIG_FILE, 4, size_of::<ConfigFile>() as u32),
        (names::META, 4, size_of::<Meta>() as u32),
        (names::BLOCK_V4, 4 + 4, size_of::<BlockValue>() as u32),
        (names::BLOCK_V6, 4 + 16, size_of::<BlockValue>() as u32),
        (names::BLOCK_SETS, 4, size_of::<BlockSet>() as u32),
        (names::LIMITS, 4, size_of::<LimitTable>() as u32),
    ];
    for name in names::LIMIT_STATE {
        v.push((
            name,
            size_of::<LimitKey>() as u32,
            size_of::<LimitState>() as u32,
        ));
    }
    v
}

/// Counters of one interface slot, indexed by `Reason`.
pub type SlotCounters = [Counter; REASON_COUNT];

/// fw's two conntrack tables (see fw-ebpf's conntrack.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtTable {
    /// `CONNTRACK`: flows traffic went both ways on, the host's own, seeded ones.
    Confirmed,
    /// `CT_UNCONFIRMED`: a SYN or a first datagram nobody answered yet.
    Unconfirmed,
}

impl CtTable {
    pub const ALL: [CtTable; 2] = [CtTable::Confirmed, CtTable::Unconfirmed];

    /// The map's name.
    pub fn map(self) -> &'static str {
        match self {
            CtTable::Confirmed => names::CONNTRACK,
            CtTable::Unconfirmed => names::CT_UNCONFIRMED,
        }
    }

    /// The `CT_STATS` counters of entries made, and of entries deleted.
    fn stats(self) -> (&'static [u32], &'static [u32]) {
        use fw_common::*;
        match self {
            CtTable::Confirmed => (
                &[CT_STAT_CREATED, CT_STAT_SEEDED],
                &[CT_STAT_DELETED, CT_STAT_FLUSHED],
            ),
            CtTable::Unconfirmed => (
                &[CT_STAT_U_CREATED],
                &[CT_STAT_U_DELETED, CT_STAT_U_FLUSHED],
            ),
        }
    }

    fn flushed_stat(self) -> u32 {
        match self {
            CtTable::Confirmed => fw_common::CT_STAT_FLUSHED,
            CtTable::Unconfirmed => fw_common::CT_STAT_U_FLUSHED,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FwMaps {
    pins: PinDir,
}

impl FwMaps {
    /// Opens the maps of a loaded fw, refusing pins of another layout.
    pub fn open(pins: &PinDir) -> Result<FwMaps> {
        pins.check_readable()?;
        if !pins.is_loaded() {
            return Err(Error::NotLoaded(pins.root().to_path_buf()));
        }
        let maps = FwMaps { pins: pins.clone() };
        maps.check_layout()?;
        Ok(maps)
    }

    /// Like [`FwMaps::open`], checking only the maps in `only` (and the
    /// layout version): for the commands that run once per ban (fail2ban
    /// starts one `fw block` per ban), where opening and checking all of
    /// fw's maps was most of the cost. Maps outside `only` are still
    /// checked by type as they are opened (aya refuses other sizes).
    pub fn open_only(pins: &PinDir, only: &[&str]) -> Result<FwMaps> {
        pins.check_readable()?;
        if !pins.is_loaded() {
            return Err(Error::NotLoaded(pins.root().to_path_buf()));
        }
        let maps = FwMaps { pins: pins.clone() };
        maps.check_maps(|name| only.contains(&name))?;
        Ok(maps)
    }

    /// The pin dir these maps are under.
    pub fn pins(&self) -> &PinDir {
        &self.pins
    }

    /// Opens without checks (for `fw up`, right after pinning).
    pub(crate) fn new_unchecked(pins: &PinDir) -> FwMaps {
        FwMaps { pins: pins.clone() }
    }

    fn stale(&self, detail: String) -> Error {
        Error::StalePin {
            path: self.pins.root().to_path_buf(),
            detail,
        }
    }

    fn check_layout(&self) -> Result<()> {
        self.check_maps(|_| true)
    }

    /// Checks the layout version and the maps `which` picks.
    fn check_maps(&self, which: impl Fn(&str) -> bool) -> Result<()> {
        for (name, key, value) in expected_layout() {
            if !which(name) {
                continue;
            }
            let path = self.pins.map(name);
            let info = MapInfo::from_pin(&path).map_err(|e| match permission_denied(&e) {
                Some(detail) => Error::NoAccess {
                    path: self.pins.root().to_path_buf(),
                    detail: format!("opening map {name}: {detail}"),
                },
                None => self.stale(format!("map {name}: {e}")),
            })?;
            if name != names::EVENTS && (info.key_size() != key || info.value_size() != value) {
                return Err(self.stale(format!(
                    "map {name} has key/value sizes {}/{}, this fw expects {key}/{value}",
                    info.key_size(),
                    info.value_size()
                )));
            }
        }
        let meta = self.meta()?;
        if meta.layout_version != LAYOUT_VERSION {
            return Err(self.stale(format!(
                "layout version {}, this fw uses {LAYOUT_VERSION}",
                meta.layout_version
            )));
        }
        Ok(())
    }

    fn data(&self, name: &'static str) -> Result<Map> {
        let md = MapData::from_pin(self.pins.map(name)).map_err(Error::map(name))?;
        Map::from_map_data(md).map_err(Error::map(name))
    }

    fn array<V: aya::Pod>(&self, name: &'static str) -> Result<Array<MapData, V>> {
        Array::try_from(self.data(name)?).map_err(Error::map(name))
    }

    /// The only entry of a one-entry array (META, CONFIG, CONFIG_FILE).
    fn single<V: aya::Pod>(&self, name: &'static str) -> Result<V> {
        self.array::<V>(name)?.get(&0, 0).map_err(Error::map(name))
    }

    fn set_single<V: aya::Pod>(&self, name: &'static str, value: &V) -> Result<()> {
        self.array::<V>(name)?
            .set(0, value, 0)
            .map_err(Error::map(name))
    }

    fn per_cpu<V: aya::Pod>(&self, name: &'static str) -> Result<PerCpuArray<MapData, V>> {
        PerCpuArray::try_from(self.data(name)?).map_err(Error::map(name))
    }

    fn allow_src(&self) -> Result<LpmTrie<MapData, SrcKey, u8>> {
        LpmTrie::try_from(self.data(names::ALLOW_SRC)?).map_err(Error::map(names::ALLOW_SRC))
    }

    pub fn meta(&self) -> Result<Meta> {
        self.single(names::META)
    }

    pub fn set_meta(&self, meta: &Meta) -> Result<()> {
        self.set_single(names::META, meta)
    }

    /// Writes META through the freshly loaded object's map, before it is
    /// pinned: the pin then appears with its content, so a pinned META
    /// always means a complete load (a `fw up` killed earlier leaves none).
    pub(crate) fn write_unpinned_meta(map: &mut Map, meta: &Meta) -> Result<()> {
        let mut a: Array<&mut MapData, Meta> =
            Array::try_from(map).map_err(Error::map(names::META))?;
        a.set(0, meta, 0).map_err(Error::map(names::META))
    }

    /// The config file fw loaded or last applied, as recorded.
    pub fn config_file(&self) -> Result<ConfigFile> {
        self.single(names::CONFIG_FILE)
    }

    pub fn set_config_file(&self, rec: &ConfigFile) -> Result<()> {
        self.set_single(names::CONFIG_FILE, rec)
    }

    pub fn config(&self) -> Result<Config> {
        self.single(names::CONFIG)
    }

    pub fn set_config(&self, cfg: &Config) -> Result<()> {
        self.set_single(names::CONFIG, cfg)
    }

    pub fn set_iface_slot(&self, ifindex: u32, slot: u32) -> Result<()> {
        if ifindex >= fw_common::MAX_IFINDEX {
            // Counted in slot 0 by the kernel side; nothing to record.
            return Ok(());
        }
        self.array::<u32>(names::IFACE_SLOT)?
            .set(ifindex, slot, 0)
            .map_err(Error::map(names::IFACE_SLOT))
    }

    /// Counters summed over CPUs, one row per interface slot.
    pub fn counters(&self) -> Result<Vec<SlotCounters>> {
        let map = self.per_cpu::<Counter>(names::COUNTERS)?;
        let mut out = vec![[Counter::default(); REASON_COUNT]; IFACE_SLOTS as usize];
        for idx in 0..COUNTER_ENTRIES {
            let (slot, reason) = ((idx / REASON_SLOTS) as usize, (idx % REASON_SLOTS) as usize);
            if reason >= REASON_COUNT {
                continue;
            }
            let values = map.get(&idx, 0).map_err(Error::map(names::COUNTERS))?;
            let c = &mut out[slot][reason];
            for v in values.iter() {
                c.packets += v.packets;
                c.bytes += v.bytes;
            }
        }
        Ok(out)
    }

    /// Hits of one (proto, port), summed over CPUs.
    pub fn port_hits(&self, proto: Proto, port: u16) -> Result<u64> {
        let map = self.per_cpu::<u64>(names::PORT_HITS)?;
        let values = map
            .get(&(proto.map_base() + port as u32), 0)
            .map_err(Error::map(names::PORT_HITS))?;
        Ok(values.iter().sum())
    }

    /// Hits of each port range of `proto`, summed over its ports and CPUs.
    /// One batch syscall per range (65535 ports x 2 CPUs: ~15 ms), else one
    /// lookup per port.
    pub fn port_hits_ranges(&self, proto: Proto, ranges: &[PortRange]) -> Result<Vec<u64>> {
        let md = MapData::from_pin(self.pins.map(names::PORT_HITS))
            .map_err(Error::map(names::PORT_HITS))?;
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, e)| Error::io("reading the number of possible CPUs", e))?;
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let first = proto.map_base() + r.lo as u32;
            match batch::lookup_array_range(md.fd().as_fd(), 8 * cpus, first, r.len() as u32) {
                Ok(raw) => out.push(
                    raw.chunks_exact(8)
                        .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
                        .fold(0u64, u64::wrapping_add),
                ),
                Err(e) if batch::unsupported(&e) => {
                    let mut sum = 0u64;
                    for port in r.ports() {
                        sum = sum.wrapping_add(self.port_hits(proto, port)?);
                    }
                    out.push(sum);
                }
                Err(e) => return Err(Error::io("reading the port counters (map PORT_HITS)", e)),
            }
        }
        Ok(out)
    }

    /// The `EVENTS` ring buffer (records are `fw_common::Event`). It has one
    /// consumer position, shared by every process that opens it: two
    /// readers at once would each see part of the stream.
    pub fn events(&self) -> Result<RingBuf<MapData>> {
        RingBuf::try_from(self.data(names::EVENTS)?).map_err(Error::map(names::EVENTS))
    }

    /// Entries of `table` (expired ones included) and those that vanished
    /// without being deleted: the LRU evicted them to make room (made −
    /// deleted − present, see `fw_common::CT_STAT_CREATED`). The creations
    /// are read before the table and the deletions after it, so a flow
    /// made or deleted meanwhile never shows as an eviction.
    pub fn conntrack_census(&self, table: CtTable) -> Result<(u64, u64)> {
        self.census_around(table, || self.conntrack_count(table))
    }

    /// [`FwMaps::conntrack_census`] reading every value too: (entries in
    /// the table, those of them `live` accepts, evictions).
    pub fn conntrack_census_live(
        &self,
        table: CtTable,
        live: impl Fn(&FlowValue) -> bool,
    ) -> Result<(u64, u64, u64)> {
        let mut n_live = 0;
        let (present, evicted) = self.census_around(table, || {
            let all = self.table_entries(table)?;
            n_live = all.iter().filter(|(_, v)| live(v)).count() as u64;
            Ok(all.len() as u64)
        })?;
        Ok((present, n_live, evicted))
    }

    /// Runs `walk` (which returns the keys present) between reading the
    /// creations and the deletions of `table`; returns (present, evicted).
    fn census_around(
        &self,
        table: CtTable,
        walk: impl FnOnce() -> Result<u64>,
    ) -> Result<(u64, u64)> {
        let (made, gone) = table.stats();
        let sum_of = |idx: &[u32]| -> Result<u64> {
            let mut n = 0u64;
            for &i in idx {
                n = n.wrapping_add(self.conntrack_stat(i)?);
            }
            Ok(n)
        };
        let made = sum_of(made)?;
        let present = walk()?;
        let deleted = sum_of(gone)?;
        Ok((present, made.saturating_sub(deleted + present)))
    }

    /// One `CT_STATS` counter (`fw_common::CT_STAT_*`), summed over CPUs.
    pub fn conntrack_stat(&self, idx: u32) -> Result<u64> {
        let stats = self.per_cpu::<u64>(names::CT_STATS)?;
        let v = stats.get(&idx, 0).map_err(Error::map(names::CT_STATS))?;
        Ok(v.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
    }

    /// Adds `n` to a counter only userspace writes (seeded, flushed), in
    /// CPU 0's slot: the kernel side never writes these indexes, so
    /// nothing races.
    fn conntrack_add_user_stat(&self, idx: u32, n: u64) -> Result<()> {
        let mut stats = self.per_cpu::<u64>(names::CT_STATS)?;
        let mut v: Vec<u64> = stats
            .get(&idx, 0)
            .map_err(Error::map(names::CT_STATS))?
            .iter()
            .copied()
            .collect();
        if let Some(first) = v.first_mut() {
            *first += n;
        }
        let values =
            aya::maps::PerCpuValues::try_from(v).map_err(|e| Error::io("conntrack stats", e))?;
        stats
            .set(idx, values, 0)
            .map_err(Error::map(names::CT_STATS))
    }

    /// Seeds the confirmed table with `entries` (flows of the socket
    /// table). A flow already tracked (a second `fw up` seeds again) is
    /// refreshed, not counted: only new keys count as seeded, as the
    /// kernel side counts only new keys as created, so evictions stay
    /// exact.
    pub fn conntrack_seed(&self, entries: &[(FlowKey, FlowValue)]) -> Result<()> {
        /// BPF_NOEXIST: create only.
        const NOEXIST: u64 = 1;
        let mut ct = self.table(CtTable::Confirmed)?;
        let mut new = 0;
        for (k, v) in entries {
            match ct.insert(k, v, NOEXIST) {
                Ok(()) => new += 1,
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
                {
                    ct.insert(k, v, 0).map_err(Error::map(names::CONNTRACK))?
                }
                Err(e) => return Err(Error::map(names::CONNTRACK)(e)),
            }
        }
        self.conntrack_add_user_stat(fw_common::CT_STAT_SEEDED, new)
    }

    /// Number of entries of `table` (expired ones included), counting keys
    /// only: cheaper than reading every value.
    pub fn conntrack_count(&self, table: CtTable) -> Result<u64> {
        let mut n = 0;
        for key in self.table(table)?.keys() {
            match key {
                Ok(_) => n += 1,
                // Entries can vanish (LRU eviction) while we walk.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(table.map())(e)),
            }
        }
        Ok(n)
    }

    fn table(&self, table: CtTable) -> Result<HashMap<MapData, FlowKey, FlowValue>> {
        HashMap::try_from(self.data(table.map())?).map_err(Error::map(table.map()))
    }

    /// Every entry of the confirmed table (expired ones included; the
    /// kernel side treats those as absent until the LRU reuses them).
    pub fn conntrack_entries(&self) -> Result<Vec<(FlowKey, FlowValue)>> {
        self.table_entries(CtTable::Confirmed)
    }

    /// Every entry of `table` (expired ones included).
    pub fn table_entries(&self, table: CtTable) -> Result<Vec<(FlowKey, FlowValue)>> {
        let ct = self.table(table)?;
        let mut out = Vec::new();
        for item in ct.iter() {
            match item {
                Ok(kv) => out.push(kv),
                // Entries can vanish (LRU eviction) while we walk.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(table.map())(e)),
            }
        }
        Ok(out)
    }

    /// Kernel memory charged to both conntrack tables (from the maps'
    /// fdinfo).
    pub fn conntrack_memlock(&self) -> Result<Option<u64>> {
        let mut total = None;
        for t in CtTable::ALL {
            let md = MapData::from_pin(self.pins.map(t.map())).map_err(Error::map(t.map()))?;
            if let Some(n) = memlock(&md, t.map())? {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        Ok(total)
    }

    /// Puts an entry into the confirmed table.
    pub fn conntrack_insert(&self, key: &FlowKey, value: &FlowValue) -> Result<()> {
        self.table_insert(CtTable::Confirmed, key, value)
    }

    /// Puts an entry into `table` (tests and benches).
    pub fn table_insert(&self, table: CtTable, key: &FlowKey, value: &FlowValue) -> Result<()> {
        self.table(table)?
            .insert(key, value, 0)
            .map_err(Error::map(table.map()))
    }

    /// Removes `keys` from `table`; returns how many were there (one gone
    /// meanwhile, expired and reused or closed, is no error). Counted as
    /// flushed, so they never show as evictions.
    pub fn conntrack_remove_all(&self, table: CtTable, keys: &[FlowKey]) -> Result<usize> {
        let mut ct = self.table(table)?;
        let mut n = 0;
        let mut err = None;
        for k in keys {
            match ct.remove(k) {
                Ok(()) => n += 1,
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    err = Some(Error::map(table.map())(e));
                    break;
                }
            }
        }
        // Counted even when a removal failed halfway: those went.
        self.conntrack_add_user_stat(table.flushed_stat(), n as u64)?;
        match err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    pub fn conntrack_remove(&self, key: &FlowKey) -> Result<()> {
        self.table(CtTable::Confirmed)?
            .remove(key)
            .map_err(Error::map(names::CONNTRACK))
    }

    /// Every PORTS entry (index = protocol base + port): read through a
    /// mapping of the array (~1 ms), else one batch syscall (~28 ms), else
    /// 131072 lookups (~90 ms).
    fn port_entries_all(&self) -> Result<Vec<u32>> {
        let md =
            MapData::from_pin(self.pins.map(names::PORTS)).map_err(Error::map(names::PORTS))?;
        match MappedU32::new(md.fd().as_fd(), PORT_ENTRIES, false) {
            Ok(m) => return Ok(m.all()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(Error::io("reading the port policy (map PORTS)", e)),
        }
        match batch::lookup_array(md.fd().as_fd(), 4, PORT_ENTRIES) {
            Ok(v) => {
                return Ok(v
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            }
            Err(e) if batch::unsupported(&e) => {}
            Err(e) => return Err(Error::io("reading the port policy (map PORTS)", e)),
        }
        let ports = self.array::<u32>(names::PORTS)?;
        (0..PORT_ENTRIES)
            .map(|i| ports.get(&i, 0).map_err(Error::map(names::PORTS)))
            .collect()
    }

    /// Max entries of ALLOW_SRC (`[capacity] source_prefixes` at load).
    pub fn source_capacity(&self) -> Result<u32> {
        MapInfo::from_pin(self.pins.map(names::ALLOW_SRC))
            .map(|i| i.max_entries())
            .map_err(Error::map(names::ALLOW_SRC))
    }

    /// The port policy as the kernel holds it: PORTS and the source sets.
    pub fn source_layout(&self) -> Result<Layout> {
        let mut sets: BTreeMap<u16, std::collections::BTreeSet<IpNet>> = BTreeMap::new();
        let mut keys = 0;
        for key in self.allow_src()?.keys() {
            let key = key.map_err(Error::map(names::ALLOW_SRC))?;
            keys += 1;
            if let Some((set, net)) = decode_src(&key) {
                sets.entry(set).or_default().insert(net);
            }
        }
        Ok(Layout {
            ports: self.port_entries_all()?,
            sets,
            keys,
            max_entries: self.source_capacity()?,
        })
    }

    /// The policy the kernel side enforces right now.
    pub fn policy(&self) -> Result<Policy> {
        Ok(self.source_layout()?.policy())
    }

    /// Refuses, changing nothing, a policy that would not fit the running
    /// maps (what [`FwMaps::write_policy`] checks, for a caller that wants
    /// to say so before it prints anything).
    pub fn check_policy_fits(&self, new: &Policy) -> Result<()> {
        source_sets::plan(&self.source_layout()?, new).map(drop)
    }

    /// Moves the kernel side to `new`, touching only what differs, all or
    /// nothing (see [`source_sets`]): refused before any write when it does
    /// not fit, undone when a write fails.
    pub fn write_policy(&self, new: &Policy) -> Result<()> {
        let change = source_sets::plan(&self.source_layout()?, new)?;
        if change.is_empty() {
            return Ok(());
        }
        let md =
            MapData::from_pin(self.pins.map(names::PORTS)).map_err(Error::map(names::PORTS))?;
        let ports = match MappedU32::new(md.fd().as_fd(), PORT_ENTRIES, true) {
            Ok(m) => PortWriter::Mapped(m),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                PortWriter::Syscall(self.array::<u32>(names::PORTS)?)
            }
            Err(e) => return Err(Error::io("mapping the port policy (map PORTS)", e)),
        };
        let mut backend = Kernel {
            trie: self.allow_src()?,
            ports,
        };
        source_sets::write(&mut backend, &change)
    }
}

/// The blocklist tries, their set names and their room.
impl FwMaps {
    fn block_fd(&self, v6: bool) -> Result<MapData> {
        let name = block_map(v6);
        MapData::from_pin(self.pins.map(name)).map_err(Error::map(name))
    }

    /// Block set names by id (`None`: a free id).
    pub fn block_sets(&self) -> Result<Vec<Option<String>>> {
        // One batch read of the 32 names (not 32 lookups).
        let md = MapData::from_pin(self.pins.map(names::BLOCK_SETS))
            .map_err(Error::map(names::BLOCK_SETS))?;
        let vs = size_of::<BlockSet>();
        let (keys, values) =
            batch::lookup_all(md.fd().as_fd(), 4, vs, fw_common::BLOCK_MAX_SETS as usize)
                .map_err(|e| Error::io("reading the block set names (BLOCK_SETS)", e))?;
        let mut out = vec![None; fw_common::BLOCK_MAX_SETS as usize];
        for (k, v) in keys.chunks_exact(4).zip(values.chunks_exact(vs)) {
            let id = u32::from_ne_bytes([k[0], k[1], k[2], k[3]]) as usize;
            let name = &v[..v.len().min(fw_common::BLOCK_SET_NAME_MAX)];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if let Some(slot) = out.get_mut(id) {
                *slot = (end > 0).then(|| String::from_utf8_lossy(&name[..end]).into_owned());
            }
        }
        Ok(out)
    }

    /// Names block set `id` (`None`: frees the id).
    pub fn set_block_set(&self, id: u32, name: Option<&str>) -> Result<()> {
        let mut s = BlockSet::default();
        if let Some(n) = name {
            let b = n.as_bytes();
            let len = b.len().min(s.name.len());
            s.name[..len].copy_from_slice(&b[..len]);
        }
        self.array::<BlockSet>(names::BLOCK_SETS)?
            .set(id, s, 0)
            .map_err(Error::map(names::BLOCK_SETS))
    }

    /// The kernel's limit table.
    pub fn limit_table(&self) -> Result<LimitTable> {
        self.single(names::LIMITS)
    }

    /// The limits fw runs, by slot (sorted by protocol and port).
    pub fn limits(&self) -> Result<Vec<(usize, Limit)>> {
        let t = self.limit_table()?;
        let mut v: Vec<(usize, Limit)> = t
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, Limit::from_rule(r)?)))
            .collect();
        v.sort_by_key(|(_, l)| *l);
        Ok(v)
    }

    /// Makes the kernel run `limits` (checked by the model). A limit that
    /// runs already keeps its slot and state; a slot that gets another
    /// limit (or the same ports with another window or grouping) gets a
    /// new generation, so what was counted there before counts as
    /// nothing. One write of the table: the next packet sees all of it.
    pub fn write_limits(&self, limits: &[Limit]) -> Result<()> {
        let old = self.limit_table()?;
        let same = |a: &fw_common::LimitRule, b: &fw_common::LimitRule| {
            (a.proto, a.lo, a.hi, a.per4, a.per6, a.window_ns)
                == (b.proto, b.lo, b.hi, b.per4, b.per6, b.window_ns)
        };
        let mut t = LimitTable::default();
        let mut free: Vec<usize> = Vec::new();
        let mut placed = vec![false; limits.len()];
        for (slot, o) in old.rules.iter().enumerate() {
            let keep = limits
                .iter()
                .position(|l| o.proto != 0 && same(o, &l.rule()));
            match keep {
                Some(i) if !placed[i] => {
                    placed[i] = true;
                    t.rules[slot] = fw_common::LimitRule {
                        generation: o.generation,
                        ..limits[i].rule()
                    };
                }
                _ => {
                    t.rules[slot].generation = o.generation;
                    free.push(slot);
                }
            }
        }
        let mut free = free.into_iter();
        for (_, l) in limits.iter().enumerate().filter(|(i, _)| !placed[*i]) {
            let Some(slot) = free.next() else {
                return Err(Error::invalid(
                    "limits",
                    limits.len().to_string(),
                    format!("fw holds at most {} limits", fw_common::LIMIT_SLOTS),
                ));
            };
            t.rules[slot] = fw_common::LimitRule {
                generation: old.rules[slot].generation.wrapping_add(1),
                ..l.rule()
            };
        }
        t.count = t
            .rules
            .iter()
            .rposition(|r| r.proto != 0)
            .map_or(0, |i| i as u32 + 1);
        self.set_single(names::LIMITS, &t)
    }

    /// Entries each limit's state map holds at most (`[capacity] limit_sources`).
    pub fn limit_capacity(&self) -> Result<u32> {
        let name = names::LIMIT_STATE[0];
        MapInfo::from_pin(self.pins.map(name))
            .map(|i| i.max_entries())
            .map_err(Error::map(name))
    }

    /// The source prefixes limit slot `slot` holds state for, of its
    /// current generation.
    pub fn limit_states(&self, slot: usize) -> Result<Vec<(LimitKey, LimitState)>> {
        let name = names::LIMIT_STATE[slot.min(fw_common::LIMIT_SLOTS - 1)];
        let generation = self.limit_table()?.rules[slot.min(fw_common::LIMIT_SLOTS - 1)].generation;
        let map: HashMap<MapData, LimitKey, LimitState> =
            HashMap::try_from(self.data(name)?).map_err(Error::map(name))?;
        let mut out = Vec::new();
        for kv in map.iter() {
            let (k, v) = kv.map_err(Error::map(name))?;
            if v.generation == generation {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Entries each blocklist trie holds at most (`[capacity] block_prefixes`).
    pub fn block_capacity(&self) -> Result<u32> {
        MapInfo::from_pin(self.pins.map(names::BLOCK_V4))
            .map(|i| i.max_entries())
            .map_err(Error::map(names::BLOCK_V4))
    }

    /// Every blocklist entry of one family (expired ones included), batch
    /// by batch, else key by key.
    pub fn block_entries(&self, v6: bool) -> Result<Vec<(IpNet, BlockValue)>> {
        let md = self.block_fd(v6)?;
        let ks = block_key_size(v6);
        let vs = size_of::<BlockValue>();
        let (keys, values) = batch::lookup_all(md.fd().as_fd(), ks, vs, BLOCK_BATCH)
            .map_err(|e| block_io(v6, "reading", e))?;
        Ok(keys
            .chunks_exact(ks)
            .zip(values.chunks_exact(vs))
            .filter_map(|(k, v)| Some((decode_block(k)?, value_from(v))))
            .collect())
    }

    /// The entry of the longest blocked prefix holding `net` that is no
    /// longer than it (its `prefix_len` says which prefix that is).
    pub fn block_lookup(&self, net: &IpNet) -> Result<Option<BlockValue>> {
        let v6 = matches!(net, IpNet::V6(_));
        let name = block_map(v6);
        let map = Map::from_map_data(self.block_fd(v6)?).map_err(Error::map(name))?;
        let len = net.prefix_len() as u32;
        let r = match net {
            IpNet::V4(n) => LpmTrie::<MapData, [u8; 4], BlockValue>::try_from(map)
                .map_err(Error::map(name))?
                .get(&Key::new(len, n.addr().octets()), 0),
            IpNet::V6(n) => LpmTrie::<MapData, [u8; 16], BlockValue>::try_from(map)
                .map_err(Error::map(name))?
                .get(&Key::new(len, n.addr().octets()), 0),
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(name)(e)),
        }
    }

    /// Writes blocklist entries (all of one family), batch by batch. The
    /// kernel stops at the first it refuses: returns how many were written
    /// and the error (ENOSPC: the trie is full).
    pub fn block_write(&self, v6: bool, entries: &[(IpNet, BlockValue)]) -> BlockWrite {
        let md = match self.block_fd(v6) {
            Ok(md) => md,
            Err(e) => return (0, Some(e)),
        };
        let mut keys = Vec::with_capacity(entries.len() * block_key_size(v6));
        let mut values = Vec::with_capacity(entries.len() * size_of::<BlockValue>());
        for (net, v) in entries {
            encode_block(net, &mut keys);
            values.extend_from_slice(value_bytes(v));
        }
        let (done, err) =
            batch::update(md.fd().as_fd(), &keys, &values, entries.len(), BLOCK_BATCH);
        (done, err.map(|e| block_io(v6, "writing", e)))
    }

    /// Removes blocklist entries (all of one family; absent ones are no
    /// error), batch by batch.
    pub fn block_remove(&self, v6: bool, nets: &[IpNet]) -> Result<()> {
        let md = self.block_fd(v6)?;
        let ks = block_key_size(v6);
        let mut keys = Vec::with_capacity(nets.len() * ks);
        for net in nets {
            encode_block(net, &mut keys);
        }
        let mut from = 0;
        while from < nets.len() {
            let (done, err) = batch::delete(
                md.fd().as_fd(),
                &keys[from * ks..],
                nets.len() - from,
                BLOCK_BATCH,
            );
            from += done;
            match err {
                None => break,
                // The kernel stops at a key that is not there: skip it.
                Some(e) if e.raw_os_error() == Some(libc::ENOENT) => from += 1,
                Some(e) => return Err(block_io(v6, "removing from", e)),
            }
        }
        Ok(())
    }

    /// Kernel memory of each blocklist trie (v4, v6), from the maps' fdinfo.
    pub fn block_memory(&self) -> Result<(Option<u64>, Option<u64>)> {
        Ok((
            memlock(&self.block_fd(false)?, names::BLOCK_V4)?,
            memlock(&self.block_fd(true)?, names::BLOCK_V6)?,
        ))
    }
}

/// Entries written, and the error that stopped the write.
pub type BlockWrite = (usize, Option<Error>);

/// Entries per batch syscall.
const BLOCK_BATCH: usize = 16384;

fn block_map(v6: bool) -> &'static str {
    if v6 {
        names::BLOCK_V6
    } else {
        names::BLOCK_V4
    }
}

fn block_key_size(v6: bool) -> usize {
    if v6 {
        4 + 16
    } else {
        4 + 4
    }
}

fn block_io(v6: bool, what: &str, e: std::io::Error) -> Error {
    let name = block_map(v6);
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::E2BIG)) {
        return Error::Block(format!(
            "the blocklist (map {name}) is full: it holds at most the `[capacity]              block_prefixes` of its load per family"
        ));
    }
    Error::io(format!("{what} the blocklist (map {name})"), e)
}

/// An LPM-trie key (prefix length, then the address bytes) appended to `out`.
fn encode_block(net: &IpNet, out: &mut Vec<u8>) {
    out.extend_from_slice(&(net.prefix_len() as u32).to_ne_bytes());
    match net {
        IpNet::V4(n) => out.extend_from_slice(&n.addr().octets()),
        IpNet::V6(n) => out.extend_from_slice(&n.addr().octets()),
    }
}

fn decode_block(k: &[u8]) -> Option<IpNet> {
    let len = u32::from_ne_bytes(k.get(..4)?.try_into().ok()?) as u8;
    let addr: IpAddr = match k.len() {
        8 => Ipv4Addr::from(<[u8; 4]>::try_from(&k[4..8]).ok()?).into(),
        20 => Ipv6Addr::from(<[u8; 16]>::try_from(&k[4..20]).ok()?).into(),
        _ => return None,
    };
    IpNet::new(addr, len).ok()
}

fn value_bytes(v: &BlockValue) -> &[u8] {
    // SAFETY: BlockValue is repr(C) plain integers without padding holes
    // (explicit `_pad`); viewing it as bytes reads initialised memory.
    unsafe {
        std::slice::from_raw_parts(v as *const BlockValue as *const u8, size_of::<BlockValue>())
    }
}

fn value_from(b: &[u8]) -> BlockValue {
    let mut v = BlockValue::default();
    let n = b.len().min(size_of::<BlockValue>());
    // SAFETY: copies at most size_of::<BlockValue>() bytes into a repr(C)
    // value of plain integers, for which any bytes are valid.
    unsafe {
        std::ptr::copy_nonoverlapping(b.as_ptr(), &mut v as *mut BlockValue as *mut u8, n);
    }
    v
}

/// The `memlock:` line of a map's fdinfo (its kernel memory).
fn memlock(md: &MapData, name: &'static str) -> Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let fd = md.fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .map_err(|e| Error::io(format!("reading the fdinfo of map {name}"), e))?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok()))
}

/// Where a policy change is written: ALLOW_SRC, and PORTS through its
/// mapping (one atomic store per entry) or, where the kernel cannot map
/// it, one syscall per entry.
struct Kernel {
    trie: LpmTrie<MapData, SrcKey, u8>,
    ports: PortWriter,
}

enum PortWriter {
    Mapped(MappedU32),
    Syscall(Array<MapData, u32>),
}

impl source_sets::Backend for Kernel {
    fn insert(&mut self, set: u16, net: &IpNet) -> Result<()> {
        self.trie
            .insert(&encode_src(set, net), 1, 0)
            .map_err(Error::map(names::ALLOW_SRC))
    }

    fn remove(&mut self, set: u16, net: &IpNet) -> Result<()> {
        match self.trie.remove(&encode_src(set, net)) {
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            r => r.map_err(Error::map(names::ALLOW_SRC)),
        }
    }

    fn set_port(&mut self, index: u32, value: u32) -> Result<()> {
        match &mut self.ports {
            PortWriter::Mapped(m) => {
                m.set(index, value);
                Ok(())
            }
            PortWriter::Syscall(a) => a.set(index, value, 0).map_err(Error::map(names::PORTS)),
        }
    }
}

/// The OS error of a map syscall refused for lack of privilege (EPERM,
/// EACCES: not root, or kernel.unprivileged_bpf_disabled).
fn permission_denied(e: &aya::maps::MapError) -> Option<String> {
    if let aya::maps::MapError::SyscallError(se) = e {
        if matches!(se.io_error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            return Some(format!("{}: {}", se.call, se.io_error));
        }
    }
    None
}

fn encode_src(set: u16, net: &IpNet) -> Key<SrcKey> {
    let mut addr = [0u8; 16];
    let family = match net {
        IpNet::V4(n) => {
            addr[..4].copy_from_slice(&n.addr().octets());
            4
        }
        IpNet::V6(n) => {
            addr.copy_from_slice(&n.addr().octets());
            6
        }
    };
    Key::new(
        SRC_KEY_FIXED_BITS + net.prefix_len() as u32,
        SrcKey {
            set_be: set.to_be(),
            family,
            _pad: 0,
            addr,
        },
    )
}

fn decode_src(key: &Key<SrcKey>) -> Option<(u16, IpNet)> {
    let d = key.data();
    let len = key.prefix_len().checked_sub(SRC_KEY_FIXED_BITS)? as u8;
    let net = match d.family {
        4 => {
            let a: [u8; 4] = d.addr[..4].try_into().ok()?;
            IpNet::new(std::net::Ipv4Addr::from(a).into(), len).ok()?
        }
        6 => IpNet::new(std::net::Ipv6Addr::from(d.addr).into(), len).ok()?,
        _ => return None,
    };
    Some((u16::from_be(d.set_be), net))
}
