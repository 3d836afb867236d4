//! Types shared by fw's kernel side (fw-ebpf) and userspace (fw-user).
//!
//! Everything here is `#[repr(C)]` with explicit padding so both sides agree
//! on the byte layout of map keys and values. The `user` feature adds
//! `aya::Pod` so userspace can read and write them through aya's typed maps.
#![no_std]

/// Bumped whenever a map's name, key or value layout (or the meaning of a
/// value, such as a new `tc_mode`) changes. Userspace writes it next to the
/// pins and refuses to drive pins made with another layout.
pub const LAYOUT_VERSION: u32 = 12;

/// Why a packet got its verdict. The index of the per-CPU counter it lands in.
/// The names are part of fw's interface (stats, metrics, logs).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NonIp = 0,
    Established = 1,
    Related = 2,
    Ndp = 3,
    Port = 4,
    Reject = 5,
    RejectRatelimited = 6,
    RejectSilent = 7,
    Malformed = 8,
    Martian = 9,
    Fragment = 10,
    WouldReject = 11,
    /// A DHCPv4 server's reply to this host's client (UDP 67 -> 68), passed
    /// so the client's packet socket gets it, as it would behind netfilter.
    Dhcp = 12,
    /// The source is in a blocklist set (`fw block`): checked before
    /// everything else, established flows included.
    Blocked = 13,
    /// A SYN to an open TCP port answered by fw with a SYN cookie SYN-ACK
    /// (XDP_TX) while the kernel says the listener is flooded; no flow is
    /// recorded.
    Syncookie = 14,
    /// A new flow (a SYN, a first datagram) from a source over its
    /// per-source limit (`fw limit`): answered as `[reject] with` says.
    Limited = 15,
}

