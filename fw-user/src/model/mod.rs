//! The model: what fw's policy and config are, parsed, checked and
//! compared. Pure: no maps, no system calls (it reads a config file, no
//! more).
pub mod blocklist;
pub mod config;
pub mod names;
pub mod policy;
pub mod record;
pub mod source_sets;
