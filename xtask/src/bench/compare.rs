//! `--compare FILE`: a saved `--json` run next to this one, figure by
//! figure (old median, new median, change), so a change's effect is one
//! command. Every top-level object whose name ends in a unit (`_mpps`,
//! `_gbps`, `_ns`, `_ms`) holds figures: a number (runs saved before the
//! spread was recorded) or `{"min", "median", "max"}`.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// One figure of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub median: f64,
    /// (min, max), when the run recorded them.
    pub range: Option<(f64, f64)>,
}

/// Units by section suffix, and whether more is better.
const UNITS: [(&str, bool); 4] = [
    ("_mpps", true),
    ("_gbps", true),
    ("_ns", false),
    ("_ms", false),
];

fn higher_is_better(section: &str) -> Option<bool> {
    UNITS
        .iter()
        .find(|(suffix, _)| section.ends_with(suffix))
        .map(|&(_, up)| up)
}

/// Reads a saved `--json` run; the error names the file.
pub fn load(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--compare {}: cannot read it", path.display()))?;
    parse(&text).with_context(|| format!("--compare {}", path.display()))
}

/// Parses a saved run: a JSON object with at least one figure.
pub fn parse(text: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(text)
        .context("not JSON (expected the output of `cargo xtask bench --json`)")?;
    if !v.is_object() {
        bail!("not a JSON object (expected the output of `cargo xtask bench --json`)");
    }
    if figures(&v).is_empty() {
        bail!("no figures in it (no live_mpps, test_run_ns, ... objects of numbers)");
    }
    Ok(v)
}

/// Every figure of a run, by `section.key`.
pub fn figures(run: &Value) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let Some(obj) = run.as_object() else {
        return out;
    };
    for (section, figs) in obj {
        let (Some(_), Some(figs)) = (higher_is_better(section), figs.as_object()) else {
            continue;
        };
        for (key, v) in figs {
            let fig = match v {
                Value::Number(n) => n.as_f64().map(|m| Figure {
                    median: m,
                    range: None,
                }),
                Value::Object(o) => o.get("median").and_then(Value::as_f64).map(|m| Figure {
                    median: m,
                    range: o
                        .get("min")
                        .and_then(Value::as_f64)
                        .zip(o.get("max").and_then(Value::as_f64)),
                }),
                _ => None,
            };
            if let Some(f) = fig {
                out.insert(format!("{section}.{key}"), f);
            }
        }
    }
    out
}

/// One line of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    /// `(new - old) / old` in percent.
    pub change_pct: Option<f64>,
    /// "better", "worse", "~" (the new median within the old run's range,
    /// or the new run's range around the old median: noise) or "" (unknown).
    pub verdict: &'static str,
}

pub fn rows(old: &Value, new: &Value) -> Vec<Row> {
    let (o, n) = (figures(old), figures(new));
    let mut names: Vec<&String> = o.keys().chain(n.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let (of, nf) = (o.get(name), n.get(name));
            let change_pct = of
                .zip(nf)
                .filter(|(a, _)| a.median != 0.0)
                .map(|(a, b)| (b.median - a.median) / a.median * 100.0);
            let section = name.split('.').next().unwrap_or("");
            let verdict = match (of, nf, higher_is_better(section)) {
                (Some(a), Some(b), Some(up)) => {
                    let within = |r: Option<(f64, f64)>, x: f64| {
                        r.is_some_and(|(lo, hi)| lo <= x && x <= hi)
                    };
                    if a.median == b.median
                        || within(a.range, b.median)
                        || within(b.range, a.median)
                    {
                        "~"
                    } else if (b.median > a.median) == up {
                        "better"
                    } else {
                        "worse"
                    }
                }
                _ => "",
            };
            Row {
                name: name.clone(),
                old: of.map(|f| f.median),
                new: nf.map(|f| f.median),
                change_pct,
                verdict,
            }
        })
        .collect()
}

fn machine_line(run: &Value) -> String {
    let m = &run["machine"];
    match (m["cpu_model"].as_str(), m["kernel"].as_str()) {
        (Some(cpu), Some(kernel)) => format!("{cpu}, {} CPUs, kernel {kernel}", m["cpus"]),
        _ => "machine not recorded".into(),
    }
}