/// Number of reasons in use.
pub const REASON_COUNT: usize = 16;
/// Counter slots reserved per interface (room to add reasons without a
/// layout change of the counter map).
pub const REASON_SLOTS: u32 = 16;

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::NonIp,
        Reason::Established,
        Reason::Related,
        Reason::Ndp,
        Reason::Port,
        Reason::Reject,
        Reason::RejectRatelimited,
        Reason::RejectSilent,
        Reason::Malformed,
        Reason::Martian,
        Reason::Fragment,
        Reason::WouldReject,
        Reason::Dhcp,
        Reason::Blocked,
        Reason::Syncookie,
        Reason::Limited,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::NonIp => "non_ip",
            Reason::Established => "established",
            Reason::Related => "related",
            Reason::Ndp => "ndp",
            Reason::Port => "port",
            Reason::Reject => "reject",
            Reason::RejectRatelimited => "reject_ratelimited",
            Reason::RejectSilent => "reject_silent",
            Reason::Malformed => "malformed",
            Reason::Martian => "martian",
            Reason::Fragment => "fragment",
            Reason::WouldReject => "would_reject",
            Reason::Dhcp => "dhcp",
            Reason::Blocked => "blocked",
            Reason::Syncookie => "syncookie",
            Reason::Limited => "limited",
        }
    }

    pub const fn from_u32(v: u32) -> Option<Reason> {
        let mut i = 0;
        while i < Reason::ALL.len() {
            if Reason::ALL[i] as u32 == v {
                return Some(Reason::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// Whether packets counted under this reason reach the host's stack.
    pub const fn accepted(self) -> bool {
        matches!(
            self,
            Reason::NonIp
                | Reason::Established
                | Reason::Related
                | Reason::Ndp
                | Reason::Port
                | Reason::WouldReject
                | Reason::Dhcp
        )
    }
}

/// Interfaces get a counter slot each; slot 0 collects interfaces fw does not
/// know (should stay empty).
pub const IFACE_SLOTS: u32 = 16;
/// `IFACE_SLOT` is an array indexed by ifindex; larger ifindexes use slot 0.
pub const MAX_IFINDEX: u32 = 4096;
/// Entries of the `COUNTERS` per-CPU array.
pub const COUNTER_ENTRIES: u32 = IFACE_SLOTS * REASON_SLOTS;

/// Packets and bytes of one (interface, reason) on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// IP protocol numbers fw cares about.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// ICMP (v4) types and codes by name (RFC 792, RFC 1812), as fw uses them.
pub mod icmp {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const ROUTER_ADVERT: u8 = 9;
    pub const ROUTER_SOLICIT: u8 = 10;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    /// The last informational type (address mask reply).
    pub const ADDRESS_MASK_REPLY: u8 = 18;
    /// `DEST_UNREACH` codes.
    pub const HOST_UNREACH: u8 = 1;
    pub const PORT_UNREACH: u8 = 3;
    pub const HOST_ADMIN_PROHIBITED: u8 = 13;
}

/// ICMPv6 types and codes by name (RFC 4443, RFC 4861).
pub mod icmpv6 {
    pub const DEST_UNREACH: u8 = 1;
    /// Types below this are errors, this and above informational.
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const NDP_REDIRECT: u8 = 137;
    /// `DEST_UNREACH` codes.
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const ADDR_UNREACH: u8 = 3;
    pub const PORT_UNREACH: u8 = 4;
}

/// Port policy: `PORTS[proto_index * 65536 + port]`, `proto_index` 0 = TCP,
/// 1 = UDP. An array indexed by port is the cheapest lookup there is.
/// Each entry is a `u32`: `PORT_*` flags in the low byte, the source set of
/// a restricted port in the high 16 bits ([`port_entry`]), so one aligned
/// store changes both at once. After the two port ranges come 256 entries
/// for ICMP, indexed by the IPv4 type: only [`PORT_ICMP_ECHO`] is used
/// (`fw allow icmp echo`, IPv4 echo-request and ICMPv6 echo-request alike).
pub const PORT_ENTRIES: u32 = 2 * 65536 + 256;
/// First ICMP entry of `PORTS` (and `PORT_HITS`).
pub const PORT_ICMP_BASE: u32 = 2 * 65536;
/// The `PORTS` entry of ICMP echo-request (IPv4 type 8, ICMPv6 type 128).
pub const PORT_ICMP_ECHO: u32 = PORT_ICMP_BASE + icmp::ECHO_REQUEST as u32;
/// The port is open.
pub const PORT_ALLOW: u8 = 1;
/// The port is open only to the sources of its set in `ALLOW_SRC`.
pub const PORT_FROM_RESTRICTED: u8 = 2;
const PORT_SET_SHIFT: u32 = 16;

/// The `PORTS` value of a port with `flags` and source set `set`.
pub const fn port_entry(flags: u8, set: u16) -> u32 {
    flags as u32 | (set as u32) << PORT_SET_SHIFT
}

/// The `PORT_*` flags of a `PORTS` value.
pub const fn port_flags(entry: u32) -> u8 {
    (entry & 0xff) as u8
}

/// The source set of a `PORTS` value (meaningful with `PORT_FROM_RESTRICTED`).
pub const fn port_set(entry: u32) -> u16 {
    (entry >> PORT_SET_SHIFT) as u16
}

/// Source set ids are 1..=MAX_SOURCE_SETS (0 is never a set).
pub const MAX_SOURCE_SETS: u32 = u16::MAX as u32;

pub const fn proto_index(proto: u8) -> Option<u32> {
    match proto {
        IPPROTO_TCP => Some(0),
        IPPROTO_UDP => Some(1),
        _ => None,
    }
}

/// Data of an `ALLOW_SRC` LPM-trie key. A source set is one distinct list
/// of prefixes, shared by every port restricted to that list, so a port
/// range costs one entry per prefix, not one per port and prefix. The
/// first 32 bits (set, family, zero pad) are always part of the prefix,
/// then the source address bits.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SrcKey {
    /// Network byte order, so the trie's bit order matches.
    pub set_be: u16,
    pub family: u8,
    pub _pad: u8,
    pub addr: [u8; 16],
}
pub const SRC_KEY_FIXED_BITS: u32 = 32;
/// Default size of `ALLOW_SRC` (`[capacity] source_prefixes`): the trie is
/// not preallocated, so the size costs kernel memory only per entry used.
pub const SRC_DEFAULT_ENTRIES: u32 = 65_536;

/// Blocklists: one LPM trie per family (`BLOCK_V4`, key data the 4 address
/// bytes; `BLOCK_V6`, the 16), shared by every block set, so a packet costs
/// one lookup whatever the number of sets. A prefix held by several sets is
/// one entry whose `sets` has a bit per set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockValue {
    /// When the block ends, on the kernel side's clock
    /// (`bpf_ktime_get_coarse_ns`); 0: never. 0 as soon as one set holds
    /// the prefix without an end. An entry past its end counts as absent.
    pub expires_ns: u64,
    /// Packets dropped by this entry (atomic adds from every CPU).
    pub hits: u64,
    /// The latest end among the sets holding the prefix for a time (0:
    /// none does); userspace bookkeeping, so removing a set that holds the
    /// prefix for good leaves the timed ban it had.
    pub timed_expires_ns: u64,
    /// Bit `i`: block set `i` holds the prefix.
    pub sets: u32,
    /// Bit `i`: block set `i` holds it without an end.
    pub permanent: u32,
    /// The entry's own prefix length (the trie returns the longest match
    /// of an address, and says not which): the kernel side looks past an
    /// expired entry to a shorter one with it, userspace tells an exact
    /// entry from a covering one.
    pub prefix_len: u32,
    pub _pad: u32,
}

/// Block sets: ids 0..BLOCK_MAX_SETS, one bit each in `BlockValue.sets`.
pub const BLOCK_MAX_SETS: u32 = 32;
/// Longest set name (bytes).
pub const BLOCK_SET_NAME_MAX: usize = 32;
/// Default size of `BLOCK_V4` and of `BLOCK_V6` (`[capacity]
/// block_prefixes`): the tries are not preallocated, so the size costs
/// kernel memory only per entry used.
pub const BLOCK_DEFAULT_ENTRIES: u32 = 1_000_000;
/// Expired entries the kernel side looks past (to a shorter prefix holding
/// the address) before it calls the address not blocked.
pub const BLOCK_EXPIRED_HOPS: u32 = 8;

/// A block set's name, `BLOCK_SETS[id]`; an all-zero name is a free id.
/// Userspace only: the programs never read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// NUL-padded.
    pub name: [u8; BLOCK_SET_NAME_MAX],
}

