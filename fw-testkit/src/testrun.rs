//! The verdict-test harness: a freshly loaded (never attached) fw per test,
//! its programs run through BPF_PROG_TEST_RUN, its counters read back.
//! (The replies it gets are checked by [`crate::check`].)

use aya::{
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use fw_common::{
    Counter, FlowKey, FlowValue, Reason, CT_STAT_ENTRIES, PROG_EGRESS, PROG_INGRESS, REASON_COUNT,
};
use fw_user::{
    kernel::load::load_and_pin,
    kernel::{
        maps::{CtTable, FwMaps},
        pins::PinDir,
    },
    model::{
        config::Config,
        policy::{Policy, Proto},
    },
};

use crate::packet::Fam;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
/// What fw_egress returns for every packet (tcx "next").
pub const TCX_NEXT: i32 = -1;

pub fn action_name(a: u32) -> &'static str {
    match a {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        _ => "XDP_?",
    }
}

/// Counters of every reason, summed over interface slots and CPUs.
pub type Totals = [Counter; REASON_COUNT];

/// Now, on the clock the kernel side stamps conntrack entries with.
pub fn now_ns() -> u64 {
    fw_user::kernel::clock::kernel_now_ns()
}

/// One loaded fw: programs, maps, and the pin dir (removed on drop, also
/// when a test panics; leftovers of dead test processes are swept).
pub struct Fw {
    ebpf: Ebpf,
    pub maps: FwMaps,
    pub cfg: Config,
    // Last: removed after the programs and maps are closed.
    _pins: crate::PinDir,
}

impl Fw {
    pub fn load(cfg: Config) -> Fw {
        crate::require_root();
        let guard = crate::PinDir::new();
        let pins = PinDir::new(guard.path());
        let ebpf = load_and_pin(&pins, &cfg).unwrap_or_else(|e| panic!("loading fw: {e}"));
        let maps = FwMaps::open(&pins).unwrap_or_else(|e| panic!("opening fw's maps: {e}"));
        Fw {
            ebpf,
            maps,
            cfg,
            _pins: guard,
        }
    }

    /// The seed policy, defaults for everything else.
    pub fn seed() -> Fw {
        Fw::load(Config::default())
    }

    fn xdp(&self) -> &Xdp {
        self.ebpf
            .program(PROG_INGRESS)
            .expect("fw_ingress in the object")
            .try_into()
            .expect("fw_ingress is XDP")
    }

    fn tc(&self) -> &SchedClassifier {
        self.ebpf
            .program(PROG_EGRESS)
            .expect("fw_egress in the object")
            .try_into()
            .expect("fw_egress is a classifier")
    }

    /// Runs `frame` through fw_ingress: (action, frame after the program).
    pub fn ingress(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.try_ingress(frame)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of fw_ingress: {e}"))
    }

