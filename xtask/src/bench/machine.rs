//! The machine a run measured: CPU, kernel, the CPU vulnerabilities'
//! mitigations (calls and returns cost more under some, which moves the
//! ratio to xdp-filter) and the versions of the peers' tools.

use std::{fs, path::Path, process::Command};

use serde_json::{json, Map, Value};

pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub load: String,
    /// `(name, state)` per file of /sys/devices/system/cpu/vulnerabilities, by name.
    pub vulnerabilities: Vec<(String, String)>,
    /// `(tool, version line)` of the peers' tools (or why there is none).
    pub tools: Vec<(String, String)>,
}

const VULN_DIR: &str = "/sys/devices/system/cpu/vulnerabilities";

/// The tools whose version a run depends on, and how to ask them.
const TOOLS: [(&str, &[&str]); 5] = [
    // `load --version` prints the version and exits (status 1, no load).
    ("xdp-filter", &["load", "--version"]),
    ("iptables", &["-V"]),
    ("nft", &["-v"]),
    ("iperf3", &["--version"]),
    ("strace", &["-V"]),
];

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_string());
        Machine {
            cpu_model: cpu_model(&cpuinfo),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into()),
            load: read("/proc/loadavg")
                .map(|l| load_of(&l))
                .unwrap_or_default(),
            vulnerabilities: read_vulnerabilities(Path::new(VULN_DIR)),
            tools: TOOLS
                .iter()
                .map(|(t, args)| (t.to_string(), tool_version(t, args)))
                .collect(),
        }
    }

    pub fn json(&self) -> Value {
        let pairs = |v: &[(String, String)]| {
            Value::Object(
                v.iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        json!({
            "cpu_model": self.cpu_model,
            "cpus": self.cpus,
            "kernel": self.kernel,
            "load": self.load,
            "vulnerabilities": pairs(&self.vulnerabilities),
            "tools": pairs(&self.tools),
        })
    }

    /// The header's lines after the first: tools, then one line per vulnerability.
    pub fn details(&self) -> String {
        let mut s = String::from("tools: ");
        let tools: Vec<String> = self
            .tools
            .iter()
            .map(|(t, v)| format!("{t}: {v}"))
            .collect();
        s.push_str(&tools.join("; "));
        s.push_str("\nCPU vulnerabilities (/sys/devices/system/cpu/vulnerabilities):\n");
        for (name, state) in &self.vulnerabilities {
            s.push_str(&format!("  {name}: {state}\n"));
        }
        s
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The three load averages of /proc/loadavg.
fn load_of(loadavg: &str) -> String {
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_vulnerabilities(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![("(none)".into(), format!("{} unreadable", dir.display()))];
    };
    let files = entries.flatten().map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(e.path()).unwrap_or_else(|e| format!("unreadable: {e}"));
        (name, text)
    });
    vulnerabilities(files)
}

/// `(name, file text)` pairs as `(name, state)`, sorted by name.
pub fn vulnerabilities(files: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = files
        .into_iter()
        .map(|(n, t)| (n, t.trim().to_string()))
        .collect();
    v.sort();
    v
}

/// The first non-empty line a tool prints about its version.
fn tool_version(tool: &str, args: &[&str]) -> String {
    match Command::new(tool).args(args).output() {
        Ok(out) => version_line(&out.stdout)
            .or_else(|| version_line(&out.stderr))
            .unwrap_or_else(|| "no version printed".into()),
        Err(e) => format!("not found ({e})"),
    }
}

fn version_line(out: &[u8]) -> Option<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpuinfo_vulnerabilities_and_versions() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R45\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 9R45\n";
        assert_eq!(cpu_model(cpuinfo), "AMD EPYC 9R45");
        assert_eq!(cpu_model("processor : 0\n"), "unknown CPU");
        let files = [
            (
                "spectre_v2",
                "Mitigation: Retpolines; IBPB: conditional; STIBP: disabled\n",
            ),
            ("meltdown", "Not affected\n"),
            ("spec_rstack_overflow", "Mitigation: Safe RET\n"),
        ]
        .map(|(n, t)| (n.to_string(), t.to_string()));
        let v = vulnerabilities(files);
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["meltdown", "spec_rstack_overflow", "spectre_v2"]);
        assert_eq!(v[1].1, "Mitigation: Safe RET");
        assert_eq!(load_of("2.16 1.27 0.54 3/110 10340\n"), "2.16 1.27 0.54");
        assert_eq!(
            version_line(b"\nxdp-filter version 1.3.1 using libbpf version 1.1.2\n").as_deref(),
            Some("xdp-filter version 1.3.1 using libbpf version 1.1.2")
        );
        let m = Machine {
            cpu_model: "X".into(),
            cpus: 2,
            kernel: "6.1".into(),
            load: "0 0 0".into(),
            vulnerabilities: v,
            tools: vec![("nft".into(), "nftables v1.0.6".into())],
        };
        assert!(m
            .details()
            .contains("  spec_rstack_overflow: Mitigation: Safe RET\n"));
        assert_eq!(m.json()["vulnerabilities"]["meltdown"], "Not affected");
        assert_eq!(m.json()["tools"]["nft"], "nftables v1.0.6");
    }
}