/// Per-source limits (`fw limit`): at most this many, each with its own
/// state map (`LIMIT_STATE_0` ..), so a flood of spoofed sources to one
/// limited port evicts only that limit's state, never another's (and
/// never a conntrack entry: the state is no part of conntrack).
pub const LIMIT_SLOTS: usize = 8;
/// Default entries of each limit's state map (`[capacity] limit_sources`):
/// LRU hashes are preallocated, so this costs memory up front.
pub const LIMIT_DEFAULT_SOURCES: u32 = 16_384;

/// One limit, `LimitTable.rules[slot]`: new flows to (proto, lo..=hi)
/// from one source prefix, at most `rate` per window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitRule {
    /// IPPROTO_TCP or IPPROTO_UDP; 0: slot unused.
    pub proto: u8,
    /// Source prefix lengths the sources are grouped by.
    pub per4: u8,
    pub per6: u8,
    pub _pad: u8,
    pub lo: u16,
    pub hi: u16,
    /// New flows allowed per window.
    pub rate: u32,
    /// Bumped by userspace whenever the slot gets another limit: state of
    /// another generation counts as empty (no flush of the map needed).
    pub generation: u32,
    pub window_ns: u64,
}

/// `LIMITS[0]`: every limit, read with one lookup per new flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitTable {
    /// Slots in use are `rules[..count]` (userspace keeps them packed).
    pub count: u32,
    pub _pad: u32,
    pub rules: [LimitRule; LIMIT_SLOTS],
}

/// Key of a limit's state map: the source address masked to the limit's
/// prefix length.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitKey {
    pub addr: [u8; 16],
    pub family: u8,
    pub _pad: [u8; 3],
}

/// A source prefix's new flows: a fixed window with the previous one
/// weighted in (the sliding-window estimate `prev * (1 - elapsed/window) +
/// cur`), counting every new flow it tried, the limited ones too (as ufw's
/// `recent --update` does): a source stays limited until the rate it
/// tries falls under the limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitState {
    /// Index of the current window (`now / window_ns`).
    pub window: u64,
    pub cur: u32,
    pub prev: u32,
    /// The rule's generation this state was counted for.
    pub generation: u32,
    pub _pad: u32,
}

