//! Layer 3: the IPv4 header with options, the IPv6 header with its chain
//! of extension headers, fragment fields, and length fields right or not.
use super::{
    checksum::{finish, ones_sum},
    names::{octets, AUTH, DEST_OPTS, FRAGMENT, HOP_BY_HOP, ROUTING},
    Frag, Packet,
};

/// A length field: the right value, off by a little, or any value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Len {
    #[default]
    Right,
    Delta(i16),
    Value(u16),
}

impl Len {
    pub fn apply(self, right: usize) -> u16 {
        match self {
            Len::Right => right as u16,
            Len::Delta(d) => (right as i64 + d as i64).clamp(0, 0xffff) as u16,
            Len::Value(v) => v,
        }
    }
}

/// One IPv6 extension header: its type and the bytes after the
/// next-header/length pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ext {
    pub ty: u8,
    pub body: Vec<u8>,
    /// The length byte and `body` as they are (any shape, broken ones
    /// too); `None`: the builder pads `body` to a multiple of 8 bytes
    /// (options areas with PadN/Pad1, others with zeros) and computes it.
    pub len: Option<u8>,
}

impl Ext {
    /// Hop-by-hop options holding `opts` (padded with PadN/Pad1).
    pub fn hbh(opts: &[u8]) -> Ext {
        Ext::new(HOP_BY_HOP, opts)
    }

    /// Destination options holding `opts`.
    pub fn dest(opts: &[u8]) -> Ext {
        Ext::new(DEST_OPTS, opts)
    }

    /// Routing header: type, segments left, then `data` (type-specific).
    pub fn routing(rtype: u8, segs_left: u8, data: &[u8]) -> Ext {
        let mut body = vec![rtype, segs_left];
        body.extend_from_slice(data);
        Ext::new(ROUTING, &body)
    }

    /// Header `ty` with `body`, padded and its length computed.
    pub fn new(ty: u8, body: &[u8]) -> Ext {
        Ext {
            ty,
            body: body.to_vec(),
            len: None,
        }
    }

    /// The smallest harmless header of type `ty`: routing type 4 (segment
    /// routing) with no segments left, which nodes skip as they must; for
    /// any other type an options area of one 4-byte PadN.
    pub fn plain(ty: u8) -> Ext {
        if ty == ROUTING {
            Ext::routing(4, 0, &[0, 0, 0, 0])
        } else {
            Ext::new(ty, &[1, 4, 0, 0, 0, 0])
        }
    }

    /// The header as it goes on the wire, `next` in its first byte.
    pub fn bytes(&self, next: u8) -> Vec<u8> {
        let mut body = self.body.clone();
        let len = match self.len {
            Some(l) => l,
            None => {
                let pad = (8 - (body.len() + 2) % 8) % 8;
                if matches!(self.ty, HOP_BY_HOP | DEST_OPTS) {
                    match pad {
                        0 => {}
                        1 => body.push(0),
                        n => {
                            body.push(1);
                            body.push((n - 2) as u8);
                            body.extend(std::iter::repeat_n(0u8, n - 2));
                        }
                    }
                } else {
                    body.extend(std::iter::repeat_n(0u8, pad));
                }
                // The fragment header's second byte is reserved, not a
                // length; AH counts 4-byte words minus 2 (RFC 4302), the
                // others 8-byte words minus 1.
                match self.ty {
                    FRAGMENT => 0,
                    AUTH => ((body.len() + 2) / 4 - 2) as u8,
                    _ => ((body.len() + 2) / 8 - 1) as u8,
                }
            }
        };
        let mut h = Vec::with_capacity(2 + body.len());
        h.push(next);
        h.push(len);
        h.extend_from_slice(&body);
        h
    }
}

/// The IPv6 fragment header: offset in bytes (a multiple of 8), M flag,
/// identification (RFC 8200 4.5: offset << 3 | M in the third and fourth
/// bytes).
pub fn fragment_ext(id: u32, offset: usize, more: bool) -> Ext {
    let fo = (((offset / 8) as u16) << 3) | more as u16;
    let mut body = fo.to_be_bytes().to_vec();
    body.extend_from_slice(&id.to_be_bytes());
    Ext::new(FRAGMENT, &body)
}

impl Packet {
    /// Pushes the IPv4 header for `data` (all or a piece of the L4 bytes);
    /// `frag`: (id, byte offset, more fragments).
    pub(super) fn push_v4(&self, f: &mut Vec<u8>, data: &[u8], frag: Option<(u32, usize, bool)>) {
        let mut opts = self.v4_opts.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        let start = f.len();
        let version = self.version.unwrap_or(4);
        let ihl = self.ihl.map(|i| i & 0x0f).unwrap_or((hlen / 4) as u8);
        f.push((version << 4) | ihl);
        f.push(self.tos);
        f.extend_from_slice(&self.ip_len.apply(hlen + data.len()).to_be_bytes());
        let (id, field) = match (frag, &self.frag) {
            (_, Frag::Field(field)) => (self.ip_id, *field),
            (Some((id, off, more)), _) => (
                id as u16,
                ((off / 8) as u16) | if more { 0x2000 } else { 0 },
            ),
            (None, _) => (self.ip_id, 0),
        };
        let field = match self.frag {
            Frag::Field(_) => field,
            _ => field | if self.df { 0x4000 } else { 0 },
        };
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&field.to_be_bytes());
        f.push(self.ttl);
        f.push(self.l4.proto(false));
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&octets(self.src));
        f.extend_from_slice(&octets(self.dst));
        f.extend_from_slice(&opts);
        let c = finish(ones_sum(&f[start..], 0), self.ip_csum, false);
        f[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    }

    /// Pushes the IPv6 header and extension headers for `data`; `frag`
    /// adds a fragment header after the others.
    pub(super) fn push_v6(&self, f: &mut Vec<u8>, data: &[u8], frag: Option<(u32, usize, bool)>) {
        let proto = self.l4.proto(true);
        let frag_ext = frag.map(|(id, off, more)| fragment_ext(id, off, more));
        let chain: Vec<&Ext> = self.exts.iter().chain(frag_ext.as_ref()).collect();
        let mut exts = Vec::new();
        for (i, e) in chain.iter().enumerate() {
            let next = chain.get(i + 1).map(|n| n.ty).unwrap_or(proto);
            exts.extend_from_slice(&e.bytes(next));
        }
        let first = chain.first().map(|e| e.ty).unwrap_or(proto);
        let version = (self.version.unwrap_or(6) & 0x0f) as u32;
        let word = (version << 28) | ((self.tos as u32) << 20) | (self.flow & 0xf_ffff);
        f.extend_from_slice(&word.to_be_bytes());
        f.extend_from_slice(&self.ip_len.apply(exts.len() + data.len()).to_be_bytes());
        f.push(first);
        f.push(self.ttl);
        f.extend_from_slice(&octets(self.src));
        f.extend_from_slice(&octets(self.dst));
        f.extend_from_slice(&exts);
    }
}
