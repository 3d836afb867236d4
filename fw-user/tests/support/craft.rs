//! Frames built byte by byte for the conformance corpus: any TCP flag byte,
//! IPv4 options, raw IPv6 extension headers, VLAN tags, fragments cut at
//! any 8-byte boundary and sent in any order, good or broken checksums.
//! (etherparse 0.16 writes the IPv6 fragment header wrongly, and cannot
//! build most of the broken shapes; the conformance frames need both.)
use std::net::IpAddr;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// The letters of a TCP flag byte (FSRPAU order), `-` for none.
pub fn flag_names(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (SYN, 'S'),
        (ACK, 'A'),
        (FIN, 'F'),
        (RST, 'R'),
        (PSH, 'P'),
        (URG, 'U'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if flags & 0xc0 != 0 {
        s.push_str(&format!("+{:#04x}", flags & 0xc0));
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// How to fill a checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    Good,
    /// The right value plus one.
    Bad,
    /// All zeros ("no checksum" for UDP over IPv4).
    Zero,
}

/// Layer 4, serialised after the IP header(s).
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        /// Options, padded to 4 bytes by the builder.
        options: Vec<u8>,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    /// ICMP or ICMPv6 (after the packet's family).
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        body: Vec<u8>,
    },
    /// Bytes as they are (no checksum), protocol `proto`.
    Raw { proto: u8, bytes: Vec<u8> },
    /// Bytes of protocol `proto` whose last two (at an even offset) make
    /// the Internet checksum over them come out right, the way
    /// netfilter's REJECT verifies any protocol before answering (with the
    /// pseudo-header for IPv6 and for TCP/UDP).
    Summed { proto: u8, bytes: Vec<u8> },
}

impl L4 {
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto, .. } | L4::Summed { proto, .. } => *proto,
        }
    }
}

/// One IPv6 extension header: its type and the bytes after the
/// next-header/length pair (6 + 8n bytes; the builder pads to a multiple of 8).
#[derive(Clone, Debug)]
pub struct Ext {
    pub ty: u8,
    pub body: Vec<u8>,
}

impl Ext {
    /// Hop-by-hop options holding `opts` (padded with PadN/Pad1).
    pub fn hbh(opts: &[u8]) -> Ext {
        Ext {
            ty: 0,
            body: opts.to_vec(),
        }
    }
    pub fn dest(opts: &[u8]) -> Ext {
        Ext {
            ty: 60,
            body: opts.to_vec(),
        }
    }
    /// Routing header: type, segments left, then `data` (type-specific).
    pub fn routing(rtype: u8, segs_left: u8, data: &[u8]) -> Ext {
        let mut body = vec![rtype, segs_left];
        body.extend_from_slice(data);
        Ext { ty: 43, body }
    }
}

/// How a packet is cut into fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    None,
    /// IPv6 only: a fragment header with offset 0 and M clear (RFC 6946).
    Atomic { id: u32 },
    /// Pieces of the L4 bytes: (start, end) byte ranges (starts multiples
    /// of 8, ranges may overlap), sent in the order given; the last piece by
    /// offset has M clear unless `more_on_last`.
    Pieces {
        id: u32,
        ranges: Vec<(usize, usize)>,
        more_on_last: bool,
    },
}

impl Frag {
    /// `n` fragments of equal size (a multiple of 8), sent in `order`
    /// (indexes into the pieces; may repeat or leave out pieces).
    pub fn split(id: u32, total: usize, n: usize, order: &[usize]) -> Frag {
        let size = total.div_ceil(n).next_multiple_of(8);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < total {
            pieces.push((at, (at + size).min(total)));
            at += size;
        }
        Frag::Pieces {
            id,
            ranges: order.iter().map(|&i| pieces[i]).collect(),
            more_on_last: false,
        }
    }
}

/// One packet from the peer. Build with [`Packet::new`] and the setters.
#[derive(Clone, Debug)]
pub struct Packet {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// (TPID, TCI), outermost first.
    pub vlans: Vec<(u16, u16)>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    pub ip_id: u16,
    /// IPv4 options (padded with EOL to 4 bytes).
    pub v4_opts: Vec<u8>,
    pub exts: Vec<Ext>,
    pub l4: L4,
    pub l4_csum: Csum,
    pub ip_csum: Csum,
    pub frag: Frag,
    /// Bytes of Ethernet padding after the IP packet.
    pub trailer: usize,
    /// Replaces the IP version nibble (malformed packets).
    pub version: Option<u8>,
}

