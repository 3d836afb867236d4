//! fw's model: the policy and the config, parsed, checked and compared;
//! the config file's record, its text edited in place; blocklist sets.
//! Pure: no maps, no system calls (it reads files, no more), so it builds
//! without the BPF toolchain (the fuzz targets and the parser tests use it
//! alone). fw-user re-exports it as `fw_user::model`.
pub mod blocklist;
pub mod config;
pub mod edit;
pub mod error;
pub mod limit;
pub mod names;
pub mod policy;
pub mod record;

pub use error::{Error, Result};
