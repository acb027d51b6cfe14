//! A throwaway network namespace that every process of a test runs in.
//!
//! Invariants:
//! - The host's firewall and interfaces are never touched: the helper, `nft` and every command a
//!   test runs enter this namespace through `ip netns exec`, which also gives each of them a
//!   private mount namespace (so `/sys` matches the netns).
//! - Everything a test starts lives in here, so "kill every pid in the namespace" is a complete
//!   cleanup, also for processes a test spawned and forgot (a listener, a QEMU). The
//!   `scripts/cleanup.sh` sweep relies on the same fact after a crashed run.
//! - Dropping a [`Netns`] kills its processes and deletes it; both are bounded in time.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::{describe, run_bounded, wait_until};

/// Prefix of every namespace the harness creates; `scripts/cleanup.sh` removes leftovers by it.
pub const NETNS_PREFIX: &str = "pal-";

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `/etc/netns/<name>`: `ip netns exec` bind-mounts each file in it over the one of the same
    /// name in `/etc` for the processes it starts (so a test can give only the helper another
    /// `nsswitch.conf`, say). Removed with the namespace.
    pub fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(&self.name)
    }

    /// Creates `pal-<suffix>` with `lo` up (loopback is down in a fresh namespace, and tests
    /// connect to 127.0.0.1).
    pub fn create(suffix: &str) -> Result<Netns> {
        let name = format!("{NETNS_PREFIX}{suffix}");
        let out = run_bounded(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(10),
        );
        if !out.status.success() {
            bail!("ip netns add {name} failed: {}", describe(&out));
        }
        // From here on, Drop deletes the namespace even if bringing lo up fails.
        let netns = Netns { name };
        let out = run_bounded(
            Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]),
            Duration::from_secs(10),
        );
        if !out.status.success() {
            bail!(
                "bringing lo up in {} failed: {}",
                netns.name,
                describe(&out)
            );
        }
        Ok(netns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `argv` inside the namespace (as root; the caller may prepend
    /// `setpriv` to drop privileges after entering).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    /// Pids of every process currently in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        netns_pids(&self.name)
    }

    /// SIGKILLs every process in the namespace and waits (bounded) until none is left.
    /// Returns whether the namespace ended up empty.
    pub fn kill_all(&self) -> bool {
        kill_netns_pids(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Files a test put in place for this namespace's processes only.
        let _ = std::fs::remove_dir_all(self.etc_dir());
        if !self.kill_all() {
            eprintln!(
                "palisade-tests: processes still in netns {} after SIGKILL: {:?}",
                self.name,
                self.pids()
            );
        }
        let out = run_bounded(
            Command::new("ip").args(["netns", "delete", &self.name]),
            Duration::from_secs(10),
        );
        if !out.status.success() {
            eprintln!(
                "palisade-tests: ip netns delete {} failed: {}",
                self.name,
                describe(&out)
            );
        }
    }
}

/// Names of every namespace `ip netns` knows.
pub fn list_netns() -> Result<Vec<String>> {
    let out = run_bounded(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    );
    if !out.status.success() {
        bail!("ip netns list failed: {}", describe(&out));
    }
    let text = String::from_utf8(out.stdout).context("ip netns list printed non-UTF-8")?;
    // Lines look like "pal-1a2b3c4d (id: 3)" or just "pal-1a2b3c4d".
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

fn netns_pids(name: &str) -> Vec<i32> {
    let out = run_bounded(
        Command::new("ip").args(["netns", "pids", name]),
        Duration::from_secs(10),
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn kill_netns_pids(name: &str) -> bool {
    wait_until(Duration::from_secs(5), || {
        let pids = netns_pids(name);
        for &pid in &pids {
            // The pid was in the namespace a moment ago; a process that exited meanwhile gives
            // ESRCH, which is what we want anyway.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        pids.is_empty()
    })
}
