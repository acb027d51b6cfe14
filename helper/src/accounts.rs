//! The local identities Palisade relies on: one unprivileged system user per VM,
//! `palisade-vm-<name>`, created on demand and removed with the VM; and who is in which group.
//!
//! Both the VM supervisor (QEMU runs as this user) and the firewall (`meta skuid` selects the
//! VM's chain by this uid) need them, so they live here, below both.
//!
//! Group membership has one definition, [`groups_of`]: the groups NSS gives for the user
//! (`getgrouplist`, so LDAP/SSSD/extrausers users count as the machine's other lookups count
//! them). The bus checks ask it for the caller; the kernel's console sets ([`members_of`]) ask
//! it for every user NSS can list, so the two never disagree about a user NSS lists.
//!
//! The name comes from a validated `VmName`, so it is always a valid user name; `useradd` gets it
//! as one argument (no shell), as `userdel` does. Accounts have no home, no login shell and no password.

use palisade_dbus::policy::VmName;
use palisade_dbus::Error;
use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::process::Command;

/// A user's name and every group they are in, by name (primary and supplementary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub name: String,
    pub groups: BTreeSet<String>,
}

/// Who `uid` is and which groups they are in, as NSS answers; `None` for a uid NSS does not know.
pub fn groups_of(uid: u32) -> Option<Membership> {
    use nix::unistd::{getgrouplist, Group, Uid, User};
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    let name = std::ffi::CString::new(user.name.clone()).ok()?;
    let groups = getgrouplist(&name, user.gid)
        .unwrap_or_else(|_| vec![user.gid])
        .into_iter()
        .filter_map(|g| Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect();
    Some(Membership {
        name: user.name,
        groups,
    })
}

/// Every uid in group `name`, by [`groups_of`], among the users NSS lists and the group's listed
/// members. A directory that does not list its users (SSSD without enumeration) contributes
/// only the members its groups list; such users can be named one by one in the policy.
pub fn members_of(name: &str) -> Vec<u32> {
    let mut candidates: BTreeSet<u32> = every_uid();
    if let Ok(Some(group)) = nix::unistd::Group::from_name(name) {
        candidates.extend(
            group
                .mem
                .iter()
                .filter_map(|m| nix::unistd::User::from_name(m).ok().flatten())
                .map(|u| u.uid.as_raw()),
        );
    }
    candidates
        .into_iter()
        .filter(|&uid| groups_of(uid).is_some_and(|m| m.groups.contains(name)))
        .collect()
}

/// The uids of every user NSS lists (`getpwent`).
fn every_uid() -> BTreeSet<u32> {
    // getpwent walks one process-wide cursor: one walk at a time.
    static WALK: Mutex<()> = Mutex::new(());
    let _walk = WALK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut uids = BTreeSet::new();
    #[allow(unsafe_code)] // FFI to glibc; nix and std offer no wrapper for enumeration
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            // Only the number is read, before the next call reuses the entry.
            uids.insert((*entry).pw_uid);
        }
        libc::endpwent();
    }
    uids
}

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

/// Removes the VM's user and its group, once the VM is gone from the policy and nothing of it
/// runs (a later policy naming the VM again creates a new one). Nothing to do when there is none.
pub async fn remove_vm_user(vm: &VmName) -> Result<(), Error> {
    if vm_uid(vm).is_none() {
        return Ok(());
    }
    let user = vm.system_user();
    let out = Command::new("userdel")
        .arg(&user)
        .output()
        .await
        .map_err(|e| Error::Internal(format!("cannot run userdel: {e}")))?;
    match vm_uid(vm) {
        None => Ok(()),
        Some(_) => Err(Error::Internal(format!(
            "cannot remove the system user {user}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_its_primary_group_by_both_lookups() {
        let root = groups_of(0).unwrap_or_else(|| panic!("NSS does not know root"));
        assert_eq!(root.name, "root");
        assert!(root.groups.contains("root"), "{root:?}");
        // Primary membership: root is not listed in /etc/group's member field, yet counts.
        assert!(members_of("root").contains(&0));
        assert!(members_of("no-such-group-here").is_empty());
        assert!(groups_of(u32::MAX - 7).is_none());
    }
}
