//! A send-only packet socket for floods: protocol 0, so nothing is queued
//! back to it (an ETH_P_ALL socket would get a copy of every frame it sends).
use crate::raw::{packet_socket, send_frame};
use std::{
    io,
    os::fd::OwnedFd,
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
        // Protocol 0: receives nothing.
        let (fd, ifindex) = packet_socket(iface, 0)?;
        Ok(Blaster { fd, ifindex })
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_frame(&self.fd, self.ifindex, frame)
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

impl Blaster {
    /// Sends frames of `len` bytes that `make` writes (given the number of
    /// the frame, from 0) as fast as it can, until `enough(frames sent)`
    /// holds, `max` went out or `limit` passed. A frame the veth refused is
    /// sent again, so frames 0..frames all reached the peer, after a pause
    /// of `backoff`: the receiver then has room in its ring for other
    /// senders' frames too (as a NIC's ring is never held full by a
    /// sender that retries at once), and it stays busy all the same.
    pub fn flood_made(
        &self,
        len: usize,
        max: u64,
        limit: Duration,
        backoff: Duration,
        enough: impl Fn(u64) -> bool,
        mut make: impl FnMut(u64, &mut [u8]),
    ) -> Sent {
        let start = Instant::now();
        let mut s = Sent::default();
        let mut buf = vec![0u8; len];
        let mut made = None;
        let mut tries = 0u64;
        while s.frames < max {
            if tries.is_multiple_of(1024) && (start.elapsed() >= limit || enough(s.frames)) {
                break;
            }
            tries += 1;
            if made != Some(s.frames) {
                make(s.frames, &mut buf);
                made = Some(s.frames);
            }
            match self.send(&buf) {
                Ok(()) => s.frames += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    s.refused += 1;
                    std::thread::sleep(backoff);
                }
                Err(e) => panic!("flood send: {e}"),
            }
        }
        s.elapsed = start.elapsed();
        s
    }
}
