//! An interactive TCP session for the load tests: an echo server in the
//! server namespace that keeps its accepted sockets (to read their TCP_INFO),
//! and a client that exchanges a numbered message every tick and times the
//! echo of each.
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::probe::in_netns;

/// `struct tcp_info` up to `tcpi_segs_in` (Linux uapi; offsets fixed).
const TCPI_SEGS_OUT: usize = 136;
const TCPI_SEGS_IN: usize = 140;

/// (segments out, segments in) of a TCP socket.
pub fn tcp_segs(s: &TcpStream) -> (u64, u64) {
    let mut info = [0u8; 256];
    let mut len = info.len() as u32;
    // SAFETY: getsockopt into a buffer of the given length.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    assert!(
        len as usize >= TCPI_SEGS_IN + 4,
        "TCP_INFO too short: {len}"
    );
    let at = |o: usize| u32::from_ne_bytes(info[o..o + 4].try_into().expect("4 bytes")) as u64;
    (at(TCPI_SEGS_OUT), at(TCPI_SEGS_IN))
}

/// An echo server whose accepted sockets stay reachable.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Listens on `addr:port` inside namespace `ns` until dropped.
    pub fn start(ns: &Path, addr: IpAddr, port: u16) -> EchoServer {
        let listener = in_netns(ns, move || TcpListener::bind(SocketAddr::new(addr, port)))
            .expect("setns")
            .expect("bind the echo server");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let thread = thread::spawn(move || {
            let mut mine: Vec<TcpStream> = Vec::new();
            let mut buf = [0u8; 4096];
            let started = Instant::now();
            while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(600) {
                let mut busy = false;
                if let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).expect("nonblocking");
                    stream.set_nodelay(true).expect("nodelay");
                    c.lock()
                        .expect("lock")
                        .push(stream.try_clone().expect("clone"));
                    mine.push(stream);
                    busy = true;
                }
                mine.retain_mut(|m| match m.read(&mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        busy = true;
                        m.set_nonblocking(false).expect("blocking");
                        let ok = m.write_all(&buf[..n]).is_ok();
                        m.set_nonblocking(true).expect("nonblocking");
                        ok
                    }
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                });
                if !busy {
                    thread::sleep(Duration::from_micros(500));
                }
            }
        });
        EchoServer {
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// Segments received over every accepted connection so far.
    pub fn segs_in(&self) -> u64 {
        self.conns
            .lock()
            .expect("lock")
            .iter()
            .map(|s| tcp_segs(s).1)
            .sum()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client connection made from namespace `ns`.
pub fn connect(ns: &Path, addr: IpAddr, port: u16) -> TcpStream {
    let s = in_netns(ns, move || {
        TcpStream::connect_timeout(&SocketAddr::new(addr, port), Duration::from_secs(5))
    })
    .expect("setns")
    .unwrap_or_else(|e| panic!("connect to {addr}:{port}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s
}

/// What a session saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub echoed: u64,
    pub worst: Duration,
    pub failures: Vec<String>,
}

/// Sends message `seq` and waits for its echo; the round-trip time.
pub fn exchange(s: &mut TcpStream, seq: u64, bound: Duration) -> Result<Duration, String> {
    let msg = format!("{seq:016}:interactive-message-padding-to-64-bytes-xxxxxxxxxxxxxxxxxx");
    let t = Instant::now();
    s.set_read_timeout(Some(bound)).map_err(|e| e.to_string())?;
    s.write_all(msg.as_bytes())
        .map_err(|e| format!("message {seq}: write: {e}"))?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)
        .map_err(|e| format!("message {seq}: no echo within {bound:?}: {e}"))?;
    if got != msg.as_bytes() {
        return Err(format!("message {seq}: echo differs"));
    }
    Ok(t.elapsed())
}

/// Exchanges a message every `tick` until `stop` is set (or `max` messages),
/// recording each failure or late echo (beyond `bound`).
pub fn run(
    mut s: TcpStream,
    tick: Duration,
    bound: Duration,
    max: u64,
    stop: &AtomicBool,
) -> Report {
    let mut r = Report::default();
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) && r.sent < max {
        let due = start + tick * r.sent as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        r.sent += 1;
        match exchange(&mut s, r.sent, bound) {
            Ok(rtt) => {
                r.echoed += 1;
                r.worst = r.worst.max(rtt);
            }
            Err(e) => {
                r.failures.push(e);
                break;
            }
        }
    }
    r
}
