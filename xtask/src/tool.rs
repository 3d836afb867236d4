//! Running child processes with a PATH that holds cargo's bin directory.

use std::{
    env,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{bail, Context, Result};

/// The workspace root (xtask's parent directory).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// `$CARGO_HOME`, default `~/.cargo`.
pub fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither CARGO_HOME nor HOME is set: cannot find cargo's directory")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// PATH for child processes: the current PATH with `$CARGO_HOME/bin` in front
/// if it is missing (bpf-linker and the rustup proxies live there).
pub fn child_path() -> OsString {
    let current: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut dirs = Vec::with_capacity(current.len() + 1);
    if let Ok(home) = cargo_home() {
        let bin = home.join("bin");
        if !current.contains(&bin) {
            dirs.push(bin);
        }
    }
    dirs.extend(current);
    env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
}

/// True if `$CARGO_HOME/bin` is already on this process's PATH.
pub fn cargo_bin_on_path() -> bool {
    let Ok(bin) = cargo_home().map(|h| h.join("bin")) else {
        return false;
    };
    env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| d == bin))
}

/// A command with [`child_path`] as PATH, run from the workspace root.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", child_path()).current_dir(workspace_dir());
    cmd
}

/// `cargo` (the rustup proxy on PATH).
pub fn cargo() -> Command {
    command("cargo")
}

/// Finds `program` on [`child_path`].
pub fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&child_path())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio, announcing it as `name`; a failure names the step.
pub fn step(name: &str, cmd: &mut Command) -> Result<()> {
    println!("==> {name}");
    let status = cmd
        .status()
        .with_context(|| format!("{name}: cannot run `{}`", line(cmd)))?;
    if !status.success() {
        bail!("{name} failed: `{}` exited with {status}", line(cmd));
    }
    Ok(())
}

/// Runs `cmd` capturing its output; `Err` if it cannot start or exits non-zero.
pub fn capture(cmd: &mut Command) -> Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .with_context(|| format!("cannot run `{}`", line(cmd)))?;
    if !status.success() {
        bail!(
            "`{}` exited with {status}: {}",
            line(cmd),
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}
