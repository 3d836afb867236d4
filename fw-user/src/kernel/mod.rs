//! Everything that talks to the system: loading and pinning the eBPF
//! object, attaching it (XDP, tcx or clsact), its maps, netlink, the socket
//! table, interfaces, signals, /run/fw, and the few raw system calls.
pub(crate) mod batch;
pub mod blocks;
pub mod clock;
pub mod conntrack;
pub mod egress;
pub mod hooks;
pub mod iface;
pub mod link;
pub mod load;
pub mod maps;
pub(crate) mod netlink;
pub mod pins;
pub mod rundir;
pub mod running;
pub mod shutdown;
pub mod sockets;
pub mod sys;
pub mod xdp;
