//! The config file is the policy's home: fw records which file it runs
//! (`fw up --config`, `fw apply`) in its pinned state, writes runtime
//! changes (`fw allow`/`fw deny`) back into it with its comments and layout
//! kept, tells when the running policy and the file part, and prints or
//! writes the running policy as a config (`fw save`).
//!
//! Rules, all documented in the README:
//! - A change is written into the file unless `--runtime` is given. The
//!   file is prepared (written to a temporary file beside it and synced)
//!   before the maps change; if that fails, nothing changes.
//! - The file gets the same change as the running policy, nothing more:
//!   what `--runtime` changed stays out of it.
//! - If the file was edited since fw loaded or wrote it, and the edit
//!   changed what it configures (not only comments or layout), fw refuses
//!   to write into it (and to make the change), saying how to go on.
use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use fw_common::CONFIG_PATH_MAX;

use crate::{
    error::{Error, Result},
    kernel::{
        maps::FwMaps,
        pins::PinDir,
        running::{self, recorded, set_recorded},
        sys::require_root,
    },
    model::{
        config::Config,
        edit::edit_text,
        names::name_from_bytes,
        policy::Policy,
        record::{fnv1a, Record, Source},
    },
};

/// First line of what `fw save` writes.
pub const SAVE_HEADER: &str =
    "# fw's running policy, as written by `fw save`; `fw apply FILE` or `fw up --config FILE` loads it.\n";

/// Whether a policy change also goes into the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Save {
    /// Write it into the file fw runs (the default).
    #[default]
    WriteBack,
    /// Change the running policy only (`--runtime`).
    Runtime,
}

/// What became of a change, file-wise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written into the file.
    Written(PathBuf),
    /// The file already said so: left as it was.
    InFile(PathBuf),
    /// fw runs no file: the change lasts until fw is unloaded.
    NoFile,
    /// `--runtime`: not written into the file fw runs (if any).
    Runtime(Option<PathBuf>),
}

impl Saved {
    /// For stdout: where the change went.
    pub fn line(&self) -> Option<String> {
        match self {
            Saved::Written(p) => Some(format!("written to {}", p.display())),
            _ => None,
        }
    }

    /// For stderr: why the change will not outlive a reload or reboot.
    pub fn warning(&self) -> Option<String> {
        match self {
            Saved::Written(_) | Saved::InFile(_) => None,
            Saved::NoFile => Some(
                "note: fw was started without a config file, so this change is not saved: it \
                 lasts until fw is unloaded (`fw down`, a reboot). Keep it with \
                 `fw save /etc/fw/fw.toml` (the file contrib/fw.service loads); later changes \
                 are then written there too"
                    .into(),
            ),
            Saved::Runtime(Some(p)) => Some(format!(
                "note: --runtime: not written to {p}, so `fw apply {p}`, `systemctl reload fw` \
                 or a reboot undoes it (repeat it without --runtime, or `fw save {p}`, to keep it)",
                p = p.display()
            )),
            Saved::Runtime(None) => Some(
                "note: --runtime: not saved; it lasts until fw is unloaded (`fw down`, a reboot)"
                    .into(),
            ),
        }
    }
}

/// A write-back prepared before the maps change.
#[derive(Debug)]
pub struct Pending {
    save: Save,
    target: Option<(Record, Option<(Staged, Record)>)>,
    /// Set files the change edits (block sets the config keeps in a file).
    set_files: Vec<Staged>,
}

/// Prepares writing `change` into the file fw runs: reads the file, checks
/// that nobody changed its policy since fw loaded or wrote it, applies the
/// change to what the file configures, and stages the edited text beside it
/// (synced, not yet renamed over it). Errors change nothing.
pub fn stage(maps: &FwMaps, save: Save, change: impl Fn(&mut Policy)) -> Result<Pending> {
    stage_config(maps, save, |c, _| change(&mut c.policy))
}

