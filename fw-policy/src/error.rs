//! The model's errors: what is wrong with a config, a value or a file.
use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid {what} `{input}`: {reason}")]
    Invalid {
        what: &'static str,
        input: String,
        reason: String,
    },

    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    /// A value refused after parsing, where it is in the file.
    #[error("config {path}:{line}:{column}: {entry}: {reason}")]
    ConfigAt {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Where in the config, like `sources[1].from[0]`.
        entry: String,
        reason: String,
    },

    /// The config file fw writes changes back to cannot take this one;
    /// nothing was changed.
    #[error("{0}")]
    NotSaved(String),

    /// `fw deny ... --from` named a source a port does not have.
    #[error("{0}")]
    NoSuchSource(String),

    /// A bad line in a block set file; nothing was changed.
    #[error("{}:{line}: {reason}; nothing was changed", path.display())]
    SetFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn invalid(
        what: &'static str,
        input: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            input: input.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
