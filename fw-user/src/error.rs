//! fw's errors. Each says what went wrong and, where there is one, what to do.
use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What is wrong with a config, a value, a file (fw-policy's errors,
    /// I/O included).
    #[error(transparent)]
    Model(#[from] fw_policy::Error),

    #[error(
        "`{0}` needs root (uid 0; capabilities such as CAP_BPF, CAP_NET_ADMIN and \
         CAP_SYS_ADMIN are not enough): run it as root, e.g. with sudo"
    )]
    NotRoot(&'static str),

    #[error("interface `{0}` does not exist in this network namespace (see `ip link`)")]
    NoSuchInterface(String),

    #[error("refusing to attach to `{0}`: loopback is never filtered by fw (the seed policy accepts all of lo)")]
    Loopback(String),

    #[error(
        "another fw command{holder} has held fw's lock (/run/fw/lock) for {waited:?}: \
         try again when it is done"
    )]
    Busy {
        holder: String,
        waited: std::time::Duration,
    },

    #[error("fw is already up on `{0}`: run `fw down {0}` first")]
    AlreadyUp(String),

    #[error("fw is not up on `{0}` (see `fw status`)")]
    NotUpOn(String),

    #[error("fw is not loaded (no pins under {0}): run `fw up <IFACE>` first")]
    NotLoaded(PathBuf),

    #[error("too many interfaces: fw can be up on at most {0} at once")]
    TooManyInterfaces(usize),

    #[error(
        "the pins under {path} were made by a different fw build ({detail}): \
         run `fw down` to remove them, then `fw up` again"
    )]
    StalePin { path: PathBuf, detail: String },

    #[error("attaching XDP to `{iface}` in {mode} mode failed{hint}")]
    XdpAttach {
        iface: String,
        mode: &'static str,
        hint: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("attaching the TC egress program to `{iface}` ({hook}) failed")]
    TcAttach {
        iface: String,
        /// "tcx" or "clsact".
        hook: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("loading the eBPF object failed")]
    Load(#[source] Box<aya::EbpfError>),

    #[error("eBPF program `{name}`")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },

    #[error("pinning {path}")]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },

    #[error("link {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: Box<aya::programs::links::LinkError>,
    },

    #[error("only {shown} of the {wanted} events asked for (--count) arrived within {secs} s (--timeout)")]
    TooFewEvents { shown: u64, wanted: u64, secs: f64 },

    #[error("fw top: {0}")]
    NotATerminal(&'static str),
    #[error("fw up: the argument <IFACE> is missing: name at least one interface (`fw up eth1`) or list `interfaces` in the config")]
    NoInterface,
    #[error("terminal: {0} (fw top needs an interactive terminal of at least 80x24)")]
    Terminal(#[source] io::Error),

    #[error("cannot read fw's state under {path} ({detail}): run as root (uid 0: the pins are root's, mode 0700), e.g. with sudo")]
    NoAccess { path: PathBuf, detail: String },

    /// The lockout guard refused a change; the text explains what and why.
    #[error("{0}")]
    Lockout(String),

    #[error(
        "{why}: rolled back to the previous config \
         (the new one was live from the apply until the rollback)"
    )]
    NotConfirmed { why: String },

    #[error(
        "rolling back failed: {source}; the previous config is saved in {saved}: \
         restore it with `fw apply {saved}`"
    )]
    RollbackFailed {
        saved: PathBuf,
        #[source]
        source: Box<Error>,
    },

    #[error("{}", capacity_message(*.needed, *.inserts, *.in_use, *.max))]
    SourceCapacity {
        needed: usize,
        inserts: usize,
        in_use: usize,
        max: u32,
    },

    #[error(
        "the policy has {needed} distinct source lists, more than the {max} fw can tell apart; \
         nothing was changed: give more ports the same `--from` list"
    )]
    TooManySourceSets { needed: usize, max: u32 },

    #[error("writing the policy failed, the previous policy is back unchanged: {source}")]
    PolicyWrite {
        #[source]
        source: Box<Error>,
    },

    #[error(
        "writing the policy failed ({source}) and undoing it failed too ({rollback}): the \
         running policy may be part old, part new; check `fw ports` and apply the config again"
    )]
    PolicyRollback {
        source: Box<Error>,
        rollback: Box<Error>,
    },

    /// A blocklist command refused (unknown set, no room, ...); the text
    /// says what and what to do. Nothing was changed.
    #[error("{0}")]
    Block(String),

    /// `fw limit`/`fw unlimit` refused (a closed port, no such limit, an
    /// overlap); the text says what to do. Nothing was changed.
    #[error("{0}")]
    Limit(String),

    #[error("nothing to confirm: no `fw apply --confirm` is waiting (pin dir {0})")]
    NothingPending(PathBuf),

    #[error(
        "another `fw apply --confirm` (pid {pid}) is waiting for confirmation: \
         run `fw confirm` or let it roll back first"
    )]
    ApplyPending { pid: u32 },
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        fw_policy::Error::io(what, source).into()
    }

    pub fn invalid(
        what: &'static str,
        input: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        fw_policy::Error::invalid(what, input, reason).into()
    }

    /// The config file fw writes changes back to cannot take this one.
    pub fn not_saved(why: String) -> Self {
        fw_policy::Error::NotSaved(why).into()
    }

    pub fn map(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Error::Map {
            name,
            source: Box::new(source),
        }
    }

    pub fn program(name: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> Self {
        move |source| Error::Program {
            name,
            source: Box::new(source),
        }
    }

    /// A program missing from the object, or of another kind than asked.
    pub fn no_program(name: &'static str) -> Self {
        Error::program(name)(aya::programs::ProgramError::UnexpectedProgramType)
    }

    /// A map missing from the object.
    pub fn no_map(name: &'static str) -> Self {
        Error::map(name)(aya::maps::MapError::InvalidName {
            name: name.to_string(),
        })
    }

    pub fn pin(path: PathBuf) -> impl FnOnce(aya::pin::PinError) -> Self {
        move |source| Error::Pin {
            path,
            source: Box::new(source),
        }
    }

    pub fn link(path: PathBuf) -> impl FnOnce(aya::programs::links::LinkError) -> Self {
        move |source| Error::Link {
            path,
            source: Box::new(source),
        }
    }

    pub fn xdp_attach(
        iface: impl Into<String>,
        mode: &'static str,
        hint: &'static str,
    ) -> impl FnOnce(aya::programs::ProgramError) -> Self {
        let iface = iface.into();
        move |source| Error::XdpAttach {
            iface,
            mode,
            hint,
            source: Box::new(source),
        }
    }

    pub fn tc_attach(
        iface: impl Into<String>,
        hook: &'static str,
    ) -> impl FnOnce(aya::programs::ProgramError) -> Self {
        let iface = iface.into();
        move |source| Error::TcAttach {
            iface,
            hook,
            source: Box::new(source),
        }
    }

    pub fn rollback_failed(saved: PathBuf) -> impl FnOnce(Error) -> Self {
        move |source| Error::RollbackFailed {
            saved,
            source: Box::new(source),
        }
    }

    pub fn policy_write(source: Error) -> Self {
        Error::PolicyWrite {
            source: Box::new(source),
        }
    }

    pub fn policy_rollback(source: Error, rollback: Error) -> Self {
        Error::PolicyRollback {
            source: Box::new(source),
            rollback: Box::new(rollback),
        }
    }
}

/// The refusal of a policy that does not fit ALLOW_SRC: what it needs,
/// the limit and the key that sizes it, and what to do.
fn capacity_message(needed: usize, inserts: usize, in_use: usize, max: u32) -> String {
    let limit = format!("map ALLOW_SRC holds at most {max} (`[capacity] source_prefixes`)");
    let what = if needed > max as usize {
        format!(
            "the policy needs {needed} source-prefix entries (one per prefix of each distinct \
             source list), but {limit}"
        )
    } else {
        format!(
            "the new policy needs {needed} source-prefix entries, but the change writes \
             {inserts} new ones before it removes old ones and {in_use} are in use: {limit}; \
             change it in two steps (first close or narrow what goes away)"
        )
    };
    format!(
        "{what}; nothing was changed. Use fewer or wider prefixes, or raise `[capacity] \
         source_prefixes` in the config: it takes effect at the next load (`fw down`, then \
         `fw up IFACE --config FILE`)"
    )
}

// aya's errors are large; boxing them keeps every `Result` of fw small.
impl From<aya::EbpfError> for Error {
    fn from(e: aya::EbpfError) -> Self {
        Error::Load(Box::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
