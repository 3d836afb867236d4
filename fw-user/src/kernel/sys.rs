//! The small system calls fw makes in several places, each in one home:
//! who runs fw, waiting on a file descriptor, terminals, processes and
//! interface names.
use std::{io, os::fd::RawFd, time::Duration};

use crate::error::{Error, Result};

/// `net.ipv4.tcp_syncookies` of this network namespace (it covers IPv6
/// too), or `None` when it cannot be read. `[syncookies] mode = "always"`
/// needs 2: only then does the kernel hand out a cookie for every SYN.
pub fn tcp_syncookies() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syncookies")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What `fw up` and `fw status` say about `[syncookies] mode` given the
/// namespace's `net.ipv4.tcp_syncookies`: a warning when `always` cannot be
/// honoured.
pub fn syncookies_warning(mode: u32, sysctl: Option<u32>) -> Option<String> {
    if mode != fw_common::SYNCOOKIE_ALWAYS || sysctl == Some(2) {
        return None;
    }
    let now = sysctl.map_or("unreadable".to_string(), |v| format!("{v}"));
    Some(format!(
        "[syncookies] mode = \"always\" needs net.ipv4.tcp_syncookies = 2 in this network \
         namespace (it is {now}): until then fw answers with cookies only while a listener is \
         flooded, as with \"auto\"; set it with `sysctl -w net.ipv4.tcp_syncookies=2`"
    ))
}

/// fw's commands that change the kernel need root.
pub fn require_root(what: &'static str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot(what));
    }
    Ok(())
}

/// Waits up to `timeout` for `fd` to have something to read (data, end of
/// input or an error to collect). Ok(false) on timeout, and when a signal
/// cut the wait short (the caller checks its flags and waits again).
pub fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

/// Whether `fd` is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty has no preconditions; a bad fd gives 0.
    unsafe { libc::isatty(fd) == 1 }
}

/// Whether process `pid` exists (one of another user counts too).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The name of the interface with index `index` in this network namespace,
/// if there is one.
pub fn if_indextoname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}
