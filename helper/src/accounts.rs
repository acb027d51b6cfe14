//! The local identities Palisade relies on: one unprivileged system user per VM,
//! `palisade-vm-<name>`, created on demand.
//!
//! Both the VM supervisor (QEMU runs as this user) and the firewall (`meta skuid` selects the
//! VM's chain by this uid) need them, so they live here, below both.
//!
//! The name comes from a validated `VmName`, so it is always a valid user name; `useradd` gets it
//! as one argument (no shell). Accounts have no home, no login shell and no password.

use palisade_dbus::policy::VmName;
use palisade_dbus::Error;
use tokio::process::Command;

/// The uid of the VM's user, if it exists.
pub fn vm_uid(vm: &VmName) -> Option<u32> {
    nix::unistd::User::from_name(&vm.system_user())
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// The uid of the VM's user, creating the user first if needed.
pub async fn ensure_vm_user(vm: &VmName) -> Result<u32, Error> {
    if let Some(uid) = vm_uid(vm) {
        return Ok(uid);
    }
    let user = vm.system_user();
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--comment",
            "Palisade virtual machine",
            &user,
        ])
        .output()
        .await
        .map_err(|e| Error::Internal(format!("cannot run useradd: {e}")))?;
    // Another call may have created it in the meantime; the lookup decides.
    vm_uid(vm).ok_or_else(|| {
        Error::Internal(format!(
            "cannot create the system user {user}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}
