//! Shared pieces of fw-user's namespace tests.
#![allow(dead_code)]
pub mod agent;
pub mod blast;
pub mod corpus;
pub mod corpus_frag;
pub mod corpus_ip;
pub mod corpus_l4;
pub mod daemon;
pub mod flowrun;
pub mod flows;
pub mod pipeline;
pub mod probes;
pub mod raw;
pub mod rigs;
pub mod session;
pub mod wire;
