//! A private system bus: the real `dbus-daemon` with a generated `<type>system</type>`
//! configuration, listening on a socket in the test's temp dir.
//!
//! Invariants:
//! - The policy is Debian's system bus default (deny owning and calling by default, the bus
//!   driver open to all) plus exactly two service policies: the repository's helper policy
//!   (`data/dbus/io.palisade.Helper1.conf`) and polkit's own. So a test sees the same
//!   permissions a user's machine enforces, and a bug in our bus policy shows up here.
//! - No service activation: a name is owned only by a process the harness started, so "the
//!   helper is not running" really means nobody answers.
//! - The daemon runs as root rather than `messagebus`: it needs no privileges, but the socket
//!   lives in a root-owned temp dir and must be connectable by the non-root test users; the
//!   socket itself is created world-connectable and access is decided by the policy.
//! - Clients find it through `DBUS_SYSTEM_BUS_ADDRESS`; the host's system bus is never used.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::Signal;

use crate::netns::Netns;
use crate::process::{describe, run_bounded, stop_child, tail, wait_until};

/// polkit's bus policy as shipped by Debian's `polkitd` package.
const POLKIT_BUS_POLICY: &str = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf";

/// A running private system bus. Dropping it stops the daemon.
#[derive(Debug)]
pub struct Bus {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Bus {
    /// Writes the configuration to `dir/bus.conf` and starts `dbus-daemon` inside `netns`,
    /// returning once it has printed its address (at most 10 s).
    pub fn start(netns: &Netns, dir: &Path, helper_policy: &Path) -> Result<Bus> {
        let socket = dir.join("system_bus_socket");
        let conf = dir.join("bus.conf");
        std::fs::write(&conf, config(&socket, helper_policy)?)
            .with_context(|| format!("writing {}", conf.display()))?;
        let log = dir.join("dbus.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;

        let mut child = netns
            .command(&[
                "dbus-daemon".to_owned(),
                format!("--config-file={}", conf.display()),
                "--nofork".to_owned(),
                "--print-address".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("starting dbus-daemon (is package dbus installed?)")?;

        // The first line on stdout is the address; it appears once the socket is listening.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take();
        thread::spawn(move || {
            let mut line = String::new();
            if let Some(stdout) = stdout {
                let _ = BufReader::new(stdout).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let address = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let bus = Bus {
            child,
            address,
            log,
        };
        if bus.address.is_empty() {
            bail!(
                "dbus-daemon printed no address within 10 s; its log:\n{}",
                tail(&bus.log, 8192)
            );
        }
        Ok(bus)
    }

    /// The bus address, as for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Kills the daemon (SIGKILL), as a crash would: every connection to it closes.
    pub fn kill(&mut self) {
        stop_child(&mut self.child, Signal::SIGKILL, Duration::from_secs(2));
    }

    /// The daemon's log (its stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        stop_child(&mut self.child, Signal::SIGTERM, Duration::from_secs(2));
    }
}

/// The daemon configuration. `helper_policy` is included as a file, exactly as the system bus
/// includes it from `system.d/` once installed.
fn config(socket: &Path, helper_policy: &Path) -> Result<String> {
    for path in [socket, helper_policy] {
        // The paths go into XML; ours never contain markup characters, but make sure.
        if path.to_string_lossy().contains(['<', '>', '&', '"', '\'']) {
            bail!(
                "path {} cannot be written into a bus config",
                path.display()
            );
        }
    }
    if !Path::new(POLKIT_BUS_POLICY).is_file() {
        bail!("{POLKIT_BUS_POLICY} is missing: install package polkitd");
    }
    Ok(format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Generated by palisade-tests: Debian's /usr/share/dbus-1/system.conf without forking,
     syslog, activation or the messagebus user, listening in the test's temp dir. -->
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>

  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>

  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>

  <include>{helper_policy}</include>
  <include>{POLKIT_BUS_POLICY}</include>
</busconfig>
"#,
        socket = socket.display(),
        helper_policy = helper_policy.display(),
    ))
}

/// The helper's bus policy used when the repository has none yet: the same rules
/// `data/dbus/io.palisade.Helper1.conf` must express (only root owns the name, anyone may call,
/// polkit decides).
pub(crate) const FALLBACK_HELPER_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Generated by palisade-tests because data/dbus/io.palisade.Helper1.conf is missing. -->
<busconfig>
  <policy user="root">
    <allow own="io.palisade.Helper1"/>
  </policy>
  <policy context="default">
    <allow send_destination="io.palisade.Helper1"/>
  </policy>
</busconfig>
"#;

/// A `dbus-send --system` command line against `address` with a bounded reply timeout.
/// `dbus-send` is used rather than a library so that the harness checks the bus exactly as any
/// other client would, with nothing of ours in between.
pub fn dbus_send_argv(dest: &str, path: &str, method: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "dbus-send".to_owned(),
        "--system".to_owned(),
        "--print-reply=literal".to_owned(),
        "--reply-timeout=10000".to_owned(),
        format!("--dest={dest}"),
        path.to_owned(),
        method.to_owned(),
    ];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    argv
}

/// Whether `name` currently has an owner on the bus at `address`.
pub fn name_has_owner(address: &str, name: &str) -> Result<bool> {
    let argv = dbus_send_argv(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.NameHasOwner",
        &[&format!("string:{name}")],
    );
    let out = run_bounded(
        Command::new(&argv[0])
            .args(&argv[1..])
            .env("DBUS_SYSTEM_BUS_ADDRESS", address),
        Duration::from_secs(15),
    );
    if !out.status.success() {
        bail!("NameHasOwner({name}) failed: {}", describe(&out));
    }
    // --print-reply=literal prints "   boolean true".
    Ok(String::from_utf8_lossy(&out.stdout).contains("true"))
}

/// Waits at most `timeout` until `name` is owned (`owned = true`) or free (`owned = false`),
/// giving up early if `alive` says the process meant to own it has died.
pub(crate) fn wait_for_name(
    address: &str,
    name: &str,
    owned: bool,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<()> {
    let mut last_error = None;
    let mut died = false;
    let reached = wait_until(timeout, || {
        match name_has_owner(address, name) {
            Ok(has) if has == owned => return true,
            Ok(_) => {}
            Err(err) => last_error = Some(err),
        }
        died = owned && !alive();
        died
    });
    if !reached || died {
        let what = if owned { "owned" } else { "released" };
        let why = if died {
            "its process exited".to_owned()
        } else {
            format!("not within {timeout:?}")
        };
        match last_error {
            Some(err) => bail!("{name} was not {what}: {why}; last bus error: {err:#}"),
            None => bail!("{name} was not {what}: {why}"),
        }
    }
    Ok(())
}
