//! Runtime policy changes (`fw allow`, `fw deny`) and the `fw ports` view:
//! map writes, no reload; the next packet sees the change.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use ipnet::IpNet;

use crate::{
    error::Result,
    kernel::{maps::FwMaps, pins::PinDir, sys::require_root},
    model::policy::{collapse, Policy, PortRange, Proto},
    ops::{
        guard,
        persist::{self, Save, Saved},
    },
};

/// What `fw allow` / `fw deny` did, port by port, collapsed into ranges.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    pub proto: Proto,
    /// Were closed, are open now.
    pub opened: Vec<PortRange>,
    /// Were open, are closed now.
    pub closed: Vec<PortRange>,
    /// Open before and after, with another source list; `None`: now open
    /// to everyone.
    pub sources: Vec<(PortRange, Option<BTreeSet<IpNet>>)>,
    /// Asked for, and already in that state (nothing written).
    pub already: Vec<PortRange>,
    /// `--from` asked on ports already open to everyone: they stay open to
    /// everyone (a source list would narrow them; deny them first).
    pub kept_open_to_all: Vec<PortRange>,
    /// The policy after the change.
    pub policy: Policy,
    /// Whether it went into the config file fw runs.
    pub saved: Saved,
}

impl Change {
    /// Ports whose state changed.
    pub fn changed(&self) -> usize {
        let n = |v: &[PortRange]| v.iter().map(|r| r.len()).sum::<usize>();
        n(&self.opened) + n(&self.closed) + self.sources.iter().map(|(r, _)| r.len()).sum::<usize>()
    }

    /// One line per kind of change, e.g. `opened tcp 8080`,
    /// `already open: tcp 22`.
    pub fn render(&self, allow: bool) -> String {
        let p = self.proto;
        let mut out = String::new();
        let list = |v: &[PortRange]| p.ranges_text(v);
        if !self.opened.is_empty() {
            let _ = writeln!(out, "opened {p} {}", list(&self.opened));
        }
        if !self.closed.is_empty() {
            let _ = writeln!(out, "closed {p} {}", list(&self.closed));
        }
        for (r, src) in &self.sources {
            let r = p.range_text(*r);
            match src {
                Some(nets) => {
                    let _ = writeln!(out, "{p} {r}: now open only from {}", nets_list(nets));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{p} {r}: now open to everyone (source restriction removed)"
                    );
                }
            }
        }
        if !self.already.is_empty() {
            let state = if allow { "open" } else { "closed" };
            let _ = writeln!(out, "already {state}: {p} {}", list(&self.already));
        }
        if !self.kept_open_to_all.is_empty() {
            let l = list(&self.kept_open_to_all);
            let _ = writeln!(
                out,
                "already open to everyone: {p} {l} (--from does not narrow an open port: \
                 run `fw deny {p} {l}` first)"
            );
        }
        if self.changed() == 0 {
            out.push_str("nothing changed\n");
        }
        out
    }
}

fn nets_list(nets: &BTreeSet<IpNet>) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn requested(ranges: &[PortRange]) -> BTreeSet<u16> {
    ranges.iter().flat_map(|r| r.ports()).collect()
}

/// Port-by-port comparison of `old` and `new` over `asked`.
fn describe(
    proto: Proto,
    old: &Policy,
    new: Policy,
    asked: &BTreeSet<u16>,
    from: &[IpNet],
) -> Change {
    let (mut opened, mut closed, mut already, mut wider) = (vec![], vec![], vec![], vec![]);
    let mut sources: Vec<(u16, Option<BTreeSet<IpNet>>)> = Vec::new();
    for &port in asked {
        let (was, is) = (old.is_open(proto, port), new.is_open(proto, port));
        let (s_old, s_new) = (old.sources(proto, port), new.sources(proto, port));
        match (was, is) {
            (false, true) => opened.push(port),
            (true, false) => closed.push(port),
            (true, true) if s_old != s_new => sources.push((port, s_new.cloned())),
            (true, true) if !from.is_empty() && s_old.is_none() => wider.push(port),
            _ => already.push(port),
        }
    }
    // Neighbouring ports with the same new source list collapse together.
    let mut src_ranges: Vec<(PortRange, Option<BTreeSet<IpNet>>)> = Vec::new();
    for (port, src) in sources {
        match src_ranges.last_mut() {
            Some((r, s)) if r.hi as u32 + 1 == port as u32 && *s == src => r.hi = port,
            _ => src_ranges.push((PortRange::single(port), src)),
        }
    }
    Change {
        proto,
        opened: collapse(opened),
        closed: collapse(closed),
        sources: src_ranges,
        already: collapse(already),
        kept_open_to_all: collapse(wider),
        policy: new,
        saved: Saved::NoFile,
    }
}

