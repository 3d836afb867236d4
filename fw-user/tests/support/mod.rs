//! Shared pieces of fw-user's namespace tests.
#![allow(dead_code)]
pub mod probes;
pub mod raw;
