//! fw's userspace: load and steer the XDP firewall, read its state.
//!
//! Four layers, each a folder; a module uses its own layer and those below
//! it, never one above (`main.rs`, the CLI, sits on top: it parses and calls):
//! - [`model`]: the policy and config, parsed, checked and compared. Pure.
//! - [`kernel`]: every access to the system: the eBPF object, its pins and
//!   maps, attaching, netlink, sockets, signals, /run/fw.
//! - [`ops`]: what changes fw (`up`, `down`, `allow`, `apply`, ...), built
//!   on model and kernel.
//! - [`watch`]: read-only views (`status`, `stats`, `log`, `top`, the
//!   exporter), built on model and kernel, never on ops.
pub mod error;
pub mod kernel;
pub mod model;
pub mod ops;
#[cfg(feature = "rig")]
pub mod rig;
pub mod watch;

pub use error::{Error, Result};
pub use kernel::load::EBPF_OBJECT;
