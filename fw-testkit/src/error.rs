//! The testkit's error type.

use std::{io, path::PathBuf, time::Duration};

/// What went wrong while building or tearing down a test rig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A helper command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the message.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A helper command did not finish in time and was killed.
    #[error("`{cmd}` did not finish within {timeout:?} and was killed")]
    CommandTimeout {
        /// The command line, for the message.
        cmd: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// A helper command could not be started.
    #[error(
        "cannot run `{cmd}`: {source} (is it installed? `cargo xtask setup` installs the tools)"
    )]
    Spawn {
        /// The command line, for the message.
        cmd: String,
        /// Why the spawn failed.
        source: io::Error,
    },
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Setns {
        /// The namespace path, e.g. `/run/netns/NAME`.
        path: PathBuf,
        /// Why `open`/`setns` failed.
        source: io::Error,
    },
    /// Any other I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being attempted.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A namespace prefix that cannot be used in names.
    #[error(
        "invalid namespace prefix {0:?}: use 1 to 16 ASCII letters, digits or '-', starting with a letter"
    )]
    BadPrefix(String),
    /// The veth link did not come up in time.
    #[error("veth {veth} in {netns} did not come up within {timeout:?}")]
    LinkDown {
        /// The namespace.
        netns: String,
        /// The interface.
        veth: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Result with the testkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
