//! How the port policy sits in the kernel, and how it moves from one policy
//! to another all or nothing.
//!
//! `PORTS` holds one `u32` per (proto, port): flags, and for a port open
//! only to some sources the id of its source set. `ALLOW_SRC` holds the
//! prefixes of each set, keyed by (set, family, prefix). A set is one
//! distinct source list, shared by every port restricted to it, so
//! `10000-19999 --from X` costs one trie entry.
//!
//! A change is planned in full before anything is written, and refused
//! when it does not fit. It is then written so that every packet is
//! decided by the old or the new policy, never a mix: the entries of new
//! sets first (no port refers to them yet), then each port switched with
//! one store, then the entries of sets no port uses any more. A write that
//! still fails (the kernel out of memory) is undone step by step, so the
//! previous policy is back exactly.
use std::collections::{BTreeMap, BTreeSet};

use fw_common::{
    port_entry, port_flags, port_set, MAX_SOURCE_SETS, PORT_ALLOW, PORT_ENTRIES,
    PORT_FROM_RESTRICTED,
};
use ipnet::IpNet;

use crate::{
    error::{Error, Result},
    model::policy::{Policy, PortRange, Proto},
};

/// What the kernel holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every `PORTS` entry, by index (protocol base + port).
    pub ports: Vec<u32>,
    /// The prefixes of each source set in `ALLOW_SRC`.
    pub sets: BTreeMap<u16, BTreeSet<IpNet>>,
    /// Keys in `ALLOW_SRC` (those of `sets` plus any fw cannot read).
    pub keys: usize,
    /// `ALLOW_SRC`'s max_entries.
    pub max_entries: u32,
}

impl Layout {
    /// An empty layout (a fresh load) of a trie with `max_entries`.
    pub fn empty(max_entries: u32) -> Layout {
        Layout {
            ports: vec![0; PORT_ENTRIES as usize],
            max_entries,
            ..Layout::default()
        }
    }

    /// The policy this layout enforces. A restricted port whose set has no
    /// entry admits nobody: it counts as closed.
    pub fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        for proto in Proto::EVERY {
            for port in proto.port_numbers() {
                let Some(&e) = self.ports.get((proto.map_base() + port as u32) as usize) else {
                    continue;
                };
                if port_flags(e) & PORT_ALLOW == 0 {
                    continue;
                }
                let range = PortRange::single(port);
                if port_flags(e) & PORT_FROM_RESTRICTED == 0 {
                    policy.allow(proto, range, &[]);
                } else if let Some(nets) = self.sets.get(&port_set(e)).filter(|s| !s.is_empty()) {
                    let nets: Vec<IpNet> = nets.iter().copied().collect();
                    policy.allow(proto, range, &nets);
                }
            }
        }
        policy
    }

    /// Source sets referred to by a restricted port.
    pub fn sets_in_use(&self) -> usize {
        self.ports
            .iter()
            .filter(|&&e| port_flags(e) & PORT_FROM_RESTRICTED != 0)
            .map(|&e| port_set(e))
            .collect::<BTreeSet<u16>>()
            .len()
    }
}

/// The writes that take the kernel from one layout to another, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Entries of new sets, written first.
    pub inserts: Vec<(u16, IpNet)>,
    /// (index, old value, new value) of every `PORTS` entry that changes.
    pub ports: Vec<(u32, u32, u32)>,
    /// Entries of sets no port uses any more, removed last.
    pub removes: Vec<(u16, IpNet)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.ports.is_empty() && self.removes.is_empty()
    }
}

/// Plans the move from `cur` to `new`, or says why it cannot fit (before
/// anything is written). Sets whose list is already in the kernel keep
/// their id, so ports that keep their sources are not touched.
pub fn plan(cur: &Layout, new: &Policy) -> Result<Change> {
    let wanted = new.source_sets();
    if wanted.len() > MAX_SOURCE_SETS as usize {
        return Err(Error::TooManySourceSets {
            needed: wanted.len(),
            max: MAX_SOURCE_SETS,
        });
    }
    let by_content: BTreeMap<&BTreeSet<IpNet>, u16> = cur
        .sets
        .iter()
        .filter(|(_, nets)| !nets.is_empty())
        .map(|(&id, nets)| (nets, id))
        .collect();
    // A fresh id must be one no port refers to, or its entries would open
    // that port before its switch.
    let mut taken: BTreeSet<u16> = cur.sets.keys().copied().collect();
    taken.extend(
        cur.ports
            .iter()
            .filter(|&&e| port_flags(e) & PORT_FROM_RESTRICTED != 0)
            .map(|&e| port_set(e)),
    );
    let mut fresh = (1..=MAX_SOURCE_SETS as u16).filter(|id| !taken.contains(id));
    let mut change = Change::default();
    let mut target = vec![0u32; PORT_ENTRIES as usize];
    for proto in Proto::EVERY {
        for port in new.ports(proto) {
            if new.sources(proto, port).is_none() {
                target[(proto.map_base() + port as u32) as usize] = port_entry(PORT_ALLOW, 0);
            }
        }
    }
    let mut kept: BTreeSet<u16> = BTreeSet::new();
    for (nets, ports) in &wanted {
        let id = match by_content.get(nets) {
            Some(&id) => id,
            None => {
                // More sets than free ids is caught above; ids held by
                // unreadable leftovers could still run out.
                let id = fresh.next().ok_or(Error::TooManySourceSets {
                    needed: wanted.len(),
                    max: MAX_SOURCE_SETS,
                })?;
                change.inserts.extend(nets.iter().map(|n| (id, *n)));
                id
            }
        };
        kept.insert(id);
        for &(proto, port) in ports {
            target[(proto.map_base() + port as u32) as usize] =
                port_entry(PORT_ALLOW | PORT_FROM_RESTRICTED, id);
        }
    }
    let needed = new.source_entries();
    let peak = cur.keys + change.inserts.len();
    if needed > cur.max_entries as usize || peak > cur.max_entries as usize {
        return Err(Error::SourceCapacity {
            needed,
            inserts: change.inserts.len(),
            in_use: cur.keys,
            max: cur.max_entries,
        });
    }
    for (i, (&old, &new)) in cur.ports.iter().zip(&target).enumerate() {
        if old != new {
            change.ports.push((i as u32, old, new));
        }
    }
    for (id, nets) in &cur.sets {
        if !kept.contains(id) {
            change.removes.extend(nets.iter().map(|n| (*id, *n)));
        }
    }
    Ok(change)
}

