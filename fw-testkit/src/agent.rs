//! The server's side of the flows it starts: non-blocking TCP connects, UDP
//! queries and pings (ping sockets), opened inside the server namespace and
//! later asked what became of them (the host's view of the peer's replies
//! and ICMP errors).
use std::{
    io,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use crate::probe::in_netns;

/// A flow for the server to start.
#[derive(Clone, Copy, Debug)]
pub enum Open {
    Tcp {
        local: SocketAddr,
        peer: SocketAddr,
    },
    Udp {
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// A ping from `local` with identifier `ident` (the ping socket's port).
    Ping {
        local: IpAddr,
        ident: u16,
        peer: IpAddr,
    },
}

enum Sock {
    Tcp(OwnedFd),
    Udp(UdpSocket),
    Ping(OwnedFd),
}

/// The sockets, by case index.
pub struct Agent {
    socks: Vec<(usize, Sock)>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn socket(v6: bool, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    let dom = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe { libc::socket(dom, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a c_int value.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

fn recverr(fd: &OwnedFd, v6: bool) -> io::Result<()> {
    if v6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    }
}

fn bind_connect(fd: &OwnedFd, local: SocketAddr, peer: SocketAddr) -> io::Result<()> {
    let (l, ll) = sockaddr(local);
    // SAFETY: valid sockaddr of the given length.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&l as *const libc::sockaddr_storage).cast(),
            ll,
        )
    })?;
    let (p, pl) = sockaddr(peer);
    // SAFETY: as above.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&p as *const libc::sockaddr_storage).cast(),
            pl,
        )
    };
    match cvt(rc) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        r => r.map(drop),
    }
}

fn open_one(o: Open) -> io::Result<Sock> {
    match o {
        Open::Tcp { local, peer } => {
            let fd = socket(local.is_ipv6(), libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
            set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            bind_connect(&fd, local, peer)?;
            Ok(Sock::Tcp(fd))
        }
        Open::Udp { local, peer } => {
            let s = UdpSocket::bind(local)?;
            let fd = s.try_clone()?.into();
            recverr(&fd, local.is_ipv6())?;
            s.connect(peer)?;
            s.set_nonblocking(true)?;
            s.send(b"query")?;
            Ok(Sock::Udp(s))
        }
        Open::Ping { local, ident, peer } => {
            let v6 = local.is_ipv6();
            let proto = if v6 {
                libc::IPPROTO_ICMPV6
            } else {
                libc::IPPROTO_ICMP
            };
            let fd = socket(v6, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, proto)?;
            recverr(&fd, v6)?;
            bind_connect(&fd, SocketAddr::new(local, ident), SocketAddr::new(peer, 0))?;
            let ty = if v6 { 128 } else { 8 };
            let msg = [ty, 0, 0, 0, 0, 0, 0, 1, b'p', b'i', b'n', b'g'];
            // SAFETY: sending a buffer we own on a connected socket.
            cvt(unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } as i32)?;
            Ok(Sock::Ping(fd))
        }
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::ECONNRESET => "ECONNRESET".into(),
        libc::EHOSTUNREACH => "EHOSTUNREACH".into(),
        libc::ENETUNREACH => "ENETUNREACH".into(),
        libc::EACCES => "EACCES".into(),
        libc::EPROTO => "EPROTO".into(),
        libc::EMSGSIZE => "EMSGSIZE".into(),
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ENOPROTOOPT => "ENOPROTOOPT".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        n => format!("errno {n}"),
    }
}

const TCP_STATES: [&str; 12] = [
    "?",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

fn so_error(fd: &OwnedFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as u32;
    // SAFETY: getsockopt into a c_int.
    unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    v
}

fn tcp_state(fd: &OwnedFd) -> &'static str {
    let mut info = [0u8; 256];
    let mut len = info.len() as u32;
    // SAFETY: getsockopt into a buffer of the given length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return "?";
    }
    TCP_STATES.get(info[0] as usize).copied().unwrap_or("?")
}

/// What a datagram socket got: data, an error, or nothing.
fn dgram_seen(fd: libc::c_int) -> String {
    let mut buf = [0u8; 2048];
    // SAFETY: recv into a buffer we own.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return "data".into();
    }
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if e == libc::EAGAIN {
        "nothing".into()
    } else {
        errno_name(e)
    }
}

impl Agent {
    /// Opens every flow from a thread inside the namespace at `ns`.
    pub fn open(ns: &Path, list: Vec<(usize, Open)>) -> Agent {
        in_netns(ns, move || {
            let socks = list
                .into_iter()
                .map(|(i, o)| {
                    (
                        i,
                        open_one(o).unwrap_or_else(|e| panic!("opening {o:?}: {e}")),
                    )
                })
                .collect();
            Agent { socks }
        })
        .expect("setns")
    }

    /// Per case: what the server's socket saw.
    pub fn observe(&self) -> Vec<(usize, String)> {
        self.socks
            .iter()
            .map(|(i, s)| {
                let seen = match s {
                    Sock::Tcp(fd) => {
                        let e = so_error(fd);
                        let state = tcp_state(fd);
                        if e == 0 {
                            format!("host:{state}")
                        } else {
                            format!("host:{state},{}", errno_name(e))
                        }
                    }
                    Sock::Udp(u) => format!("host:{}", dgram_seen(u.as_raw_fd())),
                    Sock::Ping(fd) => format!("host:{}", dgram_seen(fd.as_raw_fd())),
                };
                (*i, seen)
            })
            .collect()
    }
}
