//! The established flow of the live benchmark: a real TCP connection from
//! the client to the server's open port, so every receiver (iptables'
//! conntrack included) knows it, with the client socket frozen in
//! TCP_REPAIR mode so it never answers or closes, and the sequence numbers a
//! generated segment needs to be in its window.

use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    os::fd::AsRawFd,
    time::Duration,
};

use anyhow::{Context, Result};
use fw_testkit::{in_netns, Pair, SRV_V4};

use super::{frames::OPEN_PORT, receivers::run};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// An established TCP connection client -> server:OPEN_PORT whose client
/// socket is frozen in TCP_REPAIR mode (so it never answers or closes), and
/// the numbers a segment needs to be in its window.
pub struct Conn {
    _sock: TcpStream,
    pub lport: u16,
    /// The client's next sequence number and what it acknowledges.
    pub seq: u32,
    pub ack: u32,
}

const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;

fn setsockopt_int(sock: &TcpStream, opt: libc::c_int, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_TCP,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn queue_seq(sock: &TcpStream, queue: libc::c_int) -> std::io::Result<u32> {
    setsockopt_int(sock, libc::TCP_REPAIR_QUEUE, queue)?;
    let mut v: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: v and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_QUEUE_SEQ,
            (&mut v as *mut u32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Conn {
    pub fn open(pair: &Pair) -> Result<Conn> {
        // No TCP timestamps: the generated segments carry no options, and
        // on a connection without timestamps they take the fast path.
        run(pair
            .cli()
            .command("sysctl")
            .args(["-qw", "net.ipv4.tcp_timestamps=0"]))?;
        let target = SocketAddr::new(IpAddr::V4(SRV_V4), OPEN_PORT);
        in_netns(pair.cli_path(), || -> Result<Conn> {
            let sock = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
                .with_context(|| format!("connecting to {target} (the established flow)"))?;
            let lport = sock.local_addr()?.port();
            setsockopt_int(&sock, libc::TCP_REPAIR, 1).context("TCP_REPAIR (needs root)")?;
            let seq = queue_seq(&sock, TCP_SEND_QUEUE).context("TCP_QUEUE_SEQ (send)")?;
            let ack = queue_seq(&sock, TCP_RECV_QUEUE).context("TCP_QUEUE_SEQ (receive)")?;
            Ok(Conn {
                _sock: sock,
                lport,
                seq,
                ack,
            })
        })?
    }
}