/// Writes `new` into the maps and, unless `save` says not to, the same
/// change into the config file fw runs: staged before the maps change and
/// put in place after, the maps put back if that last step fails, so the
/// change lands in both or in neither.
fn write(
    maps: &FwMaps,
    old: &Policy,
    new: &Policy,
    save: Save,
    change: impl Fn(&mut Policy),
) -> Result<Saved> {
    // Refused for capacity before the file is touched.
    maps.check_policy_fits(new)?;
    let pending = persist::stage(maps, save, change)?;
    maps.write_policy(new)?;
    pending.commit(maps).inspect_err(|_| {
        let _ = maps.write_policy(old);
    })
}

/// Opens `ranges` of `proto` (only to `from`, when given). Idempotent.
/// `save` says whether the config file fw runs gets the change too.
pub fn allow(
    pins: &PinDir,
    proto: Proto,
    ranges: &[PortRange],
    from: &[IpNet],
    save: Save,
) -> Result<Change> {
    require_root("fw allow")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open(pins)?;
    let old = maps.policy()?;
    let change = |p: &mut Policy| {
        for r in ranges {
            p.allow(proto, *r, from);
        }
    };
    let mut new = old.clone();
    change(&mut new);
    let saved = write(&maps, &old, &new, save, change)?;
    Ok(Change {
        saved,
        ..describe(proto, &old, new, &requested(ranges), from)
    })
}

/// Closes `ranges` of `proto`. Established flows on them continue. Unless
/// `force`, refuses (changing nothing) when the lockout guard finds flows
/// or this command's own session on a port being closed.
///
/// With `from`, removes only those sources from the ports' source lists
/// (a port whose last source goes is closed); a source a port does not
/// have is refused, naming the ones it has.
pub fn deny(
    pins: &PinDir,
    proto: Proto,
    ranges: &[PortRange],
    from: &[IpNet],
    force: bool,
    save: Save,
) -> Result<Change> {
    require_root("fw deny")?;
    let _lock = crate::ops::lock::take()?;
    let maps = FwMaps::open(pins)?;
    let old = maps.policy()?;
    let mut new = old.clone();
    for r in ranges {
        if from.is_empty() {
            new.deny(proto, *r);
        } else {
            new.remove_sources(proto, *r, from)?;
        }
    }
    // The file's policy is the running one (or drifted: then what it has).
    let change = |p: &mut Policy| {
        for r in ranges {
            if from.is_empty() {
                p.deny(proto, *r);
            } else {
                let _ = p.remove_sources(proto, *r, from);
            }
        }
    };
    if !force {
        let sources: String = from.iter().map(|n| format!(" --from {n}")).collect();
        let cmd = format!("fw deny {proto} {}{sources}", proto.ranges_text(ranges));
        guard::guard(&maps, &old, &new, guard::Refused::Deny(&cmd))?;
    }
    let saved = write(&maps, &old, &new, save, change)?;
    Ok(Change {
        saved,
        ..describe(proto, &old, new, &requested(ranges), &[])
    })
}

/// Open ports of `proto` grouped by source list (`None`: open to everyone
/// first), each group collapsed into ranges.
fn groups(p: &Policy, proto: Proto) -> Vec<(Option<&BTreeSet<IpNet>>, Vec<PortRange>)> {
    let mut by_src: BTreeMap<Option<&BTreeSet<IpNet>>, Vec<u16>> = BTreeMap::new();
    for port in p.ports(proto) {
        by_src.entry(p.sources(proto, port)).or_default().push(port);
    }
    by_src
        .into_iter()
        .map(|(s, ports)| (s, collapse(ports)))
        .collect()
}

/// The policy as `fw ports` shows it: one line per protocol and source list,
/// ports ascending, neighbours collapsed into ranges:
///
/// ```text
/// tcp: 22 80 8000-8080
/// tcp: 443 from 198.51.100.0/24 2001:db8::/32
/// udp: 80
/// ```
///
/// A protocol with no open port shows `(none)`; ICMP echo is `icmp: echo`.
pub fn render_ports(p: &Policy) -> String {
    let mut out = String::new();
    for proto in Proto::EVERY {
        let g = groups(p, proto);
        if g.is_empty() {
            let _ = writeln!(out, "{proto}: (none)");
        }
        for (src, ranges) in g {
            let list = proto.ranges_text(&ranges);
            match src {
                None => {
                    let _ = writeln!(out, "{proto}: {list}");
                }
                Some(nets) => {
                    let _ = writeln!(out, "{proto}: {list} from {}", nets_list(nets));
                }
            }
        }
    }
    out
}

