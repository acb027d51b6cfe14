//! What the helper needs from the machine, checked once at start so that a missing piece is one
//! clear sentence and an exit (systemd shows it), never a panic or a failure at the first apply.
//!
//! Required: the `nft` and `conntrack` programs (the structure transaction and cutting refused
//! connections) and the kernel's nftables over netlink. QEMU is needed only for VMs: without it
//! the firewall still works, a warning says so at start and starting a VM says so again.

use crate::vm::qemu::QEMU;
use palisade_nfnetlink::{NftSocket, TableFamily};
use std::path::{Path, PathBuf};

/// A program the helper runs, and the Debian package that has it.
struct Program {
    name: &'static str,
    package: &'static str,
    why: &'static str,
}

const REQUIRED: [Program; 2] = [
    Program {
        name: "nft",
        package: "nftables",
        why: "it loads the firewall's rules",
    },
    Program {
        name: "conntrack",
        package: "conntrack",
        why: "it cuts connections a new policy no longer allows",
    },
];

/// Checks what the helper cannot work without; the error is the sentence to show.
pub fn check() -> anyhow::Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for program in &REQUIRED {
        if find_program(program.name, &path).is_none() {
            anyhow::bail!(
                "the program {} is not installed (or not on PATH), and the helper needs it: {}; \
                 install the {} package",
                program.name,
                program.why,
                program.package
            );
        }
    }
    let mut socket = NftSocket::open().map_err(|e| {
        anyhow::anyhow!("cannot open a netlink socket to the kernel's firewall: {e}")
    })?;
    socket
        .table_exists(TableFamily::Inet, crate::firewall::ruleset::TABLE)
        .map_err(|e| {
            anyhow::anyhow!(
                "the kernel does not answer nftables requests ({e}); Palisade needs a kernel with \
                 nf_tables (Linux 5.10 or later with CONFIG_NF_TABLES_INET)"
            )
        })?;
    if find_program(QEMU, &path).is_none() {
        tracing::warn!(
            "{QEMU} is not installed: the firewall works, but virtual machines cannot start until \
             the qemu-system-x86 package is installed"
        );
    }
    Ok(())
}

/// The executable `name` in one of the folders of `path` (a PATH value).
fn find_program(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_and_only_there() {
        let path = std::ffi::OsString::from("/nonexistent:/bin:/usr/bin");
        assert_eq!(find_program("sh", &path), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program("no-such-program-here", &path), None);
        assert_eq!(
            find_program("sh", std::ffi::OsStr::new("/nonexistent")),
            None
        );
        // A folder is not a program.
        assert_eq!(find_program("bin", std::ffi::OsStr::new("/")), None);
    }
}
