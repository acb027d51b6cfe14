//! The QEMU lifecycle: start, watch, stop, reset, devices, and adopting running VMs after a
//! helper restart.
//!
//! Invariants:
//! - A VM is started only from the live policy, as its own system user, with no capabilities,
//!   and with descriptors for every file it may touch (see `launch` and `qemu`). Its runtime folder
//!   (`<run>/<vm>`: QMP socket, pid, overlay, console log) is root's alone.
//! - States come from QEMU's own QMP events, never from polling; the end of the QMP stream is
//!   the end of the process. Whoever started it, the helper or its previous incarnation, the
//!   same cleanup runs: the ephemeral overlay is deleted, an update is marked finished.
//! - The helper dying does not stop VMs: QEMU runs in its own process group and is adopted again
//!   from its pid file and QMP socket.

use super::accel;
use super::images::Images;
use super::io;
use super::launch::{launch, LaunchRequest};
use super::qemu::{self, Fds, Launch, RunMode};
use super::qmp::{Monitor, MonitorEvent};
use crate::accounts;
use crate::firewall::facts::ConsolePorts;
use palisade_dbus::policy::{Policy, Vm, VmName};
use palisade_dbus::types::{AttachedDevice, VmDetails, VmInfo, VmState};
use palisade_dbus::Error;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Mutex};

/// A VM that is running (or starting, or stopping).
struct Running {
    pid: u32,
    mode: RunMode,
    spice_port: u16,
    state: VmState,
    monitor: Arc<Monitor>,
    command_line: Vec<String>,
    attached: Vec<Attachment>,
    /// A stop was asked for, so an exit is a shutdown, not a crash.
    stopping: bool,
    /// QEMU reported SHUTDOWN.
    shut_down: bool,
}

/// A device attached to a running VM, as the helper keeps it: what the caller sees, and the host
/// device node handed to the VM's user for the time (to be given back on detach).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Its id and description.
    pub device: AttachedDevice,
    /// The `/dev/bus/usb` node of a host device; `None` for emulated devices.
    pub node: Option<PathBuf>,
}

/// Where VM files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<state>/images`: one folder per VM.
    pub images: PathBuf,
    /// `<state>/run`: one runtime folder per running VM.
    pub run: PathBuf,
    /// `<state>`, under which the TLS certificates live.
    pub state: PathBuf,
}

/// The VM supervisor.
pub struct Supervisor {
    paths: Paths,
    running: Mutex<HashMap<VmName, Running>>,
    /// VMs between the decision to start them and their entry in `running`: reserved under the
    /// `running` lock, so two concurrent starts of one VM cannot both launch QEMU.
    starting: std::sync::Mutex<std::collections::HashSet<VmName>>,
    changes: broadcast::Sender<(VmName, VmState)>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor; call `adopt` next.
    pub fn new(paths: Paths) -> Arc<Self> {
        let (changes, _) = broadcast::channel(64);
        Arc::new(Self {
            paths,
            running: Mutex::new(HashMap::new()),
            starting: std::sync::Mutex::new(std::collections::HashSet::new()),
            changes,
        })
    }

