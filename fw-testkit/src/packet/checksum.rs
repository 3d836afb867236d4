//! The Internet checksum (RFC 1071): sums, the TCP/UDP/ICMPv6
//! pseudo-header, and how a builder fills a checksum field (right, or
//! spoiled on purpose).

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last
/// byte padded with zero) added to `acc`; kept below 0x10000 + 0xffff.
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
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

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// `sum` folded to 16 bits, not complemented.
pub fn ones_sum(data: &[u8], acc: u32) -> u16 {
    fold(sum(data, acc))
}

/// Whether `data`, checksum field included, sums to 0xffff (valid).
pub fn sum_ok(data: &[u8]) -> bool {
    ones_sum(data, 0) == 0xffff
}

/// The sum of the TCP/UDP/ICMPv6 pseudo-header: IPv4 when `src` is 4
/// bytes, IPv6 when it is 16; `len` is the L4 length.
pub fn pseudo_sum(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    if src.len() == 4 {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    ones_sum(&p, 0) as u32
}

/// How to fill a checksum field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Csum {
    #[default]
    Good,
    /// The right value plus one.
    Bad,
    /// All zeros ("no checksum" for UDP over IPv4, wrong elsewhere).
    Zero,
    /// The right value XORed with this (0 taken as 1, so never right).
    Xor(u16),
}

/// The field for data summing to `sum` (folded), filled as `how` says;
/// `udp`: a right value of 0 is sent as 0xffff (0 means "no checksum").
pub fn finish(sum: u16, how: Csum, udp: bool) -> u16 {
    let right = !sum;
    let sent = if udp && right == 0 { 0xffff } else { right };
    match how {
        Csum::Good => sent,
        Csum::Bad => sent.wrapping_add(1).max(1),
        Csum::Zero => 0,
        Csum::Xor(x) => right ^ x.max(1),
    }
}

/// Recomputes the IPv4 header checksum of the header at `l3` in `f` (after
/// a test edited the header); a header cut by the frame's end is summed as
/// far as it goes.
pub fn fix_v4_header_checksum(f: &mut [u8], l3: usize) {
    let ihl = (f[l3] & 0x0f) as usize * 4;
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let end = (l3 + ihl).min(f.len());
    let c = (!ones_sum(&f[l3..end], 0)).to_be_bytes();
    f[l3 + 10] = c[0];
    f[l3 + 11] = c[1];
}
