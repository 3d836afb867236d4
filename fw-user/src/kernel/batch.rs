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

/// Every entry of a hash-like map (an LPM trie, say) with `key_size`-byte
/// keys and `value_size`-byte values, `chunk` at a time
/// (BPF_MAP_LOOKUP_BATCH; the kernel walks the map with get_next_key), or
/// key by key where the kernel has no batch lookup for the map: the keys
/// and the values, each concatenated, in the kernel's order.
pub fn lookup_all(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    chunk: usize,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    let mut in_batch: Option<Vec<u8>> = None;
    let mut out_batch = vec![0u8; key_size];
    let mut kbuf = vec![0u8; chunk * key_size];
    let mut vbuf = vec![0u8; chunk * value_size];
    loop {
        // SAFETY: an all-zero bpf_attr is its documented "no options" state.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing plain integers into the `batch` member of the union.
        let b = unsafe { &mut attr.batch };
        b.in_batch = in_batch.as_ref().map_or(0, |k| k.as_ptr() as u64);
        b.out_batch = out_batch.as_mut_ptr() as u64;
        b.keys = kbuf.as_mut_ptr() as u64;
        b.values = vbuf.as_mut_ptr() as u64;
        b.count = chunk as u32;
        b.map_fd = fd.as_raw_fd() as u32;
        let r = sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr);
        // SAFETY: the kernel wrote how many entries it copied into `batch`.
        let got = unsafe { attr.batch.count } as usize;
        keys.extend_from_slice(&kbuf[..got * key_size]);
        values.extend_from_slice(&vbuf[..got * value_size]);
        match r {
            Ok(()) if got > 0 => {}
            // ENOENT: the walk reached the end.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) if unsupported(&e) && keys.is_empty() => {
                return lookup_one_by_one(fd, key_size, value_size)
            }
            Err(e) => return Err(e),
            Ok(()) => break,
        }
        in_batch = Some(out_batch.clone());
    }
    Ok((keys, values))
}

/// [`lookup_all`] with BPF_MAP_GET_NEXT_KEY and BPF_MAP_LOOKUP_ELEM.
fn lookup_one_by_one(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    let mut prev: Option<Vec<u8>> = None;
    let mut key = vec![0u8; key_size];
    let mut value = vec![0u8; value_size];
    loop {
        // SAFETY: an all-zero bpf_attr is its documented "no options" state.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing plain integers into the element member of the union.
        let e = unsafe { &mut attr.__bindgen_anon_2 };
        e.map_fd = fd.as_raw_fd() as u32;
        e.key = prev.as_ref().map_or(0, |k| k.as_ptr() as u64);
        e.__bindgen_anon_1.next_key = key.as_mut_ptr() as u64;
        match sys_bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        match elem(bpf_cmd::BPF_MAP_LOOKUP_ELEM, fd, &key, Some(&mut value)) {
            Ok(()) => {
                keys.extend_from_slice(&key);
                values.extend_from_slice(&value);
            }
            // Deleted meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        prev = Some(key.clone());
    }
    Ok((keys, values))
}

/// One BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM call on `key` (and `value`: read
/// into for a lookup, written from for an update).
fn elem(cmd: bpf_cmd, fd: BorrowedFd<'_>, key: &[u8], value: Option<&mut [u8]>) -> io::Result<()> {
    // SAFETY: an all-zero bpf_attr is its documented "no options" state.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing plain integers into the element member of the union.
    let e = unsafe { &mut attr.__bindgen_anon_2 };
    e.map_fd = fd.as_raw_fd() as u32;
    e.key = key.as_ptr() as u64;
    if let Some(v) = value {
        e.__bindgen_anon_1.value = v.as_mut_ptr() as u64;
    }
    sys_bpf(cmd, &mut attr)
}

/// Writes `count` entries (`keys` and `values` concatenated) with one
/// BPF_MAP_UPDATE_BATCH call per `chunk` (one BPF_MAP_UPDATE_ELEM per entry
/// where the kernel has no batch update for the map); the kernel stops at
/// the first entry it refuses. Returns how many were written and the
/// error, if any.
pub fn update(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
    chunk: usize,
) -> (usize, Option<io::Error>) {
    write_batch(fd, keys, Some(values), count, chunk)
}

/// Deletes `count` entries (`keys` concatenated) as [`update`] writes them
/// (BPF_MAP_DELETE_BATCH, else BPF_MAP_DELETE_ELEM); the kernel stops at
/// the first key it cannot delete (ENOENT for a key that is not there).
pub fn delete(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    count: usize,
    chunk: usize,
) -> (usize, Option<io::Error>) {
    write_batch(fd, keys, None, count, chunk)
}

/// [`update`] (with `values`) or [`delete`] (without).
fn write_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: Option<&[u8]>,
    count: usize,
    chunk: usize,
) -> (usize, Option<io::Error>) {
    if count == 0 {
        return (0, None);
    }
    let (batch_cmd, elem_cmd) = match values {
        Some(_) => (bpf_cmd::BPF_MAP_UPDATE_BATCH, bpf_cmd::BPF_MAP_UPDATE_ELEM),
        None => (bpf_cmd::BPF_MAP_DELETE_BATCH, bpf_cmd::BPF_MAP_DELETE_ELEM),
    };
    let ks = keys.len() / count;
    let vs = values.map_or(0, |v| v.len() / count);
    let mut done = 0;
    while done < count {
        let n = chunk.min(count - done);
        // SAFETY: an all-zero bpf_attr is its documented "no options" state.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing plain integers into the `batch` member of the union.
        let b = unsafe { &mut attr.batch };
        b.keys = keys[done * ks..].as_ptr() as u64;
        b.values = values.map_or(0, |v| v[done * vs..].as_ptr() as u64);
        b.count = n as u32;
        b.map_fd = fd.as_raw_fd() as u32;
        let r = sys_bpf(batch_cmd, &mut attr);
        // SAFETY: the kernel wrote how many entries it handled into `batch`.
        let handled = (unsafe { attr.batch.count } as usize).min(n);
        done += handled;
        match r {
            Err(e) if unsupported(&e) && done == 0 => break,
            Err(e) => return (done, Some(e)),
            Ok(()) if handled == 0 => {
                return (
                    done,
                    Some(io::Error::other("a batch call handled no entry")),
                )
            }
            Ok(()) => {}
        }
    }
    // No batch ops for this map: one call per entry.
    while done < count {
        let key = &keys[done * ks..(done + 1) * ks];
        // The kernel only reads the value of an update.
        let mut value = values.map(|v| v[done * vs..(done + 1) * vs].to_vec());
        if let Err(e) = elem(elem_cmd, fd, key, value.as_deref_mut()) {
            return (done, Some(e));
        }
        done += 1;
    }
    (done, None)
}