/// How a rejected packet is answered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    HostUnreachable = 0,
    PortUnreachable = 1,
    AdminProhibited = 2,
    TcpReset = 3,
    Drop = 4,
}

impl RejectKind {
    pub const fn from_u32(v: u32) -> RejectKind {
        match v {
            1 => RejectKind::PortUnreachable,
            2 => RejectKind::AdminProhibited,
            3 => RejectKind::TcpReset,
            4 => RejectKind::Drop,
            _ => RejectKind::HostUnreachable,
        }
    }
}

/// `Config.flags`: count would-be rejects but let them pass.
pub const CFG_DRY_RUN: u32 = 1;
/// `Config.flags`: pass DHCPv4 server -> client replies (UDP 67 -> 68) that
/// no other rule accepts (`[dhcp] client`, on by default).
pub const CFG_DHCP_CLIENT: u32 = 2;

/// `Config.syncookie_mode`: answer SYNs to open TCP ports with a SYN
/// cookie whenever the kernel hands one out (`bpf_tcp_gen_syncookie`: only
/// while the listener is flooded, or always with `net.ipv4.tcp_syncookies
/// = 2`). `auto` and `always` ask the kernel alike; they differ in what
/// userspace checks (`always` wants the sysctl at 2).
pub const SYNCOOKIE_AUTO: u32 = 0;
pub const SYNCOOKIE_ALWAYS: u32 = 1;
/// Never: every SYN goes to the stack.
pub const SYNCOOKIE_OFF: u32 = 2;

/// Runtime settings, `CONFIG[0]`. Written by userspace, read per packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A `RejectKind`.
    pub reject_kind: u32,
    /// `CFG_*` bits.
    pub flags: u32,
    /// ICMP errors (or RSTs) per second, all CPUs together: one token
    /// bucket shared by every CPU, like the kernel's icmp_msgs_per_sec.
    pub reject_rate: u64,
    /// Depth of that bucket, in packets.
    pub reject_burst: u64,
    /// Events per second per CPU into the ring buffer.
    pub event_rate_per_cpu: u64,
    /// Conntrack timeouts in nanoseconds.
    pub ct_tcp_syn_ns: u64,
    pub ct_tcp_established_ns: u64,
    pub ct_tcp_closing_ns: u64,
    pub ct_udp_ns: u64,
    pub ct_udp_stream_ns: u64,
    pub ct_icmp_ns: u64,
    /// A `RejectKind`: how packets from a blocked source are answered
    /// (`[block] with`, `Drop` by default).
    pub block_kind: u32,
    /// A `SYNCOOKIE_*` mode (`[syncookies] mode`).
    pub syncookie_mode: u32,
    /// Added to the clock the limit stage reads: 0 except in tests, which
    /// write it straight into the map to move a limit's windows on (no fw
    /// command sets it; `Config::kernel` always gives 0).
    pub limit_clock_offset_ns: u64,
}

const SEC: u64 = 1_000_000_000;

impl Config {
    /// Kernel-like defaults (nf_conntrack's timeouts, icmp_msgs_per_sec).
    pub const DEFAULT: Config = Config {
        reject_kind: RejectKind::HostUnreachable as u32,
        flags: CFG_DHCP_CLIENT,
        reject_rate: 1000,
        reject_burst: 1000,
        event_rate_per_cpu: 1000,
        ct_tcp_syn_ns: 120 * SEC,
        ct_tcp_established_ns: 432_000 * SEC,
        ct_tcp_closing_ns: 120 * SEC,
        ct_udp_ns: 30 * SEC,
        ct_udp_stream_ns: 120 * SEC,
        ct_icmp_ns: 30 * SEC,
        block_kind: RejectKind::Drop as u32,
        syncookie_mode: SYNCOOKIE_AUTO,
        limit_clock_offset_ns: 0,
    };
}

/// Token bucket state: per CPU per limiter in `RATE_STATE` (events), and
/// the reject bucket shared by all CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens in units of 1/1e9 packet.
    pub tokens: u64,
    pub last_ns: u64,
}
pub const BUCKET_REJECT: u32 = 0;
pub const BUCKET_EVENTS: u32 = 1;

