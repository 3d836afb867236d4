//! `cargo xtask setup`: install what is missing, nothing else, one line per step.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::tool::{self, capture, command};

/// Debian packages of every program the tests, the demo and the benchmarks
/// run (a fresh or minimal system may lack any of them):
/// `ip`, `ss`, `tc` (iproute2); `ping`; `iptables`/`ip6tables`; `nft`;
/// `ethtool`; `xdp-filter` (xdp-tools); `bpftool`; `sysctl` (procps);
/// `nsenter`, `setpriv`, `unshare` (util-linux); `mount` (mount);
/// `dnsmasq`, `busybox udhcpc`, `dhclient` (dhcp.rs); `fail2ban-server`
/// (fail2ban.rs); `iperf3` and `strace` (the bench's bulk TCP and `fw up`
/// parts).
pub const DEBIAN_PACKAGES: [&str; 17] = [
    // control.rs: the man page `fw man` writes is rendered with `man -l`.
    "man-db",
    "iproute2",
    "iputils-ping",
    "iptables",
    "nftables",
    "ethtool",
    "xdp-tools",
    "bpftool",
    // dhcp.rs: a DHCP server and two clients, binaries only (dnsmasq-base,
    // not dnsmasq, which would enable a system service).
    "dnsmasq-base",
    "busybox",
    "isc-dhcp-client",
    "procps",
    "util-linux",
    "mount",
    // fail2ban.rs runs the real fail2ban-server in a test namespace. The
    // package also installs a system service: --no-install-recommends keeps
    // its optional backends out, and the test never uses the service.
    "fail2ban",
    // bench: bulk TCP over the veth pair; the split of `fw up`'s time.
    "iperf3",
    "strace",
];

