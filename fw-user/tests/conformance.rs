//! Conformance: thousands of crafted probes, and flows the server starts or
//! accepts, against the seed iptables / ip6tables ruleset and against fw,
//! each on its own namespace rig (same listeners, neighbors, rate limits
//! out of the way). What the peer sees (and, for ICMP errors, what the
//! server's sockets and counters saw) must match, except for the
//! differences named in `NAMED` — the same list as the README's
//! "Differences from the iptables reference".
//!
//! `FW_TEST_LONG=1` (`cargo xtask test --long`) runs a bigger corpus (all
//! TCP flag bytes, every ICMP code). Reports land in
//! `target/conformance-*.txt`.
use std::collections::BTreeSet;

use fw_testkit::require_root;
use fw_testkit::{
    corpus::{self, Env},
    flowrun, flows, pipeline,
    twin::{Side, Twin},
    wire::render,
};

/// A difference fw has on purpose: the tag its cases carry, why, and which
/// (iptables, fw) outcomes it covers.
struct Named {
    tag: &'static str,
    why: &'static str,
    fits: fn(&str, &str) -> bool,
}

fn icmp(o: &str) -> bool {
    o.starts_with("Icmp(")
}

/// Keep in step with README.md, "Differences from the iptables reference".
const NAMED: &[Named] = &[
    Named {
        tag: "no-route-back",
        why: "the ICMP error goes back out the interface the packet came in on, to the \
              L2 sender (XDP_TX), not through the routing table: fw answers sources the \
              host has no route to",
        fits: |ipt, fw| ipt == "Nothing" && icmp(fw),
    },
    Named {
        tag: "l4-checksum",
        why: "fw does not verify L4 checksums before rejecting; iptables' REJECT stays \
              silent on a bad one",
        fits: |ipt, fw| ipt == "Nothing" && icmp(fw),
    },
    Named {
        tag: "frag-order",
        why: "fw does not reassemble: a fragment that arrives before its datagram's first \
              fragment is dropped, so a datagram sent out of order is lost; iptables \
              reassembles first",
        fits: |_, fw| fw == "Nothing",
    },
    Named {
        tag: "frag-first",
        why: "fw decides on the first fragment, iptables on the reassembled datagram: a \
              rejected datagram that never completes, overlaps, or (IPv6) whose first \
              fragment lacks the TCP header (RFC 7112) is answered by fw only",
        fits: |ipt, fw| ipt == "Nothing" && icmp(fw),
    },
    Named {
        tag: "addresses",
        why: "fw does not know the host's addresses: a packet sent to the host's MAC but \
              to another address (another host's, a subnet broadcast or network \
              address, ::), or from a subnet's network address, is judged like any \
              (answered from the address it was sent to, or dropped as martian); \
              Linux drops it, or answers 'no route'",
        fits: |ipt, fw| {
            (ipt == "Nothing" || ipt.starts_with("Icmp(1,0)")) && (icmp(fw) || fw == "Nothing")
        },
    },
    Named {
        tag: "l2-dst",
        why: "fw does not know the interface's MAC: a unicast frame for another MAC \
              (which only reaches XDP in promiscuous mode) is judged like any; the \
              stack discards it",
        fits: |ipt, fw| ipt == "Nothing" && icmp(fw),
    },
    Named {
        tag: "vlan0",
        why: "a priority-tagged frame (VLAN 0) is answered with the tag kept; Linux \
              answers untagged (802.1Q treats both alike)",
        fits: |ipt, fw| fw == format!("{ipt}@vlan0"),
    },
    Named {
        tag: "options",
        why: "a rejected packet with IPv4 options or IPv6 hop-by-hop options the stack \
              refuses is dropped silently; Linux's stack answers some of them with a \
              parameter problem",
        fits: |ipt, fw| {
            fw == "Nothing" && (ipt.starts_with("Icmp(12,") || ipt.starts_with("Icmp(4,"))
        },
    },
    Named {
        tag: "ext-chain",
        why: "fw follows at most 6 IPv6 extension headers; a longer chain is dropped as \
              malformed",
        fits: |_, fw| fw == "Nothing",
    },
    Named {
        tag: "tcp-sequence",
        why: "fw tracks TCP states, not sequence numbers: a segment of a known flow that \
              acknowledges data the host never sent (a SYN-ACK with a wrong ack) reaches \
              the stack, which resets it; netfilter calls it invalid and rejects it",
        fits: |ipt, fw| icmp(ipt) && fw.contains("Tcp(R)"),
    },
    Named {
        tag: "dhcp",
        why: "a DHCPv4 server's reply (UDP 67 -> 68) reaches the stack, so that a DHCP \
              client's packet socket gets it (it does behind iptables, which filters only \
              after packet sockets): a unicast one to the host with nothing on port 68 \
              gets the stack's port unreachable instead of REJECT's host unreachable",
        fits: |ipt, fw| ipt.starts_with("Icmp(3,1)") && fw.starts_with("Icmp(3,3)"),
    },
];

fn long() -> bool {
    std::env::var("FW_TEST_LONG").is_ok_and(|v| v == "1")
}

