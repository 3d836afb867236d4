//! fw's userspace: load and steer the XDP firewall, read its state.
//!
//! One concept per module: `policy` (the model), `config` (TOML into it),
//! `maps` (the only map access), `loader` (up/down), `stats`, `status`.
pub mod apply;
mod bpf_batch;
pub mod clock;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod egress_hook;
pub mod error;
pub mod events;
pub mod exporter;
pub mod foreground;
pub mod guard;
pub mod iface;
pub mod instance;
pub mod loader;
pub mod lock;
pub mod log;
pub mod maps;
pub mod metrics;
mod netlink;
pub mod persist;
pub mod pins;
pub mod policy;
pub mod rig;
pub mod shutdown;
pub mod sockets;
pub mod source_sets;
pub mod stats;
pub mod status;
pub mod top;

pub use error::{Error, Result};
pub use loader::EBPF_OBJECT;
