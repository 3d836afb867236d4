//! Running the stateful cases of `flows` against a rig: the server opens its
//! flows and the peer its own, the flows' packets are captured, then every
//! case's follow-ups go out and both the peer's view (answers) and the
//! host's (socket state, ICMP counters) are recorded.
use std::{collections::BTreeSet, sync::mpsc, thread, time::Duration};

use crate::probe::in_netns;

use crate::{
    agent::Agent,
    corpus::Env,
    flows::FlowCase,
    pipeline::SETTLE,
    twin::{Snmp, Twin},
    wire::{answer, probe_keys, Wire},
};

/// How long the flows' first packets may take to show up.
const CAPTURE: Duration = Duration::from_millis(300);
/// Settle time of a case run alone (its counter is read after it).
const ALONE: Duration = Duration::from_millis(40);

pub fn run(twin: &Twin, cases: &[FlowCase]) -> Vec<BTreeSet<String>> {
    let rig = &twin.rig;
    let env = Env {
        cli_mac: twin.cli_mac,
        srv_mac: twin.srv_mac,
    };
    let mut snmp = Snmp::open(rig.pair.srv_path());
    let iface = rig.pair.cli_veth().to_string();
    let cli = rig.pair.cli_path().to_path_buf();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let prober = s.spawn(move || {
            in_netns(&cli, move || {
                let wire = Wire::open(&iface).expect("raw socket on the client veth");
                let _ = wire.collect(Duration::from_millis(20));
                ready_tx.send(()).expect("main thread waits");
                go_rx.recv().expect("the server opened its flows");
                probe(&wire, &env, cases, &mut snmp)
            })
            .expect("setns")
        });
        ready_rx.recv().expect("prober ready");
        let opens = cases
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.open().map(|o| (i, o)))
            .collect();
        let agent = Agent::open(rig.pair.srv_path(), opens);
        go_tx.send(()).expect("prober waits");
        let mut seen = prober.join().expect("prober thread");
        for (i, host) in agent.observe() {
            seen[i].insert(host);
        }
        seen
    })
}

fn probe(wire: &Wire, env: &Env, cases: &[FlowCase], snmp: &mut Snmp) -> Vec<BTreeSet<String>> {
    let mut seen = vec![BTreeSet::new(); cases.len()];
    for c in cases {
        if let Some(f) = c.peer_opener(env) {
            wire.send(&f);
        }
    }
    // The flows' packets, by case.
    let mut flow: Vec<Option<Vec<u8>>> = vec![None; cases.len()];
    for f in wire.collect(CAPTURE) {
        for (i, c) in cases.iter().enumerate() {
            if flow[i].is_none() {
                flow[i] = c.is_flow_packet(&f);
            }
        }
    }
    let mut steps = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        match &flow[i] {
            Some(pkt) => steps.push((i, c.follow_ups(env, pkt))),
            None => {
                seen[i].insert("no flow packet".to_string());
            }
        }
    }
    let (alone, together): (Vec<_>, Vec<_>) = steps
        .into_iter()
        .partition(|(i, _)| cases[*i].observe_icmp.is_some());
    let claim = |frames: &[Vec<u8>], answers: Vec<Vec<u8>>, seen: &mut BTreeSet<String>| {
        let keys: Vec<_> = frames.iter().flat_map(|f| probe_keys(f)).collect();
        for a in answers {
            if let Some((label, key)) = answer(&a) {
                if keys.contains(&key) {
                    seen.insert(label);
                }
            }
        }
    };
    for (_, frames) in &together {
        for f in frames {
            wire.send(f);
        }
    }
    let answers = wire.collect(SETTLE * 2);
    for (i, frames) in &together {
        claim(frames, answers.clone(), &mut seen[*i]);
    }
    for (i, frames) in &alone {
        let ty = cases[*i].observe_icmp.unwrap_or(0);
        let counter = cases[*i].icmp_counter(ty);
        let before = snmp.get(&counter);
        for f in frames {
            wire.send(f);
        }
        let answers = wire.collect(ALONE);
        let delta = snmp.get(&counter) - before;
        seen[*i].insert(format!("host:+{delta} {counter}"));
        claim(frames, answers, &mut seen[*i]);
    }
    seen
}
