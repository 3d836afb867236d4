//! A config file's text edited to say another config, touching only the
//! keys whose meaning changes: comments and layout stay (`fw allow`/`fw
//! deny` writing back, `fw save` into an existing file).
use std::{collections::BTreeSet, path::Path};

use ipnet::IpNet;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::{
    config::Config,
    error::{Error, Result},
    policy::{collapse, parse_prefix, Policy, PortRange, Proto, ECHO},
};

/// `text` (a config that loads as `from`) edited to load as `to`, touching
/// only the keys whose meaning changes; comments and layout stay. `origin`
/// names the file in errors.
pub fn edit_text(text: &str, from: &Config, to: &Config, origin: &Path) -> Result<String> {
    let parse = || {
        text.parse::<DocumentMut>().map_err(|e| Error::Config {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })
    };
    // Set files are written on their own: the text says which file, not
    // what it holds.
    let to_text = to.without_set_contents();
    let loads_as_to = |t: &str| {
        Config::from_toml(t, origin)
            .ok()
            .map(|c| c.without_set_contents())
            .as_ref()
            == Some(&to_text)
    };
    let mut doc = parse()?;
    edit_doc(&mut doc, from, to, false);
    let out = doc.to_string();
    if loads_as_to(&out) {
        return Ok(out);
    }
    // Overlapping entries the small edit could not untangle: write the
    // ports and source lists whole (everything else still as it was).
    let mut doc = parse()?;
    edit_doc(&mut doc, from, to, true);
    let out = doc.to_string();
    if loads_as_to(&out) {
        return Ok(out);
    }
    Err(Error::NotSaved(format!(
        "could not express the change in {} (a bug in fw: please report it with the file): \
         nothing was changed; make the change with --runtime",
        origin.display()
    )))
}

fn edit_doc(doc: &mut DocumentMut, from: &Config, to: &Config, whole: bool) {
    let root = doc.as_table_mut();
    if from.interfaces != to.interfaces {
        let arr: Array = to.interfaces.iter().map(|s| s.as_str()).collect();
        set_value(root, "interfaces", Value::Array(arr));
    }
    if from.dry_run != to.dry_run {
        set_value(root, "dry_run", Value::from(to.dry_run));
    }
    let ports_pos = edit_ports(root, from, to, whole);
    edit_sources(
        root,
        &to.policy,
        from.policy != to.policy || whole,
        whole,
        ports_pos,
    );
    edit_icmp(root, &from.policy, &to.policy);
    if (from.reject_with, from.reject_rate, from.reject_burst)
        != (to.reject_with, to.reject_rate, to.reject_burst)
    {
        let t = sub_table(root, "reject");
        if from.reject_with != to.reject_with {
            set_value(t, "with", Value::from(to.reject_with.name()));
        }
        if from.reject_rate != to.reject_rate {
            set_value(t, "rate", Value::from(to.reject_rate as i64));
        }
        // Without `burst` the burst is the rate.
        if t.contains_key("burst") || to.reject_burst != to.reject_rate {
            set_value(t, "burst", Value::from(to.reject_burst as i64));
        }
    }
    if from.conntrack_entries != to.conntrack_entries {
        let t = sub_table(root, "conntrack");
        set_value(t, "entries", Value::from(to.conntrack_entries as i64));
    }
    if from.conntrack_unconfirmed_entries != to.conntrack_unconfirmed_entries {
        let t = sub_table(root, "conntrack");
        // Left out while it is what `entries` gives anyway.
        let derived = fw_common::ct_unconfirmed_default(to.conntrack_entries);
        if t.contains_key("unconfirmed_entries") || to.conntrack_unconfirmed_entries != derived {
            set_value(
                t,
                "unconfirmed_entries",
                Value::from(to.conntrack_unconfirmed_entries as i64),
            );
        }
    }
    if from.source_prefixes != to.source_prefixes {
        let t = sub_table(root, "capacity");
        set_value(t, "source_prefixes", Value::from(to.source_prefixes as i64));
    }
    if from.block_prefixes != to.block_prefixes {
        let t = sub_table(root, "capacity");
        set_value(t, "block_prefixes", Value::from(to.block_prefixes as i64));
    }
    if from.block_with != to.block_with {
        let t = sub_table(root, "block");
        set_value(t, "with", Value::from(to.block_with.name()));
    }
    if from.syncookies != to.syncookies {
        let t = sub_table(root, "syncookies");
        set_value(t, "mode", Value::from(to.syncookies.name()));
    }
    if from.dhcp_client != to.dhcp_client {
        let t = sub_table(root, "dhcp");
        set_value(t, "client", Value::from(to.dhcp_client));
    }
    if from.limit_sources != to.limit_sources {
        let t = sub_table(root, "capacity");
        set_value(t, "limit_sources", Value::from(to.limit_sources as i64));
    }
    if from.without_set_contents().block_sets != to.without_set_contents().block_sets {
        edit_block_sets(root, to);
    }
    if from.limits != to.limits {
        edit_limits(root, to);
    }
}

