//! Runtime policy changes (`fw allow`, `fw deny`): map writes, no reload.
use ipnet::IpNet;

use crate::{
    error::Result,
    loader::require_root,
    maps::FwMaps,
    pins::PinDir,
    policy::{Policy, PortRange, Proto},
};

/// What a change did.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    /// Ports whose state changed.
    pub changed: usize,
    pub policy: Policy,
}

pub fn allow(pins: &PinDir, proto: Proto, ranges: &[PortRange], from: &[IpNet]) -> Result<Change> {
    require_root("fw allow")?;
    let maps = FwMaps::open(pins)?;
    let old = maps.policy()?;
    let mut new = old.clone();
    let changed = ranges.iter().map(|r| new.allow(proto, *r, from)).sum();
    maps.write_policy(&old, &new)?;
    Ok(Change { changed, policy: new })
}

pub fn deny(pins: &PinDir, proto: Proto, ranges: &[PortRange]) -> Result<Change> {
    require_root("fw deny")?;
    let maps = FwMaps::open(pins)?;
    let old = maps.policy()?;
    let mut new = old.clone();
    let changed = ranges.iter().map(|r| new.deny(proto, *r)).sum();
    maps.write_policy(&old, &new)?;
    Ok(Change { changed, policy: new })
}

/// The policy as `fw ports` shows it.
pub fn render_ports(p: &Policy) -> String {
    let mut out = String::new();
    for proto in Proto::ALL {
        let ranges = p.ranges(proto);
        let list: Vec<String> = ranges
            .iter()
            .map(|(r, src)| match src {
                None => r.to_string(),
                Some(nets) => {
                    let n: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
                    format!("{r} from {}", n.join(","))
                }
            })
            .collect();
        out.push_str(&format!(
            "{proto}: {}\n",
            if list.is_empty() { "(none)".to_string() } else { list.join(" ") }
        ));
    }
    out
}

/// JSON for `fw ports --json`: `{"tcp": [{"ports": "22", "from": [...]}, ...], "udp": [...]}`.
pub fn ports_json(p: &Policy) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for proto in Proto::ALL {
        let list: Vec<serde_json::Value> = p
            .ranges(proto)
            .iter()
            .map(|(r, src)| {
                let mut e = serde_json::json!({"lo": r.lo, "hi": r.hi});
                if let Some(nets) = src {
                    e["from"] = nets.iter().map(|n| n.to_string()).collect();
                }
                e
            })
            .collect();
        obj.insert(proto.name().to_string(), list.into());
    }
    obj.into()
}