/// A flow as seen on ingress: `src` is the remote peer, `dst` this host.
/// IPv4 addresses use the first 4 bytes, the rest is zero. For ICMP echo,
/// `sport` holds the echo identifier and `dport` is 0.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Conntrack states.
pub const CT_TCP_SYN_SENT: u8 = 1;
pub const CT_TCP_SYN_RECV: u8 = 2;
pub const CT_TCP_ESTABLISHED: u8 = 3;
pub const CT_TCP_CLOSING: u8 = 4;
pub const CT_TCP_CLOSED: u8 = 5;
pub const CT_UDP: u8 = 6;
pub const CT_ICMP: u8 = 7;

/// `FlowValue.flags`: the host opened the flow (seen first on egress).
pub const CT_F_OUTBOUND: u8 = 1;
/// Seen in both directions.
pub const CT_F_REPLIED: u8 = 2;
/// Put in by userspace from the socket table at `fw up`.
pub const CT_F_SEEDED: u8 = 4;
/// `FlowValue.host_isn` holds the sequence number of the host's SYN-ACK
/// (an unconfirmed inbound TCP flow): the peer's ACK of `host_isn + 1`
/// proves it saw that SYN-ACK, which a spoofed source cannot.
pub const CT_F_SYNACK: u8 = 8;

/// A conntrack entry. The same value in both tables: `CONNTRACK` holds
/// confirmed flows (traffic went both ways in a way a spoofed source
/// cannot produce, or the host started the flow), `CT_UNCONFIRMED` the
/// flows nobody has answered yet (a SYN, a first datagram), so no inbound
/// flood displaces a confirmed flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub created_ns: u64,
    pub last_seen_ns: u64,
    pub state: u8,
    pub flags: u8,
    pub _pad: [u8; 2],
    /// With `CT_F_SYNACK`: the sequence number of the host's SYN-ACK.
    pub host_isn: u32,
}

pub const fn ct_state_name(state: u8) -> &'static str {
    match state {
        CT_TCP_SYN_SENT => "syn_sent",
        CT_TCP_SYN_RECV => "syn_recv",
        CT_TCP_ESTABLISHED => "established",
        CT_TCP_CLOSING => "closing",
        CT_TCP_CLOSED => "closed",
        CT_UDP => "udp",
        CT_ICMP => "icmp",
        _ => "unknown",
    }
}

/// Timeout of a conntrack entry in `state`, given the config.
pub const fn ct_timeout_ns(cfg: &Config, state: u8, flags: u8) -> u64 {
    match state {
        CT_TCP_SYN_SENT | CT_TCP_SYN_RECV => cfg.ct_tcp_syn_ns,
        CT_TCP_ESTABLISHED => cfg.ct_tcp_established_ns,
        CT_TCP_CLOSING => cfg.ct_tcp_closing_ns,
        CT_TCP_CLOSED => 10 * SEC,
        CT_UDP => {
            if flags & CT_F_REPLIED != 0 {
                cfg.ct_udp_stream_ns
            } else {
                cfg.ct_udp_ns
            }
        }
        _ => cfg.ct_icmp_ns,
    }
}

/// `CT_STATS` indexes (per-CPU u64 counters). With the keys in each table
/// they give its LRU evictions exactly: confirmed evicted = created +
/// seeded − deleted − flushed − keys present; unconfirmed evicted =
/// u_created − u_deleted − u_flushed − keys present.
/// Confirmed entries the kernel side created (new keys only; promotions
/// included).
pub const CT_STAT_CREATED: u32 = 0;
/// Confirmed entries the kernel side deleted (a flow refused by a RST).
pub const CT_STAT_DELETED: u32 = 1;
/// Entries userspace seeded from the socket table (written on CPU 0 only).
pub const CT_STAT_SEEDED: u32 = 2;
/// Unconfirmed entries the kernel side created (new keys only).
pub const CT_STAT_U_CREATED: u32 = 3;
/// Unconfirmed entries the kernel side deleted: refused by a RST, or
/// moved to the confirmed table (promotions included).
pub const CT_STAT_U_DELETED: u32 = 4;
/// Unconfirmed flows moved to the confirmed table.
pub const CT_STAT_PROMOTED: u32 = 5;
/// Confirmed entries userspace deleted (`fw conntrack --flush`; CPU 0 only).
pub const CT_STAT_FLUSHED: u32 = 6;
/// Unconfirmed entries userspace deleted (CPU 0 only).
pub const CT_STAT_U_FLUSHED: u32 = 7;
pub const CT_STAT_ENTRIES: u32 = 8;