    /// (name, state) whenever a VM's state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<(VmName, VmState)> {
        self.changes.subscribe()
    }

    fn images(&self, vm: &Vm) -> Images {
        Images::of(&self.paths.images, &vm.name, &vm.disk)
    }

    fn run_dir(&self, vm: &VmName) -> PathBuf {
        self.paths.run.join(vm.as_str())
    }

    /// Re-attaches to VMs a previous helper started; cleans up after those that are gone.
    pub async fn adopt(self: &Arc<Self>, policy: &Policy) {
        let Ok(entries) = fs::read_dir(&self.paths.run) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(vm) = policy.vm(&name).cloned() else {
                tracing::warn!("runtime folder {name} belongs to no VM in the policy; left alone");
                continue;
            };
            let dir = entry.path();
            let pid: Option<u32> = fs::read_to_string(dir.join("qemu.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let mode = RunMode::parse(
                fs::read_to_string(dir.join("mode"))
                    .unwrap_or_default()
                    .trim(),
            )
            .unwrap_or(RunMode::Ephemeral);
            let alive = pid.filter(|p| is_our_qemu(*p, &vm));
            match alive {
                Some(pid) => match self.attach_monitor(&vm, pid, mode, Vec::new()).await {
                    Ok(()) => tracing::info!("adopted running VM {name} (pid {pid})"),
                    Err(e) => {
                        tracing::error!("VM {name} (pid {pid}) runs but its monitor failed: {e}")
                    }
                },
                None => {
                    let stopped = stop_unrecorded_processes(&vm);
                    if stopped > 0 {
                        tracing::warn!(
                            "VM {name}: {stopped} process(es) of its user ran with no record (a \
                             helper stopped while starting it); killed"
                        );
                    }
                    tracing::info!("VM {name} stopped while the helper was away; cleaning up");
                    self.clean_up(&vm, mode);
                }
            }
        }
    }

    /// Starts `vm` from the live policy.
    pub async fn start(
        self: &Arc<Self>,
        policy: &Policy,
        vm: &Vm,
        mode: RunMode,
        iso: Option<OwnedFd>,
    ) -> Result<VmInfo, Error> {
        let mut reserved = self.reserve(&vm.name).await?;
        // Drawn before QEMU exists, so a failing generator starts nothing.
        let initial_secret = random_secret()?;
        let images = self.images(vm);
        let uid = accounts::ensure_vm_user(&vm.name).await?;
        let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(uid, |u| u.gid.as_raw());
        if let Some(port) = &vm.bridge {
            let network = policy
                .networks
                .iter()
                .find(|n| n.name == port.network)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("{}'s network is missing", vm.name)))?;
            let name = vm.name.clone();
            tokio::task::spawn_blocking(move || crate::lab::create_port(&name, uid, &network))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        }
        let accelerator = accel::choose(policy.settings.accel).await;
        let spice_port = self.spice_port(policy, vm, &images).await?;
        let run = self.run_dir(&vm.name);
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).map_err(|e| io("create the runtime folder", e))?;
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("protect the runtime folder", e))?;

        let request = LaunchRequest {
            vm,
            mode,
            accel: accelerator,
            spice_port,
            images: &images,
            run: &run,
            tls_root: &super::tls::tls_root(&self.paths.state),
            uid,
            gid,
        };
        let (pid, args) = match launch(&request, iso).await {
            Ok(started) => started,
            Err(e) => {
                if vm.bridge.is_some() {
                    crate::lab::delete_port(&vm.name);
                }
                return Err(e);
            }
        };
        fs::write(run.join("qemu.pid"), pid.to_string()).map_err(|e| io("record the pid", e))?;
        fs::write(run.join("mode"), mode.as_str()).map_err(|e| io("record the mode", e))?;
        if let Err(e) = self.attach_monitor(vm, pid, mode, args).await {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                nix::sys::signal::Signal::SIGKILL,
            );
            let log = fs::read_to_string(run.join("qemu.log")).unwrap_or_default();
            self.clean_up(vm, mode);
            return Err(Error::Internal(format!(
                "QEMU did not come up: {e} {}",
                log.trim()
            )));
        }
        // QEMU runs and is in `running` (its monitor announced its state).
        reserved.started = true;
        // Ticketing is on from the first moment, with a password nobody knows that has already
        // expired: no one connects until a console ticket is issued.
        let monitor = self.monitor(&vm.name).await?;
        monitor
            .set_spice_password(&initial_secret, false)
            .await
            .map_err(qmp_error)?;
        monitor
            .expire_spice_password("now")
            .await
            .map_err(qmp_error)?;
        tracing::info!(
            "started {} ({}, {accelerator:?}, pid {pid}, spice port {spice_port})",
            vm.name,
            mode.as_str()
        );
        self.info(vm, &images, true, true).await
    }

    /// Reserves `name` for a start, or says why it cannot start now. The reservation ends when
    /// the returned guard drops (the VM is then in `running`, or the start failed).
    async fn reserve(&self, name: &VmName) -> Result<Reservation<'_>, Error> {
        let running = self.running.lock().await;
        if running.contains_key(name) {
            return Err(Error::Conflict(format!("{name} is already running")));
        }
        let mut starting = self
            .starting
            .lock()
            .map_err(|_| Error::Internal("the start reservations are poisoned".into()))?;
        if !starting.insert(name.clone()) {
            return Err(Error::Conflict(format!(
                "{name} is already starting; wait a moment"
            )));
        }
        drop(starting);
        drop(running);
        self.announce(name, VmState::Starting);
        Ok(Reservation {
            supervisor: self,
            name: name.clone(),
            started: false,
        })
    }

    /// Keeps `name` from starting until the returned guard drops, if it is not running or
    /// starting now (then `None`): what deleting a VM holds while its policy entry and images
    /// go, so that no start reads them half-gone. Watchers are not told: nothing starts.
    pub async fn hold_stopped(&self, name: &VmName) -> Option<Hold<'_>> {
        let running = self.running.lock().await;
        if running.contains_key(name) {
            return None;
        }
        let mut starting = self.starting.lock().ok()?;
        if !starting.insert(name.clone()) {
            return None;
        }
        Some(Hold {
            supervisor: self,
            name: name.clone(),
        })
    }

    async fn attach_monitor(
        self: &Arc<Self>,
        vm: &Vm,
        pid: u32,
        mode: RunMode,
        command_line: Vec<String>,
    ) -> Result<(), Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let monitor = Arc::new(
            Monitor::connect(&self.run_dir(&vm.name).join("qmp.sock"), tx)
                .await
                .map_err(qmp_error)?,
        );
        let status = monitor.status().await.map_err(qmp_error)?;
        let state = if status.running {
            VmState::Running
        } else {
            VmState::Paused
        };
        let command_line = if command_line.is_empty() {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .skip(1)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            command_line
        };
        let spice_port = self.images(vm).spice_port();
        self.running.lock().await.insert(
            vm.name.clone(),
            Running {
                pid,
                mode,
                spice_port,
                state,
                monitor,
                command_line,
                attached: Vec::new(),
                stopping: false,
                shut_down: false,
            },
        );
        self.announce(&vm.name, state);
        let me = Arc::clone(self);
        let vm = vm.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match event {
                    MonitorEvent::Qemu(e) => me.on_event(&vm.name, &e).await,
                    MonitorEvent::Closed => break,
                }
            }
            me.on_exit(&vm).await;
        });
        Ok(())
    }

    async fn on_event(&self, name: &VmName, event: &qapi::qmp::Event) {
        use qapi::qmp::Event;
        let state = match event {
            Event::STOP { .. } => VmState::Paused,
            Event::RESUME { .. } | Event::RESET { .. } => VmState::Running,
            Event::SHUTDOWN { .. } => VmState::ShuttingDown,
            Event::GUEST_PANICKED { .. } => VmState::Crashed,
            _ => return,
        };
        let mut running = self.running.lock().await;
        if let Some(r) = running.get_mut(name) {
            if matches!(event, Event::SHUTDOWN { .. }) {
                r.shut_down = true;
            }
            r.state = state;
        }
        drop(running);
        self.announce(name, state);
    }

    async fn on_exit(&self, vm: &Vm) {
        let gone = self.running.lock().await.remove(&vm.name);
        let Some(r) = gone else { return };
        self.clean_up(vm, r.mode);
        let state = if r.stopping || r.shut_down {
            VmState::ShutDown
        } else {
            VmState::Crashed
        };
        tracing::info!("{} exited: {state}", vm.name);
        self.announce(&vm.name, state);
    }

    /// Deletes what a run leaves: the overlay (nothing of an ephemeral run survives), the
    /// socket and pid; an update becomes ready for promote or discard.
    fn clean_up(&self, vm: &Vm, mode: RunMode) {
        if mode != RunMode::Ephemeral {
            if let Err(e) = self.images(vm).finish_update() {
                tracing::warn!("{}: {e}", vm.name);
            }
        }
        let run = self.run_dir(&vm.name);
        for file in ["overlay.qcow2", "qmp.sock", "qemu.pid", "mode"] {
            let _ = fs::remove_file(run.join(file));
        }
        if vm.bridge.is_some() {
            crate::lab::delete_port(&vm.name);
        }
    }

    fn announce(&self, name: &VmName, state: VmState) {
        let _ = self.changes.send((name.clone(), state));
    }

    async fn monitor(&self, name: &VmName) -> Result<Arc<Monitor>, Error> {
        self.running
            .lock()
            .await
            .get(name)
            .map(|r| Arc::clone(&r.monitor))
            .ok_or_else(|| Error::NotFound(format!("{name} is not running")))
    }

    /// Powers the VM down (ACPI), forcing it off after `timeout`, or at once with `force`;
    /// returns when it is gone.
    pub async fn stop(&self, name: &VmName, force: bool, timeout: Duration) -> Result<(), Error> {
        let (monitor, pid) = {
            let mut running = self.running.lock().await;
            let r = running
                .get_mut(name)
                .ok_or_else(|| Error::NotFound(format!("{name} is not running")))?;
            r.stopping = true;
            (Arc::clone(&r.monitor), r.pid)
        };
        let mut changes = self.subscribe();
        if !force {
            monitor.powerdown().await.map_err(qmp_error)?;
            if self.wait_gone(name, &mut changes, timeout).await {
                return Ok(());
            }
            tracing::warn!(
                "{name} did not power down within {} s; forcing it off",
                timeout.as_secs()
            );
        }
        if monitor.quit().await.is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if self
            .wait_gone(name, &mut changes, Duration::from_secs(10))
            .await
        {
            Ok(())
        } else {
            Err(Error::Internal(format!("{name} did not stop")))
        }
    }

    async fn wait_gone(
        &self,
        name: &VmName,
        changes: &mut broadcast::Receiver<(VmName, VmState)>,
        limit: Duration,
    ) -> bool {
        let wait = async {
            loop {
                if !self.running.lock().await.contains_key(name) {
                    return;
                }
                if changes.recv().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Resets the VM.
    pub async fn reset(&self, name: &VmName) -> Result<(), Error> {
        self.monitor(name).await?.reset().await.map_err(qmp_error)
    }

    /// Sets a fresh Spice password valid for `seconds`; returns the Spice port.
    pub async fn console_ticket(
        &self,
        name: &VmName,
        password: &str,
        seconds: u32,
    ) -> Result<u16, Error> {
        let monitor = self
            .monitor(name)
            .await
            .map_err(|_| Error::NotFound(format!("{name} is not running: start it first")))?;
        monitor
            .set_spice_password(password, false)
            .await
            .map_err(qmp_error)?;
        monitor
            .expire_spice_password(&format!("+{seconds}"))
            .await
            .map_err(qmp_error)?;
        Ok(self
            .running
            .lock()
            .await
            .get(name)
            .map_or(0, |r| r.spice_port))
    }

    /// Disconnects every viewer of `name` and makes any ticket issued so far worthless.
    pub async fn revoke_console(&self, name: &VmName) {
        let Ok(monitor) = self.monitor(name).await else {
            return;
        };
        let revoked = async {
            // Without a fresh secret, expiring the current one still locks viewers out.
            if let Ok(secret) = random_secret() {
                monitor.set_spice_password(&secret, true).await?;
            }
            monitor.expire_spice_password("now").await
        };
        match revoked.await {
            Ok(()) => tracing::info!("console access to {name} changed: viewers disconnected"),
            Err(e) => tracing::error!("could not disconnect the viewers of {name}: {e}"),
        }
    }

    /// Makes sure `vm` has a free Spice port recorded; true if it changed (the firewall's
    /// console sets must then be loaded again before QEMU listens on it).
    pub async fn prepare_spice_port(&self, policy: &Policy, vm: &Vm) -> Result<bool, Error> {
        let images = self.images(vm);
        let before = images.spice_port();
        let now = self.spice_port(policy, vm, &images).await?;
        Ok(before != now)
    }

    /// Attaches a device through QMP `device_add` on the VM's xHCI controller; `node` is the
    /// host device node the caller handed to the VM's user, recorded for `device_del`.
    pub async fn device_add(
        &self,
        name: &VmName,
        driver: &str,
        props: Vec<(String, serde_json::Value)>,
        description: String,
        node: Option<PathBuf>,
    ) -> Result<String, Error> {
        let monitor = self.monitor(name).await?;
        let id = format!(
            "usb{}",
            next_device_number(
                &self
                    .running
                    .lock()
                    .await
                    .get(name)
                    .map(|r| r.attached.clone())
                    .unwrap_or_default()
            )
        );
        monitor
            .device_add(driver, &id, "xhci.0", props)
            .await
            .map_err(qmp_error)?;
        if let Some(r) = self.running.lock().await.get_mut(name) {
            r.attached.push(Attachment {
                device: AttachedDevice {
                    id: id.clone(),
                    description,
                },
                node,
            });
        }
        Ok(id)
    }

    /// Detaches a device attached with `device_add`; returns what was attached.
    pub async fn device_del(&self, name: &VmName, id: &str) -> Result<Attachment, Error> {
        let monitor = self.monitor(name).await?;
        let known = self
            .running
            .lock()
            .await
            .get(name)
            .and_then(|r| r.attached.iter().find(|a| a.device.id == id).cloned());
        let Some(device) = known else {
            return Err(Error::NotFound(format!(
                "{name} has no attached device {}",
                palisade_dbus::policy::names::quote(id)
            )));
        };
        monitor.device_del(id).await.map_err(qmp_error)?;
        if let Some(r) = self.running.lock().await.get_mut(name) {
            r.attached.retain(|a| a.device.id != id);
        }
        Ok(device)
    }

    /// Devices attached to a running VM.
    pub async fn attached(&self, name: &VmName) -> Result<Vec<AttachedDevice>, Error> {
        self.running
            .lock()
            .await
            .get(name)
            .map(|r| r.attached.iter().map(|a| a.device.clone()).collect())
            .ok_or_else(|| Error::NotFound(format!("{name} is not running")))
    }

    /// The VM as `List()` shows it.
    pub async fn info(
        &self,
        vm: &Vm,
        images: &Images,
        console_allowed: bool,
        may_operate: bool,
    ) -> Result<VmInfo, Error> {
        let (base_version, pending_version) = images.summary();
        let monitor = self
            .running
            .lock()
            .await
            .get(&vm.name)
            .map(|r| Arc::clone(&r.monitor));
        let viewer_channels = match monitor {
            Some(m) => m.spice_channels().await.unwrap_or(0),
            None => 0,
        };
        let running = self.running.lock().await;
        let r = running.get(&vm.name);
        Ok(VmInfo {
            name: vm.name.to_string(),
            state: r.map_or_else(|| self.idle_state(&vm.name), |r| r.state),
            mode: r.map_or(RunMode::Ephemeral, |r| r.mode),
            spice_port: r.map_or_else(|| images.spice_port(), |r| r.spice_port),
            pid: r.map_or(0, |r| r.pid),
            base_version,
            pending_version,
            console_allowed,
            may_operate,
            viewer_channels,
            network: super::network_info(vm),
        })
    }

    /// Removes what the supervisor kept for a VM that was deleted: its runtime folder and its
    /// console's TLS certificate. Only for a VM that is gone from the policy and held stopped.
    pub fn forget(&self, vm: &VmName) {
        for dir in [self.run_dir(vm), self.tls_root().join(vm.as_str())] {
            if let Err(e) = fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("{vm} was deleted but {} stays: {e}", dir.display());
                }
            }
        }
    }

    /// Where the TLS certificate authority lives.
    pub fn tls_root(&self) -> PathBuf {
        super::tls::tls_root(&self.paths.state)
    }

    /// The state of `name`: its running state, starting, or shut down.
    pub async fn state_of(&self, name: &VmName) -> VmState {
        match self.running.lock().await.get(name) {
            Some(r) => r.state,
            None => self.idle_state(name),
        }
    }

    /// The state of a VM with no QEMU in `running`: reserved for a start, or shut down.
    fn idle_state(&self, name: &VmName) -> VmState {
        if self.starting.lock().is_ok_and(|s| s.contains(name)) {
            VmState::Starting
        } else {
            VmState::ShutDown
        }
    }

    /// `info` by VM.
    pub async fn info_of(
        &self,
        vm: &Vm,
        console_allowed: bool,
        may_operate: bool,
    ) -> Result<VmInfo, Error> {
        self.info(vm, &self.images(vm), console_allowed, may_operate)
            .await
    }

    /// The images of `vm`.
    pub fn images_of(&self, vm: &Vm) -> Images {
        self.images(vm)
    }

    /// The running VM's command line, or the one an ephemeral start would use.
    pub async fn details(&self, policy: &Policy, vm: &Vm, chain: String) -> VmDetails {
        let running = self
            .running
            .lock()
            .await
            .get(&vm.name)
            .map(|r| r.command_line.clone());
        let command_line = match running {
            Some(c) => c,
            None => {
                let launch = Launch {
                    vm,
                    mode: RunMode::Ephemeral,
                    accel: accel::choose(policy.settings.accel).await,
                    spice_port: self.images(vm).spice_port(),
                    fds: Fds::plan(vm, RunMode::Ephemeral, false),
                };
                qemu::command_line(&launch)
            }
        };
        let mut full = vec![qemu::QEMU.to_owned()];
        full.extend(command_line);
        VmDetails {
            command_line: full,
            firewall_chain: chain,
            network: super::network_info(vm),
        }
    }

    /// Whether a version is in use by a running VM (never deleted then).
    pub async fn is_running(&self, name: &VmName) -> bool {
        self.running.lock().await.contains_key(name)
    }

    /// A Spice port for `vm`: the one it had, else the first free one in the range.
    async fn spice_port(&self, policy: &Policy, vm: &Vm, images: &Images) -> Result<u16, Error> {
        let range = policy.settings.spice_ports;
        let recorded = images.spice_port();
        if recorded >= range.first() && recorded <= range.last() && port_is_free(recorded) {
            return Ok(recorded);
        }
        let taken: Vec<u16> = policy
            .vms
            .iter()
            .filter(|o| o.name != vm.name)
            .map(|o| self.images(o).spice_port())
            .collect();
        let port = (range.first()..=range.last())
            .find(|p| !taken.contains(p) && port_is_free(*p))
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "no free Spice port in {}-{}",
                    range.first(),
                    range.last()
                ))
            })?;
        images.set_spice_port(port)?;
        Ok(port)
    }
}

