//! Operations that change fw: bring it up and down, change its policy
//! (`allow`/`deny`, `apply`, `confirm`), write the config file back, all
//! under one lock, guarded against locking the operator out.
pub mod apply;
pub mod block;
pub mod conntrack;
pub mod control;
pub mod foreground;
pub mod guard;
pub mod limit;
pub mod lock;
pub mod persist;
pub mod reconfigure;
pub mod up_down;
