//! Crafted frames on the wire: an AF_PACKET socket on the client veth sends
//! them and collects what comes back, classified the way a peer sees it.
use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

/// What the peer saw in answer to one probe.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    SynAck,
    Rst,
    Udp,
    /// ICMP or ICMPv6 type and code.
    Icmp(u8, u8),
    EchoReply,
    Nothing,
}

/// A raw socket bound to one interface of the current network namespace.
pub struct RawPort {
    fd: OwnedFd,
    ifindex: i32,
    pub mac: [u8; 6],
}

const ETH_P_ALL: u16 = 0x0003;

/// An AF_PACKET socket for `proto` (network order inside; 0 receives
/// nothing, ETH_P_ALL everything) and the index of `iface`.
pub fn packet_socket(iface: &str, proto: u16) -> io::Result<(OwnedFd, i32)> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto.to_be() as i32,
        )
    };
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
    Ok((fd, ifindex))
}

/// Sends one whole Ethernet frame out of interface `ifindex`.
pub fn send_frame(fd: &OwnedFd, ifindex: i32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: sending a buffer we own to a valid address.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl RawPort {
    /// Opens on `iface`; call from a thread inside the right namespace.
    pub fn open(iface: &str) -> io::Result<RawPort> {
        let (fd, ifindex) = packet_socket(iface, ETH_P_ALL)?;
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: binding our socket to a valid address.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mac = mac_of(iface)?;
        Ok(RawPort { fd, ifindex, mac })
    }

    /// The socket, for options and receive paths defined elsewhere.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_frame(&self.fd, self.ifindex, frame)
    }

    /// Inbound frames (not the ones this host sends) until `wait` passes.
    pub fn collect(&self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || out.len() > 1000 {
                return out;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().max(1) as i32;
            // SAFETY: one pollfd that lives across the call.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf, sll and len live across the call; the lengths passed are theirs.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n > 0 && sll.sll_pkttype != libc::PACKET_OUTGOING {
                out.push(buf[..n as usize].to_vec());
            }
        }
    }

    /// Drains anything queued (ARP, late replies of earlier probes).
    pub fn drain(&self) {
        let _ = self.collect(Duration::from_millis(1));
    }
}

/// The MAC of `iface`, asked of the kernel in this namespace.
pub fn mac_of(iface: &str) -> io::Result<[u8; 6]> {
    // SAFETY: plain syscall; the fd is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is an empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr of `req`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// The identity of a probe, to match answers to it.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub server: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// The answer among `frames` that belongs to `probe` (first one wins).
pub fn classify(frames: &[Vec<u8>], probe: &Probe) -> Answer {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    for f in frames {
        let Ok(p) = SlicedPacket::from_ethernet(f) else {
            continue;
        };
        let src: IpAddr = match &p.net {
            Some(NetSlice::Ipv4(v4)) => v4.header().source_addr().into(),
            Some(NetSlice::Ipv6(v6)) => v6.header().source_addr().into(),
            _ => continue,
        };
        if src != probe.server {
            continue;
        }
        match &p.transport {
            Some(TransportSlice::Tcp(t))
                if t.source_port() == probe.dport && t.destination_port() == probe.sport =>
            {
                if t.rst() {
                    return Answer::Rst;
                }
                if t.syn() && t.ack() {
                    return Answer::SynAck;
                }
            }
            Some(TransportSlice::Udp(u))
                if u.source_port() == probe.dport && u.destination_port() == probe.sport =>
            {
                return Answer::Udp;
            }
            Some(TransportSlice::Icmpv4(i)) => {
                let (ty, code) = (i.type_u8(), i.code_u8());
                if ty == 0 {
                    return Answer::EchoReply;
                }
                if quotes(i.payload(), probe, false) {
                    return Answer::Icmp(ty, code);
                }
            }
            Some(TransportSlice::Icmpv6(i)) => {
                let (ty, code) = (i.type_u8(), i.code_u8());
                if (133..=137).contains(&ty) {
                    continue;
                }
                if ty == 129 {
                    return Answer::EchoReply;
                }
                if quotes(i.payload(), probe, true) {
                    return Answer::Icmp(ty, code);
                }
            }
            _ => {}
        }
    }
    Answer::Nothing
}

/// Whether an ICMP error's quote is the probe's packet.
fn quotes(payload: &[u8], probe: &Probe, v6: bool) -> bool {
    let (l4, proto) = if v6 {
        if payload.len() < 48 {
            return false;
        }
        // fw quotes a first fragment as it came (fragment header included);
        // Linux quotes the reassembled packet.
        if payload[6] == 44 && payload.len() >= 56 {
            (&payload[48..], payload[40])
        } else {
            (&payload[40..], payload[6])
        }
    } else {
        if payload.len() < 28 {
            return false;
        }
        let ihl = ((payload[0] & 0x0f) as usize) * 4;
        if payload.len() < ihl + 8 {
            return false;
        }
        (&payload[ihl..], payload[9])
    };
    if proto != probe.proto {
        return false;
    }
    match proto {
        6 | 17 => {
            u16::from_be_bytes([l4[0], l4[1]]) == probe.sport
                && u16::from_be_bytes([l4[2], l4[3]]) == probe.dport
        }
        _ => true,
    }
}
