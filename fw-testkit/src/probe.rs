//! Real sockets inside namespaces: run code in a namespace, probe ports from
//! the client, serve ports on the server. Every wait is bounded.

use std::{
    fmt,
    fs::File,
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// A background server stops by itself after this long, even if its handle
/// is leaked.
pub const SERVER_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Most TCP connections a listener keeps open at once (the oldest is closed).
const MAX_OPEN_CONNS: usize = 256;
/// Poll interval of the server loops.
const TICK: Duration = Duration::from_millis(5);

fn open_ns(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Setns {
        path: path.to_owned(),
        source,
    })
}

fn enter(ns: &File, path: &Path) -> Result<()> {
    // SAFETY: setns on a valid, open namespace fd; it affects only this thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Setns {
            path: path.to_owned(),
            source: io::Error::last_os_error(),
        })
    }
}

/// Runs `f` on a fresh thread that first joins the network namespace at
/// `path` (e.g. `/run/netns/NAME`), and returns its result. Sockets `f`
/// creates live in that namespace. A panic in `f` is propagated.
pub fn in_netns<T, F>(path: impl AsRef<Path>, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let path = path.as_ref();
    let ns = open_ns(path)?;
    thread::scope(|s| {
        let handle = s.spawn(move || {
            enter(&ns, path)?;
            Ok(f())
        });
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// TCP: the handshake completed.
    Connected,
    /// UDP: the echo came back.
    Replied,
    /// `ECONNREFUSED`: a TCP RST, or an ICMP port-unreachable.
    Refused,
    /// An ICMP error other than port-unreachable: `EHOSTUNREACH` (v4 host
    /// unreachable, v6 address unreachable), `ENETUNREACH`, `EACCES` (v6
    /// admin-prohibited). Holds the errno.
    Unreachable(i32),
    /// No answer within the timeout: the packet was dropped somewhere.
    TimedOut,
    /// Anything else (a local error, an unexpected reply), described.
    Failed(String),
}

impl Outcome {
    /// Classifies a socket error.
    pub fn from_io(err: &io::Error) -> Outcome {
        match err.raw_os_error() {
            Some(libc::ECONNREFUSED) => Outcome::Refused,
            Some(e @ (libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES)) => {
                Outcome::Unreachable(e)
            }
            Some(libc::ETIMEDOUT | libc::EAGAIN | libc::EINPROGRESS) => Outcome::TimedOut,
            _ if matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
            {
                Outcome::TimedOut
            }
            _ => Outcome::Failed(err.to_string()),
        }
    }

    /// True for an ICMP host-unreachable (IPv4) or address-unreachable
    /// (IPv6): the reference policy's answer to a rejected packet.
    pub fn is_host_unreachable(&self) -> bool {
        *self == Outcome::Unreachable(libc::EHOSTUNREACH)
    }

    /// True for [`Outcome::Connected`] and [`Outcome::Replied`].
    pub fn is_answered(&self) -> bool {
        matches!(self, Outcome::Connected | Outcome::Replied)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Connected => f.write_str("connected"),
            Outcome::Replied => f.write_str("echo reply"),
            Outcome::Refused => f.write_str("refused (TCP RST or ICMP port-unreachable)"),
            Outcome::Unreachable(libc::EHOSTUNREACH) => {
                f.write_str("refused by ICMP host-unreachable (EHOSTUNREACH)")
            }
            Outcome::Unreachable(libc::ENETUNREACH) => {
                f.write_str("refused by ICMP net-unreachable (ENETUNREACH)")
            }
            Outcome::Unreachable(libc::EACCES) => {
                f.write_str("refused by ICMP admin-prohibited (EACCES)")
            }
            Outcome::Unreachable(errno) => {
                write!(f, "unreachable ({})", io::Error::from_raw_os_error(*errno))
            }
            Outcome::TimedOut => f.write_str("no answer (dropped)"),
            Outcome::Failed(why) => write!(f, "error: {why}"),
        }
    }
}

fn at_least_1ms(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

/// Connects to `addr:port` over TCP from inside namespace `ns`, waiting at
/// most `timeout`, and closes the connection again.
pub fn tcp_connect(ns: impl AsRef<Path>, addr: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let target = SocketAddr::new(addr, port);
    let timeout = at_least_1ms(timeout);
    match in_netns(ns, move || TcpStream::connect_timeout(&target, timeout)) {
        Ok(Ok(_stream)) => Outcome::Connected,
        Ok(Err(e)) => Outcome::from_io(&e),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Like [`tcp_connect`], from `src` (an address of namespace `ns`, e.g.
/// one [`crate::Pair::add_client_addr`] added): a second peer of one client.
pub fn tcp_connect_from(
    ns: impl AsRef<Path>,
    src: IpAddr,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Outcome {
    use socket2::{Domain, SockAddr, Socket, Type};
    let target = SocketAddr::new(addr, port);
    let timeout = at_least_1ms(timeout);
    let run = move || -> io::Result<()> {
        let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        s.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
        s.connect_timeout(&SockAddr::from(target), timeout)
    };
    match in_netns(ns, run) {
        Ok(Ok(())) => Outcome::Connected,
        Ok(Err(e)) => Outcome::from_io(&e),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Echoes `rounds` messages over `stream` (to a server that echoes, such as
/// [`spawn_tcp_listener`]'s), asserting each comes back whole.
///
/// # Panics
/// On a write error, a lost or garbled echo, named with `tag`.
#[track_caller]
pub fn echo_rounds(stream: &mut TcpStream, rounds: usize, tag: &str) {
    for i in 0..rounds {
        let msg = format!("{tag} {i}\n");
        stream
            .write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("{tag}: write {i}: {e}"));
        let mut buf = vec![0u8; msg.len()];
        stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("{tag}: echo {i} lost: {e}"));
        assert_eq!(buf, msg.as_bytes(), "{tag}: echo {i} garbled");
    }
}

/// Connects over TCP from namespace `ns` and runs `f` on the stream (read and
/// write timeouts are already set to `timeout`). `Err` holds the connect outcome.
pub fn tcp_session<T, F>(
    ns: impl AsRef<Path>,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
    f: F,
) -> Result<T, Outcome>
where
    F: FnOnce(TcpStream) -> T + Send,
    T: Send,
{
    let target = SocketAddr::new(addr, port);
    let timeout = at_least_1ms(timeout);
    let run = move || -> Result<T, Outcome> {
        let stream =
            TcpStream::connect_timeout(&target, timeout).map_err(|e| Outcome::from_io(&e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| Outcome::Failed(e.to_string()))?;
        Ok(f(stream))
    };
    in_netns(ns, run).unwrap_or_else(|e| Err(Outcome::Failed(e.to_string())))
}

fn set_recverr(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: setsockopt with a valid fd and a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn udp_exchange(target: SocketAddr, timeout: Duration) -> io::Result<Outcome> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    // Report every ICMP error on the socket, including the ones Linux treats
    // as soft (ICMPv6 address unreachable).
    set_recverr(&sock, target.is_ipv6())?;
    sock.connect(target)?;
    let payload = format!("fw-testkit probe {}", std::process::id());
    sock.send(payload.as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    // A stray earlier datagram is skipped; bounded by the deadline.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Outcome::TimedOut);
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        if &buf[..n] == payload.as_bytes() {
            return Ok(Outcome::Replied);
        }
    }
}

/// Sends one UDP datagram to `addr:port` from namespace `ns` and waits at
/// most `timeout` for the echo ([`Outcome::Replied`]) or an ICMP error
/// surfaced on the connected socket.
pub fn udp_probe(ns: impl AsRef<Path>, addr: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let target = SocketAddr::new(addr, port);
    let timeout = at_least_1ms(timeout);
    match in_netns(ns, move || udp_exchange(target, timeout)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::from_io(&e),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// A server running on a background thread in a namespace. Dropping it stops
/// the thread (within a few milliseconds) and closes its sockets.
#[derive(Debug)]
pub struct Server {
    local: SocketAddr,
    hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    /// TCP: connections accepted so far. UDP: datagrams echoed so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Loop {
    hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Loop {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && self.started.elapsed() < SERVER_MAX_LIFETIME
    }
}

fn spawn_server<S, B, L>(ns: &Path, name: String, bind: B, serve: L) -> Result<Server>
where
    S: Send + 'static,
    B: FnOnce() -> io::Result<(S, SocketAddr)> + Send + 'static,
    L: FnOnce(S, Loop) + Send + 'static,
{
    let file = open_ns(ns)?;
    let path = ns.to_owned();
    let hits = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let lp = Loop {
        hits: Arc::clone(&hits),
        stop: Arc::clone(&stop),
        started: Instant::now(),
    };
    let thread = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let bound = enter(&file, &path).and_then(|()| {
                drop(file);
                bind().map_err(|source| Error::Io {
                    what: format!("{name}: bind in {}", path.display()),
                    source,
                })
            });
            match bound {
                Ok((sock, local)) => {
                    let _ = tx.send(Ok(local));
                    serve(sock, lp);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|source| Error::Io {
            what: "spawning a server thread".into(),
            source,
        })?;
    let local = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(local)) => local,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            stop.store(true, Ordering::SeqCst);
            return Err(Error::Io {
                what: "server thread did not report its bind".into(),
                source: io::ErrorKind::TimedOut.into(),
            });
        }
    };
    Ok(Server {
        local,
        hits,
        stop,
        thread: Some(thread),
    })
}

/// Starts a TCP listener on `addr:port` inside namespace `ns`. It accepts
/// connections, keeps them open and echoes what they send, until the
/// returned [`Server`] is dropped. `[::]` listens on IPv4 and IPv6.
pub fn spawn_tcp_listener(ns: impl AsRef<Path>, addr: IpAddr, port: u16) -> Result<Server> {
    let bind_addr = SocketAddr::new(addr, port);
    spawn_server(
        ns.as_ref(),
        format!("tcp-{port}"),
        move || {
            let listener = TcpListener::bind(bind_addr)?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            Ok((listener, local))
        },
        serve_tcp,
    )
}

fn serve_tcp(listener: TcpListener, lp: Loop) {
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; 4096];
    while lp.running() {
        let mut busy = false;
        // Bounded per tick so a flood cannot starve the stop check.
        for _ in 0..64 {
            match listener.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    lp.hits.fetch_add(1, Ordering::SeqCst);
                    if stream.set_nonblocking(true).is_ok() {
                        if conns.len() >= MAX_OPEN_CONNS {
                            conns.remove(0);
                        }
                        conns.push(stream);
                    }
                }
                Err(_) => break, // WouldBlock, or a connection aborted before accept
            }
        }
        conns.retain_mut(|c| match c.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                busy = true;
                c.write_all(&buf[..n]).is_ok()
            }
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        });
        if !busy {
            thread::sleep(TICK);
        }
    }
}

/// Starts a UDP echo server on `addr:port` inside namespace `ns`, until the
/// returned [`Server`] is dropped. `[::]` serves IPv4 and IPv6.
pub fn spawn_udp_echo(ns: impl AsRef<Path>, addr: IpAddr, port: u16) -> Result<Server> {
    let bind_addr = SocketAddr::new(addr, port);
    spawn_server(
        ns.as_ref(),
        format!("udp-{port}"),
        move || {
            let sock = UdpSocket::bind(bind_addr)?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))?;
            let local = sock.local_addr()?;
            Ok((sock, local))
        },
        serve_udp,
    )
}

fn serve_udp(sock: UdpSocket, lp: Loop) {
    let mut buf = [0u8; 65536];
    while lp.running() {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if sock.send_to(&buf[..n], from).is_ok() {
                    lp.hits.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // e.g. ECONNREFUSED left by an ICMP error for an earlier reply.
            Err(_) => thread::sleep(TICK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(Outcome::from_io(&os(libc::ECONNREFUSED)), Outcome::Refused);
        assert_eq!(
            Outcome::from_io(&os(libc::EHOSTUNREACH)),
            Outcome::Unreachable(libc::EHOSTUNREACH)
        );
        assert_eq!(
            Outcome::from_io(&os(libc::EACCES)),
            Outcome::Unreachable(libc::EACCES)
        );
        assert_eq!(Outcome::from_io(&os(libc::EAGAIN)), Outcome::TimedOut);
        assert_eq!(
            Outcome::from_io(&io::Error::from(io::ErrorKind::TimedOut)),
            Outcome::TimedOut
        );
        assert!(matches!(
            Outcome::from_io(&os(libc::EBADF)),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn outcomes_read_well() {
        assert_eq!(
            Outcome::Unreachable(libc::EHOSTUNREACH).to_string(),
            "refused by ICMP host-unreachable (EHOSTUNREACH)"
        );
        assert_eq!(Outcome::TimedOut.to_string(), "no answer (dropped)");
        assert!(Outcome::Connected.is_answered());
        assert!(Outcome::Unreachable(libc::EHOSTUNREACH).is_host_unreachable());
        assert!(!Outcome::TimedOut.is_host_unreachable());
        assert!(!Outcome::Refused.is_answered());
    }

    #[test]
    fn in_netns_reports_a_missing_namespace() {
        let err =
            in_netns("/run/netns/fw-testkit-does-not-exist", || ()).expect_err("no such namespace");
        assert!(matches!(err, Error::Setns { .. }), "{err}");
    }
}
