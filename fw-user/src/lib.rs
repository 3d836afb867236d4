//! fw's userspace: load and steer the XDP firewall, read its state.
//!
//! One concept per module: `policy` (the model), `config` (TOML into it),
//! `maps` (the only map access), `loader` (up/down), `stats`, `status`.
mod bpf_batch;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod error;
pub mod iface;
pub mod loader;
pub mod maps;
pub mod pins;
pub mod policy;
pub mod rig;
pub mod sockets;
pub mod stats;
pub mod status;

pub use error::{Error, Result};
pub use loader::EBPF_OBJECT;