/// [`stage`] for a change of the whole config (`change` gets the config
/// and the file's path): the block sets too, whose set files are staged
/// alongside the config.
pub fn stage_config(
    maps: &FwMaps,
    save: Save,
    change: impl Fn(&mut Config, &Path),
) -> Result<Pending> {
    let rec = recorded(maps)?;
    let (Save::WriteBack, Some(rec)) = (save, rec.clone()) else {
        return Ok(Pending {
            save,
            target: rec.map(|r| (r, None)),
            set_files: Vec::new(),
        });
    };
    let file = current(&rec)?;
    let mut want = file.config.clone();
    change(&mut want, &rec.path);
    if want == file.config {
        let fresh = Record::of(rec.path.clone(), &file.text, &file.config);
        return Ok(Pending {
            save,
            target: Some((fresh, None)),
            set_files: Vec::new(),
        });
    }
    let set_files = stage_set_files(&file.config, &want, &rec.path)?;
    if want.without_set_contents() == file.config.without_set_contents() {
        let fresh = Record::of(rec.path.clone(), &file.text, &file.config);
        return Ok(Pending {
            save,
            target: Some((fresh, None)),
            set_files,
        });
    }
    let text = edit_text(&file.text, &file.config, &want, &rec.path)?;
    let staged = Staged::new(&rec.path, &text).map_err(|e| not_written(&rec.path, e))?;
    let new = Record::of(rec.path.clone(), &text, &want);
    Ok(Pending {
        save,
        target: Some((rec, Some((staged, new)))),
        set_files,
    })
}

/// The set files of `want`'s file-backed sets whose prefixes differ from
/// what the file (of `from`, the config at `config`) holds, edited and
/// staged. A set now naming another file reads that file: nothing to write.
fn stage_set_files(from: &Config, want: &Config, config: &Path) -> Result<Vec<Staged>> {
    let mut out = Vec::new();
    for set in &want.block_sets {
        let Some(path) = set.file_path(config) else {
            continue;
        };
        let had = from.block_set(&set.name);
        let same_file = had.and_then(|h| h.file_path(config)).as_ref() == Some(&path);
        if !same_file || had.map(|h| &h.prefixes) == Some(&set.prefixes) {
            continue;
        }
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(not_written(&path, e)),
        };
        let text = crate::model::blocklist::edit_set_file(&text, &set.prefixes);
        out.push(Staged::new(&path, &text).map_err(|e| not_written(&path, e))?);
    }
    Ok(out)
}

impl Pending {
    /// Puts the staged files in place (set files first) and records the
    /// config. On an error the caller undoes its map change.
    pub fn commit(self, maps: &FwMaps) -> Result<Saved> {
        let mut set_written = None;
        if self.save == Save::WriteBack {
            for s in self.set_files {
                let p = s.target.clone();
                s.commit().map_err(|e| not_written(&p, e))?;
                set_written = Some(p);
            }
        }
        match (self.save, self.target) {
            (Save::Runtime, t) => Ok(Saved::Runtime(t.map(|(r, _)| r.path))),
            (Save::WriteBack, None) => Ok(Saved::NoFile),
            (Save::WriteBack, Some((rec, None))) => {
                // A comment-only edit since: the file's new text is what fw knows now.
                set_recorded(maps, Some(&rec))?;
                Ok(match set_written {
                    Some(p) => Saved::Written(p),
                    None => Saved::InFile(rec.path),
                })
            }
            (Save::WriteBack, Some((rec, Some((staged, new))))) => {
                staged.commit().map_err(|e| not_written(&rec.path, e))?;
                set_recorded(maps, Some(&new))?;
                Ok(Saved::Written(new.path))
            }
        }
    }
}

fn not_written(path: &Path, e: io::Error) -> Error {
    Error::not_saved(format!(
        "cannot write the change into {p} ({e}): nothing was changed. Make {p} and its \
         directory writable, or make the change with --runtime (then it is not saved)",
        p = path.display()
    ))
}

