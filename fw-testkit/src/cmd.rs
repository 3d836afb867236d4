//! Running helper commands (`ip`, `nsenter`, `ethtool`, `fw`) with a time limit.

use std::{
    ffi::{OsStr, OsString},
    io::Read,
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// Default limit for the small helper commands (`ip`, `ethtool`).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Directories that must be on PATH for `ip`, `ethtool`, `nsenter`.
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A [`Command`] for `program` whose PATH also holds the system directories,
/// so `ip` and `ethtool` are found even from a user PATH without `/usr/sbin`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", system_path(std::env::var_os("PATH")));
    cmd
}

fn system_path(current: Option<OsString>) -> OsString {
    let mut dirs: Vec<std::path::PathBuf> = current
        .as_deref()
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    for dir in SYSTEM_DIRS {
        if !dirs.iter().any(|d| d.as_os_str() == dir) {
            dirs.push(dir.into());
        }
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| OsString::from(SYSTEM_DIRS.join(":")))
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with stdin closed and stdout/stderr captured, killing it after
/// `timeout`. The exit status is not checked.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let line = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            cmd: line.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(spawn_reader);
    let stderr = child.stderr.take().map(spawn_reader);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Best effort: the child may have exited in between.
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::CommandTimeout { cmd: line, timeout });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                let _ = child.kill();
                return Err(Error::Io {
                    what: format!("waiting for `{line}`"),
                    source,
                });
            }
        }
    };
    // A grandchild that inherited the pipes could keep them open: collect
    // what arrived within a second and move on rather than hang.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn spawn_reader<R: Read + Send + 'static>(mut pipe: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` (limit [`CMD_TIMEOUT`]) and returns its stdout; a non-zero exit is an error
/// carrying stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output_with_timeout(cmd, CMD_TIMEOUT)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `cmd` (limit [`CMD_TIMEOUT`]), asserting it succeeds; returns its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Bytes a command wrote, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Arguments joined for messages.
pub fn show<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `run(command(program).args(args))`.
pub fn run_args<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(command(program).args(args))
}

/// A pseudo-terminal of 80x24: (master, path of the slave). Open the slave
/// as a command's stdin/stdout to run it "on a terminal"; read the master
/// (or the command may block once the terminal's buffer is full).
pub fn pty() -> (std::fs::File, std::path::PathBuf) {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r/ioctl on a fresh fd,
    // with a buffer of the size given and a valid winsize.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(m, libc::TIOCSWINSZ, &size), 0, "TIOCSWINSZ");
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (
            std::fs::File::from(OwnedFd::from_raw_fd(m)),
            std::path::PathBuf::from(name),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_path_adds_missing_dirs_once() {
        let p = system_path(Some("/root/.cargo/bin:/usr/bin".into()));
        let dirs: Vec<_> = std::env::split_paths(&p).collect();
        assert_eq!(dirs[0], std::path::Path::new("/root/.cargo/bin"));
        assert_eq!(
            dirs.iter().filter(|d| d.as_os_str() == "/usr/bin").count(),
            1
        );
        assert!(dirs.iter().any(|d| d.as_os_str() == "/usr/sbin"));
        let none = system_path(None);
        assert_eq!(std::env::split_paths(&none).count(), SYSTEM_DIRS.len());
    }

    #[test]
    fn run_reports_failure_and_timeout() {
        assert_eq!(run_args("sh", ["-c", "echo hi"]).expect("sh runs"), "hi\n");
        let err = run_args("sh", ["-c", "echo oops >&2; exit 3"]).expect_err("exit 3 fails");
        assert!(err.to_string().contains("oops"), "{err}");
        let err = output_with_timeout(command("sleep").arg("5"), Duration::from_millis(100))
            .expect_err("sleep is killed");
        assert!(matches!(err, Error::CommandTimeout { .. }), "{err}");
        let err = run_args("fw-testkit-no-such-program", ["x"]).expect_err("missing program");
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }
}
