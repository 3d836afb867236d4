//! `fw apply FILE [--confirm SECS]` and `fw confirm`: swap the running
//! config for a file's, optionally on probation: unless confirmed in time
//! (Enter on the terminal, or `fw confirm` from another shell), the old
//! config comes back.
//!
//! The probation state is a small directory under /run/fw (tmpfs, gone at
//! reboot, when fw is gone too): `pending` names the waiting process and
//! `previous.toml` holds the config to return to. Whoever renames `pending`
//! first decides: `fw confirm` (or Enter) renames it to `confirmed`, the
//! waiting process at its deadline to `expired`; rename is atomic, so a
//! confirmation racing the deadline is either in time or not, never both.
mod confirm;
mod journal;
mod plan;
mod probation;

pub use confirm::{confirm, pending_warning, ConfirmReport};
pub use journal::apply;
pub use plan::{check, plan, Checked, Plan};
pub use probation::apply_with_confirm;

/// Longest probation fw accepts.
pub const MAX_CONFIRM_SECS: u64 = 3600;