/// JSON for `fw ports --json`. One key per protocol, always present; each
/// holds the open ranges in ascending order, `lo`..=`hi` inclusive, and
/// `from` (source prefixes) only for ports restricted to some sources:
///
/// ```json
/// {"tcp": [{"lo": 22, "hi": 22}, {"lo": 443, "hi": 443, "from": ["198.51.100.0/24"]}],
///  "udp": [{"lo": 80, "hi": 80}], "icmp": [{"type": "echo"}]}
/// ```
pub fn ports_json(p: &Policy) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for proto in Proto::EVERY {
        let list: Vec<serde_json::Value> = p
            .ranges(proto)
            .iter()
            .map(|(r, src)| {
                let mut e = match proto {
                    Proto::Icmp => serde_json::json!({"type": proto.range_text(*r)}),
                    _ => serde_json::json!({"lo": r.lo, "hi": r.hi}),
                };
                if let Some(nets) = src {
                    e["from"] = nets.iter().map(|n| n.to_string()).collect();
                }
                e
            })
            .collect();
        obj.insert(proto.name().to_string(), list.into());
    }
    obj.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::parse_prefix;

    fn r(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    #[test]
    fn describes_allow() {
        let old = Policy::seed();
        let mut new = old.clone();
        new.allow(Proto::Tcp, r("79-81"), &[]);
        let c = describe(Proto::Tcp, &old, new, &requested(&[r("79-81")]), &[]);
        assert_eq!(c.opened, [r("79"), r("81")]);
        assert_eq!(c.already, [r("80")]);
        assert_eq!(c.changed(), 2);
        assert_eq!(c.render(true), "opened tcp 79 81\nalready open: tcp 80\n");
    }

    #[test]
    fn describes_noop_and_sources() {
        let old = Policy::seed();
        let c = describe(Proto::Tcp, &old, old.clone(), &requested(&[r("22")]), &[]);
        assert_eq!(c.render(true), "already open: tcp 22\nnothing changed\n");
        let net = parse_prefix("198.51.100.0/24").unwrap();
        let c = describe(
            Proto::Tcp,
            &old,
            old.clone(),
            &requested(&[r("22")]),
            &[net],
        );
        assert!(
            c.render(true).contains("already open to everyone: tcp 22"),
            "{}",
            c.render(true)
        );
        let mut new = old.clone();
        new.allow(Proto::Tcp, r("443"), &[net]);
        let mut newer = new.clone();
        newer.allow(
            Proto::Tcp,
            r("443"),
            &[parse_prefix("2001:db8::/32").unwrap()],
        );
        let c = describe(Proto::Tcp, &new, newer, &requested(&[r("443")]), &[net]);
        assert_eq!(
            c.render(true),
            "tcp 443: now open only from 198.51.100.0/24 2001:db8::/32\n"
        );
    }

    #[test]
    fn describes_deny() {
        let old = Policy::seed();
        let mut new = old.clone();
        new.deny(Proto::Tcp, r("80-90"));
        let c = describe(Proto::Tcp, &old, new, &requested(&[r("80-90")]), &[]);
        assert_eq!(
            c.render(false),
            "closed tcp 80\nalready closed: tcp 81-90\n"
        );
    }

    #[test]
    fn ports_view_is_compact_and_stable() {
        let mut p = Policy::seed();
        p.allow(Proto::Tcp, r("8000-8080"), &[]);
        p.allow(
            Proto::Tcp,
            r("443"),
            &[parse_prefix("198.51.100.0/24").unwrap()],
        );
        p.deny(Proto::Udp, r("80"));
        assert_eq!(
            render_ports(&p),
            "tcp: 22 80 8000-8080\ntcp: 443 from 198.51.100.0/24\nudp: (none)\nicmp: (none)\n"
        );
        assert_eq!(
            ports_json(&p).to_string(),
            r#"{"icmp":[],"tcp":[{"hi":22,"lo":22},{"hi":80,"lo":80},{"from":["198.51.100.0/24"],"hi":443,"lo":443},{"hi":8080,"lo":8000}],"udp":[]}"#
        );
    }
}
