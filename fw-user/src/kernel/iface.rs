//! Interfaces of the current network namespace.
use std::{ffi::CString, io};

use crate::{
    error::{Error, Result},
    model::names::check_name,
};

/// A network interface fw can be up on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
}

/// Looks up `name` and refuses loopback.
pub fn resolve(name: &str) -> Result<Iface> {
    check_name(name)?;
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(Error::NoSuchInterface(name.to_string()));
    }
    if is_loopback(name)? {
        return Err(Error::Loopback(name.to_string()));
    }
    Ok(Iface {
        name: name.to_string(),
        index,
    })
}

/// Asks the kernel (SIOCGIFFLAGS in this network namespace; /sys may belong
/// to another one under nsenter).
fn is_loopback(name: &str) -> Result<bool> {
    // SAFETY: plain syscall; the fd is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io(
            "socket for SIOCGIFFLAGS",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: ifreq is plain old data; all zeroes is an empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of `req`,
    // which lives across the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` is ours (opened above) and closed once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(Error::io(format!("reading flags of `{name}`"), err));
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds ifru_flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
    Ok(flags & libc::IFF_LOOPBACK != 0)
}

/// Whether an interface with this index still exists.
pub fn exists(index: u32) -> bool {
    crate::kernel::sys::if_indextoname(index).is_some()
}
