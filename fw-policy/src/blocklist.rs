//! The blocklist model: set names, ban durations, set files, and how one
//! trie entry (a prefix, the sets holding it, their ends) changes when a set
//! takes or drops it. No maps here: `maps` stores entries, `block` runs the
//! commands.
use std::{collections::BTreeSet, path::Path, time::Duration};

use fw_common::{BlockValue, BLOCK_SET_NAME_MAX};
use ipnet::IpNet;

use crate::{
    error::{Error, Result},
    policy::parse_prefix,
};

/// The set `fw block` uses without `--set`.
pub const DEFAULT_SET: &str = "default";

/// Longest ban `--for` takes (a year; longer is what no `--for` means).
pub const MAX_BAN: Duration = Duration::from_secs(366 * 86_400);

/// Checks a set name: 1-32 letters, digits, `_`, `-` or `.`, starting with
/// a letter or digit (it shows in tables, JSON and config files).
pub fn check_set_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= BLOCK_SET_NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "set name",
            name,
            format!(
                "use 1-{BLOCK_SET_NAME_MAX} letters, digits, `_`, `-` or `.`, starting with a \
                 letter or digit (e.g. fail2ban, spamhaus-drop)"
            ),
        ))
    }
}

/// Parses a ban duration: a number with an optional unit, `s` (default),
/// `m`, `h`, `d` or `w`, or several of them (`1h30m`). Zero is refused
/// (a ban that never starts); so is more than [`MAX_BAN`].
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = |why: &str| {
        Error::invalid(
            "duration",
            s,
            format!("{why}; give a number of seconds or one with a unit, e.g. 600, 600s, 10m, 1h30m, 2d"),
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad("unknown unit (s, m, h, d, w)")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad("it is too long"))?;
    }
    if total == 0 {
        return Err(bad(
            "a ban of 0 seconds would end before it starts (leave out --for for a ban without end)",
        ));
    }
    let d = Duration::from_secs(total);
    if d > MAX_BAN {
        return Err(bad(
            "at most 366 days (leave out --for for a ban without end)",
        ));
    }
    Ok(d)
}