/// The recorded file as it is on disk, refused when it cannot take a
/// write-back: gone, broken, or its policy edited since fw read it.
fn current(rec: &Record) -> Result<Source> {
    let p = rec.path.display();
    let file = match Source::read(&rec.path) {
        Ok(f) => f,
        Err(fw_policy::Error::Io { source, .. }) => {
            return Err(Error::not_saved(format!(
                "cannot read {p}, the config file fw runs ({source}): nothing was changed. \
                 `fw save {p}` writes the running policy there; or make the change with \
                 --runtime (then it is not saved)"
            )))
        }
        Err(e) => {
            return Err(Error::not_saved(format!(
                "{e}\n{p} is the config file fw runs and it no longer loads: nothing was \
                 changed. Fix it, or make the change with --runtime (then it is not saved)"
            )))
        }
    };
    let same_text = fnv1a(file.text.as_bytes()) == rec.content_hash;
    if !same_text && fnv1a(file.config.to_toml().as_bytes()) != rec.config_hash {
        return Err(Error::not_saved(format!(
            "{p} was edited since fw loaded it, and what it configures changed: not writing \
             into it over your edit, nothing was changed. Load it with `fw apply {p}` (then \
             repeat this change), overwrite it with the running policy with `fw save {p}`, or \
             make the change with --runtime (then it is not saved)"
        )));
    }
    Ok(file)
}

/// What `fw down` should say before unloading: the running policy is lost
/// unless a file says the same.
pub fn unload_warning(maps: &FwMaps) -> Result<Option<String>> {
    let st = running::file_state(maps)?;
    Ok(match &st.file {
        None if !st.differences.is_empty() => Some(format!(
            "warning: fw was started without a config file and its running policy differs from \
             the seed policy ({}): unloading loses it (`fw save FILE` before `fw down` keeps it)",
            st.differences.join("; ")
        )),
        Some(p) if st.error.is_some() || !st.in_sync => Some(format!(
            "warning: the running policy differs from {p}, which the next `fw up --config {p}` \
             loads ({}): unloading loses the difference (`fw save {p}` before `fw down` keeps it)",
            st.error
                .clone()
                .unwrap_or_else(|| st.differences.join("; "))
        )),
        _ => None,
    })
}

/// [`unload_warning`] for `fw down IFACE...`: only when that unloads fw
/// (no interface left), and silent when fw is not loaded or unreadable
/// (`fw down` itself then says what is wrong).
pub fn unload_warning_for(pins: &PinDir, ifaces: &[String]) -> Option<String> {
    let maps = FwMaps::open(pins).ok()?;
    let meta = maps.meta().ok()?;
    let unloads = meta
        .ifaces
        .iter()
        .filter(|m| m.slot != 0)
        .all(|m| ifaces.is_empty() || ifaces.contains(&name_from_bytes(&m.name)));
    if !unloads {
        return None;
    }
    unload_warning(&maps).ok().flatten()
}

/// `fw save FILE`: [`save`] under fw's lock.
pub fn save_to(pins: &PinDir, path: &Path) -> Result<SaveReport> {
    require_root("fw save")?;
    let _lock = crate::ops::lock::take()?;
    save(&FwMaps::open(pins)?, path)
}

/// The running config as a file `fw apply`/`fw up --config` loads back.
pub fn saved_text(maps: &FwMaps) -> Result<String> {
    Ok(format!("{SAVE_HEADER}{}", running::config(maps)?.to_toml()))
}

/// Prefixes a set may have in the config's own text when `fw save` writes
/// it; a bigger set goes into a set file `NAME.set` beside the config.
pub const INLINE_SET_MAX: usize = 1000;

/// What `fw save FILE` did.
#[derive(Debug)]
pub struct SaveReport {
    pub path: PathBuf,
    /// The file was there and was edited in place (comments kept).
    pub edited: bool,
    /// The file already said what runs: not rewritten.
    pub unchanged: bool,
    /// fw now writes later changes into this file.
    pub recorded: bool,
}

