//! Builds the eBPF object (fw-ebpf, nightly + bpf-linker) so the `fw` binary
//! can embed it.
use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let pkg = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "fw-ebpf")
        .ok_or_else(|| anyhow!("fw-ebpf package not found in the workspace"))?;
    let root = pkg
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("fw-ebpf manifest has no parent dir"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: pkg.name.as_str(),
            root_dir: root.as_str(),
            // The rig programs only when fw-user is built with its `rig`
            // feature (`cargo xtask bench`).
            features: if std::env::var_os("CARGO_FEATURE_RIG").is_some() {
                &["rig"]
            } else {
                &[]
            },
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
