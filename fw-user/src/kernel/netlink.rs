//! One netlink request and its replies, for both families fw speaks:
//! rtnetlink (the clsact hook, `egress`) and sock_diag (`sockets`).
use std::io;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// Sends `msg` with `flags` (NLM_F_REQUEST is added) on a fresh socket of
/// `protocol` and collects the replies: a dump's messages until NLMSG_DONE,
/// or nothing for an acknowledged change. A NACK, or a dump that failed
/// midway (an error code in its DONE message), is an error.
pub fn request<T>(protocol: isize, msg: T, flags: u16) -> io::Result<Vec<T>>
where
    T: NetlinkSerializable + NetlinkDeserializable,
{
    let mut socket = Socket::new(protocol)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | flags;
    let mut req = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<T>::deserialize(&rx[off..n])
                .map_err(|e| io::Error::other(format!("parsing a netlink reply: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Done(d) if d.code < 0 => {
                    return Err(io::Error::from_raw_os_error(-d.code))
                }
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) if e.code.is_none() => return Ok(out),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
        if !dump {
            return Ok(out);
        }
    }
}
