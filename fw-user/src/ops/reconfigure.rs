//! Changing what a loaded fw runs, without reloading it.
use fw_common::CFG_DRY_RUN;

use crate::{
    error::Result,
    kernel::{maps::FwMaps, pins::PinDir},
    model::config::Config,
};

/// Replaces the running policy and settings with `cfg` (no reload). The
/// caller holds [`crate::ops::lock`].
pub fn apply_config(pins: &PinDir, cfg: &Config) -> Result<()> {
    let maps = FwMaps::open(pins)?;
    let mut k = cfg.kernel();
    // Keep timeouts the running instance was loaded with.
    let running = maps.config()?;
    k.ct_tcp_syn_ns = running.ct_tcp_syn_ns;
    k.ct_tcp_established_ns = running.ct_tcp_established_ns;
    k.ct_tcp_closing_ns = running.ct_tcp_closing_ns;
    k.ct_udp_ns = running.ct_udp_ns;
    k.ct_udp_stream_ns = running.ct_udp_stream_ns;
    k.ct_icmp_ns = running.ct_icmp_ns;
    // Never a window where a packet both configs pass is rejected: the
    // policy diff leaves ports open in both untouched (write_policy), and
    // dry run goes on before the policy narrows, off only after it widened.
    let dry_run_first = k.flags & CFG_DRY_RUN != 0 && running.flags & CFG_DRY_RUN == 0;
    // The block sets first: replacing them undoes itself on a failure, so
    // a refused set (too many prefixes) leaves everything as it was. The
    // lockout guard judged them before (`fw apply`, `fw up --config`).
    let old_sets = crate::kernel::running::block_sets(&maps)?;
    let running_policy = maps.policy()?;
    crate::ops::block::replace_all(&maps, &cfg.block_sets, None)?;
    if dry_run_first {
        maps.set_config(&k)?;
    }
    if let Err(e) = maps.write_policy(&cfg.policy) {
        // The policy is back as it was (or the error says it is not): so
        // are the settings.
        if dry_run_first {
            let _ = maps.set_config(&running);
        }
        let _ = crate::ops::block::replace_all(&maps, &old_sets, None);
        return Err(e);
    }
    // The limits last: they only narrow what the policy lets in, and the
    // model checked them.
    let old_limits: Vec<_> = maps.limits()?.into_iter().map(|(_, l)| l).collect();
    if let Err(e) = maps.write_limits(&cfg.limits) {
        let _ = maps.write_policy(&running_policy);
        let _ = crate::ops::block::replace_all(&maps, &old_sets, None);
        let _ = maps.write_limits(&old_limits);
        return Err(e);
    }
    if !dry_run_first {
        maps.set_config(&k)?;
    }
    let mut meta = maps.meta()?;
    meta.reject_rate = cfg.reject_rate;
    meta.reject_burst = cfg.reject_burst;
    maps.set_meta(&meta)
}
