//! A send-only packet socket for floods: protocol 0, so nothing is queued
//! back to it (an ETH_P_ALL socket would get a copy of every frame it sends).
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

pub struct Blaster {
    fd: OwnedFd,
    ifindex: i32,
}

/// What a flood did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Frames the interface took (counted by the receiving side).
    pub frames: u64,
    /// Frames the veth refused (its peer's ring was full): never seen.
    pub refused: u64,
    pub elapsed: Duration,
}

impl Blaster {
    /// Opens on `iface`; call from a thread inside the right namespace.
    pub fn open(iface: &str) -> io::Result<Blaster> {
        // SAFETY: plain socket(2); protocol 0 receives nothing.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Blaster { fd, ifindex })
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: sending a buffer we own to a valid address.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Sends `frames` round-robin as fast as it can until `max` went out,
    /// `limit` passed or `stop` is set. A frame the veth drops (its peer's
    /// ring full) comes back as ENOBUFS: counted apart, never seen by fw.
    pub fn flood(&self, frames: &[Vec<u8>], max: u64, limit: Duration, stop: &AtomicBool) -> Sent {
        let start = Instant::now();
        let mut s = Sent::default();
        let mut i = 0usize;
        while s.frames < max && !stop.load(Ordering::Relaxed) {
            // Checking the clock every 1024 frames keeps it off the hot path.
            if i.is_multiple_of(1024) && start.elapsed() >= limit {
                break;
            }
            match self.send(&frames[i % frames.len()]) {
                Ok(()) => s.frames += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => s.refused += 1,
                Err(e) => panic!("flood send: {e}"),
            }
            i += 1;
        }
        s.elapsed = start.elapsed();
        s
    }
}
