//! Test kit for fw: network namespace rigs, real-socket probes and a runner
//! for the `fw` binary, shared by the integration tests and `cargo xtask demo`.
//!
//! ```no_run
//! use std::time::Duration;
//! use fw_testkit::{require_root, spawn_tcp_listener, tcp_connect, Netns, Outcome};
//!
//! require_root();
//! let pair = Netns::pair("fwt");
//! let _ssh = spawn_tcp_listener(pair.srv(), "::".parse().unwrap(), 22).unwrap();
//! let seen = tcp_connect(pair.cli(), pair.srv_v4().into(), 22, Duration::from_secs(2));
//! assert_eq!(seen, Outcome::Connected);
//! // dropping `pair` kills what runs in the namespaces and deletes them
//! ```
//!
//! Everything is bounded in time; guards clean up on drop (also while
//! unwinding from a panic), and [`install_interrupt_cleanup`] covers Ctrl-C.

pub mod agent;
pub mod blast;
pub mod check;
mod cleanup;
mod cmd;
#[cfg(feature = "bpf")]
pub mod corpus;
#[cfg(feature = "bpf")]
pub mod corpus_frag;
#[cfg(feature = "bpf")]
pub mod corpus_ip;
#[cfg(feature = "bpf")]
pub mod corpus_l4;
pub mod daemon;
mod error;
#[cfg(feature = "bpf")]
pub mod flowrun;
#[cfg(feature = "bpf")]
pub mod flows;
#[cfg(feature = "bpf")]
pub mod fuzzing;
mod fw;
mod netns;
pub mod packet;
#[cfg(feature = "bpf")]
pub mod pipeline;
mod probe;
pub mod probes;
pub mod raw;
#[cfg(feature = "bpf")]
mod rig;
pub mod seed;
pub mod session;
#[cfg(feature = "bpf")]
pub mod testrun;
mod tmp;
#[cfg(feature = "bpf")]
pub mod twin;
mod wait;
pub mod wire;
mod xdp;

pub use cleanup::{cleanup_registered, install_interrupt_cleanup, interrupted};
pub use cmd::{command, output_with_timeout, pty, run_ok, show, text, CMD_TIMEOUT};
pub use error::{Error, Result};
pub use fw::{
    fw_bin, fw_cmd, fw_cmd_line, fw_command, fw_ok, fw_stats, fw_up, reason_packets,
    sweep_pin_dirs, try_fw_cmd, workspace_dir, Bpffs, PinDir, BPFFS, FW_CMD_TIMEOUT,
};
pub use netns::{
    ns_name, parse_ns_name, sweep, veth_name, Netns, Pair, Role, CLI_V4, CLI_V6, NETNS_RUN_DIR,
    SRV_V4, SRV_V6, V4_PREFIX_LEN, V6_PREFIX_LEN,
};
pub use probe::{
    echo_rounds, in_netns, spawn_tcp_listener, spawn_udp_echo, tcp_connect, tcp_connect_from,
    tcp_session, udp_probe, Outcome, Server, SERVER_MAX_LIFETIME,
};
#[cfg(feature = "bpf")]
pub use rig::{links_to, path_str, prog_alive, Rig};
pub use tmp::TempDir;
pub use wait::{kill_after, timed, wait_until, Rng};

/// Kernel BTF, needed to load fw's programs.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why this process cannot run the root/BPF tests, or `None` if it can.
pub fn missing_privileges() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not running as root (euid {euid})"));
    }
    if !std::path::Path::new(VMLINUX_BTF).exists() {
        return Some(format!("{VMLINUX_BTF} is missing (kernel without BTF)"));
    }
    None
}

/// Panics with a clear message unless the process is root and the kernel
/// has BTF. Tests call it first: they never skip silently.
pub fn require_root() {
    if let Some(why) = missing_privileges() {
        panic!("needs root and BPF: run as root, e.g. `sudo cargo xtask test` ({why})");
    }
}
