//! Developer tasks for fw: `cargo xtask <setup|build|test|demo|bench>`.
//!
//! Like aya's own xtask: only what cargo alone cannot do. Run as root on a
//! fresh machine; `setup` installs what is missing, the other tasks call it.

mod bench;
mod demo;
#[cfg(test)]
mod layers;
mod setup;
mod tool;

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Developer tasks for fw"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need and is missing: rust-src for
    /// nightly, bpf-linker, Debian packages (idempotent).
    Setup,
    /// setup, then `cargo build --release` (the fw binary with its eBPF object).
    Build,
    /// fmt and clippy checks, setup, build, then every test as root, one thread.
    Test {
        /// Also run the long tests (sets FW_TEST_LONG=1).
        #[arg(long)]
        long: bool,
        /// Extra arguments for the test binaries (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Show fw at work between two network namespaces (needs root).
    Demo {
        /// Only build the rig and probe it without fw (checks the namespaces,
        /// listeners and probes).
        #[arg(long)]
        no_fw: bool,
        /// Use the fw binary already built (or $FW_BIN) instead of building it.
        #[arg(long)]
        no_build: bool,
    },
    /// Measure fw against an empty XDP program, xdp-filter, iptables and
    /// nftables (live, on veth pairs), per verdict path and with 1k-1M
    /// tracked flows (needs root; reports, never asserts).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run().map(|_| ()),
        Task::Build => build(),
        Task::Test { long, args } => test(long, &args),
        Task::Demo { no_fw, no_build } => demo::run(no_fw, no_build),
        Task::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<()> {
    setup::run()?;
    cargo_build_release()
}

pub(crate) fn cargo_build_release() -> Result<()> {
    tool::step(
        "cargo build --release",
        tool::cargo().args(["build", "--release"]),
    )
}

fn require_root() -> Result<()> {
    if let Some(why) = fw_testkit::missing_privileges() {
        bail!("needs root and BPF: run as root, e.g. `sudo cargo xtask test` ({why})");
    }
    Ok(())
}

fn test(long: bool, extra: &[String]) -> Result<()> {
    require_root()?;
    // Fast checks first.
    tool::step(
        "cargo fmt --check",
        tool::cargo().args(["fmt", "--all", "--check"]),
    )?;
    setup::run()?;
    // fw-ebpf is built for the BPF target by fw-user's build.rs, not for the host.
    tool::step(
        "cargo clippy",
        tool::cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "fw-ebpf",
            "--release",
            "--all-targets",
            // The bench feature holds `cargo xtask bench`'s code.
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    cargo_build_release()?;
    let fw_bin = tool::workspace_dir().join("target/release/fw");
    let mut cmd = tool::cargo();
    cmd.args(["test", "--release", "--workspace", "--exclude", "fw-ebpf"])
        .env("FW_BIN", &fw_bin)
        .arg("--")
        .arg("--test-threads=1")
        .args(extra);
    if long {
        cmd.env("FW_TEST_LONG", "1");
    }
    tool::step("cargo test --release", &mut cmd)
}
