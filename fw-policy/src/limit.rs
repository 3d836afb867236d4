//! Per-source limits (`fw limit`, `[[limits]]`): at most `rate` new flows
//! per `window` to a port (or range) from one source prefix (`/per` for
//! IPv4, `/per6` for IPv6). Pure: parsing, checks and the kernel's rule.
use std::{fmt, str::FromStr};

use crate::{
    error::{Error, Result},
    policy::{PortRange, Proto},
};

/// At most this many new flows per window.
pub const MAX_COUNT: u32 = 1_000_000;
/// Longest window (a day): the kernel side's arithmetic stays in range.
pub const MAX_WINDOW_SECS: u32 = 86_400;
/// Source prefix lengths when `--per`/`--per6` are not given: each address
/// (IPv4), each /64 (IPv6: one host's usual share).
pub const DEFAULT_PER4: u32 = 32;
pub const DEFAULT_PER6: u32 = 64;

/// `N/WINDOW`: N new flows per window, e.g. `6/30s`, `100/1m`, `10/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate {
    pub count: u32,
    pub window_secs: u32,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.window_secs;
        let (n, unit) = if w.is_multiple_of(3600) {
            (w / 3600, "h")
        } else if w.is_multiple_of(60) {
            (w / 60, "m")
        } else {
            (w, "s")
        };
        write!(f, "{}/{n}{unit}", self.count)
    }
}

impl FromStr for Rate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Rate> {
        let bad = |why: &str| {
            Error::invalid(
                "rate",
                s,
                format!("{why} (a rate is NEW_FLOWS/WINDOW, like 6/30s, 100/1m or 10/h)"),
            )
        };
        let (n, w) = s.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| bad("the count is no number"))?;
        if count == 0 || count > u64::from(MAX_COUNT) {
            return Err(bad(&format!("the count must be 1-{MAX_COUNT}")));
        }
        let w = w.trim();
        let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
        let (num, unit) = w.split_at(split);
        let num: u64 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| bad("the window is no number"))?
        };
        let scale = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hour" => 3600,
            "" => return Err(bad("the window needs a unit: s, m or h")),
            _ => return Err(bad(&format!("unknown unit `{unit}`: use s, m or h"))),
        };
        let secs = num.saturating_mul(scale);
        if secs == 0 || secs > u64::from(MAX_WINDOW_SECS) {
            return Err(bad(&format!(
                "the window must be 1s-{}h",
                MAX_WINDOW_SECS / 3600
            )));
        }
        Ok(Rate {
            count: count as u32,
            window_secs: secs as u32,
        })
    }
}

/// One limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Limit {
    pub proto: Proto,
    pub ports: PortRange,
    pub rate: Rate,
    /// IPv4 sources are grouped by this prefix length (1-32).
    pub per4: u8,
    /// IPv6 sources by this one (1-128).
    pub per6: u8,
}

impl Limit {
    /// Checks what a limit may hold: TCP or UDP, prefix lengths in range.
    pub fn new(proto: Proto, ports: PortRange, rate: Rate, per4: u32, per6: u32) -> Result<Limit> {
        if proto == Proto::Icmp {
            return Err(Error::invalid(
                "protocol",
                "icmp",
                "limits count new TCP connections or UDP flows: use tcp or udp",
            ));
        }
        Ok(Limit {
            proto,
            ports,
            rate,
            per4: check_per("--per", per4, 32)?,
            per6: check_per("--per6", per6, 128)?,
        })
    }

    /// Whether this limit and `other` cover a common port.
    pub fn overlaps(&self, other: &Limit) -> bool {
        self.proto == other.proto
            && self.ports.lo <= other.ports.hi
            && other.ports.lo <= self.ports.hi
    }