/// Default conntrack table size (confirmed flows, `[conntrack] entries`).
pub const CT_DEFAULT_ENTRIES: u32 = 262_144;
/// Smallest unconfirmed table.
pub const CT_UNCONFIRMED_MIN: u32 = 1024;

/// Size of the unconfirmed table when `[conntrack] unconfirmed_entries` is
/// not given: a quarter of the confirmed table, at least 1024.
pub const fn ct_unconfirmed_default(entries: u32) -> u32 {
    let q = entries / 4;
    if q < CT_UNCONFIRMED_MIN {
        CT_UNCONFIRMED_MIN
    } else {
        q
    }
}

/// Fragment tracking: the first fragment's verdict, looked up by later ones.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragValue {
    /// The `Reason` of the first fragment.
    pub reason: u32,
    /// 1 when later fragments pass, 0 when they are dropped.
    pub pass: u32,
}
pub const FRAG_ENTRIES: u32 = 8192;

/// One rejected or dropped packet, sent to userspace through `EVENTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub len: u32,
    pub reason: u8,
    pub family: u8,
    pub proto: u8,
    /// ICMP type when proto is ICMP/ICMPv6.
    pub icmp_type: u8,
    pub sport: u16,
    pub dport: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Interfaces fw can be up on at once (counter slots 1..IFACE_SLOTS).
pub const MAX_IFACES: usize = (IFACE_SLOTS - 1) as usize;

/// XDP attach modes recorded in `IfaceMeta.xdp_mode`.
pub const XDP_MODE_NATIVE: u32 = 1;
pub const XDP_MODE_GENERIC: u32 = 2;
/// TC attach kinds recorded in `IfaceMeta.tc_mode`: a tcx link, or a filter
/// on a clsact qdisc that was there before (`CLSACT`) or that fw added and
/// removes again (`CLSACT_OWN`).
pub const TC_MODE_TCX: u32 = 1;
pub const TC_MODE_CLSACT: u32 = 2;
pub const TC_MODE_CLSACT_OWN: u32 = 3;

/// One interface fw is up on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceMeta {
    pub ifindex: u32,
    /// Counter slot (1..IFACE_SLOTS); 0 = unused entry.
    pub slot: u32,
    pub xdp_mode: u32,
    pub tc_mode: u32,
    /// NUL-padded interface name.
    pub name: [u8; 16],
}

/// What fw knows about its own deployment, `META[0]`: kept in a pinned map
/// so it lives and dies with the pins (bpffs holds no regular files).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub layout_version: u32,
    pub flags: u32,
    /// Unix time of `fw up`.
    pub loaded_at: u64,
    /// Global reject rate and burst as configured (CONFIG holds per-CPU shares).
    pub reject_rate: u64,
    pub reject_burst: u64,
    pub ct_entries: u32,
    /// Size of the unconfirmed table (`CT_UNCONFIRMED`).
    pub ct_unconfirmed_entries: u32,
    pub ifaces: [IfaceMeta; MAX_IFACES],
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            layout_version: LAYOUT_VERSION,
            flags: 0,
            loaded_at: 0,
            reject_rate: 0,
            reject_burst: 0,
            ct_entries: 0,
            ct_unconfirmed_entries: 0,
            ifaces: [IfaceMeta::default(); MAX_IFACES],
        }
    }
}

/// Longest config file path fw records in `CONFIG_FILE`.
pub const CONFIG_PATH_MAX: usize = 4096;