/// The comparison as a table. Figures of sections this run did not
/// measure at all (`--only`) are counted, not listed.
pub fn table(file: &Path, old: &Value, new: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nCompared with {} ({}); this run: {}",
        file.display(),
        machine_line(old),
        machine_line(new)
    );
    if old["machine"]["vulnerabilities"] != new["machine"]["vulnerabilities"] {
        let _ = writeln!(
            s,
            "  (the CPU vulnerabilities' mitigations differ: ratios are comparable, absolute figures less)"
        );
    }
    let _ = writeln!(
        s,
        "{:<44} {:>10} {:>10} {:>9}  medians",
        "figure", "old", "new", "change"
    );
    let new_sections: std::collections::BTreeSet<String> = figures(new)
        .keys()
        .filter_map(|k| k.split('.').next())
        .map(str::to_owned)
        .collect();
    let mut skipped = 0;
    let num = |x: Option<f64>, missing: &str| x.map_or(missing.to_string(), |v| format!("{v:.2}"));
    for r in rows(old, new) {
        let section = r.name.split('.').next().unwrap_or("");
        if r.new.is_none() && !new_sections.contains(section) {
            skipped += 1;
            continue;
        }
        let _ = writeln!(
            s,
            "{:<44} {:>10} {:>10} {:>9}  {}",
            r.name,
            num(r.old, "not in file"),
            num(r.new, "not run"),
            r.change_pct.map_or("-".into(), |c| format!("{c:+.1}%")),
            r.verdict
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            s,
            "  ({skipped} figures of the file are in parts this run left out)"
        );
    }
    s
}

/// The comparison for `--json`: `{figure: {old, new, change_pct, verdict}}`.
pub fn json(file: &Path, old: &Value, new: &Value) -> Value {
    let figs: serde_json::Map<String, Value> = rows(old, new)
        .into_iter()
        .map(|r| {
            (
                r.name,
                json!({ "old": r.old, "new": r.new, "change_pct": r.change_pct, "verdict": r.verdict }),
            )
        })
        .collect();
    json!({ "file": file.display().to_string(), "figures": figs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_and_new_formats_and_rejects_others() {
        let old =
            parse(r#"{"live_mpps": {"fw": 4.0, "gone": 1.0}, "test_run_ns": {"empty": 28.5}}"#)
                .expect("a run without spreads");
        let f = figures(&old);
        assert_eq!(f["live_mpps.fw"].median, 4.0);
        assert_eq!(f["live_mpps.fw"].range, None);
        assert_eq!(f.len(), 3);
        let new = parse(
            r#"{"machine": {"cpu_model": "X"}, "live_mpps": {"fw": {"min": 4.2, "median": 4.4, "max": 4.5}},
                "test_run_ns": {"empty": {"min": 28.0, "median": 28.6, "max": 29.0}},
                "up_ms": {"wall": {"min": 200, "median": 210, "max": 260}}}"#,
        )
        .expect("a run with spreads");
        assert_eq!(figures(&new)["live_mpps.fw"].range, Some((4.2, 4.5)));
        assert!(parse("not json").is_err());
        assert!(parse("[1, 2]").is_err());
        let err = parse(r#"{"something": {"a": 1}}"#).unwrap_err();
        assert!(format!("{err:#}").contains("no figures"), "{err:#}");
        let missing = load(Path::new("/nonexistent/bench.json")).unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/bench.json"));

        let rows = rows(&old, &new);
        let by = |n: &str| rows.iter().find(|r| r.name == n).expect(n).clone();
        let fw = by("live_mpps.fw");
        assert_eq!((fw.old, fw.new), (Some(4.0), Some(4.4)));
        assert!((fw.change_pct.expect("both") - 10.0).abs() < 1e-9);
        assert_eq!(fw.verdict, "better");
        // 28.5 lies within the new run's 28.0-29.0: noise.
        assert_eq!(by("test_run_ns.empty").verdict, "~");
        assert_eq!(by("live_mpps.gone").new, None);
        assert_eq!(by("up_ms.wall").old, None);
        let t = table(Path::new("old.json"), &old, &new);
        assert!(t.contains("not run"), "{t}");
        assert!(t.contains("not in file"), "{t}");
        assert!(t.contains("+10.0%"), "{t}");
        let j = json(Path::new("old.json"), &old, &new);
        assert_eq!(j["figures"]["live_mpps.fw"]["new"], 4.4);
    }

    #[test]
    fn left_out_parts_are_counted_not_listed() {
        let old =
            parse(r#"{"live_mpps": {"a": 1.0, "b": 2.0}, "bulk_gbps": {"fw": 10.0}}"#).unwrap();
        let new =
            parse(r#"{"bulk_gbps": {"fw": {"min": 8.0, "median": 9.0, "max": 9.5}}}"#).unwrap();
        let t = table(Path::new("f"), &old, &new);
        assert!(
            t.contains("2 figures of the file are in parts this run left out"),
            "{t}"
        );
        assert!(!t.contains("live_mpps.a"), "{t}");
        assert!(
            t.contains("bulk_gbps.fw") && t.contains("-10.0%") && t.contains("worse"),
            "{t}"
        );
    }
}
