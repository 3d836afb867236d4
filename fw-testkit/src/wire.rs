//! Reading frames off the client veth: a capture that keeps VLAN tags (the
//! kernel moves them out of the frame before packet sockets see it) and a
//! parser that turns every frame the server sends into an answer label and
//! the key of the probe it answers.
use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use crate::packet::{
    checksum::{ones_sum, pseudo_sum},
    flag_names, octets,
};

use crate::raw::RawPort;

const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// A raw port that sees VLAN tags and holds big socket buffers (a batch of
/// thousands of probes gets thousands of answers).
pub struct Wire {
    pub port: RawPort,
}

impl Wire {
    /// Opens on `iface` (call from a thread in the client namespace).
    pub fn open(iface: &str) -> io::Result<Wire> {
        let port = RawPort::open(iface)?;
        let fd = port.raw_fd();
        let set = |level, name, v: libc::c_int| -> io::Result<()> {
            // SAFETY: setsockopt with a valid fd and a c_int value.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        set(SOL_PACKET, PACKET_AUXDATA, 1)?;
        set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20)?;
        set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 16 << 20)?;
        Ok(Wire { port })
    }

    /// Sends a frame, waiting briefly when the socket buffer is full.
    pub fn send(&self, frame: &[u8]) {
        for _ in 0..1000 {
            match self.port.send(frame) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) => panic!("sending a {}-byte frame: {e}", frame.len()),
            }
        }
        panic!("the raw socket stayed full for 200 ms");
    }

    /// Every inbound frame until `wait` passes (VLAN tags put back in place).
    pub fn collect(&self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            let mut pfd = libc::pollfd {
                fd: self.port.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            while let Some(f) = self.recv_one() {
                out.push(f);
            }
        }
    }

    /// One queued inbound frame, or `None` when nothing is queued.
    fn recv_one(&self) -> Option<Vec<u8>> {
        loop {
            let mut buf = vec![0u8; 9216];
            let mut cmsg = [0u64; 16];
            // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: msghdr is plain old data; its pointers are set below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cmsg);
            // SAFETY: msg points at live buffers of the sizes given.
            let n = unsafe { libc::recvmsg(self.port.raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                return None;
            }
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            buf.truncate(n as usize);
            if let Some(aux) = auxdata(&msg) {
                if aux.status & TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
                    let tpid = if aux.status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&aux.vlan_tci.to_be_bytes());
                    buf.splice(12..12, tag);
                }
            }
            return Some(buf);
        }
    }
}

fn auxdata(msg: &libc::msghdr) -> Option<AuxData> {
    // SAFETY: walking the control messages the kernel wrote into msg.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                let p = libc::CMSG_DATA(c) as *const AuxData;
                return Some(std::ptr::read_unaligned(p));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// An IP packet, parsed leniently (a quote may be cut short).
#[derive(Clone, Debug)]
pub struct Ip<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol after any extension headers.
    pub proto: u8,
    /// What follows the headers (the L4 header, or a later fragment's data).
    pub l4: &'a [u8],
    /// Fragment offset in bytes, when the packet is a fragment.
    pub frag_off: Option<usize>,
}

