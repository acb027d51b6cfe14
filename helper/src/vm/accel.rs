//! Choosing KVM or TCG, once, and remembering the answer.
//!
//! `/dev/kvm` existing proves little: on nested hosts `-cpu host` aborts and guests may hang.
//! KVM is chosen only when the VM users can open `/dev/kvm` (group `kvm`) and a probe QEMU with
//! KVM starts and keeps running; anything else means TCG. The policy can force either.

use super::qemu::Accelerator;
use palisade_dbus::policy::Accel;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The probe's verdict, computed on first need.
static DETECTED: OnceCell<Accelerator> = OnceCell::const_new();

/// The accelerator for `choice`.
pub async fn choose(choice: Accel) -> Accelerator {
    match choice {
        Accel::Kvm => Accelerator::Kvm,
        Accel::Tcg => Accelerator::Tcg,
        Accel::Auto => *DETECTED.get_or_init(detect).await,
    }
}

/// The supplementary group that grants `/dev/kvm`, if KVM is usable that way.
pub fn kvm_group() -> Option<u32> {
    let meta = std::fs::metadata("/dev/kvm").ok()?;
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid())).ok()??;
    (group.name == "kvm" && meta.permissions().mode() & 0o060 == 0o060).then_some(meta.gid())
}

async fn detect() -> Accelerator {
    if kvm_group().is_none() {
        tracing::info!("TCG: /dev/kvm is missing or not usable by VM users (group kvm)");
        return Accelerator::Tcg;
    }
    let probe = tokio::process::Command::new(super::qemu::QEMU)
        .args([
            "-accel",
            "kvm",
            "-machine",
            "q35",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-monitor", "none", "-serial", "none"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = probe else {
        return Accelerator::Tcg;
    };
    // A broken KVM aborts within moments (e.g. "failed to set MSR"); a working one keeps running.
    let verdict = match tokio::time::timeout(Duration::from_millis(1500), child.wait()).await {
        Err(_) => Accelerator::Kvm,
        Ok(_) => Accelerator::Tcg,
    };
    let _ = child.kill().await;
    tracing::info!("accelerator probe: {verdict:?}");
    verdict
}
