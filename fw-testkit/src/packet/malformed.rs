//! Frames fw cannot parse (cut headers, bad lengths, bad IHL / data
//! offsets, overlong IPv6 extension chains): all dropped as `malformed`.
use super::{checksum::fix_v4_header_checksum, *};

fn set_be16(f: &mut [u8], off: usize, v: u16) {
    f[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Frames that cannot be parsed, for both families, with what is wrong.
pub fn malformed_frames() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &str, f: Vec<u8>| out.push((what.to_string(), f));

    // IPv4 (L3 at 14, L4 at 34 without options).
    let syn4 = Packet::syn(Fam::V4, 22).frame();
    let udp4 = Packet::udp(Fam::V4, 40000, 80).frame();
    let icmp4 = Packet::echo_request(Fam::V4, 1).frame();
    add("v4: ethernet header only", syn4[..14].to_vec());
    add("v4: ip header cut", syn4[..14 + 10].to_vec());
    add("v4: ip header cut at 19 bytes", syn4[..14 + 19].to_vec());
    let mut f = syn4.clone();
    f[14] = 0x44;
    add("v4: ihl 4", f);
    let mut f = syn4.clone();
    f[14] = 0x40;
    add("v4: ihl 0", f);
    let mut f = syn4.clone();
    f[14] = 0x65;
    add("v4: version 6 under the IPv4 ethertype", f);
    let mut f = syn4.clone();
    f[14] = 0x4f;
    fix_v4_header_checksum(&mut f, 14);
    add("v4: ihl 15 beyond total length", f);
    let mut f = syn4.clone();
    set_be16(&mut f, 16, 40 + 10);
    fix_v4_header_checksum(&mut f, 14);
    add("v4: total length beyond the frame", f);
    let mut f = syn4.clone();
    set_be16(&mut f, 16, 16);
    fix_v4_header_checksum(&mut f, 14);
    add("v4: total length below the header", f);
    // (A TCP header cut short or with a bad data offset is not malformed:
    // nftables matches its ports. See verdict.rs.)
    let mut f = syn4[..14 + 20 + 2].to_vec();
    set_be16(&mut f, 16, 22);
    fix_v4_header_checksum(&mut f, 14);
    add("v4: tcp header cut before the ports end", f);
    let mut f = udp4[..14 + 20 + 4].to_vec();
    set_be16(&mut f, 16, 24);
    fix_v4_header_checksum(&mut f, 14);
    add("v4: udp header cut", f);
    // (Cut after its type and code, IPv4 ICMP is judged by its type.)
    let mut f = icmp4[..14 + 20 + 2].to_vec();
    set_be16(&mut f, 16, 22);
    fix_v4_header_checksum(&mut f, 14);
    add("v4: icmp header cut", f);

    // IPv6 (L3 at 14, L4 at 54 without extension headers).
    let syn6 = Packet::syn(Fam::V6, 22).frame();
    let udp6 = Packet::udp(Fam::V6, 40000, 80).frame();
    add("v6: ethernet header only", syn6[..14].to_vec());
    add("v6: ip header cut", syn6[..14 + 30].to_vec());
    let mut f = syn6.clone();
    f[14] = 0x45;
    add("v6: version 4 under the IPv6 ethertype", f);
    let mut f = syn6.clone();
    set_be16(&mut f, 18, 20 + 8);
    add("v6: payload length beyond the frame", f);
    let mut f = syn6[..14 + 40 + 3].to_vec();
    set_be16(&mut f, 18, 3);
    add("v6: tcp header cut before the ports end", f);
    let mut f = udp6[..14 + 40 + 6].to_vec();
    set_be16(&mut f, 18, 6);
    add("v6: udp header cut", f);
    let mut f = Packet::syn(Fam::V6, 22).v6_exts(&[HOP_BY_HOP]).frame();
    f[54 + 1] = 10; // hop-by-hop header claims 88 bytes
    add("v6: extension header beyond the packet", f);
    let mut f = Packet::syn(Fam::V6, 22).v6_exts(&[HOP_BY_HOP]).frame();
    f.truncate(14 + 40 + 4);
    set_be16(&mut f, 18, 4);
    add("v6: extension header cut", f);
    let long = [
        HOP_BY_HOP, DEST_OPTS, ROUTING, DEST_OPTS, DEST_OPTS, DEST_OPTS, DEST_OPTS,
    ];
    add(
        "v6: extension header chain too long",
        Packet::syn(Fam::V6, 22).v6_exts(&long).frame(),
    );

    // L2.
    let mut f = l2(PEER_MAC, HOST_MAC, &[], TPID_8021Q);
    f.extend_from_slice(&[0, 5]);
    add("vlan tag cut", f);
    let mut f = Packet::syn(Fam::V4, 22).vlan(5).frame();
    f.truncate(14 + 4 + 12);
    add("v4 in a vlan: ip header cut", f);
    out
}
