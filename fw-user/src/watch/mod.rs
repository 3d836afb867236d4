//! Read-only views of a running fw: `status`, `stats`, `log`, `top`,
//! `conntrack`, and the Prometheus exporter. They change nothing.
pub mod blocks;
pub mod conntrack;
pub mod events;
pub mod exporter;
pub mod instance;
pub mod log;
pub mod metrics;
pub mod stats;
pub mod status;
pub mod top;
