//! Properties of the userspace parsers (the same as the cargo-fuzz targets
//! in fuzz/, in the normal suite): port lists (`fw allow tcp 22 8000-8080`),
//! source prefixes (`--from`), the TOML config. Any input parses or is
//! refused with an error, never a panic; what parses round-trips.
//!
//! `cargo test --release -p fw-policy --test parsers` (no root, and no BPF
//! toolchain, needed).
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use fw_policy::{
    config::{Config, MAX_RATE},
    edit::edit_text,
    policy::{parse_prefix, Policy, PortRange, Proto, RejectWith},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::{collection::vec, prelude::*, sample::select};

fn from_toml(text: &str) -> fw_policy::Result<Config> {
    Config::from_toml(text, Path::new("prop.toml"))
}

/// Numbers around the edges of 1-65535, as text, with stray spaces and signs.
fn port_text() -> impl Strategy<Value = String> {
    let n = prop_oneof![
        select(vec![
            -1i64, 0, 1, 2, 22, 65534, 65535, 65536, 70000, 4294967296
        ]),
        -100i64..70000,
    ];
    let pad = select(vec!["", " ", "  ", "\t", "+", "0"]);
    (n, pad.clone(), pad).prop_map(|(n, a, b)| format!("{a}{n}{b}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn port_ranges_parse_or_refuse(s in "\\PC{0,24}") {
        if let Ok(r) = s.parse::<PortRange>() {
            prop_assert!(r.lo >= 1 && r.lo <= r.hi, "{s:?} gave {r:?}");
        }
    }

    /// "LO-HI" / "N" text: accepted exactly when the numbers are 1-65535
    /// and ordered, and then meaning those numbers.
    #[test]
    fn port_ranges_follow_the_rules(a in port_text(), b in prop::option::of(port_text())) {
        let text = match &b {
            Some(b) => format!("{a}-{b}"),
            None => a.clone(),
        };
        let num = |t: &str| t.trim().parse::<u32>().ok();
        let want = match &b {
            Some(b) => num(&a).zip(num(b)),
            None => num(&a).map(|n| (n, n)),
        }
        .filter(|&(lo, hi)| lo >= 1 && hi <= 65535 && lo <= hi);
        let got = text.parse::<PortRange>().ok().map(|r| (r.lo as u32, r.hi as u32));
        prop_assert_eq!(got, want, "{:?}", text);
    }

    #[test]
    fn port_ranges_round_trip(lo in 1u16..=65535, len in prop_oneof![0u16..=10, any::<u16>()]) {
        let hi = lo.saturating_add(len);
        let r = PortRange::new(lo as u32, hi as u32, "prop").expect("valid range");
        let back: PortRange = r.to_string().parse().expect("printed range parses");
        prop_assert_eq!(back, r);
    }

    #[test]
    fn prefixes_parse_or_refuse(s in "\\PC{0,48}") {
        if let Ok(n) = parse_prefix(&s) {
            prop_assert_eq!(n.trunc(), n, "{:?} kept host bits", s);
        }
    }

    /// An address with a prefix length: accepted exactly when no host bit
    /// is set, and then round-tripping through its text.
    #[test]
    fn prefixes_follow_the_rules(v4 in any::<[u8; 4]>(), l4 in 0u8..=34, v6 in any::<[u8; 16]>(), l6 in 0u8..=130, six in any::<bool>()) {
        let text = if six {
            format!("{}/{l6}", Ipv6Addr::from(v6))
        } else {
            format!("{}/{l4}", Ipv4Addr::from(v4))
        };
        let valid: Option<IpNet> = if six {
            Ipv6Net::new(v6.into(), l6).ok().map(IpNet::V6)
        } else {
            Ipv4Net::new(v4.into(), l4).ok().map(IpNet::V4)
        }
        .filter(|n| n.trunc() == *n && !v4_mapped(n));
        match parse_prefix(&text) {
            Ok(n) => {
                prop_assert_eq!(Some(n), valid, "{:?}", text);
                prop_assert_eq!(parse_prefix(&n.to_string()).ok(), Some(n));
            }
            Err(_) => prop_assert!(valid.is_none(), "{text:?} refused"),
        }
    }

    /// A prefix inside ::ffff:0:0/96 never matches (IPv4 traffic is IPv4):
    /// refused, naming the IPv4 prefix to use.
    #[test]
    fn v4_mapped_prefixes_are_refused_naming_the_v4_one(a in any::<[u8; 4]>(), len in 0u8..=32, bare in any::<bool>()) {
        let v4 = Ipv4Net::new(a.into(), len).expect("len ok").trunc();
        let mapped = if bare && len == 32 {
            v4.addr().to_ipv6_mapped().to_string()
        } else {
            Ipv6Net::new(v4.addr().to_ipv6_mapped(), 96 + len).expect("len ok").to_string()
        };
        let e = parse_prefix(&mapped).expect_err("v4-mapped accepted").to_string();
        prop_assert!(e.contains(&format!("use {v4} instead")), "{}: {}", mapped, e);
        // The same in a config file, with where it is.
        let text = format!("[ports]\n[[sources]]\nproto = \"tcp\"\nport = 22\nfrom = [\"{mapped}\"]\n");
        let e = from_toml(&text).expect_err("v4-mapped accepted").to_string();
        prop_assert!(e.starts_with("config prop.toml:5:9: sources[0].from[0]: "), "{}", e);
    }

    #[test]
    fn config_text_parses_or_refuses(s in "\\PC{0,200}") {
        let _ = from_toml(&s);
    }

    /// TOML assembled from fw's own keywords, mostly close to valid.
    #[test]
    fn config_token_soup_parses_or_refuses(toks in vec((token(), sep()), 0..40)) {
        let text: String = toks.iter().map(|(t, s)| format!("{t}{s}")).collect();
        if let Ok(cfg) = from_toml(&text) {
            let back = from_toml(&cfg.to_toml());
            prop_assert_eq!(back.ok(), Some(cfg), "{}", text);
        }
    }

    #[test]
    fn configs_round_trip(cfg in config()) {
        let text = cfg.to_toml();
        match from_toml(&text) {
            Ok(back) => prop_assert_eq!(back, cfg, "{}", text),
            Err(e) => prop_assert!(false, "to_toml wrote what from_toml refuses: {e}\n{text}"),
        }
    }
}

proptest! {
    // Each case prints and parses large configs (ranges of thousands of ports).
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A file without `[ports]` (empty, truncated, only other tables) is
    /// refused, whatever else it holds; with `[ports]` it loads.
    #[test]
    fn configs_without_ports_are_refused(cfg in config()) {
        let text = cfg.to_toml();
        let start = text.find("[ports]\n").expect("to_toml writes [ports]");
        let end = text[start..].find("\n\n").map_or(text.len(), |i| start + i + 2);
        let cut = format!("{}{}", &text[..start], &text[end..]);
        let e = from_toml(&cut).expect_err("no [ports] accepted").to_string();
        prop_assert!(e.contains("the file has no [ports] table"), "{}\n{}", e, cut);
        let e = from_toml(&text[..start]).expect_err("truncated file accepted").to_string();
        prop_assert!(e.contains("no [ports] table"), "{}", e);
    }

    /// Write-back and `fw save FILE`: a config's text, with comments on
    /// every line, edited from what it says to any other config, loads as
    /// that config; edited to what it already says, it is left as it was.
    #[test]
    fn edited_configs_load_as_the_target(from in config(), to in config()) {
        let plain = from.to_toml();
        // Comments go on every line, but not into multi-line strings (an
        // interface name may hold a newline).
        let multi_line = plain.contains("\"\"\"") || plain.contains("'''");
        let text: String = plain
            .lines()
            .filter(|_| !multi_line)
            .map(|l| if l.starts_with('[') { format!("# above\n{l}\n") } else if l.contains(" = ") { format!("{l}  # why\n") } else { format!("{l}\n") })
            .collect();
        let text = if multi_line { plain } else { text };
        let origin = Path::new("prop.toml");
        let out = edit_text(&text, &from, &to, origin).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(from_toml(&out).ok(), Some(to), "{}\n->\n{}", text, out);
        prop_assert_eq!(edit_text(&text, &from, &from, origin).ok(), Some(text));
    }
}

fn token() -> impl Strategy<Value = &'static str> {
    select(vec![
        "[ports]",
        "[[sources]]",
        "[reject]",
        "[conntrack]",
        "interfaces",
        "dry_run",
        "tcp",
        "udp",
        "proto",
        "port",
        "from",
        "with",
        "rate",
        "burst",
        "entries",
        "=",
        "[",
        "]",
        ",",
        "\"",
        "22",
        "0",
        "65535",
        "65536",
        "1024",
        "-1",
        "\"8000-8080\"",
        "\"80-22\"",
        "\"198.51.100.0/24\"",
        "\"2001:db8::/32\"",
        "\"192.0.2.1/24\"",
        "\"tcp\"",
        "\"udp\"",
        "\"host-unreachable\"",
        "\"tcp-reset\"",
        "\"drop\"",
        "true",
        "false",
        "[22, 80]",
        "[\"veth0\"]",
        "[\"lo\"]",
        "\"\"",
        "1e9",
        "10000001",
    ])
}

fn sep() -> impl Strategy<Value = &'static str> {
    select(vec![" ", "\n", " = ", ", ", ""])
}

