//! The traffic generator: `rig_tx` (returns XDP_TX) run through
//! BPF_PROG_TEST_RUN with live frames. The kernel turns each XDP_TX into a
//! transmit out of the interface named in the context, so a run inside the
//! client namespace puts frames on the veth towards the server, from one
//! CPU, as fast as that CPU can also receive them: the receiver's NAPI runs
//! on the same CPU when the generator flushes each batch, so the
//! generator's rate is the receiver's throughput.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{Array, MapData},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
    Ebpf,
};
use fw_testkit::in_netns;
use fw_user::EBPF_OBJECT;

/// Frames per batch between two flushes (the kernel's default is 64 too).
const BATCH: u32 = 64;
const PROG: &str = "rig_tx";
/// The map `rig_tx` copies its frame from (see fw-ebpf/src/rig.rs).
const FRAME_MAP: &str = "RIG_TX_FRAME";
/// Every frame is sent padded to this size (the minimum Ethernet frame
/// with its FCS, the classic size of packet-rate benchmarks).
pub const FRAME_LEN: usize = 64;

/// Pins the calling thread to `cpu`.
pub fn pin_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
    // for cpu < CPU_SETSIZE, checked first.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(anyhow!("CPU {cpu} is out of range"));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning the benchmark thread to CPU {cpu}"));
        }
    }
    Ok(())
}

/// The CPU the benchmark runs on unless told otherwise: the last one.
pub fn default_cpu() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .unwrap_or(0)
}

/// `struct xdp_md` for BPF_PROG_TEST_RUN: data_end (the frame length) at
/// offset 4, ingress_ifindex at 12; the rest zero.
fn xdp_md(frame_len: usize, ifindex: u32) -> [u8; 24] {
    let mut md = [0u8; 24];
    md[4..8].copy_from_slice(&(frame_len as u32).to_ne_bytes());
    md[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    md
}

/// `rig_tx`, loaded, and the template frame it writes over each packet.
pub struct Generator {
    ebpf: Ebpf,
    template: Array<MapData, [u64; FRAME_LEN / 8]>,
}

/// One generator run.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub frames: u32,
    /// Wall time of the BPF_PROG_TEST_RUN call.
    pub wall: Duration,
    /// The kernel's own figure: ns per frame, truncated to an integer. It
    /// leaves out the time the thread yielded the CPU to other tasks (the
    /// run stops at `need_resched`), which the wall time includes.
    pub kernel_ns: u32,
}

impl Sent {
    /// ns per frame: the wall time when it agrees with the kernel's figure
    /// (it is finer), else the kernel's (another task took the CPU).
    pub fn ns_per_frame(&self) -> f64 {
        let wall = self.wall.as_nanos() as f64 / self.frames.max(1) as f64;
        let kernel = self.kernel_ns as f64;
        if wall >= kernel && wall < kernel + 1.0 {
            wall
        } else {
            kernel + 0.5
        }
    }

    pub fn mpps(&self) -> f64 {
        1e3 / self.ns_per_frame()
    }
}

impl Generator {
    pub fn load() -> Result<Generator> {
        let mut ebpf = Ebpf::load(EBPF_OBJECT).context("loading fw's eBPF object")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROG)
            .with_context(|| format!("no program {PROG} in fw's eBPF object"))?
            .try_into()
            .with_context(|| format!("{PROG} is not an XDP program"))?;
        prog.load().with_context(|| format!("loading {PROG}"))?;
        let map = ebpf
            .take_map(FRAME_MAP)
            .with_context(|| format!("no map {FRAME_MAP} in fw's eBPF object"))?;
        let template = Array::try_from(map).with_context(|| format!("map {FRAME_MAP}"))?;
        Ok(Generator { ebpf, template })
    }

    fn prog(&self) -> Result<&Xdp> {
        self.ebpf
            .program(PROG)
            .with_context(|| format!("no program {PROG}"))?
            .try_into()
            .with_context(|| format!("{PROG} is not an XDP program"))
    }

    /// Sends `count` copies of `frame` (padded to FRAME_LEN bytes) out of
    /// interface `ifindex` of the namespace at `ns`, from a thread pinned to
    /// `cpu`.
    pub fn send(
        &mut self,
        ns: &Path,
        ifindex: u32,
        frame: &[u8],
        count: u32,
        cpu: usize,
    ) -> Result<Sent> {
        if frame.len() > FRAME_LEN {
            return Err(anyhow!(
                "a {}-byte frame is longer than {FRAME_LEN}",
                frame.len()
            ));
        }
        let mut padded = [0u8; FRAME_LEN];
        padded[..frame.len()].copy_from_slice(frame);
        let mut words = [0u64; FRAME_LEN / 8];
        for (w, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            // Copied into the packet as is: keep the bytes in wire order.
            *w = u64::from_ne_bytes(b);
        }
        self.template
            .set(0, words, 0)
            .with_context(|| format!("writing the frame into {FRAME_MAP}"))?;
        let frame = &padded[..];
        let prog = self.prog()?;
        let md = xdp_md(frame.len(), ifindex);
        let wall = in_netns(ns, || -> Result<(Duration, u32)> {
            pin_cpu(cpu)?;
            let opts = TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&md),
                repeat: count,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            };
            let start = Instant::now();
            let r = prog
                .test_run(opts)
                .context("BPF_PROG_TEST_RUN of rig_tx with live frames")?;
            Ok((start.elapsed(), r.duration.as_nanos() as u32))
        })??;
        Ok(Sent {
            frames: count,
            wall: wall.0,
            kernel_ns: wall.1,
        })
    }
}

/// The index of interface `name` in the namespace at `ns`.
pub fn ifindex(ns: &Path, name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name")?;
    // SAFETY: c is a valid C string.
    let idx = in_netns(ns, || unsafe { libc::if_nametoindex(c.as_ptr()) })?;
    if idx == 0 {
        return Err(anyhow!("no interface {name} in {}", ns.display()));
    }
    Ok(idx)
}
