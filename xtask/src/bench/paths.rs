//! fw's verdict paths as the per-path benchmark runs them: a frame that
//! takes the path, the action and counter reason it must end in, the
//! settings it needs and how it can be timed.

use anyhow::Result;
use fw_common::{FlowKey, Reason};
use fw_testkit::{CLI_V4, CLI_V6};
use fw_user::model::{
    config::{Config, MAX_RATE},
    policy::{parse_prefix, PortRange, Proto},
};

use super::{
    frames::{self, CLOSED_PORT, OPEN_PORT, PEER_PORT},
    testrun::{flow_key, XDP_DROP, XDP_PASS, XDP_TX},
};

/// The settings a path needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Default,
    /// A reject rate so high the bucket never empties (every reject is answered).
    Unlimited,
    /// Rate 0 and the bucket drained first (every reject is rate-limited).
    Drained,
    DryRun,
    /// The open port only from some sources (the peers' networks among 256
    /// other prefixes): the source-set lookup of `--from` ports.
    Restricted,
    /// The open port only from 256 prefixes without the peers, and the
    /// reject bucket drained: a refused source, timed in bulk.
    RestrictedDrained,
}

impl Setting {
    pub fn config(self) -> Config {
        let mut c = Config::default();
        match self {
            Setting::Default => {}
            Setting::Unlimited => {
                c.reject_rate = MAX_RATE;
                c.reject_burst = MAX_RATE;
            }
            Setting::Drained => {
                // A bucket that never refills (not a valid user setting,
                // which is the point): every reject is rate-limited.
                c.reject_rate = 0;
                c.reject_burst = 0;
            }
            Setting::DryRun => c.dry_run = true,
            Setting::Restricted | Setting::RestrictedDrained => {
                let mut from: Vec<String> = (0..256).map(|i| format!("10.{i}.0.0/16")).collect();
                if self == Setting::Restricted {
                    from.extend([format!("{CLI_V4}/32"), format!("{CLI_V6}/128")]);
                } else {
                    c.reject_rate = 0;
                    c.reject_burst = 0;
                }
                let nets: Vec<_> = from
                    .iter()
                    .map(|s| parse_prefix(s).expect("a valid prefix"))
                    .collect();
                let port = PortRange::single(OPEN_PORT);
                c.policy.deny(Proto::Tcp, port);
                c.policy.allow(Proto::Tcp, port, &nets);
            }
        }
        c
    }

    /// The reject bucket must be emptied before each timed run.
    pub fn drained(self) -> bool {
        matches!(self, Setting::Drained | Setting::RestrictedDrained)
    }
}

/// How a path can be timed (see `testrun`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Bulk,
    PerCall,
}

pub struct Spec {
    pub name: String,
    pub frame: Vec<u8>,
    pub reason: Reason,
    pub action: u32,
    pub setting: Setting,
    pub method: Method,
    /// Conntrack entry to remove after each call (the `port` path records one).
    pub forget: Option<FlowKey>,
}

impl Spec {
    fn bulk(name: String, frame: Vec<u8>, reason: Reason, action: u32) -> Spec {
        Spec {
            name,
            frame,
            reason,
            action,
            setting: Setting::Default,
            method: Method::Bulk,
            forget: None,
        }
    }

    fn with(mut self, setting: Setting) -> Spec {
        self.setting = setting;
        self
    }

    fn per_call(mut self, forget: Option<FlowKey>) -> Spec {
        self.method = Method::PerCall;
        self.forget = forget;
        self
    }
}

/// Every path, v4 and v6 where both exist. The established and related
/// paths need the flow peer:PEER_PORT -> host:OPEN_PORT in conntrack.
pub fn all() -> Result<Vec<Spec>> {
    use Reason::*;
    let mut v = vec![
        Spec::bulk("non_ip".into(), frames::arp_request(), NonIp, XDP_PASS),
        Spec::bulk(
            "ndp".into(),
            frames::neighbor_solicitation()?,
            Ndp,
            XDP_PASS,
        ),
    ];
    for v6 in [false, true] {
        let name = |path: &str| format!("{path}_{}", if v6 { "v6" } else { "v4" });
        let closed = frames::syn(v6, PEER_PORT, CLOSED_PORT)?;
        // Another source port than the established flow's: a new flow.
        let new_port = PEER_PORT + 1;
        let new_flow = flow_key(frames::peer(v6), frames::host(v6), new_port, OPEN_PORT);
        let unknown_quote = frames::icmp_error(v6, PEER_PORT + 999)?;
        v.extend([
            Spec::bulk(
                name("established"),
                frames::established_ack(v6, PEER_PORT)?,
                Established,
                XDP_PASS,
            ),
            Spec::bulk(
                name("related"),
                frames::icmp_error(v6, PEER_PORT)?,
                Related,
                XDP_PASS,
            ),
            Spec::bulk(
                name("port"),
                frames::syn(v6, new_port, OPEN_PORT)?,
                Port,
                XDP_PASS,
            )
            .per_call(Some(new_flow)),
            Spec::bulk(
                name("port_from"),
                frames::syn(v6, new_port, OPEN_PORT)?,
                Port,
                XDP_PASS,
            )
            .with(Setting::Restricted)
            .per_call(Some(new_flow)),
            Spec::bulk(name("reject"), closed.clone(), Reject, XDP_TX)
                .with(Setting::Unlimited)
                .per_call(None),
            Spec::bulk(
                name("reject_ratelimited"),
                closed.clone(),
                RejectRatelimited,
                XDP_DROP,
            )
            .with(Setting::Drained),
            Spec::bulk(
                name("port_from_refused"),
                frames::syn(v6, new_port, OPEN_PORT)?,
                RejectRatelimited,
                XDP_DROP,
            )
            .with(Setting::RestrictedDrained),
            Spec::bulk(name("reject_silent"), unknown_quote, RejectSilent, XDP_DROP),
            Spec::bulk(
                name("malformed"),
                frames::malformed(v6)?,
                Malformed,
                XDP_DROP,
            ),
            Spec::bulk(name("martian"), frames::martian(v6)?, Martian, XDP_DROP),
            Spec::bulk(
                name("fragment"),
                frames::later_fragment(v6)?,
                Fragment,
                XDP_DROP,
            ),
            Spec::bulk(name("would_reject"), closed, WouldReject, XDP_PASS).with(Setting::DryRun),
        ]);
    }
    Ok(v)
}
