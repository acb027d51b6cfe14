//! The helper under test: `palisade-helper` as a real process on the private bus, inside the
//! test's netns, with its state and config in the temp dir.
//!
//! Invariants:
//! - It is started exactly as a user's machine would run it (as root, `--bus-address` being the
//!   only difference from the system service) and is ready only once it owns
//!   `io.palisade.Helper1` — it serves its object before taking the name, so a client that sees
//!   the name finds the object.
//! - Restarts reuse the same state and config dirs, and append to the same log with a marker
//!   line, so "kill it, restart it, compare" tests see one continuous story.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::Signal;
use palisade_dbus::names::BUS_NAME;

use crate::bus::wait_for_name;
use crate::netns::Netns;
use crate::process::{signal_child, stop_child, tail, wait_exit};

/// How long the helper may take to own its name.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How the helper is started, and its process while it runs.
#[derive(Debug)]
pub struct Helper {
    binary: PathBuf,
    address: String,
    state_dir: PathBuf,
    config_dir: PathBuf,
    vendor_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Helper {
    /// Describes a helper; nothing starts until [`Helper::start`]. Packages' drop-ins are
    /// read from `vendor_dir/policy.d` (the real `/usr/lib/palisade` is never looked at).
    pub fn new(
        binary: PathBuf,
        address: &str,
        state_dir: &Path,
        config_dir: &Path,
        vendor_dir: &Path,
        log: PathBuf,
    ) -> Helper {
        Helper {
            binary,
            address: address.to_owned(),
            state_dir: state_dir.to_owned(),
            config_dir: config_dir.to_owned(),
            vendor_dir: vendor_dir.to_owned(),
            log,
            child: None,
        }
    }

    /// Starts the helper inside `netns` and waits until it owns its bus name.
    pub fn start(&mut self, netns: &Netns) -> Result<()> {
        if self.is_running() {
            bail!("the helper is already running");
        }
        if !self.binary.is_file() {
            bail!(
                "{} does not exist: build it first (cargo build -p palisade-helper) or set \
                 PALISADE_BIN_DIR",
                self.binary.display()
            );
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(
            log,
            "=== palisade-tests: starting {}",
            self.binary.display()
        )?;
        let argv: Vec<&std::ffi::OsStr> = vec![
            self.binary.as_os_str(),
            "--bus-address".as_ref(),
            self.address.as_ref(),
            "--state-dir".as_ref(),
            self.state_dir.as_os_str(),
            "--config-dir".as_ref(),
            self.config_dir.as_os_str(),
            "--vendor-dir".as_ref(),
            self.vendor_dir.as_os_str(),
        ];
        let child = netns
            .command(&argv)
            // Also set the standard variable, so that any system-bus connection the helper (or a
            // library it uses) opens by itself lands on the private bus, not the host's.
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            // The log is a file, read by people and by tests: no colour codes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);

        let address = self.address.clone();
        if let Err(err) = wait_for_name(&address, BUS_NAME, true, START_TIMEOUT, || {
            self.is_running()
        }) {
            self.stop();
            bail!(
                "the helper did not come up: {err:#}\nhelper log:\n{}",
                tail(&self.log, 16384)
            );
        }
        Ok(())
    }

    /// Sends `signal` and, if it is one that ends the process, waits (at most 5 s) for it to go.
    /// After SIGKILL nothing of the helper's runs, which is the point of the crash tests.
    pub fn kill(&mut self, signal: Signal) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("the helper is not running");
        };
        signal_child(child, signal).with_context(|| format!("sending {signal} to the helper"))?;
        if matches!(
            signal,
            Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT
        ) {
            if wait_exit(child, Duration::from_secs(5)).is_none() {
                bail!("the helper is still running 5 s after {signal}");
            }
            self.child = None;
            // The name goes with the connection; wait so a restart does not race the old owner.
            wait_for_name(
                &self.address,
                BUS_NAME,
                false,
                Duration::from_secs(5),
                || true,
            )?;
        }
        Ok(())
    }

    /// Stops the helper (SIGTERM, SIGKILL after 3 s) if it runs.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(3));
        }
    }

    /// Whether the helper process is alive.
    /// Waits up to `timeout` for the helper to end by itself; its exit status, or `None` if it
    /// still runs (or was not running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_exit(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(status)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The helper's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the helper printed, across restarts.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}