/// A duration in words for tables: `45s`, `9m 58s`, `3h 20m`, `2d 4h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Parses a block set file: one address or prefix per line (FireHOL
/// netsets, Spamhaus DROP lists: `#` and `;` start comments, blank lines
/// are skipped), or the output of `ipset save` for one set (`create` lines
/// skipped, `add NAME PREFIX [options]` taken). Host bits must be zero, as
/// in `--from`. The first bad line is an error naming `path` and the line
/// number. Duplicates collapse.
pub fn parse_set_file(text: &str, path: &Path) -> Result<BTreeSet<IpNet>> {
    let mut out = BTreeSet::new();
    let mut ipset_name: Option<(String, usize)> = None;
    let at = |line: usize, reason: String| Error::SetFile {
        path: path.to_path_buf(),
        line,
        reason,
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split(['#', ';']).next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let prefix = match first {
            "create" => continue,
            "add" => {
                let (Some(name), Some(prefix)) = (words.next(), words.next()) else {
                    return Err(at(
                        n,
                        format!("`{line}`: an ipset line reads `add SET ADDRESS[/LEN] [options]`"),
                    ));
                };
                let opts: Vec<&str> = words.collect();
                if opts.contains(&"nomatch") {
                    return Err(at(
                        n,
                        format!(
                            "`{line}`: a `nomatch` entry is an exception inside a blocked range, \
                             which a blocklist cannot express: remove the line (or the range it \
                             punches a hole in)"
                        ),
                    ));
                }
                match &ipset_name {
                    Some((set, first_line)) if set != name => {
                        return Err(at(
                            n,
                            format!(
                                "the file holds more than one ipset set (`{set}` from line \
                                 {first_line}, `{name}` here): save one set per file \
                                 (`ipset save {set} > FILE`)"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => ipset_name = Some((name.to_string(), n)),
                }
                prefix
            }
            other => {
                if let Some(extra) = words.next() {
                    return Err(at(
                        n,
                        format!(
                            "`{line}`: expected one address or prefix per line, found `{other}` \
                             followed by `{extra}` (comments start with # or ;)"
                        ),
                    ));
                }
                other
            }
        };
        let net = parse_prefix(prefix).map_err(|e| at(n, e.to_string()))?;
        out.insert(net);
    }
    Ok(out)
}

/// A set file's text (which loads as some set) edited to hold exactly
/// `want`: comments, blank lines and the lines of prefixes still wanted
/// stay as written, lines of prefixes no longer wanted go, new prefixes
/// are appended one a line (as `add NAME PREFIX` in an `ipset save` file).
pub fn edit_set_file(text: &str, want: &BTreeSet<IpNet>) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut have = BTreeSet::new();
    let mut ipset: Option<String> = None;
    for raw in text.lines() {
        let line = raw.split(['#', ';']).next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let prefix = match words.next() {
            None | Some("create") => None,
            Some("add") => {
                let name = words.next();
                if ipset.is_none() {
                    ipset = name.map(str::to_string);
                }
                words.next()
            }
            Some(p) => Some(p),
        };
        if let Some(net) = prefix.and_then(|p| parse_prefix(p).ok()) {
            if !want.contains(&net) || !have.insert(net) {
                continue;
            }
        }
        out.push_str(raw);
        out.push('\n');
    }
    for net in want.difference(&have) {
        match &ipset {
            Some(name) => out.push_str(&format!("add {name} {net}\n")),
            None => out.push_str(&format!("{net}\n")),
        }
    }
    out
}

/// Up to 10 prefixes, then how many more.
pub fn listed(v: &[IpNet]) -> String {
    let mut s: Vec<String> = v.iter().take(10).map(|n| n.to_string()).collect();
    if v.len() > 10 {
        s.push(format!("and {} more", v.len() - 10));
    }
    s.join(" ")
}

/// What a trie entry says once memberships that ended by `now` are gone:
/// `None` when no set holds the prefix any more (the kernel side treats it
/// as absent already).
pub fn live(v: &BlockValue, now: u64) -> Option<BlockValue> {
    let mut v = *v;
    if v.timed_expires_ns != 0 && v.timed_expires_ns <= now {
        v.sets &= v.permanent;
        v.timed_expires_ns = 0;
    }
    if v.sets == 0 {
        return None;
    }
    if v.sets & !v.permanent == 0 {
        v.timed_expires_ns = 0;
    }
    v.expires_ns = if v.permanent != 0 {
        0
    } else {
        v.timed_expires_ns
    };
    Some(v)
}

/// Entry `old` (of `net`; `None`: not in the trie) once set `id` holds the
/// prefix until `until` (kernel clock; `None`: without end). A later ban
/// of the same prefix by the same set replaces its end, longer or shorter;
/// timed bans of several sets share the latest end.
pub fn with_set(
    old: Option<&BlockValue>,
    net: &IpNet,
    id: u32,
    until: Option<u64>,
    now: u64,
) -> BlockValue {
    let mut v = old.and_then(|o| live(o, now)).unwrap_or(BlockValue {
        hits: old.map_or(0, |o| o.hits),
        ..BlockValue::default()
    });
    let bit = 1u32 << id;
    match until {
        None => v.permanent |= bit,
        Some(t) => {
            v.permanent &= !bit;
            let others_timed = v.sets & !v.permanent & !bit != 0;
            v.timed_expires_ns = if others_timed {
                v.timed_expires_ns.max(t)
            } else {
                t
            };
        }
    }
    v.sets |= bit;
    v.prefix_len = net.prefix_len() as u32;
    live(&v, now).unwrap_or(v)
}

/// Entry `old` once set `id` no longer holds it; `None`: no set does, the
/// entry goes.
pub fn without_set(old: &BlockValue, id: u32, now: u64) -> Option<BlockValue> {
    let mut v = live(old, now)?;
    let bit = 1u32 << id;
    v.sets &= !bit;
    v.permanent &= !bit;
    live(&v, now)
}

/// Entry `old` (of `net`; `None`: not in the trie) once exactly the sets in
/// `mask` hold it without end (a config's sets replacing the running
/// ones); timed bans stay as they are. `None`: no set holds it any more.
pub fn with_permanent(
    old: Option<&BlockValue>,
    net: &IpNet,
    mask: u32,
    now: u64,
) -> Option<BlockValue> {
    let mut v = old.and_then(|o| live(o, now)).unwrap_or(BlockValue {
        hits: old.map_or(0, |o| o.hits),
        ..BlockValue::default()
    });
    let timed = v.sets & !v.permanent;
    v.permanent = mask;
    v.sets = timed | mask;
    v.prefix_len = net.prefix_len() as u32;
    live(&v, now)
}

/// Whether two entries block alike (hits aside).
pub fn same_block(a: &BlockValue, b: &BlockValue) -> bool {
    let strip = |v: &BlockValue| BlockValue { hits: 0, ..*v };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse_prefix(s).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("600s").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        for bad in [
            "0",
            "0s",
            "",
            "-1s",
            "10x",
            "m",
            "1.5h",
            "400d",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        let e = parse_duration("0").unwrap_err().to_string();
        assert!(e.contains("leave out --for"), "{e}");
        assert_eq!(human(Duration::from_secs(598)), "9m 58s");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn set_names() {
        for good in ["fail2ban", "spamhaus-drop", "a", "x.y_z"] {
            check_set_name(good).unwrap();
        }
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(33)] {
            assert!(check_set_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn set_files_in_every_format() {
        let p = Path::new("list.txt");
        let netset = "# FireHOL level1\n#\n192.0.2.0/24\n\n198.51.100.7\n2001:db8::/32\n";
        let want: BTreeSet<IpNet> = ["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"]
            .map(net)
            .into();
        assert_eq!(parse_set_file(netset, p).unwrap(), want);
        let drop = "; Spamhaus DROP List 2026/05/01\n192.0.2.0/24 ; SBL123\n198.51.100.7/32 ; SBL9\n2001:db8::/32 ; SBL7\n";
        assert_eq!(parse_set_file(drop, p).unwrap(), want);
        let ipset = "create bad hash:net family inet hashsize 1024 maxelem 65536\nadd bad 192.0.2.0/24\nadd bad 198.51.100.7 timeout 0\nadd bad 2001:db8::/32\n";
        assert_eq!(parse_set_file(ipset, p).unwrap(), want);
        assert!(parse_set_file("", p).unwrap().is_empty());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("/etc/fw/list.txt");
        for (text, line, needle) in [
            ("192.0.2.0/24\n192.0.2.1/24\n", 2, "host bits are set"),
            ("# x\n\nhello\n", 3, "expected an address or CIDR"),
            ("192.0.2.0/33\n", 1, "expected an address or CIDR"),
            (
                "192.0.2.1 198.51.100.1\n",
                1,
                "one address or prefix per line",
            ),
            (
                "add a 192.0.2.1\nadd b 192.0.2.2\n",
                2,
                "more than one ipset set",
            ),
            (
                "add a 192.0.2.0/24\nadd a 192.0.2.128/25 nomatch\n",
                2,
                "nomatch",
            ),
            ("add a\n", 1, "add SET ADDRESS"),
            ("::ffff:192.0.2.1\n", 1, "IPv4-mapped"),
        ] {
            let e = parse_set_file(text, p).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("/etc/fw/list.txt:{line}: ")),
                "{text:?}: {e}"
            );
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.ends_with("nothing was changed"), "{e}");
        }
    }

    #[test]
    fn set_files_are_edited_in_place() {
        let p = Path::new("list.txt");
        let text = "# my list\n192.0.2.0/24 ; spam\n\n198.51.100.7\n";
        let want: BTreeSet<IpNet> = ["198.51.100.7/32", "2001:db8::/32"].map(net).into();
        let out = edit_set_file(text, &want);
        assert_eq!(out, "# my list\n\n198.51.100.7\n2001:db8::/32\n");
        assert_eq!(parse_set_file(&out, p).unwrap(), want);
        let ipset = "create bad hash:net\nadd bad 192.0.2.0/24\n";
        let out = edit_set_file(ipset, &want);
        assert_eq!(
            out,
            "create bad hash:net\nadd bad 198.51.100.7/32\nadd bad 2001:db8::/32\n"
        );
        assert_eq!(parse_set_file(&out, p).unwrap(), want);
    }

    #[test]
    fn sets_take_and_drop_a_prefix() {
        let n = net("192.0.2.0/24");
        let now = 1_000;
        // A timed ban, then a longer one, then a shorter one: the last wins.
        let v = with_set(None, &n, 3, Some(5_000), now);
        assert_eq!(
            (v.sets, v.permanent, v.expires_ns, v.prefix_len),
            (8, 0, 5_000, 24)
        );
        let v = with_set(Some(&v), &n, 3, Some(9_000), now);
        assert_eq!(v.expires_ns, 9_000);
        let v = with_set(Some(&v), &n, 3, Some(2_000), now);
        assert_eq!(v.expires_ns, 2_000);
        // Another set holding it for good: no end while it does.
        let both = with_set(Some(&v), &n, 0, None, now);
        assert_eq!((both.sets, both.permanent, both.expires_ns), (9, 1, 0));
        // Dropping that set leaves the timed ban with its end.
        let timed = without_set(&both, 0, now).unwrap();
        assert_eq!((timed.sets, timed.expires_ns), (8, 2_000));
        // Past its end, the timed membership is gone.
        assert_eq!(live(&timed, 2_000), None);
        assert_eq!(without_set(&both, 0, 3_000), None);
        let still = live(&both, 3_000).unwrap();
        assert_eq!((still.sets, still.expires_ns), (1, 0));
        // A set dropping the last hold removes the entry; hits survive a re-ban.
        assert_eq!(without_set(&timed, 3, now), None);
        let hit = BlockValue { hits: 7, ..timed };
        assert_eq!(with_set(Some(&hit), &n, 3, None, 5_000).hits, 7);
        // An expired ban of another set does not linger in a new one.
        let v = with_set(Some(&timed), &n, 1, None, 4_000);
        assert_eq!((v.sets, v.permanent, v.expires_ns), (2, 2, 0));
    }
}