fn proto() -> impl Strategy<Value = Proto> {
    select(Proto::ALL.to_vec())
}

fn range() -> impl Strategy<Value = PortRange> {
    (1u16..=65535, prop_oneof![4 => 0u16..=20, 1 => any::<u16>()]).prop_map(|(lo, len)| {
        PortRange::new(lo as u32, lo.saturating_add(len) as u32, "prop").expect("valid")
    })
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(a.into(), l).expect("len ok")).trunc()),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(a.into(), l).expect("len ok")).trunc())
            .prop_filter("fw refuses v4-mapped prefixes", |n| !v4_mapped(n)),
    ]
}

/// Inside ::ffff:0:0/96.
fn v4_mapped(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(n) if n.prefix_len() >= 96 && n.addr().to_ipv4_mapped().is_some())
}

fn iface_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9._@-]{0,14}",
        "[^/ \u{0}]{1,15}".prop_filter("at most 15 bytes", |s| s.len() <= 15),
    ]
}

fn reject_with() -> impl Strategy<Value = RejectWith> {
    select(vec![
        RejectWith::HostUnreachable,
        RejectWith::PortUnreachable,
        RejectWith::AdminProhibited,
        RejectWith::TcpReset,
        RejectWith::Drop,
    ])
}

/// A valid config, built through the policy model as `fw allow` does.
fn config() -> impl Strategy<Value = Config> {
    (
        vec((proto(), range(), vec(net(), 0..3)), 0..8),
        reject_with(),
        1..=MAX_RATE,
        1..=MAX_RATE,
        1024u32..=16_777_216,
        // At least the 8 x 3 entries the rules can need.
        24u32..=*fw_policy::config::SOURCE_PREFIXES.end(),
        vec(iface_name(), 0..3),
        any::<bool>(),
        any::<bool>(),
        reject_with(),
        fw_policy::config::BLOCK_PREFIXES,
        // `[conntrack] unconfirmed_entries`, or what `entries` gives.
        proptest::option::of(1024u32..=16_777_216),
    )
        .prop_map(
            |(
                rules,
                reject_with,
                reject_rate,
                reject_burst,
                conntrack_entries,
                source_prefixes,
                interfaces,
                dry_run,
                dhcp_client,
                block_with,
                block_prefixes,
                unconfirmed,
            )| {
                let mut policy = Policy::default();
                for (proto, r, nets) in rules {
                    policy.allow(proto, r, &nets);
                }
                Config {
                    policy,
                    reject_with,
                    reject_rate,
                    reject_burst,
                    conntrack_entries,
                    conntrack_unconfirmed_entries: unconfirmed
                        .unwrap_or(fw_common::ct_unconfirmed_default(conntrack_entries)),
                    source_prefixes,
                    interfaces,
                    dry_run,
                    dhcp_client,
                    block_with,
                    block_prefixes,
                    block_sets: Vec::new(),
                    // Proptest's tuples end at 12: the mode rides on the rate.
                    syncookies: fw_policy::policy::SyncookieMode::ALL[(reject_rate % 3) as usize],
                    limits: Vec::new(),
                    limit_sources: fw_common::LIMIT_DEFAULT_SOURCES,
                }
            },
        )
}