/// Runs every setup step; the error names the step that failed.
pub fn run() -> Result<()> {
    println!("==> setup");
    rust_src().context("setup step rust-src (nightly)")?;
    bpf_linker().context("setup step bpf-linker")?;
    debian_packages().context("setup step Debian packages")?;
    path().context("setup step PATH")?;
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = capture(command("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .context(
        "the nightly toolchain is needed to build the eBPF crate and seems missing: \
         install it with `rustup toolchain install nightly`",
    )?;
    if installed
        .lines()
        .any(|l| l.trim() == "rust-src" || l.starts_with("rust-src-"))
    {
        println!("rust-src (nightly): present");
        return Ok(());
    }
    println!("rust-src (nightly): installing…");
    tool::step(
        "rustup component add rust-src --toolchain nightly",
        command("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
    )
}

/// `bpf-linker --version` output, if a working one is on PATH or in `$CARGO_HOME/bin`.
fn working_bpf_linker() -> Option<(PathBuf, String)> {
    let bin = tool::which("bpf-linker")?;
    let version = capture(command(&bin).arg("--version")).ok()?;
    Some((bin, version.trim().to_owned()))
}

fn bpf_linker() -> Result<()> {
    if let Some((bin, version)) = working_bpf_linker() {
        println!("bpf-linker: present ({version}, {})", bin.display());
        return Ok(());
    }
    let sysroot = capture(command("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("finding the nightly sysroot (`rustc +nightly --print sysroot`)")?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let (llvm, major) = find_libllvm(&lib_dir)?;
    let file_name = llvm
        .file_name()
        .context("libLLVM path has no file name")?
        .to_owned();
    let prefix = tool::cargo_home()?.join(format!("fw-llvm-{major}"));
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link in [PathBuf::from("libLLVM.so"), PathBuf::from(&file_name)] {
        ensure_symlink(&prefix_lib.join(link), &llvm)?;
    }
    println!(
        "bpf-linker: installing with LLVM {major} from {} (LLVM_PREFIX={}; about a minute)…",
        llvm.display(),
        prefix.display()
    );
    tool::step(
        &format!("cargo install bpf-linker --features llvm-{major}"),
        tool::cargo()
            .env("LLVM_PREFIX", &prefix)
            .args([
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}")),
    )?;
    match working_bpf_linker() {
        Some((bin, version)) => {
            println!("bpf-linker: installed ({version}, {})", bin.display());
            Ok(())
        }
        None => bail!("bpf-linker was installed but `bpf-linker --version` still fails"),
    }
}

/// The real `libLLVM.so.<major>…` file in the nightly sysroot's lib dir
/// (not the small `libLLVM-<major>-rust-….so` linker script), and its major version.
fn find_libllvm(lib_dir: &Path) -> Result<(PathBuf, u32)> {
    let entries =
        fs::read_dir(lib_dir).with_context(|| format!("listing {}", lib_dir.display()))?;
    let mut best: Option<(u64, PathBuf, u32)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(major) = llvm_major(&name) else {
            continue;
        };
        let path = entry.path();
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if best.as_ref().is_none_or(|(s, _, _)| size > *s) {
            best = Some((size, path, major));
        }
    }
    match best {
        Some((_, path, major)) => Ok((path, major)),
        None => bail!(
            "no libLLVM.so.* in {}: the nightly toolchain should ship it \
             (reinstall it with `rustup toolchain install nightly`)",
            lib_dir.display()
        ),
    }
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` → 22.
fn llvm_major(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix("libLLVM.so.")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Makes `link` a symlink to `target`, replacing a wrong or broken one.
fn ensure_symlink(link: &Path, target: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).with_context(|| format!("removing stale {}", link.display()))?;
    }
    symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

fn package_installed(pkg: &str) -> bool {
    capture(command("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|status| status.trim() == "install ok installed")
}

fn apt_lists_present() -> bool {
    fs::read_dir("/var/lib/apt/lists").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    tool::step(
        "apt-get install",
        command("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(pkgs),
    )
}

fn apt_update() -> Result<()> {
    tool::step("apt-get update", command("apt-get").arg("update"))
}

fn debian_packages() -> Result<()> {
    let mut missing = Vec::new();
    for pkg in DEBIAN_PACKAGES {
        if package_installed(pkg) {
            println!("{pkg}: present");
        } else {
            println!("{pkg}: missing");
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {}…", missing.join(" "));
    if !apt_lists_present() {
        apt_update()?;
    }
    if apt_install(&missing).is_err() {
        println!("apt-get install failed; refreshing package lists and retrying");
        apt_update()?;
        apt_install(&missing).with_context(|| {
            format!(
                "installing {} (as root, with Debian's package lists reachable)",
                missing.join(" ")
            )
        })?;
    }
    Ok(())
}

fn path() -> Result<()> {
    let bin = tool::cargo_home()?.join("bin");
    if tool::cargo_bin_on_path() {
        println!("PATH: {} present", bin.display());
    } else {
        println!("PATH: adding {} for child processes", bin.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_sysroot_names() {
        assert_eq!(llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"), Some(22));
        assert_eq!(llvm_major("libLLVM.so.19"), Some(19));
        assert_eq!(llvm_major("libLLVM-22-rust-1.97.0-nightly.so"), None);
        assert_eq!(llvm_major("libLLVM.so"), None);
        assert_eq!(llvm_major("librustc_driver-b5a9.so"), None);
    }

    #[test]
    fn finds_the_big_libllvm_and_ignores_the_linker_script() {
        let dir = std::env::temp_dir().join(format!("xtask-llvm-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        fs::write(dir.join("libLLVM-22-rust-1.97.0-nightly.so"), "INPUT(x)").expect("write");
        fs::write(dir.join("libLLVM.so.22.1-rust-1.97.0-nightly"), [0u8; 4096]).expect("write");
        let (path, major) = find_libllvm(&dir).expect("found");
        assert_eq!(major, 22);
        assert!(path.ends_with("libLLVM.so.22.1-rust-1.97.0-nightly"));

        let link = dir.join("libLLVM.so");
        ensure_symlink(&link, &path).expect("link");
        ensure_symlink(&link, &path).expect("idempotent");
        ensure_symlink(&link, Path::new("/nonexistent")).expect("replace");
        assert_eq!(
            fs::read_link(&link).expect("read"),
            Path::new("/nonexistent")
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