    /// `tcp 22 6/30s per /24 (v6 /64)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} per source /{} (IPv6 /{})",
            self.proto,
            self.proto.range_text(self.ports),
            self.rate,
            self.per4,
            self.per6
        )
    }

    /// The kernel's rule (generation 0: the map writer sets it).
    pub fn rule(&self) -> fw_common::LimitRule {
        fw_common::LimitRule {
            proto: self.proto.number(),
            per4: self.per4,
            per6: self.per6,
            _pad: 0,
            lo: self.ports.lo,
            hi: self.ports.hi,
            rate: self.rate.count,
            generation: 0,
            window_ns: u64::from(self.rate.window_secs) * 1_000_000_000,
        }
    }

    /// The limit a kernel rule holds; None for an unused or foreign slot.
    pub fn from_rule(r: &fw_common::LimitRule) -> Option<Limit> {
        let proto = match r.proto {
            fw_common::IPPROTO_TCP => Proto::Tcp,
            fw_common::IPPROTO_UDP => Proto::Udp,
            _ => return None,
        };
        let ports = PortRange::new(u32::from(r.lo), u32::from(r.hi), "").ok()?;
        let rate = Rate {
            count: r.rate,
            window_secs: (r.window_ns / 1_000_000_000) as u32,
        };
        Some(Limit {
            proto,
            ports,
            rate,
            per4: r.per4,
            per6: r.per6,
        })
    }
}

fn check_per(what: &'static str, v: u32, max: u8) -> Result<u8> {
    match u8::try_from(v) {
        Ok(n) if n >= 1 && n <= max => Ok(n),
        _ => Err(Error::invalid(
            "prefix length",
            format!("{what} {v}"),
            format!("{what} must be 1-{max} (the source prefix length new flows are counted by)"),
        )),
    }
}

/// Checks a list of limits: no two on a common port, at most
/// [`fw_common::LIMIT_SLOTS`]. Sorts it (by protocol and port).
pub fn check_all(limits: &mut [Limit]) -> Result<()> {
    limits.sort();
    if limits.len() > fw_common::LIMIT_SLOTS {
        return Err(Error::invalid(
            "limits",
            limits.len().to_string(),
            format!(
                "fw holds at most {} limits: remove one (`fw unlimit`) or cover several \
                 ports with one range",
                fw_common::LIMIT_SLOTS
            ),
        ));
    }
    for w in limits.windows(2) {
        if w[0].overlaps(&w[1]) {
            return Err(Error::invalid(
                "limits",
                w[1].describe(),
                format!("it overlaps {}: a port has one limit", w[0].describe()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        for (s, count, secs, shown) in [
            ("6/30s", 6, 30, "6/30s"),
            ("100/1m", 100, 60, "100/1m"),
            ("10/h", 10, 3600, "10/1h"),
            ("3/90s", 3, 90, "3/90s"),
            ("5/120s", 5, 120, "5/2m"),
        ] {
            let r: Rate = s.parse().unwrap();
            assert_eq!((r.count, r.window_secs), (count, secs), "{s}");
            assert_eq!(r.to_string(), shown);
            assert_eq!(shown.parse::<Rate>().unwrap(), r);
        }
        for (s, needle) in [
            ("0/30s", "count must be"),
            ("6/0s", "window must be"),
            ("6/30", "needs a unit"),
            ("6/30d", "unknown unit `d`"),
            ("6", "no `/`"),
            ("x/1s", "no number"),
            ("6/2h0m", "unknown unit"),
            ("6/25h", "window must be"),
        ] {
            let e = s.parse::<Rate>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn limits_do_not_overlap_and_fit_the_slots() {
        let r: Rate = "6/30s".parse().unwrap();
        let l = |lo: u16, hi: u16| {
            Limit::new(
                Proto::Tcp,
                PortRange::new(lo.into(), hi.into(), "").unwrap(),
                r,
                32,
                64,
            )
            .unwrap()
        };
        check_all(&mut [l(22, 22), l(80, 90)]).unwrap();
        let e = check_all(&mut [l(22, 22), l(20, 30)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps"), "{e}");
        let mut many: Vec<Limit> = (1..=9).map(|p| l(p, p)).collect();
        assert!(check_all(&mut many)
            .unwrap_err()
            .to_string()
            .contains("at most 8"));
        let e = Limit::new(Proto::Tcp, PortRange::single(22), r, 33, 64).unwrap_err();
        assert!(e.to_string().contains("--per must be 1-32"), "{e}");
        let e = Limit::new(Proto::Tcp, PortRange::single(22), r, 24, 0).unwrap_err();
        assert!(e.to_string().contains("--per6 must be 1-128"), "{e}");
        let k = l(22, 22).rule();
        assert_eq!(Limit::from_rule(&k), Some(l(22, 22)));
    }
}
