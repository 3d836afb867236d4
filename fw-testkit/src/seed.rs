//! The reference policy of DESIGN.md as classic rulesets, for the tests and
//! benchmarks that compare fw against them: iptables/ip6tables rules and the
//! same policy as one nftables `inet` table.

use crate::{cmd::run, error::Result, netns::Netns};

/// The seed ruleset, as `iptables` arguments (one rule per entry).
pub const IPTABLES_V4: &[&str] = &[
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p tcp --dport 22 -j ACCEPT",
    "-A INPUT -p tcp --dport 80 -j ACCEPT",
    "-A INPUT -p udp --dport 80 -j ACCEPT",
    "-A INPUT -j REJECT --reject-with icmp-host-unreachable",
];

/// The ip6tables twin: neighbor discovery must pass or IPv6 stops working.
pub const IPTABLES_V6: &[&str] = &[
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type router-solicitation -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type router-advertisement -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type redirect -j ACCEPT",
    "-A INPUT -p tcp --dport 22 -j ACCEPT",
    "-A INPUT -p tcp --dport 80 -j ACCEPT",
    "-A INPUT -p udp --dport 80 -j ACCEPT",
    "-A INPUT -j REJECT --reject-with icmp6-addr-unreachable",
];

/// Name of the nftables table [`NFTABLES`] creates.
pub const NFT_TABLE: &str = "fwseed";

/// The same policy for `nft -f`: one `inet` table, rule for rule as above.
/// The established and reject rules carry counters (iptables counts every
/// rule anyway) so a benchmark can check what the ruleset saw.
pub const NFTABLES: &str = r#"table inet fwseed {
    chain input {
        type filter hook input priority filter; policy accept;
        iif "lo" accept
        ct state established,related counter accept
        icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
        tcp dport 22 accept
        tcp dport 80 accept
        udp dport 80 accept
        meta nfproto ipv4 counter reject with icmp host-unreachable
        meta nfproto ipv6 counter reject with icmpv6 addr-unreachable
    }
}
"#;

/// Installs [`IPTABLES_V4`] and [`IPTABLES_V6`] in `ns`.
pub fn apply_iptables(ns: &Netns) -> Result<()> {
    for (tool, rules) in [("iptables", IPTABLES_V4), ("ip6tables", IPTABLES_V6)] {
        for rule in rules {
            run(ns.command(tool).args(rule.split(' ')))?;
        }
    }
    Ok(())
}

/// Installs [`NFTABLES`] in `ns`.
pub fn apply_nftables(ns: &Netns) -> Result<()> {
    let script = std::env::temp_dir().join(format!("fw-seed-{}.nft", std::process::id()));
    std::fs::write(&script, NFTABLES).map_err(|source| crate::Error::Io {
        what: format!("writing {}", script.display()),
        source,
    })?;
    let result = run(ns.command("nft").arg("-f").arg(&script));
    let _ = std::fs::remove_file(&script);
    result.map(drop)
}