/// Edits `[[limits]]` to say `to`'s limits: entries of limits `to` keeps
/// stay as written (comments too), the others go, new ones are appended.
fn edit_limits(root: &mut Table, to: &Config) {
    let Some(arr) = tables_of(root, "limits", to.limits.is_empty()) else {
        return;
    };
    // An entry is kept when it alone reads back as one of `to`'s limits.
    let parsed = |t: &Table| -> Option<crate::limit::Limit> {
        let text = format!("[ports]\n[[limits]]\n{t}");
        Config::from_toml(&text, Path::new("-"))
            .ok()?
            .limits
            .first()
            .copied()
    };
    arr.retain(|t| parsed(t).is_some_and(|l| to.limits.contains(&l)));
    let kept: Vec<crate::limit::Limit> = arr.iter().filter_map(parsed).collect();
    for l in to.limits.iter().filter(|l| !kept.contains(l)) {
        let text = crate::config::limit_table(l);
        let Ok(doc) = text.parse::<DocumentMut>() else {
            continue;
        };
        if let Some(t) = doc
            .get("limits")
            .and_then(Item::as_array_of_tables)
            .and_then(|a| a.get(0))
        {
            arr.push(t.clone());
        }
    }
    if arr.is_empty() {
        root.remove("limits");
    }
}

/// The array of tables under `key` (made when missing, unless `none`
/// is wanted: then what is there that is no array of tables goes).
fn tables_of<'a>(t: &'a mut dyn TableLike, key: &str, none: bool) -> Option<&'a mut ArrayOfTables> {
    if t.get(key).and_then(Item::as_array_of_tables).is_none() {
        t.remove(key);
        if none {
            return None;
        }
        t.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
    }
    t.get_mut(key).and_then(Item::as_array_of_tables_mut)
}

/// Edits `[[block.sets]]` to say `to`'s sets: an entry of a set `to` keeps
/// is edited in place (prefixes still held stay as written), the others
/// go, new sets are appended.
fn edit_block_sets(root: &mut Table, to: &Config) {
    let block = sub_table(root, "block");
    let Some(arr) = tables_of(block, "sets", to.block_sets.is_empty()) else {
        return;
    };
    arr.retain(|t| {
        t.get("name")
            .and_then(Item::as_str)
            .is_some_and(|n| to.block_set(n).is_some())
    });
    for set in &to.block_sets {
        let found = arr
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(set.name.as_str()));
        let t = match found {
            Some(t) => t,
            None => {
                let mut t = Table::new();
                t.insert("name", toml_edit::value(set.name.as_str()));
                arr.push(t);
                arr.iter_mut().last().expect("pushed above")
            }
        };
        match &set.file {
            Some(f) => {
                t.remove("prefixes");
                let f = f.to_string_lossy();
                if t.get("file").and_then(Item::as_str) != Some(&*f) {
                    set_value(t, "file", Value::from(f.as_ref()));
                }
            }
            None => {
                t.remove("file");
                if t.get("prefixes").and_then(Item::as_array).is_none() {
                    set_value(t, "prefixes", Value::Array(Array::new()));
                }
                let Some(a) = t
                    .get_mut("prefixes")
                    .and_then(Item::as_value_mut)
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                retain_formatted(a, |v| {
                    v.as_str()
                        .and_then(|s| parse_prefix(s).ok())
                        .is_some_and(|n| set.prefixes.contains(&n))
                });
                let listed: BTreeSet<IpNet> = a
                    .iter()
                    .filter_map(|v| parse_prefix(v.as_str()?).ok())
                    .collect();
                for n in set.prefixes.difference(&listed) {
                    let at = a.len();
                    insert_like(a, at, Value::from(n.to_string()));
                }
            }
        }
    }
    if arr.is_empty() {
        block.remove("sets");
    }
}

