//! The layer check of fw-user's library: a module may name only its own
//! layer or one below it (model <- kernel <- ops, watch; ops and watch not
//! each other; main.rs, the CLI, above them all). Run by `cargo test -p
//! xtask` (and so by `cargo xtask test`): it fails on the first `crate::`
//! path that points up.
use std::{fs, io, path::Path};

/// fw-user's layers, each a folder of `src`, with its rank: a module may
/// use a layer of a lower rank, or its own.
const LAYERS: [(&str, u8); 4] = [("model", 0), ("kernel", 1), ("ops", 2), ("watch", 2)];

fn rank(layer: &str) -> Option<u8> {
    LAYERS.iter().find(|(l, _)| *l == layer).map(|&(_, r)| r)
}

/// Whether code of layer `from` may use layer `to`.
fn allowed(from: &str, to: &str) -> bool {
    match (rank(from), rank(to)) {
        (Some(f), Some(t)) => from == to || t < f,
        // error.rs, lib.rs and the like: shared by every layer.
        _ => true,
    }
}

/// The first path segments of every `crate::` path in `src`, with the line
/// each stands on: `crate::kernel::maps` gives `kernel`, `use crate::{ops::x,
/// watch::y}` gives `ops` and `watch`.
fn crate_paths(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut at = 0;
    while let Some(i) = src[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        // `$crate::`, `fw_crate::`: not this crate's path.
        if start > 0
            && (b[start - 1].is_ascii_alphanumeric()
                || b[start - 1] == b'_'
                || b[start - 1] == b'$')
        {
            continue;
        }
        let line = src[..start].matches('\n').count() + 1;
        if b.get(at) == Some(&b'{') {
            // Top-level heads of the group.
            let mut depth = 0;
            let mut head = true;
            let mut word = String::new();
            for (j, &c) in b[at..].iter().enumerate() {
                match c {
                    b'{' => {
                        depth += 1;
                        if depth > 1 {
                            head = false;
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            if !word.is_empty() {
                                out.push((
                                    line + src[at..at + j].matches('\n').count(),
                                    word.clone(),
                                ));
                            }
                            break;
                        }
                    }
                    b',' if depth == 1 => head = true,
                    c if depth == 1 && head && (c.is_ascii_alphanumeric() || c == b'_') => {
                        word.push(c as char)
                    }
                    _ if depth == 1 && head && !word.is_empty() => {
                        out.push((
                            line + src[at..at + j].matches('\n').count(),
                            std::mem::take(&mut word),
                        ));
                        head = false;
                    }
                    _ => {}
                }
            }
        } else {
            let word: String = src[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((line, word));
        }
    }
    out
}

/// Every use of a higher (or sibling) layer under `src`, as
/// `file:line: layer uses other`.
pub fn violations(src: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for (layer, _) in LAYERS {
        let dir = src.join(layer);
        let mut files = Vec::new();
        walk(&dir, &mut files)?;
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f)?;
            for (line, to) in crate_paths(&text) {
                if !allowed(layer, &to) {
                    out.push(format!("{}:{line}: {layer} uses {to}", f.display()));
                }
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, files)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fw_user_layers_point_only_down() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fw-user/src");
        let found = violations(&src).expect("reading fw-user/src");
        assert!(
            found.is_empty(),
            "modules using a layer above their own (model <- kernel <- ops, watch):\n{}",
            found.join("\n")
        );
        // The check saw the tree: every layer has files and paths to judge.
        for (layer, _) in LAYERS {
            assert!(src.join(layer).is_dir(), "fw-user/src/{layer} is missing");
        }
    }

    #[test]
    fn upward_paths_are_found() {
        let src = "use crate::{\n    kernel::maps::FwMaps,\n    model::config,\n};\n\
                   fn f() { crate::watch::status::show(); }\n\
                   use crate::{error::Error, ops::{lock, up_down}};\n";
        let heads: Vec<(usize, String)> = crate_paths(src);
        let names: Vec<&str> = heads.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(names, ["kernel", "model", "watch", "error", "ops"]);
        assert_eq!(heads[2].0, 5, "line of crate::watch");
        assert!(!allowed("model", "kernel"));
        assert!(!allowed("kernel", "ops"));
        assert!(!allowed("ops", "watch"));
        assert!(!allowed("watch", "ops"));
        assert!(allowed("watch", "kernel"));
        assert!(allowed("ops", "model"));
        assert!(allowed("kernel", "error"));
    }
}
