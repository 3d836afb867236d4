//! `fw up` time: the wall time of the real binary's `fw up IFACE` (warm:
//! binary and object in the page cache, one untimed run first) in a bench
//! namespace, `fw down` between runs, and where the time goes, from one
//! more run under `strace -T -e trace=bpf,flock`: BPF_PROG_LOAD (the
//! verifier), BPF_MAP_CREATE, BPF_LINK_CREATE (the attachments), the other
//! bpf(2) calls (pins, map writes), the wait for /run/fw/lock, and the rest
//! (process start, ELF parsing, netlink, outside bpf(2)). strace slows
//! every traced call a little, so the split is of a slower run than the
//! wall times.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{bail, Context, Result};
use fw_testkit::{
    command, fw_bin, fw_command, output_with_timeout, Netns, PinDir, TempDir, FW_CMD_TIMEOUT,
};

use super::{receivers::PREFIX, spread::Spread, Plan};

/// Milliseconds of one straced `fw up`, by kind of call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Split {
    pub total_ms: f64,
    pub prog_load_ms: f64,
    pub prog_loads: u32,
    pub map_create_ms: f64,
    pub map_creates: u32,
    pub attach_ms: f64,
    pub attaches: u32,
    pub other_bpf_ms: f64,
    pub other_bpf: u32,
    /// From the first flock(2) to the end of the last (0 when the lock was free).
    pub lock_wait_ms: f64,
}

impl Split {
    /// What is outside every counted call.
    pub fn rest_ms(&self) -> f64 {
        self.total_ms
            - self.prog_load_ms
            - self.map_create_ms
            - self.attach_ms
            - self.other_bpf_ms
            - self.lock_wait_ms
    }
}

#[derive(Clone, Debug)]
pub struct UpResult {
    /// Wall ms of `fw up`, per run.
    pub wall: Spread,
    /// Wall ms of `fw down`, per run.
    pub down: Spread,
    pub split: Split,
}

/// Parses `strace -f -ttt -T` output: each line `[pid] secs.usecs call(args) = ret <secs>`,
/// a call split in `<unfinished ...>` and `<... bpf resumed>` by another
/// thread counted once, under the command its first half named.
pub fn parse_strace(text: &str) -> Split {
    let mut s = Split::default();
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut flock_first: Option<f64> = None;
    let mut flock_end: Option<f64> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(a), Some(b)) = (words.next(), words.next()) else {
            continue;
        };
        // With -f and -o, lines start with the pid; a plain run does not.
        let after = |w: &str, text: &'_ str| -> String {
            text.trim_start()[w.len()..].trim_start().to_string()
        };
        let (pid, ts, call) = match b.parse::<f64>() {
            Ok(ts) if a.parse::<u32>().is_ok() => (a.to_string(), ts, after(b, &after(a, line))),
            _ => match a.parse::<f64>() {
                Ok(ts) => (String::new(), ts, after(a, line)),
                Err(_) => continue,
            },
        };
        let call = call.as_str();
        let dur = line
            .rfind('<')
            .filter(|_| line.ends_with('>'))
            .and_then(|i| line[i + 1..line.len() - 1].parse::<f64>().ok())
            .map(|d| d * 1e3);
        if let Some(args) = call.strip_prefix("bpf(") {
            let cmd = args.split([',', ')']).next().unwrap_or("").to_string();
            if call.ends_with("<unfinished ...>") {
                pending.insert(pid, cmd);
                continue;
            }
            s.count(&cmd, dur.unwrap_or(0.0));
        } else if call.starts_with("<... bpf resumed>") {
            let cmd = pending.remove(&pid).unwrap_or_default();
            s.count(&cmd, dur.unwrap_or(0.0));
        } else if call.starts_with("flock(") || call.starts_with("<... flock resumed>") {
            if call.ends_with("<unfinished ...>") {
                continue;
            }
            flock_first.get_or_insert(ts);
            flock_end = Some(ts + dur.unwrap_or(0.0) / 1e3);
        }
    }
    if let (Some(a), Some(b)) = (flock_first, flock_end) {
        s.lock_wait_ms = (b - a) * 1e3;
    }
    s
}

impl Split {
    fn count(&mut self, cmd: &str, ms: f64) {
        let (total, n) = match cmd {
            "BPF_PROG_LOAD" => (&mut self.prog_load_ms, &mut self.prog_loads),
            "BPF_MAP_CREATE" => (&mut self.map_create_ms, &mut self.map_creates),
            "BPF_LINK_CREATE" | "BPF_PROG_ATTACH" | "BPF_LINK_UPDATE" => {
                (&mut self.attach_ms, &mut self.attaches)
            }
            _ => (&mut self.other_bpf_ms, &mut self.other_bpf),
        };
        *total += ms;
        *n += 1;
    }
}

