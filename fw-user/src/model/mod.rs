//! The model: what fw's policy and config are, parsed, checked and
//! compared. Pure: no maps, no system calls (it reads a config file, no
//! more). All of it is the fw-policy crate (buildable without the BPF
//! toolchain) but `source_sets`, how a policy is laid out in the maps.
pub use fw_policy::{blocklist, config, edit, limit, names, policy, record};
pub mod source_sets;