    /// Like [`Fw::ingress`], returning a failed BPF_PROG_TEST_RUN (the fuzz
    /// tests report it with the frame and seed).
    pub fn try_ingress(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), String> {
        let mut out = vec![0u8; 4096];
        let r = self
            .xdp()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .map_err(|e| error_chain(&e))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Runs `frame` through fw_egress: (return value, packet after it).
    pub fn try_egress(&self, frame: &[u8]) -> Result<(i32, Vec<u8>), String> {
        let mut out = vec![0u8; 4096];
        let r = self
            .tc()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .map_err(|e| error_chain(&e))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value as i32, out))
    }

    /// Runs `frame` (a packet the host sends) through fw_egress.
    pub fn egress(&self, frame: &[u8]) {
        let (ret, out) = self
            .try_egress(frame)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of fw_egress: {e}"));
        assert_eq!(ret, TCX_NEXT, "fw_egress never takes a packet");
        assert_eq!(out, frame, "fw_egress does not change packets");
    }

    pub fn totals(&self) -> Totals {
        let rows = self
            .maps
            .counters()
            .unwrap_or_else(|e| panic!("reading counters: {e}"));
        let mut t = [Counter::default(); REASON_COUNT];
        for row in rows {
            for (acc, c) in t.iter_mut().zip(row.iter()) {
                acc.packets += c.packets;
                acc.bytes += c.bytes;
            }
        }
        t
    }

    pub fn port_hits(&self, proto: Proto, port: u16) -> u64 {
        self.maps
            .port_hits(proto, port)
            .unwrap_or_else(|e| panic!("reading port hits: {e}"))
    }

    /// Runs `frame` and asserts the action and that exactly one packet of
    /// `frame.len()` bytes was counted, under `reason`. Returns the output.
    #[track_caller]
    pub fn expect(&self, what: &str, frame: &[u8], action: u32, reason: Reason) -> Vec<u8> {
        let before = self.totals();
        let (got, out) = self.ingress(frame);
        let after = self.totals();
        let delta: Vec<(Reason, u64, u64)> = Reason::ALL
            .iter()
            .map(|&r| {
                let i = r as usize;
                (
                    r,
                    after[i].packets - before[i].packets,
                    after[i].bytes - before[i].bytes,
                )
            })
            .filter(|d| d.1 != 0 || d.2 != 0)
            .collect();
        let counted: Vec<(&str, u64, u64)> = delta.iter().map(|d| (d.0.name(), d.1, d.2)).collect();
        assert!(
            got == action && delta == [(reason, 1, frame.len() as u64)],
            "{what}: want {} counted as {} ({} bytes), got {} counted as {counted:?}",
            action_name(action),
            reason.name(),
            frame.len(),
            action_name(got),
        );
        if action != XDP_TX {
            assert_eq!(
                out, frame,
                "{what}: a frame that is not answered is left as it was"
            );
        }
        out
    }

    /// Replaces the port policy (what `fw allow` / `fw deny` do).
    pub fn set_policy(&mut self, policy: Policy) {
        self.maps
            .write_policy(&policy)
            .unwrap_or_else(|e| panic!("writing policy: {e}"));
        self.cfg.policy = policy;
    }

    pub fn ct_insert(&self, key: &FlowKey, value: &FlowValue) {
        self.maps
            .conntrack_insert(key, value)
            .unwrap_or_else(|e| panic!("inserting into CONNTRACK: {e}"));
    }

    /// Entries of the confirmed table.
    pub fn ct_entries(&self) -> Vec<(FlowKey, FlowValue)> {
        self.maps
            .conntrack_entries()
            .unwrap_or_else(|e| panic!("reading CONNTRACK: {e}"))
    }

    /// Entries of the unconfirmed table.
    pub fn ct_unconfirmed(&self) -> Vec<(FlowKey, FlowValue)> {
        self.maps
            .table_entries(CtTable::Unconfirmed)
            .unwrap_or_else(|e| panic!("reading CT_UNCONFIRMED: {e}"))
    }

    /// The entry of `key` in `table`, if any.
    pub fn ct_get(&self, table: CtTable, key: &FlowKey) -> Option<FlowValue> {
        self.maps
            .table_entries(table)
            .unwrap_or_else(|e| panic!("reading {table:?}: {e}"))
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Every `CT_STATS` counter (`fw_common::CT_STAT_*`), summed over CPUs.
    pub fn ct_stats(&self) -> [u64; CT_STAT_ENTRIES as usize] {
        let mut out = [0; CT_STAT_ENTRIES as usize];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self
                .maps
                .conntrack_stat(i as u32)
                .unwrap_or_else(|e| panic!("reading CT_STATS: {e}"));
        }
        out
    }

    /// (entries, evictions) of `table`, as `fw status` counts them.
    pub fn census(&self, table: CtTable) -> (u64, u64) {
        self.maps
            .conntrack_census(table)
            .unwrap_or_else(|e| panic!("conntrack census: {e}"))
    }
}

/// An error and its sources ("`bpf_prog_test_run` failed: Invalid argument").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// A conntrack key as the kernel side builds it (src = peer).
pub fn flow_key(fam: Fam, proto: u8, sport: u16, dport: u16) -> FlowKey {
    let mut k = FlowKey {
        sport,
        dport,
        proto,
        family: match fam {
            Fam::V4 => 4,
            Fam::V6 => 6,
        },
        ..Default::default()
    };
    match (fam.peer(), fam.host()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            k.src[..4].copy_from_slice(&s.octets());
            k.dst[..4].copy_from_slice(&d.octets());
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            k.src = s.octets();
            k.dst = d.octets();
        }
        _ => unreachable!(),
    }
    k
}

/// Restores the calling thread's CPU mask when dropped; `run_on` moves the
/// thread to one CPU (BPF_PROG_TEST_RUN runs the program on the caller's).
pub struct CpuPin {
    old: libc::cpu_set_t,
}

impl CpuPin {
    /// Saves the calling thread's CPU mask (restored on drop).
    pub fn save() -> CpuPin {
        // SAFETY: sched_getaffinity writes a cpu_set_t of the size given.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old);
            assert_eq!(rc, 0, "sched_getaffinity");
            CpuPin { old }
        }
    }

    /// The CPUs the thread may run on.
    pub fn allowed(&self) -> Vec<usize> {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: reads a bit of a valid cpu_set_t.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &self.old) })
            .collect()
    }

    pub fn run_on(&self, cpu: usize) {
        // SAFETY: sets a valid one-CPU mask on the calling thread.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
            assert_eq!(rc, 0, "sched_setaffinity to CPU {cpu}");
        }
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        // SAFETY: restores the mask read in new().
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.old);
        }
    }
}