fn checked(cmd: &mut Command, what: &str) -> Result<f64> {
    let start = Instant::now();
    let out = output_with_timeout(cmd, FW_CMD_TIMEOUT).with_context(|| what.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

pub fn run(plan: &Plan) -> Result<UpResult> {
    let bin = fw_bin();
    if !bin.exists() {
        bail!(
            "no fw binary at {} (`cargo build --release`, or set FW_BIN)",
            bin.display()
        );
    }
    let pair = Netns::try_pair(PREFIX).context("building a namespace pair")?;
    let (ns, veth) = (pair.srv_path(), pair.srv_veth());
    let up_down = |pins: &Path| -> Result<(f64, f64)> {
        let up = checked(fw_command(ns, pins, &[]).args(["up", veth]), "fw up")?;
        let down = checked(fw_command(ns, pins, &[]).args(["down"]), "fw down")?;
        Ok((up, down))
    };
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    // One untimed run first: the page cache, the lock file, bpffs.
    for i in 0..=plan.up_runs {
        let pins = PinDir::new();
        let (up, down) = up_down(pins.path())?;
        if i > 0 {
            ups.push(up);
            downs.push(down);
        }
    }
    eprintln!(
        "  fw up: {} ms (fw down: {} ms)",
        fmt_ms(&ups),
        fmt_ms(&downs)
    );
    let tmp = TempDir::new("fwbench-strace");
    let trace = tmp.path().join("strace.txt");
    let pins = PinDir::new();
    let mut cmd = command("nsenter");
    cmd.arg(format!("--net={}", ns.display()))
        .args([
            "--",
            "strace",
            "-f",
            "-ttt",
            "-T",
            "-e",
            "trace=bpf,flock",
            "-o",
        ])
        .arg(&trace)
        .arg(&bin)
        .arg("--pin-dir")
        .arg(pins.path())
        .args(["up", veth]);
    let total_ms = checked(
        &mut cmd,
        "strace fw up (is strace installed? `cargo xtask setup`)",
    )?;
    checked(fw_command(ns, pins.path(), &[]).args(["down"]), "fw down")?;
    let text =
        std::fs::read_to_string(&trace).with_context(|| format!("reading {}", trace.display()))?;
    let mut split = parse_strace(&text);
    if split.prog_loads == 0 {
        bail!("no BPF_PROG_LOAD in the strace of fw up:\n{text}");
    }
    split.total_ms = total_ms;
    Ok(UpResult {
        wall: Spread::of(&ups),
        down: Spread::of(&downs),
        split,
    })
}

fn fmt_ms(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_of_fw_up() {
        let text = "\
4242  1764690000.100000 flock(3, LOCK_EX|LOCK_NB) = -1 EAGAIN (Resource temporarily unavailable) <0.000010>
4242  1764690000.120000 flock(3, LOCK_EX|LOCK_NB) = 0 <0.000010>
4242  1764690000.130000 bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_LRU_HASH, key_size=40}, 72) = 4 <0.020000>
4242  1764690000.150000 bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_ARRAY}, 72) = 5 <0.001000>
4242  1764690000.160000 bpf(BPF_PROG_LOAD, {prog_type=BPF_PROG_TYPE_XDP, insn_cnt=9000}, 148 <unfinished ...>
4243  1764690000.170000 bpf(BPF_OBJ_PIN, {pathname=\"/sys/fs/bpf/x\"}, 16) = 0 <0.000100>
4242  1764690000.500000 <... bpf resumed>) = 6 <0.340000>
4242  1764690000.510000 bpf(BPF_LINK_CREATE, {link_create={prog_fd=6}}, 64) = 7 <0.002000>
4242  1764690000.520000 +++ exited with 0 +++
";
        let s = parse_strace(text);
        assert_eq!(s.map_creates, 2);
        assert!((s.map_create_ms - 21.0).abs() < 1e-6, "{s:?}");
        assert_eq!(s.prog_loads, 1);
        assert!((s.prog_load_ms - 340.0).abs() < 1e-6);
        assert_eq!((s.attaches, s.other_bpf), (1, 1));
        assert!((s.attach_ms - 2.0).abs() < 1e-6);
        assert!((s.lock_wait_ms - 20.01).abs() < 1e-3, "{s:?}");
        // Without -f: no pid column.
        let plain = parse_strace("1764690000.1 bpf(BPF_PROG_LOAD, {}, 148) = 6 <0.250000>\n");
        assert_eq!(plain.prog_loads, 1);
        assert!((plain.prog_load_ms - 250.0).abs() < 1e-6);
    }
}