/// `[icmp]`: `echo` and `echo_from` as `to` has them, when they change.
fn edit_icmp(root: &mut Table, from: &Policy, to: &Policy) {
    let state = |p: &Policy| {
        (
            p.is_open(Proto::Icmp, ECHO),
            p.sources(Proto::Icmp, ECHO).cloned(),
        )
    };
    let (was, is) = (state(from), state(to));
    if was == is {
        return;
    }
    let t = sub_table(root, "icmp");
    set_value(t, "echo", Value::from(is.0));
    match &is.1 {
        None => {
            t.remove("echo_from");
        }
        Some(nets) => {
            if let Some(arr) = t.get_mut("echo_from").and_then(Item::as_array_mut) {
                retain_formatted(arr, |v| {
                    v.as_str()
                        .and_then(|s| parse_prefix(s).ok())
                        .is_some_and(|n| nets.contains(&n))
                });
                let have: BTreeSet<IpNet> = arr
                    .iter()
                    .filter_map(|v| parse_prefix(v.as_str()?).ok())
                    .collect();
                for n in nets.difference(&have) {
                    let at = arr.len();
                    insert_like(arr, at, Value::from(n.to_string()));
                }
            } else {
                let arr: Array = nets.iter().map(|n| n.to_string()).collect();
                set_value(t, "echo_from", Value::Array(arr));
            }
        }
    }
}

/// `root[key]` as a table, made when missing.
fn sub_table<'a>(root: &'a mut Table, key: &str) -> &'a mut dyn TableLike {
    if root.get(key).and_then(Item::as_table_like).is_none() {
        root.insert(key, Item::Table(Table::new()));
    }
    root.get_mut(key)
        .and_then(Item::as_table_like_mut)
        .expect("inserted above")
}

/// Sets `t[key]`, keeping the key and the old value's comments.
fn set_value(t: &mut dyn TableLike, key: &str, mut v: Value) {
    match t.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *v.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(v);
        }
        None => {
            t.insert(key, Item::Value(v));
        }
    }
}

/// A port (range) as the config writes it: a number, or "LO-HI".
fn port_value(r: PortRange) -> Value {
    if r.lo == r.hi {
        Value::from(r.lo as i64)
    } else {
        Value::from(r.to_string())
    }
}

fn value_range(v: &Value) -> Option<PortRange> {
    match v {
        Value::Integer(n) => {
            let n = u32::try_from(*n.value()).ok()?;
            PortRange::new(n, n, "").ok()
        }
        Value::String(s) => s.value().parse().ok(),
        _ => None,
    }
}

/// The prefix of an array element's decor without its comments (what a
/// new element next to it should start with).
fn element_prefix(v: &Value) -> String {
    let p = v
        .decor()
        .prefix()
        .and_then(|r| r.as_str())
        .unwrap_or_default();
    match p.rfind('\n') {
        Some(i) => format!("\n{}", &p[i + 1..]),
        None => p.to_string(),
    }
}

/// Inserts `v` at `idx` of `arr`, formatted like its neighbours.
fn insert_like(arr: &mut Array, idx: usize, mut v: Value) {
    let idx = idx.min(arr.len());
    if arr.is_empty() {
        arr.push(v);
        return;
    }
    if idx == 0 {
        let first = element_prefix(arr.get(0).expect("not empty"));
        let next = match arr.get(1) {
            Some(second) => element_prefix(second),
            None if first.contains('\n') => first.clone(),
            None => " ".into(),
        };
        v.decor_mut().set_prefix(first);
        if let Some(old) = arr.get_mut(0) {
            old.decor_mut().set_prefix(next);
        }
    } else {
        let like = element_prefix(arr.get(idx - 1).expect("in range"));
        let like = if idx == 1 && !like.contains('\n') {
            " ".to_string()
        } else {
            like
        };
        v.decor_mut().set_prefix(like);
    }
    v.decor_mut().set_suffix("");
    arr.insert_formatted(idx, v);
}