/// Parses an IP packet; `exact`: the header lengths must fit (a frame),
/// otherwise whatever is there is taken (a quote).
pub fn parse_ip(p: &[u8], exact: bool) -> Option<Ip<'_>> {
    let v = p.first()? >> 4;
    if v == 4 {
        if p.len() < 20 {
            return None;
        }
        let ihl = ((p[0] & 0x0f) as usize) * 4;
        if ihl < 20 || p.len() < ihl {
            return None;
        }
        let total = u16::from_be_bytes([p[2], p[3]]) as usize;
        let end = if exact {
            if total > p.len() || total < ihl {
                return None;
            }
            total
        } else {
            total.clamp(ihl, p.len())
        };
        let field = u16::from_be_bytes([p[6], p[7]]);
        let off = ((field & 0x1fff) as usize) * 8;
        let more = field & 0x2000 != 0;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]).into();
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]).into();
        Some(Ip {
            src,
            dst,
            proto: p[9],
            l4: &p[ihl..end],
            frag_off: (off != 0 || more).then_some(off),
        })
    } else if v == 6 {
        if p.len() < 40 {
            return None;
        }
        let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
        let end = if exact {
            if 40 + plen > p.len() {
                return None;
            }
            40 + plen
        } else {
            (40 + plen).min(p.len())
        };
        let src: [u8; 16] = p[8..24].try_into().ok()?;
        let dst: [u8; 16] = p[24..40].try_into().ok()?;
        let mut next = p[6];
        let mut off = 40;
        let mut frag_off = None;
        for _ in 0..16 {
            match next {
                0 | 43 | 60 => {
                    let h = p.get(off..off + 2)?;
                    next = h[0];
                    off += (h[1] as usize + 1) * 8;
                }
                44 => {
                    let h = p.get(off..off + 8)?;
                    next = h[0];
                    let fo = u16::from_be_bytes([h[2], h[3]]);
                    if fo & 0xfff9 != 0 {
                        frag_off = Some((fo & 0xfff8) as usize);
                    }
                    off += 8;
                }
                51 => {
                    let h = p.get(off..off + 2)?;
                    next = h[0];
                    off += (h[1] as usize + 2) * 4;
                }
                _ => break,
            }
        }
        if off > end {
            return None;
        }
        Some(Ip {
            src: Ipv6Addr::from(src).into(),
            dst: Ipv6Addr::from(dst).into(),
            proto: next,
            l4: &p[off..end],
            frag_off,
        })
    } else {
        None
    }
}

/// VLAN tags (TCI) and the IP packet of a frame, if it carries IP.
pub fn parse_frame(f: &[u8]) -> Option<(Vec<u16>, &[u8])> {
    let mut off = 12;
    let mut tags = Vec::new();
    loop {
        let t = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
        match t {
            0x8100 | 0x88a8 => {
                tags.push(u16::from_be_bytes([*f.get(off + 2)?, *f.get(off + 3)?]));
                off += 4;
            }
            0x0800 | 0x86dd => return Some((tags, &f[off + 2..])),
            _ => return None,
        }
    }
}

/// What identifies a probe in the answers to it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// An ICMP error quoting the probe: its addresses, protocol and the first
    /// 8 bytes after its headers.
    Quote {
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        head: [u8; 8],
    },
    /// A TCP/UDP answer to the probe's (peer address, ports).
    Flow {
        peer: IpAddr,
        proto: u8,
        peer_port: u16,
        srv_port: u16,
    },
    /// An ICMP informational reply (echo, timestamp, ...) by identifier and sequence.
    Echo { peer: IpAddr, id: u16, seq: u16 },
    /// A neighbor advertisement to the peer address.
    Ndp { peer: IpAddr },
}

fn head8(b: &[u8]) -> [u8; 8] {
    let mut h = [0u8; 8];
    let n = b.len().min(8);
    h[..n].copy_from_slice(&b[..n]);
    h
}

fn is_icmp_error(v6: bool, ty: u8) -> bool {
    if v6 {
        ty < 128
    } else {
        matches!(ty, 3 | 4 | 5 | 11 | 12)
    }
}

/// The keys answers to the sent frame `f` would carry.
pub fn probe_keys(f: &[u8]) -> Vec<Key> {
    let Some((_, ip)) = parse_frame(f) else {
        return Vec::new();
    };
    let Some(ip) = parse_ip(ip, false) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    if !ip.l4.is_empty() {
        keys.push(Key::Quote {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            head: head8(ip.l4),
        });
    }
    if ip.frag_off.unwrap_or(0) != 0 || ip.l4.len() < 8 {
        return keys;
    }
    let v6 = ip.src.is_ipv6();
    let l4 = ip.l4;
    match ip.proto {
        6 | 17 => keys.push(Key::Flow {
            peer: ip.src,
            proto: ip.proto,
            peer_port: u16::from_be_bytes([l4[0], l4[1]]),
            srv_port: u16::from_be_bytes([l4[2], l4[3]]),
        }),
        1 | 58 if !is_icmp_error(v6, l4[0]) => {
            keys.push(Key::Echo {
                peer: ip.src,
                id: u16::from_be_bytes([l4[4], l4[5]]),
                seq: u16::from_be_bytes([l4[6], l4[7]]),
            });
            if v6 && l4[0] == 135 {
                keys.push(Key::Ndp { peer: ip.src });
            }
        }
        _ => {}
    }
    keys
}

