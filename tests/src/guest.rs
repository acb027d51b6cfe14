//! The tiny real guest (tests/guest): building it, and putting its kernel beside a VM's disk.

use crate::env::TestEnv;
use crate::paths::workspace_dir;
use anyhow::{ensure, Context, Result};
use std::path::PathBuf;

/// Builds the guest (idempotent and quick when up to date) and returns its folder.
pub fn build_guest() -> Result<PathBuf> {
    let out = workspace_dir().join("target/guest");
    let status = std::process::Command::new("bash")
        .arg(workspace_dir().join("tests/guest/build.sh"))
        .arg(&out)
        .status()
        .context("running tests/guest/build.sh")?;
    ensure!(status.success(), "building the test guest failed");
    Ok(out)
}

/// Copies the guest's kernel and initrd into VM `vm`'s image folder (created by `vm create`).
pub fn install_guest_kernel(env: &TestEnv, vm: &str) -> Result<()> {
    let guest = build_guest()?;
    let dir = env.state_dir().join("images").join(vm);
    for file in ["vmlinuz", "initrd.img"] {
        std::fs::copy(guest.join(file), dir.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

/// A policy with VM `work` booting the tiny guest with `cmdline`; alice operates it.
pub fn vm_policy(cmdline: &str, operators: &str) -> String {
    vm_policy_with(cmdline, operators, "", "")
}

/// `vm_policy` with more `[settings]` lines and more sections at the end.
pub fn vm_policy_with(cmdline: &str, operators: &str, settings: &str, tail: &str) -> String {
    format!(
        r#"
[settings]
accel = "tcg"
{settings}

[[vm]]
name = "work"
memory = 256
cpus = 1
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0 quiet {cmdline}"
operators = {{ users = [{operators}] }}
console = {{ users = ["pal-alice"] }}
default = "drop"

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8443
{tail}
"#
    )
}