/// Writes the running config into `path`, atomically: into an existing fw
/// config by editing only what differs (comments and layout kept), else as
/// a new file. Refuses to overwrite a file that is not an fw config. The
/// caller holds [`crate::ops::lock`].
pub fn save(maps: &FwMaps, path: &Path) -> Result<SaveReport> {
    let mut running = running::config(maps)?;
    // A big set goes into a set file beside the config, not into its text.
    for set in &mut running.block_sets {
        if set.file.is_none() && set.prefixes.len() > INLINE_SET_MAX {
            set.file = Some(PathBuf::from(format!("{}.set", set.name)));
        }
    }
    // Through a symlink to the file it names (the rename would replace the link).
    let given = path;
    let real = fs::canonicalize(path).ok();
    let path = real.as_deref().unwrap_or(given);
    let existing = match fs::symlink_metadata(path) {
        Ok(_) => Some(Source::read(path).map_err(|e| {
            Error::not_saved(format!(
                "{} exists and is not an fw config: not overwriting it (remove it or choose \
                 another file). It does not load: {e}",
                path.display()
            ))
        })?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let (text, edited, unchanged) = match &existing {
        Some(f) if f.config == running => (f.text.clone(), true, true),
        Some(f) => (edit_text(&f.text, &f.config, &running, path)?, true, false),
        None => (format!("{SAVE_HEADER}{}", running.to_toml()), false, false),
    };
    // The set files first: the config names them.
    let mut set_files = Vec::new();
    for set in &running.block_sets {
        let Some(p) = set.file_path(path) else {
            continue;
        };
        let old = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        let same = crate::model::blocklist::parse_set_file(&old, &p)
            .is_ok_and(|had| had == set.prefixes)
            && !old.is_empty();
        if !same {
            let text = crate::model::blocklist::edit_set_file(&old, &set.prefixes);
            set_files.push(Staged::new(&p, &text).map_err(|e| not_written(&p, e))?);
        }
    }
    for s in set_files {
        let p = s.target.clone();
        s.commit().map_err(|e| not_written(&p, e))?;
    }
    if !unchanged {
        let cannot = |e: io::Error| {
            Error::not_saved(format!(
                "cannot write {} ({e}): nothing was written (does its directory exist, and \
                 may fw write there?)",
                path.display()
            ))
        };
        Staged::new(path, &text)
            .map_err(cannot)?
            .commit()
            .map_err(cannot)?;
    }
    let real =
        fs::canonicalize(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    // Saving to the file fw runs, or when fw runs none, makes it the file
    // later changes go to; saving elsewhere (a backup) does not.
    let rec = recorded(maps)?;
    let record =
        rec.as_ref().is_none_or(|r| r.path == real) && real.as_os_str().len() <= CONFIG_PATH_MAX;
    if record {
        let said = crate::model::config::Config::from_toml(&text, &real)?;
        set_recorded(maps, Some(&Record::of(real, &text, &said)))?;
    }
    Ok(SaveReport {
        path: given.to_path_buf(),
        edited,
        unchanged,
        recorded: record,
    })
}

/// A file written beside its target and synced, not yet renamed over it
/// (removed again unless committed).
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Staged {
    /// Writes `text` to a temporary file in `target`'s directory with
    /// `target`'s mode and owner (0644 root for a new file) and syncs it.
    pub fn new(target: &Path, text: &str) -> io::Result<Staged> {
        let dir = parent(target);
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".fw-{}.tmp", std::process::id()));
        let temp = dir.join(tmp_name);
        let old = fs::metadata(target).ok();
        let _ = fs::remove_file(&temp); // our own leftover from a killed run
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        let staged = Staged {
            temp,
            target: target.to_path_buf(),
            done: false,
        };
        f.write_all(text.as_bytes())?;
        let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
        if let Some(m) = &old {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        Ok(staged)
    }

    /// Renames the file over its target and syncs the directory, so the
    /// rename itself survives a crash.
    pub fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.temp, &self.target)?;
        self.done = true;
        fs::File::open(parent(&self.target))?.sync_all()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_keep_the_mode_and_leave_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("fw-persist-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("fw.toml");
        fs::write(&f, "old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        Staged::new(&f, "new").unwrap().commit().unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        drop(Staged::new(&f, "abandoned").unwrap());
        assert_eq!(fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
