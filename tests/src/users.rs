//! Real test users, created with the distribution's tools so that everything that looks a user up
//! (polkit's `isInGroup`, `setpriv --init-groups`, the helper's assignment checks) sees real
//! accounts.
//!
//! - `pal-alice`: the tests' polkit rules let her open consoles, operate VMs and read the policy.
//! - `pal-bob`: the tests' polkit rules refuse him every `io.palisade.*` action.
//! - `pal-admin`: a member of `palisade-admin`, so the shipped rule lets him do everything.
//!
//! Accounts are system accounts without a home or login shell: the harness enters them with
//! `setpriv`, never through a login. Creation is idempotent (an interrupted run leaves them
//! behind, and the next run reuses them); `scripts/cleanup.sh` or [`cleanup_test_users`] removes
//! them.

use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use nix::unistd::{Group, User};
use palisade_dbus::names::ADMIN_GROUP;

use crate::process::{describe, run_bounded};

/// Allowed `console.open`, `vm.operate` and `policy.read` by `tests/polkit/`.
pub const ALICE: &str = "pal-alice";
/// Refused every Palisade action by `tests/polkit/`.
pub const BOB: &str = "pal-bob";
/// Member of `palisade-admin`.
pub const ADMIN: &str = "pal-admin";
/// Every test user.
pub const TEST_USERS: [&str; 3] = [ALICE, BOB, ADMIN];
/// Prefix of the per-VM system users the helper creates.
pub const VM_USER_PREFIX: &str = "palisade-vm-";

/// A user's numeric identity, as `setpriv` needs it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory from the passwd entry (it need not exist).
    pub home: String,
}

/// Looks a user up in the passwd database.
pub fn account(name: &str) -> Result<Account> {
    let user = User::from_name(name)
        .with_context(|| format!("looking up user {name}"))?
        .ok_or_else(|| anyhow!("no user {name} (did ensure_test_users run?)"))?;
    Ok(Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir.to_string_lossy().into_owned(),
    })
}

/// The uid of `name`.
pub fn uid_of(name: &str) -> Result<u32> {
    Ok(account(name)?.uid)
}

/// Creates group `palisade-admin` and the three test users if they are missing, and makes sure
/// `pal-admin` is in `palisade-admin` (and the others are not).
pub fn ensure_test_users() -> Result<()> {
    if Group::from_name(ADMIN_GROUP)?.is_none() {
        tool(&["groupadd", "--system", ADMIN_GROUP])?;
    }
    for name in TEST_USERS {
        if User::from_name(name)?.is_none() {
            tool(&[
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])?;
        }
    }
    let members = Group::from_name(ADMIN_GROUP)?
        .ok_or_else(|| anyhow!("group {ADMIN_GROUP} vanished"))?
        .mem;
    if !members.iter().any(|m| m == ADMIN) {
        tool(&["usermod", "--append", "--groups", ADMIN_GROUP, ADMIN])?;
    }
    // A stale membership from someone's experiment would turn a "refused" test into a pass.
    for name in [ALICE, BOB] {
        if members.iter().any(|m| m == name) {
            tool(&["gpasswd", "--delete", name, ADMIN_GROUP])?;
        }
    }
    Ok(())
}

/// Removes the test users, their own groups and `palisade-admin`. Missing ones are skipped.
pub fn cleanup_test_users() -> Result<()> {
    for name in TEST_USERS {
        if User::from_name(name)?.is_some() {
            tool(&["userdel", name])?;
        }
        // userdel removes the user's own group only when USERGROUPS_ENAB is set; be sure.
        if Group::from_name(name)?.is_some() {
            tool(&["groupdel", name])?;
        }
    }
    if Group::from_name(ADMIN_GROUP)?.is_some() {
        tool(&["groupdel", ADMIN_GROUP])?;
    }
    Ok(())
}

/// Removes every `palisade-vm-*` user the helper created during the tests.
pub fn cleanup_vm_users() -> Result<()> {
    let out = run_bounded(
        Command::new("getent").arg("passwd"),
        Duration::from_secs(10),
    );
    if !out.status.success() {
        bail!("getent passwd failed: {}", describe(&out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for name in text.lines().filter_map(|line| line.split(':').next()) {
        if name.starts_with(VM_USER_PREFIX) {
            tool(&["userdel", name])?;
        }
    }
    Ok(())
}

/// Runs one of the shadow tools and turns a failure into an error with its output.
fn tool(argv: &[&str]) -> Result<()> {
    let out = run_bounded(
        Command::new(argv[0]).args(&argv[1..]),
        Duration::from_secs(30),
    );
    if !out.status.success() {
        bail!("{} failed: {}", argv.join(" "), describe(&out));
    }
    Ok(())
}