/// The kernel maps a [`Change`] is written to.
pub trait Backend {
    fn insert(&mut self, set: u16, net: &IpNet) -> Result<()>;
    /// Removes an entry; one that is not there is no error.
    fn remove(&mut self, set: u16, net: &IpNet) -> Result<()>;
    /// One `PORTS` entry, in one store.
    fn set_port(&mut self, index: u32, value: u32) -> Result<()>;
}

/// Writes `change` in order; on a failure undoes what was written, newest
/// first, so the kernel holds the layout it had before.
pub fn write(backend: &mut dyn Backend, change: &Change) -> Result<()> {
    let mut inserted = 0;
    let mut ported = 0;
    let mut removed = 0;
    let mut step = || -> Result<()> {
        for (set, net) in &change.inserts {
            backend.insert(*set, net)?;
            inserted += 1;
        }
        for &(i, _, new) in &change.ports {
            backend.set_port(i, new)?;
            ported += 1;
        }
        for (set, net) in &change.removes {
            backend.remove(*set, net)?;
            removed += 1;
        }
        Ok(())
    };
    let Err(e) = step() else {
        return Ok(());
    };
    let mut undo = || -> Result<()> {
        for (set, net) in change.removes[..removed].iter().rev() {
            backend.insert(*set, net)?;
        }
        for &(i, old, _) in change.ports[..ported].iter().rev() {
            backend.set_port(i, old)?;
        }
        for (set, net) in change.inserts[..inserted].iter().rev() {
            backend.remove(*set, net)?;
        }
        Ok(())
    };
    Err(match undo() {
        Ok(()) => Error::policy_write(e),
        Err(u) => Error::policy_rollback(e, u),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::parse_prefix;

    /// Kernel maps in memory, failing the `fail_at`-th write.
    struct Fake {
        layout: Layout,
        writes: usize,
        fail_at: Option<usize>,
        /// The policy seen after every write.
        seen: Vec<Policy>,
    }

    impl Fake {
        fn new(layout: Layout) -> Fake {
            Fake {
                layout,
                writes: 0,
                fail_at: None,
                seen: Vec::new(),
            }
        }

        fn tick(&mut self) -> Result<()> {
            self.writes += 1;
            if self.fail_at == Some(self.writes) {
                return Err(Error::io("fake", std::io::Error::from_raw_os_error(12)));
            }
            Ok(())
        }

        fn after(&mut self) {
            self.seen.push(self.layout.policy());
        }
    }

    impl Backend for Fake {
        fn insert(&mut self, set: u16, net: &IpNet) -> Result<()> {
            self.tick()?;
            if self.layout.keys >= self.layout.max_entries as usize {
                return Err(Error::io("fake", std::io::Error::from_raw_os_error(28)));
            }
            if self.layout.sets.entry(set).or_default().insert(*net) {
                self.layout.keys += 1;
            }
            self.after();
            Ok(())
        }
        fn remove(&mut self, set: u16, net: &IpNet) -> Result<()> {
            self.tick()?;
            if let Some(s) = self.layout.sets.get_mut(&set) {
                if s.remove(net) {
                    self.layout.keys -= 1;
                }
                if s.is_empty() {
                    self.layout.sets.remove(&set);
                }
            }
            self.after();
            Ok(())
        }
        fn set_port(&mut self, index: u32, value: u32) -> Result<()> {
            self.tick()?;
            self.layout.ports[index as usize] = value;
            self.after();
            Ok(())
        }
    }

    fn net(s: &str) -> IpNet {
        parse_prefix(s).unwrap()
    }

    fn r(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    /// Applies `p` to an empty layout of `max` entries.
    fn loaded(p: &Policy, max: u32) -> Layout {
        let mut f = Fake::new(Layout::empty(max));
        let change = plan(&f.layout, p).unwrap();
        write(&mut f, &change).unwrap();
        f.layout
    }

    fn policies() -> (Policy, Policy) {
        let (a, b, c) = (
            net("198.51.100.0/24"),
            net("2001:db8::/32"),
            net("192.0.2.7"),
        );
        let mut old = Policy::seed();
        old.allow(Proto::Tcp, r("10000-10019"), &[a]);
        old.allow(Proto::Tcp, r("443"), &[a, b]);
        old.allow(Proto::Udp, r("53"), &[c]);
        let mut new = Policy::seed();
        new.deny(Proto::Tcp, r("22"));
        new.allow(Proto::Tcp, r("22"), &[a]);
        new.allow(Proto::Tcp, r("10000-10010"), &[a, c]);
        new.allow(Proto::Tcp, r("443"), &[a, b]);
        new.allow(Proto::Udp, r("53"), &[]);
        (old, new)
    }

    #[test]
    fn a_range_costs_one_entry_per_prefix() {
        let (old, _) = policies();
        let l = loaded(&old, 16);
        // {a} for 20 ports, {a, b} for 443, {c} for 53.
        assert_eq!(l.keys, 4);
        assert_eq!(l.sets.len(), 3);
        assert_eq!(l.sets_in_use(), 3);
        assert_eq!(l.policy(), old);
        assert_eq!(old.source_entries(), 4);
    }

    #[test]
    fn moves_between_policies_and_keeps_shared_sets() {
        let (old, new) = policies();
        let l = loaded(&old, 16);
        let change = plan(&l, &new).unwrap();
        // {a, b} of 443 stays as it is: not rewritten.
        let set_443 = port_set(l.ports[443]);
        assert!(change.inserts.iter().all(|(s, _)| *s != set_443));
        assert!(change.removes.iter().all(|(s, _)| *s != set_443));
        assert!(change.ports.iter().all(|(i, _, _)| *i != 443));
        let mut f = Fake::new(l);
        write(&mut f, &change).unwrap();
        assert_eq!(f.layout.policy(), new);
        // {c} (udp 53) and {a} of the range are gone, {a} is new for 22.
        assert_eq!(f.layout.keys, new.source_entries());
        assert_eq!(plan(&f.layout, &new).unwrap(), Change::default());
    }

    #[test]
    fn every_packet_sees_the_old_or_the_new_policy() {
        let (old, new) = policies();
        let mut f = Fake::new(loaded(&old, 16));
        let change = plan(&f.layout, &new).unwrap();
        write(&mut f, &change).unwrap();
        let peers = ["198.51.100.9", "2001:db8::1", "192.0.2.7", "203.0.113.1"];
        let probes: Vec<(Proto, u16)> = [22, 80, 443, 10000, 10010, 10011, 10019]
            .map(|p| (Proto::Tcp, p))
            .into_iter()
            .chain([(Proto::Udp, 53), (Proto::Udp, 80)])
            .collect();
        for (n, mid) in f.seen.iter().enumerate() {
            for &(proto, port) in &probes {
                for peer in peers {
                    let ip = peer.parse().unwrap();
                    let m = mid.admits(proto, port, ip);
                    assert!(
                        m == old.admits(proto, port, ip) || m == new.admits(proto, port, ip),
                        "after write {n}: {proto} {port} from {peer} is {m}, neither policy says so"
                    );
                }
            }
        }
    }

    #[test]
    fn a_failed_write_is_undone_exactly() {
        let (old, new) = policies();
        let l = loaded(&old, 16);
        let change = plan(&l, &new).unwrap();
        let total = change.inserts.len() + change.ports.len() + change.removes.len();
        assert!(total > 3, "{change:?}");
        for fail_at in 1..=total {
            let mut f = Fake::new(l.clone());
            f.fail_at = Some(fail_at);
            let e = write(&mut f, &change).unwrap_err();
            assert!(matches!(e, Error::PolicyWrite { .. }), "{fail_at}: {e}");
            assert_eq!(
                f.layout, l,
                "write {fail_at} failed: the old layout is back"
            );
        }
    }

    #[test]
    fn refuses_what_does_not_fit_before_writing() {
        let (old, new) = policies();
        let l = loaded(&old, 4);
        // The new policy needs 4 entries, but 2 of the 4 in use go only
        // after the switch: 6 at the peak.
        let e = plan(&l, &new).unwrap_err().to_string();
        assert!(e.contains("[capacity] source_prefixes"), "{e}");
        assert!(e.contains("nothing was changed"), "{e}");
        let mut big = Policy::default();
        let many: Vec<IpNet> = (0..5).map(|i| net(&format!("192.0.2.{i}"))).collect();
        big.allow(Proto::Tcp, r("1-65535"), &many);
        let e = plan(&Layout::empty(4), &big).unwrap_err().to_string();
        assert!(e.contains("needs 5 source-prefix entries"), "{e}");
        assert!(plan(&Layout::empty(5), &big).is_ok());
    }
}
