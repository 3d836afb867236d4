//! A minimal `XDP_PASS` program for the client veth.
//!
//! Frames that the server's XDP program sends back with `XDP_TX` land in the
//! client veth's ring, and on this kernel the ring is only flushed into the
//! stack promptly when the receiving veth has an XDP program of its own (GRO
//! alone gives it NAPI, but nothing kicks it for `XDP_TX` frames). So the
//! client side gets this two-instruction program, attached through a BPF link
//! that lives as long as its file descriptor.

use std::{
    ffi::CString,
    io,
    os::fd::{FromRawFd, OwnedFd},
    path::Path,
};

use crate::{
    error::{Error, Result},
    probe::in_netns,
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `r0 = XDP_PASS (2); exit`, as raw `struct bpf_insn`s.
const PASS_PROG: [u64; 2] = [
    u64::from_le_bytes([0xb7, 0x00, 0, 0, 2, 0, 0, 0]), // BPF_ALU64 | BPF_MOV | BPF_K
    u64::from_le_bytes([0x95, 0x00, 0, 0, 0, 0, 0, 0]), // BPF_JMP | BPF_EXIT
];

/// `union bpf_attr` for BPF_PROG_LOAD (fields up to expected_attach_type).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE (the common head).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: attr is a properly laid out, zero-padded bpf_attr of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: a successful BPF_PROG_LOAD/BPF_LINK_CREATE returns a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load_pass_prog() -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..7].copy_from_slice(b"fwtpass");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: PASS_PROG.len() as u32,
        insns: PASS_PROG.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &mut attr)
}

/// Attaches the pass program in native mode to `ifname` inside namespace
/// `ns`; it stays attached until the returned link fd is closed.
pub(crate) fn attach_xdp_pass(ns: &Path, ifname: &str) -> Result<OwnedFd> {
    let bpf_err = |what: &str, source| Error::Io {
        what: format!("{what} (XDP pass program for {ifname})"),
        source,
    };
    let prog = load_pass_prog().map_err(|e| bpf_err("BPF_PROG_LOAD", e))?;
    let name = CString::new(ifname).map_err(|_| Error::Io {
        what: format!("interface name {ifname:?}"),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    let link = in_netns(ns, || {
        // SAFETY: name is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut attr = LinkCreateAttr {
            prog_fd: std::os::fd::AsRawFd::as_raw_fd(&prog) as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: XDP_FLAGS_DRV_MODE,
        };
        bpf(BPF_LINK_CREATE, &mut attr)
    })?;
    link.map_err(|e| bpf_err("BPF_LINK_CREATE", e))
}