/// Removes the elements `keep` refuses; the next element takes a removed
/// one's place and prefix (no `[ "b"]` after removing the first).
fn retain_formatted(arr: &mut Array, keep: impl Fn(&Value) -> bool) {
    let mut i = 0;
    while i < arr.len() {
        if arr.get(i).is_some_and(&keep) {
            i += 1;
            continue;
        }
        let prefix = arr.get(i).and_then(|v| v.decor().prefix().cloned());
        arr.remove(i);
        if let (Some(p), Some(next)) = (prefix, arr.get_mut(i)) {
            next.decor_mut().set_prefix(p);
        }
    }
}

/// Edits `[ports]` so that the ports it lists, with the source entries
/// written next, load as `to`. Returns the table's position in the file.
fn edit_ports(root: &mut Table, from: &Config, to: &Config, whole: bool) -> Option<usize> {
    let pos = root
        .get("ports")
        .and_then(Item::as_table)
        .and_then(Table::position);
    if from.policy == to.policy && !whole {
        return pos;
    }
    let ports = sub_table(root, "ports");
    for proto in Proto::ALL {
        let open_to_all: BTreeSet<u16> = to
            .policy
            .ports(proto)
            .filter(|&p| to.policy.sources(proto, p).is_none())
            .collect();
        let arr = ports.get(proto.name()).and_then(Item::as_array);
        let listed: BTreeSet<u16> = arr
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(value_range)
            .flat_map(PortRange::ports)
            .collect();
        // Restricted ports may stay listed (their source entry decides);
        // closed ones go, ports open to everyone must be there.
        let want: BTreeSet<u16> = if whole {
            open_to_all
        } else {
            listed
                .iter()
                .copied()
                .filter(|&p| to.policy.is_open(proto, p))
                .chain(open_to_all)
                .collect()
        };
        if want == listed && !whole {
            continue;
        }
        if ports.get(proto.name()).and_then(Item::as_array).is_none() {
            set_value(ports, proto.name(), Value::Array(Array::new()));
        }
        let Some(arr) = ports
            .get_mut(proto.name())
            .and_then(Item::as_value_mut)
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        if whole {
            arr.clear();
        }
        edit_port_array(arr, &want);
    }
    pos
}

/// Makes `arr` list exactly `want`: elements wholly wanted stay as written,
/// others shrink to their wanted part or go, missing ports are added in
/// order.
fn edit_port_array(arr: &mut Array, want: &BTreeSet<u16>) {
    let mut i = 0;
    while i < arr.len() {
        let Some(r) = arr.get(i).and_then(value_range) else {
            i += 1;
            continue;
        };
        if r.ports().all(|p| want.contains(&p)) {
            i += 1;
            continue;
        }
        let pieces = collapse(r.ports().filter(|p| want.contains(p)));
        let decor = arr.get(i).map(|v| v.decor().clone());
        arr.remove(i);
        if pieces.is_empty() {
            // The next element takes the removed one's place and prefix.
            if let (Some(d), Some(next)) = (&decor, arr.get_mut(i)) {
                if let Some(p) = d.prefix().cloned() {
                    next.decor_mut().set_prefix(p);
                }
            }
            continue;
        }
        for (k, piece) in pieces.into_iter().enumerate() {
            let mut v = port_value(piece);
            if k == 0 {
                if let Some(d) = &decor {
                    *v.decor_mut() = d.clone();
                }
                arr.insert_formatted(i, v);
            } else {
                insert_like(arr, i, v);
            }
            i += 1;
        }
    }
    let covered: BTreeSet<u16> = arr
        .iter()
        .filter_map(value_range)
        .flat_map(PortRange::ports)
        .collect();
    for r in collapse(want.difference(&covered).copied()) {
        let idx = arr
            .iter()
            .position(|v| value_range(v).is_some_and(|e| e.lo > r.lo))
            .unwrap_or(arr.len());
        insert_like(arr, idx, port_value(r));
    }
}

