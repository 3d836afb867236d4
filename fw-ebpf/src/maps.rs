//! Every map of the program, in one place. Names match `fw_common::maps`.
use crate::parse::Pkt;
use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use fw_common::{
    BlockSet, BlockValue, Bucket, Config, ConfigFile, Counter, FlowKey, FlowValue, FragKey,
    FragValue, LimitKey, LimitState, LimitTable, Meta, SrcKey, BLOCK_DEFAULT_ENTRIES,
    BLOCK_MAX_SETS, COUNTER_ENTRIES, CT_DEFAULT_ENTRIES, CT_STAT_ENTRIES, CT_UNCONFIRMED_MIN,
    EVENTS_BYTES, FRAG_ENTRIES, LIMIT_DEFAULT_SOURCES, MAX_IFINDEX, PORT_ENTRIES,
    SRC_DEFAULT_ENTRIES,
};

/// Per-CPU packets/bytes per (interface slot, reason).
#[map]
pub static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

/// ifindex -> counter slot, filled by userspace at attach time.
#[map]
pub static IFACE_SLOT: Array<u32> = Array::with_max_entries(MAX_IFINDEX, 0);

/// (proto, port) -> `fw_common::port_entry` (flags and source set).
/// Mmapable, so userspace reads the whole policy in one go and switches an
/// entry with one atomic store (`fw allow`/`deny`/`ports`).
#[map]
pub static PORTS: Array<u32> = Array::with_max_entries(PORT_ENTRIES, BPF_F_MMAPABLE);

/// Per-CPU hits of each allowed (proto, port).
#[map]
pub static PORT_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PORT_ENTRIES, 0);

/// Source prefixes of each source set (the sets of source-restricted
/// ports). Sized at load by `[capacity] source_prefixes`.
#[map]
pub static ALLOW_SRC: LpmTrie<SrcKey, u8> =
    LpmTrie::with_max_entries(SRC_DEFAULT_ENTRIES, BPF_F_NO_PREALLOC);

/// Blocked IPv4 prefixes of every block set (key data: the address, network
/// order). Sized at load by `[capacity] block_prefixes`.
#[map]
pub static BLOCK_V4: LpmTrie<[u8; 4], BlockValue> =
    LpmTrie::with_max_entries(BLOCK_DEFAULT_ENTRIES, BPF_F_NO_PREALLOC);

/// Blocked IPv6 prefixes, as `BLOCK_V4`.
#[map]
pub static BLOCK_V6: LpmTrie<[u8; 16], BlockValue> =
    LpmTrie::with_max_entries(BLOCK_DEFAULT_ENTRIES, BPF_F_NO_PREALLOC);

/// Block set names by id; never read here.
#[map]
pub static BLOCK_SETS: Array<BlockSet> = Array::with_max_entries(BLOCK_MAX_SETS, 0);

/// The per-source limits (`fw limit`), one table read per new flow.
#[map]
pub static LIMITS: Array<LimitTable> = Array::with_max_entries(1, 0);

// One LRU per limit slot, not one shared map nor a map of maps: a flood of
// spoofed sources to one limited port then evicts only that limit's own
// state, and each map is a plain static the verifier sees as a constant
// map pointer (aya-ebpf 0.2 has no map-of-maps type). Sized at load by
// `[capacity] limit_sources`.
#[map]
pub static LIMIT_STATE_0: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_1: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_2: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_3: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_4: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_5: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_6: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);
#[map]
pub static LIMIT_STATE_7: LruHashMap<LimitKey, LimitState> =
    LruHashMap::with_max_entries(LIMIT_DEFAULT_SOURCES, 0);

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Token buckets per CPU (events; slot `BUCKET_REJECT` is unused).
#[map]
pub static RATE_STATE: PerCpuArray<Bucket> = PerCpuArray::with_max_entries(2, 0);

/// The reject bucket: one for all CPUs, so the configured rate is the rate
/// whatever CPU the packets land on (a per-CPU share would give a flood on
/// one RX queue rate/ncpus). Runtime state, not pinned.
#[map]
pub static REJECT_BUCKET: Array<Bucket> = Array::with_max_entries(1, 0);

/// Confirmed flows: the host started them, answered them in a way a
/// spoofed source cannot bring about (a TCP handshake the peer completed),
/// or they were there at `fw up`. Sized at load by `[conntrack] entries`.
#[map]
pub static CONNTRACK: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(CT_DEFAULT_ENTRIES, 0);

/// Unconfirmed flows (a SYN or a datagram nobody answered yet): a flood of
/// new flows churns this table only. Sized at load by `[conntrack]
/// unconfirmed_entries`.
#[map]
pub static CT_UNCONFIRMED: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(CT_UNCONFIRMED_MIN, 0);

/// Conntrack bookkeeping (`CT_STAT_*`), so userspace can count evictions.
#[map]
pub static CT_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(CT_STAT_ENTRIES, 0);

#[map]
pub static FRAGS: LruHashMap<FragKey, FragValue> = LruHashMap::with_max_entries(FRAG_ENTRIES, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Room to copy the quoted packet for checksumming (more than the stack has).
#[map]
pub static SCRATCH: PerCpuArray<[u8; SCRATCH_LEN]> = PerCpuArray::with_max_entries(1, 0);
pub const SCRATCH_LEN: usize = 1536;

/// The parsed packet being decided on (per CPU; too big for the stack).
#[map]
pub static PKT: PerCpuArray<Pkt> = PerCpuArray::with_max_entries(1, 0);

/// fw's own bookkeeping (interfaces, layout version); never read here.
#[map]
pub static META: Array<Meta> = Array::with_max_entries(1, 0);

/// The config file fw writes runtime changes back to; never read here.
#[map]
pub static CONFIG_FILE: Array<ConfigFile> = Array::with_max_entries(1, 0);
