//! The kernel's socket table (NETLINK_SOCK_DIAG): read at `fw up` so flows
//! that already exist are seeded into conntrack and nothing is cut, and by
//! the lockout guard. (sock_diag, not /proc/net/tcp: the proc file walks
//! every bucket of the established hash, again for each read chunk, which
//! on a large-memory host costs milliseconds per call.)
use std::net::IpAddr;

use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, TCP_LISTEN},
    inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use crate::error::{Error, Result};

/// One connected socket of this network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSocket {
    pub proto: u8,
    /// `TCP_*` state from linux/tcp_states.h (0 for UDP).
    pub tcp_state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
}

/// Connected TCP and UDP sockets, IPv4 and IPv6 (listeners and unconnected
/// UDP sockets have no peer and are left out).
pub fn connected() -> Result<Vec<FlowSocket>> {
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            dump(family, proto, |r| {
                let id = &r.header.socket_id;
                let connected =
                    id.destination_port != 0 && !id.destination_address.is_unspecified();
                if connected && r.header.state != TCP_LISTEN {
                    out.push(FlowSocket {
                        proto,
                        tcp_state: if proto == IPPROTO_TCP {
                            r.header.state
                        } else {
                            0
                        },
                        local: id.source_address,
                        local_port: id.source_port,
                        remote: id.destination_address,
                        remote_port: id.destination_port,
                    });
                }
            })?;
        }
    }
    Ok(out)
}

/// One TCP socket of this network namespace, as the lockout guard needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// `TCP_*` state from linux/tcp_states.h.
    pub state: u8,
    pub inode: u64,
}

/// Every TCP socket (listeners included), IPv4 and IPv6.
pub fn tcp() -> Result<Vec<TcpSocket>> {
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        dump(family, IPPROTO_TCP, |r| {
            out.push(TcpSocket {
                local_port: r.header.socket_id.source_port,
                remote: r.header.socket_id.destination_address,
                remote_port: r.header.socket_id.destination_port,
                state: r.header.state,
                inode: u64::from(r.header.inode),
            })
        })?;
    }
    Ok(out)
}

fn nl_err(e: std::io::Error) -> Error {
    Error::io("reading the socket table (sock_diag)", e)
}

/// Calls `each` for every socket of `family` and `proto`.
fn dump(family: u8, proto: u8, mut each: impl FnMut(&InetResponse)) -> Result<()> {
    let req = SockDiagMessage::InetRequest(InetRequest {
        family,
        protocol: proto,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id: if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        },
    });
    for m in crate::kernel::netlink::request(NETLINK_SOCK_DIAG, req, NLM_F_DUMP).map_err(nl_err)? {
        if let SockDiagMessage::InetResponse(r) = m {
            each(&r);
        }
    }
    Ok(())
}
