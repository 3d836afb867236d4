//! Bulk access to array maps: BPF_MAP_LOOKUP_BATCH (Linux 5.6+), a
//! `BPF_F_MMAPABLE` array through mmap, and the interface a link is
//! attached to (aya 0.14's `LinkInfo` does not say).
//!
//! aya 0.14 has neither, and the port policy is an array of 131072 entries:
//! reading it one syscall per entry costs ~90 ms, one batch call ~28 ms (the
//! kernel copies entry by entry), a mapping of it about a millisecond.
//! Only `maps.rs` calls this; callers fall back to batch, then per-entry
//! access when the kernel or map lacks support.
use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
    sync::atomic::{AtomicU32, Ordering},
};

use aya_obj::generated::{bpf_attr, bpf_cmd};

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, zero-initialised bpf_attr whose pointers
    // refer to buffers that outlive the call and are as large as `count` says.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What a BPF link holds: its program, and the interface of an XDP or tcx
/// link (0 once the link was detached, e.g. by `bpftool link detach`, or
/// its interface vanished).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTarget {
    pub prog_id: u32,
    pub ifindex: u32,
}

/// [`LinkTarget`] of the link behind `fd` (BPF_OBJ_GET_INFO_BY_FD).
pub fn link_target(fd: BorrowedFd<'_>) -> io::Result<LinkTarget> {
    use aya_obj::generated::{bpf_link_info, bpf_link_type};
    // SAFETY: an all-zero bpf_link_info is a valid empty one.
    let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
    // SAFETY: likewise for the bpf_attr union.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_link_info>() as u32;
    attr.info.info = &mut info as *mut bpf_link_info as u64;
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // SAFETY: the kernel filled the union member of the link's type.
    let ifindex = unsafe {
        match info.type_ {
            t if t == bpf_link_type::BPF_LINK_TYPE_XDP as u32 => info.__bindgen_anon_1.xdp.ifindex,
            t if t == bpf_link_type::BPF_LINK_TYPE_TCX as u32 => info.__bindgen_anon_1.tcx.ifindex,
            _ => 0,
        }
    };
    Ok(LinkTarget {
        prog_id: info.prog_id,
        ifindex,
    })
}

/// [`LinkTarget`] of the link pinned at `path` (BPF_OBJ_GET, then [`link_target`]).
pub fn pinned_link_target(path: &std::path::Path) -> io::Result<LinkTarget> {
    use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero bpf_attr is a valid empty one.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // `c` outlives the call.
    attr.__bindgen_anon_4.pathname = c.as_ptr() as u64;
    // SAFETY: as in sys_bpf; BPF_OBJ_GET returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET as libc::c_long,
            &mut attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    link_target(fd.as_fd())
}

/// Whether an error means "this kernel has no batch ops for this map".
pub fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOTSUP | libc::ENOSYS | 524)
    )
}

/// All values of an array map with u32 keys and `value_size`-byte values,
/// in key order (`max_entries` of them).
pub fn lookup_array(
    fd: BorrowedFd<'_>,
    value_size: usize,
    max_entries: u32,
) -> io::Result<Vec<u8>> {
    lookup_array_range(fd, value_size, 0, max_entries)
}

/// The values of keys `first..first + count` of an array map with u32 keys
/// and `value_size`-byte values (for a per-CPU array: 8-byte-padded value
/// times the possible CPUs, CPU by CPU), in key order.
pub fn lookup_array_range(
    fd: BorrowedFd<'_>,
    value_size: usize,
    first: u32,
    count: u32,
) -> io::Result<Vec<u8>> {
    let n = count as usize;
    let mut keys = vec![0u32; n];
    let mut values = vec![0u8; n * value_size];
    let mut done = 0usize;
    // The kernel resumes after `in_batch` (the last key it returned); for
    // arrays the walk starts after that key, so key `first` needs
    // `first - 1`, and key 0 no `in_batch` at all.
    let mut next: Option<u32> = first.checked_sub(1);
    while done < n {
        let mut out_batch: u32 = 0;
        // SAFETY: an all-zero bpf_attr is its documented "no options" state.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing plain integers into the `batch` member of the union.
        let b = unsafe { &mut attr.batch };
        b.in_batch = next.as_ref().map_or(0, |k| k as *const u32 as u64);
        b.out_batch = &mut out_batch as *mut u32 as u64;
        b.keys = keys[done..].as_mut_ptr() as u64;
        b.values = values[done * value_size..].as_mut_ptr() as u64;
        b.count = (n - done) as u32;
        b.map_fd = fd.as_raw_fd() as u32;
        let r = sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr);
        // SAFETY: the kernel wrote how many entries it copied into `batch`.
        let got = unsafe { attr.batch.count } as usize;
        done += got;
        match r {
            Ok(()) if got > 0 => {}
            // ENOENT: the walk reached the end.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
            Ok(()) => break,
        }
        next = Some(out_batch);
    }
    if done != n {
        return Err(io::Error::other(format!(
            "batch lookup returned {done} of {n} entries"
        )));
    }
    // Arrays are walked in key order; check rather than trust it.
    if keys
        .iter()
        .enumerate()
        .any(|(i, &k)| k as usize != first as usize + i)
    {
        return Err(io::Error::other("batch lookup returned keys out of order"));
    }
    Ok(values)
}

/// A shared mapping of a `BPF_F_MMAPABLE` array map with `u32` values. The
/// kernel lays the array out with each value padded to 8 bytes. The BPF
/// side reads the values while they change, so every access is one atomic
/// 4-byte load or store: a value never tears.
pub struct MappedU32 {
    base: *mut libc::c_void,
    len: usize,
    entries: u32,
    writable: bool,
}

const STRIDE: usize = 8;

impl MappedU32 {
    /// Maps the `max_entries` values of the map behind `fd` (read-write when
    /// `write`). EINVAL: the map is not mmapable.
    pub fn new(fd: BorrowedFd<'_>, max_entries: u32, write: bool) -> io::Result<MappedU32> {
        let len = STRIDE * max_entries as usize;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of the map's value area; the kernel
        // refuses (EINVAL) a map that is not mmapable or shorter than `len`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MappedU32 {
            base,
            len,
            entries: max_entries,
            writable: write,
        })
    }

    fn slot(&self, index: u32) -> &AtomicU32 {
        assert!(index < self.entries, "index {index} out of the mapping");
        // SAFETY: index * STRIDE + 4 <= len, inside the mapping, which lives
        // as long as `self`; the area is page-aligned, so every slot is
        // aligned for a u32; other writers (none: the BPF side only reads
        // PORTS) would use atomic stores as well.
        unsafe { &*(self.base.cast::<u8>().add(index as usize * STRIDE) as *const AtomicU32) }
    }

    pub fn get(&self, index: u32) -> u32 {
        self.slot(index).load(Ordering::Acquire)
    }

    /// One store: a packet sees the old value or the new one.
    pub fn set(&self, index: u32, value: u32) {
        // A store into a read-only mapping would fault the process.
        assert!(self.writable, "store into a read-only mapping");
        self.slot(index).store(value, Ordering::Release);
    }

    /// All values, in key order.
    pub fn all(&self) -> Vec<u32> {
        (0..self.entries).map(|i| self.get(i)).collect()
    }
}

impl Drop for MappedU32 {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no slot
        // reference outlives `self`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