/// A `[[sources]]` entry as the file has it.
fn entry_rule(t: &dyn TableLike) -> Option<(Proto, PortRange, BTreeSet<IpNet>)> {
    let proto: Proto = t.get("proto")?.as_str()?.parse().ok()?;
    let range = value_range(t.get("port")?.as_value()?)?;
    let nets = t
        .get("from")?
        .as_array()?
        .iter()
        .filter_map(|v| parse_prefix(v.as_str()?).ok())
        .collect();
    Some((proto, range, nets))
}

fn source_table(proto: Proto, range: PortRange, nets: &BTreeSet<IpNet>) -> Table {
    let mut t = Table::new();
    t.insert("proto", toml_edit::value(proto.name()));
    t.insert("port", Item::Value(port_value(range)));
    let from: Array = nets.iter().map(|n| n.to_string()).collect();
    t.insert("from", Item::Value(Value::Array(from)));
    t
}

/// Edits the `[[sources]]` entries to say what `to` restricts: entries that
/// already say it stay, entries for the same ports get their `from` list
/// edited, others go, and missing ones are added after the last.
fn edit_sources(
    root: &mut Table,
    to: &Policy,
    changed: bool,
    whole: bool,
    ports_pos: Option<usize>,
) {
    if !changed {
        return;
    }
    let mut groups: Vec<(Proto, PortRange, BTreeSet<IpNet>, bool)> = Vec::new();
    for proto in Proto::ALL {
        for (r, src) in to.ranges(proto) {
            if let Some(nets) = src {
                groups.push((proto, r, nets.clone(), false));
            }
        }
    }
    if whole || root.get("sources").is_some_and(|i| !i.is_array_of_tables()) {
        // Written whole, or an inline array of tables: rewritten as
        // [[sources]] entries.
        root.remove("sources");
    }
    if root.get("sources").is_none() {
        if groups.is_empty() {
            return;
        }
        root.insert("sources", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let Some(aot) = root
        .get_mut("sources")
        .and_then(Item::as_array_of_tables_mut)
    else {
        return;
    };
    let mut keep = vec![false; aot.len()];
    // Entries that say exactly what is wanted.
    for (i, t) in aot.iter().enumerate() {
        if let Some(rule) = entry_rule(t) {
            if let Some(g) = groups
                .iter_mut()
                .find(|g| !g.3 && (g.0, g.1, &g.2) == (rule.0, rule.1, &rule.2))
            {
                g.3 = true;
                keep[i] = true;
            }
        }
    }
    // Entries for the same ports with another source list: edit `from`.
    for (i, t) in aot.iter_mut().enumerate() {
        if keep[i] {
            continue;
        }
        let Some((proto, range, _)) = entry_rule(t) else {
            continue;
        };
        let Some(g) = groups
            .iter_mut()
            .find(|g| !g.3 && (g.0, g.1) == (proto, range))
        else {
            continue;
        };
        g.3 = true;
        keep[i] = true;
        if let Some(arr) = t.get_mut("from").and_then(Item::as_array_mut) {
            retain_formatted(arr, |v| {
                v.as_str()
                    .and_then(|s| parse_prefix(s).ok())
                    .is_some_and(|n| g.2.contains(&n))
            });
            let have: BTreeSet<IpNet> = arr
                .iter()
                .filter_map(|v| parse_prefix(v.as_str()?).ok())
                .collect();
            for n in g.2.difference(&have) {
                let at = arr.len();
                insert_like(arr, at, Value::from(n.to_string()));
            }
        }
    }
    let mut i = 0;
    aot.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    let first_new = aot.is_empty();
    for (k, (proto, r, nets, _)) in groups.iter().filter(|g| !g.3).enumerate() {
        let mut t = source_table(*proto, *r, nets);
        if k == 0 && first_new {
            // Right after [ports] rather than at the end of the file.
            if let Some(p) = ports_pos {
                t.set_position(p);
            }
        }
        aot.push(t);
    }
    if aot.is_empty() {
        root.remove("sources");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_toml(text, Path::new("t.toml")).unwrap()
    }

    fn edited(text: &str, change: impl Fn(&mut Policy)) -> String {
        let from = cfg(text);
        let mut to = from.clone();
        change(&mut to.policy);
        let out = edit_text(text, &from, &to, Path::new("t.toml")).unwrap();
        assert_eq!(cfg(&out), to, "{out}");
        out
    }

    fn r(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    #[test]
    fn removing_a_source_keeps_the_list_tidy() {
        let text = "[ports]\n[[sources]]\nproto = \"tcp\"\nport = 22\nfrom = [\"192.0.2.0/24\", \"198.51.100.0/24\", \"2001:db8::/32\"]  # admins\n";
        for (gone, want) in [
            (
                "192.0.2.0/24",
                "from = [\"198.51.100.0/24\", \"2001:db8::/32\"]  # admins\n",
            ),
            (
                "198.51.100.0/24",
                "from = [\"192.0.2.0/24\", \"2001:db8::/32\"]  # admins\n",
            ),
            (
                "2001:db8::/32",
                "from = [\"192.0.2.0/24\", \"198.51.100.0/24\"]  # admins\n",
            ),
        ] {
            let out = edited(text, |p| {
                p.remove_sources(Proto::Tcp, r("22"), &[parse_prefix(gone).unwrap()])
                    .unwrap();
            });
            assert!(out.ends_with(want), "{gone}: {out}");
        }
    }

    #[test]
    fn allow_adds_to_the_array_keeping_comments() {
        let text = "# top\n[ports]\ntcp = [22, 80]   # web\nudp = [80]\n";
        let out = edited(text, |p| {
            p.allow(Proto::Tcp, r("8080"), &[]);
        });
        assert_eq!(
            out,
            "# top\n[ports]\ntcp = [22, 80, 8080]   # web\nudp = [80]\n"
        );
        let out = edited(text, |p| {
            p.allow(Proto::Tcp, r("21"), &[]);
        });
        assert_eq!(
            out,
            "# top\n[ports]\ntcp = [21, 22, 80]   # web\nudp = [80]\n"
        );
    }

    #[test]
    fn deny_shrinks_ranges_and_removes_ports() {
        let text = "[ports]\ntcp = [\n  22,  # ssh\n  \"8000-8010\",\n  80,\n]\nudp = []\n";
        let out = edited(text, |p| {
            p.deny(Proto::Tcp, r("8005"));
            p.deny(Proto::Tcp, r("80"));
        });
        assert_eq!(
            out,
            "[ports]\ntcp = [\n  22,  # ssh\n  \"8000-8004\",\n  \"8006-8010\",\n]\nudp = []\n"
        );
    }

    #[test]
    fn sources_are_added_edited_and_removed() {
        let text = "[ports]\ntcp = [22]\n\n# office\n[[sources]]\nproto = \"tcp\"\nport = 443\nfrom = [\"198.51.100.0/24\"]\n\n[reject]\nrate = 5\n";
        let v6 = parse_prefix("2001:db8::/32").unwrap();
        let out = edited(text, |p| {
            p.allow(Proto::Tcp, r("443"), &[v6]);
        });
        assert_eq!(
            out,
            "[ports]\ntcp = [22]\n\n# office\n[[sources]]\nproto = \"tcp\"\nport = 443\nfrom = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n\n[reject]\nrate = 5\n"
        );
        let out = edited(text, |p| {
            p.allow(Proto::Udp, r("53"), &[v6]);
        });
        assert!(
            out.contains("[[sources]]\nproto = \"udp\"\nport = 53\nfrom = [\"2001:db8::/32\"]\n"),
            "{out}"
        );
        let out = edited(text, |p| {
            p.deny(Proto::Tcp, r("443"));
        });
        assert_eq!(out, "[ports]\ntcp = [22]\n\n[reject]\nrate = 5\n");
    }

    #[test]
    fn closing_a_protocols_last_port_loads_back() {
        let text = "[ports]\ntcp = [22, 80]\nudp = [80]\n";
        let out = edited(text, |p| {
            p.deny(Proto::Udp, r("80"));
        });
        assert_eq!(out, "[ports]\ntcp = [22, 80]\nudp = []\n");
        let out = edited(&out, |p| {
            p.deny(Proto::Tcp, r("22"));
            p.deny(Proto::Tcp, r("80"));
        });
        assert_eq!(out, "[ports]\ntcp = []\nudp = []\n");
    }

    #[test]
    fn icmp_echo_is_added_narrowed_and_closed() {
        let text = "[ports]\ntcp = [22]  # ssh\n";
        let a = parse_prefix("198.51.100.0/24").unwrap();
        let b = parse_prefix("2001:db8::/32").unwrap();
        let echo = PortRange::single(ECHO);
        let open = edited(text, |p| {
            p.allow(Proto::Icmp, echo, &[]);
        });
        assert_eq!(open, "[ports]\ntcp = [22]  # ssh\n\n[icmp]\necho = true\n");
        let from = edited(text, |p| {
            p.allow(Proto::Icmp, echo, &[a, b]);
        });
        assert!(
            from.ends_with(
                "[icmp]\necho = true\necho_from = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n"
            ),
            "{from}"
        );
        let narrowed = edited(&from, |p| {
            p.remove_sources(Proto::Icmp, echo, &[a]).unwrap();
        });
        assert!(
            narrowed.ends_with("[icmp]\necho = true\necho_from = [\"2001:db8::/32\"]\n"),
            "{narrowed}"
        );
        let closed = edited(&narrowed, |p| {
            p.deny(Proto::Icmp, echo);
        });
        assert!(closed.ends_with("[icmp]\necho = false\n"), "{closed}");
    }

    #[test]
    fn save_edit_covers_every_key() {
        let text = "[ports]\ntcp = [22]\n";
        let from = cfg(text);
        let to = cfg("interfaces = [\"veth0\"]\ndry_run = true\n[dhcp]\nclient = false\n[ports]\ntcp = [\"1-3\"]\nudp = [53]\n[[sources]]\nproto = \"udp\"\nport = 5\nfrom = [\"192.0.2.0/24\"]\n[reject]\nwith = \"drop\"\nrate = 7\nburst = 9\n[conntrack]\nentries = 4096\n");
        let out = edit_text(text, &from, &to, Path::new("t.toml")).unwrap();
        assert_eq!(cfg(&out), to, "{out}");
    }

    #[test]
    fn limits_are_added_kept_with_comments_and_removed() {
        let text = "[ports]\ntcp = [22, 80]\n\n# ssh brute force\n[[limits]]\nproto = \"tcp\"\nport = 22\nrate = \"6/30s\" # like ufw\n";
        let from = cfg(text);
        let mut to = from.clone();
        let l80 = crate::limit::Limit::new(
            Proto::Tcp,
            PortRange::single(80),
            "100/1m".parse().unwrap(),
            24,
            64,
        )
        .unwrap();
        to.limit_set(l80).unwrap();
        let out = edit_text(text, &from, &to, Path::new("t.toml")).unwrap();
        assert_eq!(cfg(&out), to, "{out}");
        assert!(
            out.contains("# ssh brute force") && out.contains("# like ufw"),
            "{out}"
        );
        let mut none = to.clone();
        assert!(none.limit_remove(Proto::Tcp, PortRange::single(22)));
        let out2 = edit_text(&out, &to, &none, Path::new("t.toml")).unwrap();
        assert_eq!(cfg(&out2), none, "{out2}");
        assert!(!out2.contains("6/30s"), "{out2}");
        let mut empty = none.clone();
        assert!(empty.limit_remove(Proto::Tcp, PortRange::single(80)));
        let out3 = edit_text(&out2, &none, &empty, Path::new("t.toml")).unwrap();
        assert!(!out3.contains("limits"), "{out3}");
        assert_eq!(cfg(&out3), empty);
    }
}
