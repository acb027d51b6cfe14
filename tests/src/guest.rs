//! The tiny real guest (tests/guest): building it, and putting its kernel beside a VM's disk.

use crate::env::TestEnv;
use crate::paths::workspace_dir;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

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

/// The kernel command line of the installer ISO's boot entry: the guest writes the marker
/// `PALISADE-MARKER installed` to the raw disk it is installing to, then powers off.
pub const INSTALLER_CMDLINE: &str =
    "console=ttyS0 quiet pal.net=0 pal.disk=write pal.tag=installed";

/// Builds a bootable installer ISO from the tiny guest at `iso` (isolinux from Debian's
/// `isolinux` and `syslinux-common`, written by `xorriso`): BIOS boots its CD-ROM, isolinux runs
/// the guest's kernel with [`INSTALLER_CMDLINE`] at once (no prompt, no timeout).
pub fn build_installer_iso(iso: &Path) -> Result<()> {
    let guest = build_guest()?;
    let root = iso.with_extension("root");
    let _ = std::fs::remove_dir_all(&root);
    let boot = root.join("isolinux");
    std::fs::create_dir_all(&boot).with_context(|| format!("creating {}", boot.display()))?;
    for file in ["vmlinuz", "initrd.img"] {
        std::fs::copy(guest.join(file), root.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    for (from, name) in [
        ("/usr/lib/ISOLINUX/isolinux.bin", "isolinux.bin"),
        ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "ldlinux.c32"),
    ] {
        std::fs::copy(from, boot.join(name))
            .with_context(|| format!("copying {from} (packages isolinux, syslinux-common)"))?;
    }
    std::fs::write(
        boot.join("isolinux.cfg"),
        format!(
            "DEFAULT install\nPROMPT 0\nTIMEOUT 0\nLABEL install\n  KERNEL /vmlinuz\n  \
             APPEND initrd=/initrd.img {INSTALLER_CMDLINE}\n"
        ),
    )
    .context("writing isolinux.cfg")?;
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(iso)
        .args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-V",
            "PALINSTALL",
        ])
        .arg(&root)
        .output()
        .context("running xorriso (package xorriso)")?;
    ensure!(
        out.status.success(),
        "xorriso failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&root).context("removing the ISO's tree")?;
    Ok(())
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