/// The config file fw loaded (`fw up --config`) or last applied (`fw
/// apply`), `CONFIG_FILE[0]`: where `fw allow`/`fw deny` write their
/// changes back. In a pinned map so it lives and dies with the pins; the
/// programs never read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// Bytes of `path` in use; 0: fw runs no file's policy.
    pub path_len: u32,
    pub _pad: u32,
    /// FNV-1a of the file's bytes as fw last read or wrote them: tells
    /// whether someone edited the file since.
    pub content_hash: u64,
    /// FNV-1a of what those bytes configure (the config printed
    /// canonically): tells an edit of comments or layout from one of policy.
    pub config_hash: u64,
    /// Absolute path, symlinks resolved.
    pub path: [u8; CONFIG_PATH_MAX],
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            path_len: 0,
            _pad: 0,
            content_hash: 0,
            config_hash: 0,
            path: [0; CONFIG_PATH_MAX],
        }
    }
}

/// Map names, as pinned under the pin dir.
pub mod maps {
    pub const COUNTERS: &str = "COUNTERS";
    pub const IFACE_SLOT: &str = "IFACE_SLOT";
    pub const PORTS: &str = "PORTS";
    pub const PORT_HITS: &str = "PORT_HITS";
    pub const ALLOW_SRC: &str = "ALLOW_SRC";
    pub const CONFIG: &str = "CONFIG";
    pub const RATE_STATE: &str = "RATE_STATE";
    pub const CONNTRACK: &str = "CONNTRACK";
    pub const CT_UNCONFIRMED: &str = "CT_UNCONFIRMED";
    pub const FRAGS: &str = "FRAGS";
    pub const EVENTS: &str = "EVENTS";
    pub const META: &str = "META";
    pub const CT_STATS: &str = "CT_STATS";
    pub const CONFIG_FILE: &str = "CONFIG_FILE";
    pub const BLOCK_V4: &str = "BLOCK_V4";
    pub const BLOCK_V6: &str = "BLOCK_V6";
    pub const BLOCK_SETS: &str = "BLOCK_SETS";
    pub const LIMITS: &str = "LIMITS";
    /// One state map per limit slot (`super::LIMIT_SLOTS`).
    pub const LIMIT_STATE: [&str; super::LIMIT_SLOTS] = [
        "LIMIT_STATE_0",
        "LIMIT_STATE_1",
        "LIMIT_STATE_2",
        "LIMIT_STATE_3",
        "LIMIT_STATE_4",
        "LIMIT_STATE_5",
        "LIMIT_STATE_6",
        "LIMIT_STATE_7",
    ];
    /// The maps fw pins (the per-CPU scratch maps of the programs are not
    /// state and stay unpinned).
    pub const PINNED: [&str; 26] = [
        COUNTERS,
        IFACE_SLOT,
        PORTS,
        PORT_HITS,
        ALLOW_SRC,
        CONFIG,
        RATE_STATE,
        CONNTRACK,
        CT_UNCONFIRMED,
        FRAGS,
        EVENTS,
        CT_STATS,
        CONFIG_FILE,
        BLOCK_V4,
        BLOCK_V6,
        BLOCK_SETS,
        LIMITS,
        LIMIT_STATE[0],
        LIMIT_STATE[1],
        LIMIT_STATE[2],
        LIMIT_STATE[3],
        LIMIT_STATE[4],
        LIMIT_STATE[5],
        LIMIT_STATE[6],
        LIMIT_STATE[7],
        META,
    ];
}

/// Program names in the object.
pub const PROG_INGRESS: &str = "fw_ingress";
pub const PROG_EGRESS: &str = "fw_egress";

#[cfg(feature = "user")]
mod pod {
    use super::*;
    macro_rules! pod {
        ($($t:ty),* $(,)?) => {$(
            // SAFETY: every map value type here is `#[repr(C)]`, `Copy`, made
            // only of integers and byte arrays with explicit padding fields,
            // so any bit pattern the kernel hands back is a valid value.
            unsafe impl aya::Pod for $t {}
        )*};
    }
    pod!(
        Counter, SrcKey, Config, Bucket, FlowKey, FlowValue, FragKey, FragValue, Event, IfaceMeta,
        Meta, ConfigFile, BlockValue, BlockSet, LimitRule, LimitTable, LimitKey, LimitState,
    );
}