/// One case's outcome on both rigs.
struct Row<'a> {
    name: &'a str,
    tag: Option<&'static str>,
    iptables: String,
    fw: String,
}

/// Lists every disagreement (named ones marked) and writes the report;
/// returns the unnamed ones.
fn compare(what: &str, rows: &[Row<'_>]) -> Vec<String> {
    let mut report = String::new();
    let mut unnamed = Vec::new();
    let mut named = std::collections::BTreeMap::<&str, usize>::new();
    for r in rows {
        if r.iptables == r.fw {
            continue;
        }
        let n = r
            .tag
            .and_then(|t| NAMED.iter().find(|n| n.tag == t))
            .filter(|n| (n.fits)(&r.iptables, &r.fw));
        let line = format!(
            "{:<78} iptables: {:<28} fw: {:<28} {}",
            r.name,
            r.iptables,
            r.fw,
            n.map(|n| format!("[named: {}]", n.tag)).unwrap_or_default()
        );
        match n {
            Some(n) => *named.entry(n.tag).or_default() += 1,
            None => unnamed.push(line.clone()),
        }
        report.push_str(&line);
        report.push('\n');
    }
    let mut summary = format!(
        "{what}: {} cases, {} disagreements, {} not named\n",
        rows.len(),
        report.lines().count(),
        unnamed.len()
    );
    for n in NAMED {
        if let Some(c) = named.get(n.tag) {
            summary.push_str(&format!("  {c:>4} named {}: {}\n", n.tag, n.why));
        }
    }
    let all: String = rows
        .iter()
        .map(|r| format!("{:<78} {:<28} {}\n", r.name, r.iptables, r.fw))
        .collect();
    let dir = fw_testkit::workspace_dir().join("target");
    let _ = std::fs::write(dir.join(format!("conformance-{what}-all.txt")), all);
    let _ = std::fs::write(
        dir.join(format!("conformance-{what}-diffs.txt")),
        format!("{summary}\n{report}"),
    );
    println!("{summary}\n{report}");
    unnamed
}

#[test]
fn corpus_matches_iptables() {
    require_root();
    let neighbors = corpus::neighbors();
    let mut runs = Vec::new();
    for side in [Side::Iptables, Side::Fw] {
        let t = std::time::Instant::now();
        let rig = Twin::build(side, "fwcf", &neighbors);
        let cases = corpus::corpus(
            Env {
                cli_mac: rig.cli_mac,
                srv_mac: rig.srv_mac,
            },
            long(),
        );
        let (_, shared) = pipeline::key_map(&cases);
        assert!(shared.is_empty(), "probes share answer keys: {shared:#?}");
        let seen = pipeline::run(&rig, &cases);
        println!(
            "{}: {} cases in {:.1?}; answers no probe claimed: {} {:?}",
            side.name(),
            cases.len(),
            t.elapsed(),
            seen.unclaimed.len(),
            &seen.unclaimed[..seen.unclaimed.len().min(10)]
        );
        runs.push((cases, seen.answers));
    }
    let (cases, reference) = &runs[0];
    let fw = &runs[1].1;
    // The reference must show the seed's shape, or the rig is broken.
    let get = |name: &str| {
        let i = cases.iter().position(|c| c.name == name).expect("case");
        render(&reference[i])
    };
    assert_eq!(
        get("v4 tcp S -> 22 (open)"),
        "Tcp(SA)",
        "reference rig broken"
    );
    assert_eq!(
        get("v4 tcp S -> 443 (closed)"),
        "Icmp(3,1)",
        "reference rig broken"
    );
    assert_eq!(
        get("v6 udp -> 80 (open) in 2 fragments in order"),
        "Udp",
        "reference rig broken"
    );
    let rows: Vec<Row<'_>> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| Row {
            name: &c.name,
            tag: c.tag,
            iptables: render(&reference[i]),
            fw: render(&fw[i]),
        })
        .collect();
    let unnamed = compare("corpus", &rows);
    assert!(
        unnamed.is_empty(),
        "fw and the seed iptables ruleset disagree ({} not named as intended):\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}

#[test]
fn flows_match_iptables() {
    require_root();
    let cases = flows::cases();
    let mut runs: Vec<Vec<BTreeSet<String>>> = Vec::new();
    for side in [Side::Iptables, Side::Fw] {
        let rig = Twin::build(side, "fwcf", &corpus::neighbors());
        runs.push(flowrun::run(&rig, &cases));
    }
    let rows: Vec<Row<'_>> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| Row {
            name: &c.name,
            tag: c.tag,
            iptables: render(&runs[0][i]),
            fw: render(&runs[1][i]),
        })
        .collect();
    // The reference must have seen the flows at all.
    assert!(
        rows.iter().all(|r| !r.iptables.contains("no flow packet")),
        "reference rig broken: a flow's packet was not captured"
    );
    let unnamed = compare("flows", &rows);
    assert!(
        unnamed.is_empty(),
        "fw and the seed iptables ruleset disagree on flows ({} not named as intended):\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}