impl Packet {
    pub fn new(src_mac: [u8; 6], dst_mac: [u8; 6], src: IpAddr, dst: IpAddr, l4: L4) -> Packet {
        Packet {
            src_mac,
            dst_mac,
            vlans: Vec::new(),
            src,
            dst,
            ttl: 64,
            tos: 0,
            df: false,
            ip_id: 0x4242,
            v4_opts: Vec::new(),
            exts: Vec::new(),
            l4,
            l4_csum: Csum::Good,
            ip_csum: Csum::Good,
            frag: Frag::None,
            trailer: 0,
            version: None,
        }
    }

    pub fn v6(&self) -> bool {
        self.src.is_ipv6()
    }

    fn addrs(&self) -> (Vec<u8>, Vec<u8>) {
        (octets(self.src), octets(self.dst))
    }

    /// The L4 header and payload with its checksum as asked.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let v6 = self.v6();
        let (s, d) = self.addrs();
        let (mut out, csum_at) = match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                options,
                payload,
            } => {
                let mut opts = options.clone();
                while !opts.len().is_multiple_of(4) {
                    opts.push(0);
                }
                let mut h = Vec::with_capacity(20 + opts.len() + payload.len());
                h.extend_from_slice(&sport.to_be_bytes());
                h.extend_from_slice(&dport.to_be_bytes());
                h.extend_from_slice(&seq.to_be_bytes());
                h.extend_from_slice(&ack.to_be_bytes());
                h.push((((20 + opts.len()) / 4) as u8) << 4);
                h.push(*flags);
                h.extend_from_slice(&64240u16.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 0]);
                h.extend_from_slice(&opts);
                h.extend_from_slice(payload);
                (h, Some(16))
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut h = Vec::with_capacity(8 + payload.len());
                h.extend_from_slice(&sport.to_be_bytes());
                h.extend_from_slice(&dport.to_be_bytes());
                h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(payload);
                (h, Some(6))
            }
            L4::Icmp {
                ty,
                code,
                rest,
                body,
            } => {
                let mut h = vec![*ty, *code, 0, 0];
                h.extend_from_slice(rest);
                h.extend_from_slice(body);
                (h, Some(2))
            }
            L4::Raw { bytes, .. } => (bytes.clone(), None),
            L4::Summed { bytes, .. } => {
                let mut b = bytes.clone();
                if b.len() % 2 == 1 {
                    b.push(0);
                }
                let at = b.len().saturating_sub(2);
                (b, Some(at))
            }
        };
        if let Some(at) = csum_at {
            let proto = self.l4.proto(v6);
            out[at..at + 2].copy_from_slice(&[0, 0]);
            // IPv4 has a pseudo-header for TCP and UDP only (ICMPv4 has
            // none, and netfilter checks other protocols without one).
            let mut sum = if !v6 && proto != 6 && proto != 17 {
                0
            } else {
                let mut p = Vec::new();
                p.extend_from_slice(&s);
                p.extend_from_slice(&d);
                if v6 {
                    p.extend_from_slice(&(out.len() as u32).to_be_bytes());
                    p.extend_from_slice(&[0, 0, 0, proto]);
                } else {
                    p.extend_from_slice(&[0, proto]);
                    p.extend_from_slice(&(out.len() as u16).to_be_bytes());
                }
                sum16(&p, 0)
            };
            sum = sum16(&out, sum);
            let mut c = !fold(sum);
            // UDP sends a computed 0 as 0xffff (0 means "no checksum").
            if matches!(self.l4, L4::Udp { .. }) && c == 0 {
                c = 0xffff;
            }
            let c = match self.l4_csum {
                Csum::Good => c,
                Csum::Bad => c.wrapping_add(1).max(1),
                Csum::Zero => 0,
            };
            out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        out
    }

    /// The Ethernet frames for this packet (one per fragment), in send order.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let l4 = self.l4_bytes();
        match &self.frag {
            Frag::None => vec![self.frame(&l4, None)],
            Frag::Atomic { id } => vec![self.frame(&l4, Some((*id, 0, false)))],
            Frag::Pieces {
                id,
                ranges,
                more_on_last,
            } => {
                let last_end = ranges.iter().map(|r| r.1).max().unwrap_or(0);
                ranges
                    .iter()
                    .map(|&(a, b)| {
                        let b = b.min(l4.len());
                        let more = b < last_end || *more_on_last;
                        self.frame(&l4[a..b], Some((*id, a, more)))
                    })
                    .collect()
            }
        }
    }

    /// One frame carrying `data` (all or a piece of the L4 bytes);
    /// `frag`: (id, byte offset, more fragments).
    fn frame(&self, data: &[u8], frag: Option<(u32, usize, bool)>) -> Vec<u8> {
        let v6 = self.v6();
        let mut f = Vec::with_capacity(64 + data.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for &(tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&(if v6 { ETH_IPV6 } else { ETH_IPV4 }).to_be_bytes());
        if v6 {
            self.v6_header(&mut f, data, frag);
        } else {
            self.v4_header(&mut f, data, frag);
        }
        f.extend_from_slice(data);
        f.extend(std::iter::repeat_n(0u8, self.trailer));
        f
    }

    fn v4_header(&self, f: &mut Vec<u8>, data: &[u8], frag: Option<(u32, usize, bool)>) {
        let (s, d) = self.addrs();
        let mut opts = self.v4_opts.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let ihl = 20 + opts.len();
        let start = f.len();
        let version = self.version.unwrap_or(4);
        f.push((version << 4) | (ihl / 4) as u8);
        f.push(self.tos);
        f.extend_from_slice(&((ihl + data.len()) as u16).to_be_bytes());
        let (id, field) = match frag {
            Some((id, off, more)) => (
                id as u16,
                ((off / 8) as u16) | if more { 0x2000 } else { 0 },
            ),
            None => (self.ip_id, 0),
        };
        let field = field | if self.df { 0x4000 } else { 0 };
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&field.to_be_bytes());
        f.push(self.ttl);
        f.push(self.l4.proto(false));
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&s);
        f.extend_from_slice(&d);
        f.extend_from_slice(&opts);
        let c = !fold(sum16(&f[start..], 0));
        let c = match self.ip_csum {
            Csum::Good => c,
            Csum::Bad => c.wrapping_add(1),
            Csum::Zero => 0,
        };
        f[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    }

    fn v6_header(&self, f: &mut Vec<u8>, data: &[u8], frag: Option<(u32, usize, bool)>) {
        let (s, d) = self.addrs();
        let proto = self.l4.proto(true);
        // The chain: the extension headers as given, then the fragment header.
        let mut chain: Vec<(u8, Vec<u8>)> = Vec::new();
        for e in &self.exts {
            let mut body = e.body.clone();
            // Pad the options area (hop-by-hop, destination) with PadN/Pad1,
            // anything else with zeros, to a multiple of 8 bytes.
            let pad = (8 - (body.len() + 2) % 8) % 8;
            if matches!(e.ty, 0 | 60) {
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
            chain.push((e.ty, body));
        }
        if let Some((id, off, more)) = frag {
            let fo = ((off / 8) as u16) << 3 | more as u16;
            let mut body = fo.to_be_bytes().to_vec();
            body.extend_from_slice(&id.to_be_bytes());
            chain.push((44, body));
        }
        let mut exts = Vec::new();
        for (i, (ty, body)) in chain.iter().enumerate() {
            let next = chain.get(i + 1).map(|c| c.0).unwrap_or(proto);
            exts.push(next);
            // The fragment header's second byte is reserved, not a length;
            // AH counts 4-byte words minus 2 (RFC 4302), the others 8-byte
            // words minus 1.
            exts.push(match *ty {
                44 => 0,
                51 => ((body.len() + 2) / 4 - 2) as u8,
                _ => ((body.len() + 2) / 8 - 1) as u8,
            });
            exts.extend_from_slice(body);
        }
        let first = chain.first().map(|c| c.0).unwrap_or(proto);
        let version = self.version.unwrap_or(6);
        f.push((version << 4) | (self.tos >> 4));
        f.push(self.tos << 4);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&((exts.len() + data.len()) as u16).to_be_bytes());
        f.push(first);
        f.push(self.ttl);
        f.extend_from_slice(&s);
        f.extend_from_slice(&d);
        f.extend_from_slice(&exts);
    }

    /// The whole IP packet as the peer's stack would have sent it
    /// unfragmented (what an ICMP error about it quotes).
    pub fn ip_packet(&self) -> Vec<u8> {
        let mut p = self.clone();
        p.frag = Frag::None;
        p.vlans.clear();
        p.trailer = 0;
        let f = p.frames().remove(0);
        f[14..].to_vec()
    }
}

pub fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// One's-complement sum of `data` (big-endian 16-bit words) added to `acc`.
pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}