/// A VM reserved for a start; dropping it ends the reservation. A start that did not get as far
/// as a running QEMU says so: its watchers saw "starting" and must see it end.
struct Reservation<'a> {
    supervisor: &'a Supervisor,
    name: VmName,
    started: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut starting) = self.supervisor.starting.lock() {
            starting.remove(&self.name);
        }
        if !self.started {
            self.supervisor.announce(&self.name, VmState::ShutDown);
        }
    }
}

/// A stopped VM kept from starting (see `Supervisor::hold_stopped`); dropping it lets it start.
pub struct Hold<'a> {
    supervisor: &'a Supervisor,
    name: VmName,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if let Ok(mut starting) = self.supervisor.starting.lock() {
            starting.remove(&self.name);
        }
    }
}

/// The firewall learns the console ports the supervisor allocated through this, at every compile.
impl ConsolePorts for Supervisor {
    fn console_ports(&self, policy: &Policy) -> BTreeMap<VmName, u16> {
        policy
            .vms
            .iter()
            .map(|vm| (vm.name.clone(), self.images(vm).spice_port()))
            .collect()
    }
}

fn is_our_qemu(pid: u32, vm: &Vm) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let wanted = format!("guest={},", vm.name);
    let uid_ok = fs::metadata(format!("/proc/{pid}"))
        .map(|m| Some(m.uid()) == accounts::vm_uid(&vm.name))
        .unwrap_or(false);
    uid_ok
        && cmdline
            .split(|c| *c == 0)
            .any(|a| a.starts_with(wanted.as_bytes()))
}

/// Kills every process of `vm`'s user and waits (up to 2 s) until they are gone; how many there
/// were. A helper stopped between starting QEMU and recording its pid leaves a QEMU nobody
/// knows; the VM's user is its alone, so whatever runs as it when no QEMU is recorded is that.
fn stop_unrecorded_processes(vm: &Vm) -> usize {
    let Some(uid) = accounts::vm_uid(&vm.name) else {
        return 0;
    };
    let of_user = || -> Vec<i32> {
        fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                        (fs::metadata(e.path()).ok()?.uid() == uid).then_some(pid)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = of_user();
    for pid in &found {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !found.is_empty() && !of_user().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    found.len()
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn next_device_number(attached: &[Attachment]) -> u32 {
    (1..)
        .find(|n| !attached.iter().any(|a| a.device.id == format!("usb{n}")))
        .unwrap_or(1)
}

/// 24 random bytes from the operating system's generator, hex-encoded. Without randomness no
/// password is safe, so a failure fails the call; there is no fallback value.
pub fn random_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!("the system's random generator failed: {e}");
        Error::Internal(format!("no randomness for a password: {e}"))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn qmp_error(e: super::qmp::QmpError) -> Error {
    Error::Internal(e.to_string())
}