/// What the peer makes of one frame from the server: a label and the key of
/// the probe it answers. `None` for frames that answer no probe (ARP,
/// neighbor solicitations, MLD, router solicitations).
pub fn answer(f: &[u8]) -> Option<(String, Key)> {
    let (tags, ip_bytes) = parse_frame(f)?;
    let ip = parse_ip(ip_bytes, true)?;
    let v6 = ip.src.is_ipv6();
    let l4 = ip.l4;
    // Only ICMP: the stack leaves TCP/UDP checksums to (virtual) offload.
    let csum_ok = !matches!(ip.proto, 1 | 58) || l4_checksum_ok(&ip);
    let (mut label, key) = match ip.proto {
        6 if l4.len() >= 20 => (
            format!("Tcp({})", flag_names(l4[13])),
            Key::Flow {
                peer: ip.dst,
                proto: 6,
                peer_port: u16::from_be_bytes([l4[2], l4[3]]),
                srv_port: u16::from_be_bytes([l4[0], l4[1]]),
            },
        ),
        17 if l4.len() >= 8 => (
            "Udp".to_string(),
            Key::Flow {
                peer: ip.dst,
                proto: 17,
                peer_port: u16::from_be_bytes([l4[2], l4[3]]),
                srv_port: u16::from_be_bytes([l4[0], l4[1]]),
            },
        ),
        1 | 58 if l4.len() >= 8 => {
            let (ty, code) = (l4[0], l4[1]);
            if is_icmp_error(v6, ty) {
                let q = parse_ip(&l4[8..], false)?;
                let mut label = format!("Icmp({ty},{code})");
                // The error should come from the address the probe went to.
                if ip.src != q.dst {
                    label.push_str("/from-other");
                }
                (
                    label,
                    Key::Quote {
                        src: q.src,
                        dst: q.dst,
                        proto: q.proto,
                        head: head8(q.l4),
                    },
                )
            } else if v6 && ty == 136 {
                ("Na".to_string(), Key::Ndp { peer: ip.dst })
            } else if (v6 && (133..=143).contains(&ty)) || (!v6 && matches!(ty, 8 | 13 | 15 | 17)) {
                return None;
            } else {
                let label = match (v6, ty) {
                    (false, 0) | (true, 129) => "EchoReply".to_string(),
                    _ => format!("Icmp({ty},{code})"),
                };
                (
                    label,
                    Key::Echo {
                        peer: ip.dst,
                        id: u16::from_be_bytes([l4[4], l4[5]]),
                        seq: u16::from_be_bytes([l4[6], l4[7]]),
                    },
                )
            }
        }
        _ => return None,
    };
    if !csum_ok {
        label.push_str("/bad-csum");
    }
    for t in tags {
        label.push_str(&format!("@vlan{}", t & 0x0fff));
    }
    Some((label, key))
}

/// Whether the L4 checksum of a (whole, unfragmented) packet is right.
fn l4_checksum_ok(ip: &Ip<'_>) -> bool {
    if ip.frag_off.is_some() {
        return true;
    }
    let v6 = ip.src.is_ipv6();
    let sum = if ip.proto != 1 {
        pseudo_sum(&octets(ip.src), &octets(ip.dst), ip.proto, ip.l4.len())
    } else {
        0
    };
    if ip.proto == 17 && !v6 && ip.l4.len() >= 8 && ip.l4[6] == 0 && ip.l4[7] == 0 {
        return true;
    }
    ones_sum(ip.l4, sum) == 0xffff
}

/// The outcome of one case as a sorted set of labels; "Nothing" when empty.
pub fn render(labels: &BTreeSet<String>) -> String {
    if labels.is_empty() {
        "Nothing".to_string()
    } else {
        labels.iter().cloned().collect::<Vec<_>>().join("+")
    }
}
