//! The QEMU lifecycle: start, watch, stop, reset, devices, and adopting running VMs after a
//! helper restart.
//!
//! Invariants:
//! - A VM is started only from the live policy, as its own system user, with no capabilities,
//!   and with descriptors for every file it may touch (see `qemu`). Its runtime folder
//!   (`<run>/<vm>`: QMP socket, pid, overlay, console log) is root's alone.
//! - States come from QEMU's own QMP events, never from polling; the end of the QMP stream is
//!   the end of the process. Whoever started it, the helper or its previous incarnation, the
//!   same cleanup runs: the ephemeral overlay is deleted, an update is marked finished.
//! - The helper dying does not stop VMs: QEMU runs in its own process group and is adopted again
//!   from its pid file and QMP socket.

use super::images::Images;
use super::qemu::{self, Accelerator, Fds, Launch, RunMode};
use super::qmp::{Monitor, MonitorEvent};
use super::{accel, account};
use palisade_dbus::policy::{Policy, Vm, VmName};
use palisade_dbus::types::{AttachedDevice, VmDetails, VmInfo};
use palisade_dbus::Error;
use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Mutex};

/// A VM that is running (or starting, or stopping).
struct Running {
    pid: u32,
    mode: RunMode,
    spice_port: u16,
    state: String,
    monitor: Arc<Monitor>,
    command_line: Vec<String>,
    attached: Vec<AttachedDevice>,
    /// A stop was asked for, so an exit is a shutdown, not a crash.
    stopping: bool,
    /// QEMU reported SHUTDOWN.
    shut_down: bool,
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
    changes: broadcast::Sender<(String, String)>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// File descriptor numbers the child gets, in order.
const FIRST_CHILD_FD: i32 = 3;
/// Most descriptors handed to QEMU (QMP, disk, overlay, ISO, kernel, initrd).
const MAX_CHILD_FDS: usize = 8;

impl Supervisor {
    /// A supervisor; call `adopt` next.
    pub fn new(paths: Paths) -> Arc<Self> {
        let (changes, _) = broadcast::channel(64);
        Arc::new(Self {
            paths,
            running: Mutex::new(HashMap::new()),
            changes,
        })
    }

    /// (name, state) whenever a VM's state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, String)> {
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
            let mode = match fs::read_to_string(dir.join("mode"))
                .unwrap_or_default()
                .trim()
            {
                "update" => RunMode::Update,
                "install" => RunMode::Install,
                _ => RunMode::Ephemeral,
            };
            let alive = pid.filter(|p| is_our_qemu(*p, &vm));
            match alive {
                Some(pid) => match self.attach_monitor(&vm, pid, mode, Vec::new()).await {
                    Ok(()) => tracing::info!("adopted running VM {name} (pid {pid})"),
                    Err(e) => {
                        tracing::error!("VM {name} (pid {pid}) runs but its monitor failed: {e}")
                    }
                },
                None => {
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
        if self.running.lock().await.contains_key(&vm.name) {
            return Err(Error::Conflict(format!("{} is already running", vm.name)));
        }
        let images = self.images(vm);
        let uid = account::ensure_vm_user(&vm.name).await?;
        let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(uid, |u| u.gid.as_raw());
        let accelerator = accel::choose(policy.settings.accel).await;
        let spice_port = self.spice_port(policy, vm, &images).await?;
        let run = self.run_dir(&vm.name);
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).map_err(|e| io("create the runtime folder", e))?;
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("protect the runtime folder", e))?;

        let mut files: Vec<OwnedFd> = Vec::new();
        let qmp_path = run.join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&qmp_path)
            .map_err(|e| io("create the QMP socket", e))?;
        fs::set_permissions(&qmp_path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io("protect the QMP socket", e))?;
        files.push(OwnedFd::from(listener));
        let disk_path = match mode {
            RunMode::Ephemeral => images.base()?,
            RunMode::Update | RunMode::Install => images.begin_update().await?,
        };
        files.push(open(&disk_path, mode != RunMode::Ephemeral)?);
        let mut fds = Fds {
            qmp: FIRST_CHILD_FD,
            disk: FIRST_CHILD_FD + 1,
            overlay: None,
            iso: None,
            kernel: None,
            initrd: None,
            tls_dir: None,
        };
        let next = |files: &Vec<OwnedFd>| FIRST_CHILD_FD + i32::try_from(files.len()).unwrap_or(0);
        if mode == RunMode::Ephemeral {
            let overlay = run.join("overlay.qcow2");
            create_overlay(&disk_path, &overlay).await?;
            fds.overlay = Some(next(&files));
            files.push(open(&overlay, true)?);
        }
        if let Some(iso) = iso {
            fds.iso = Some(next(&files));
            files.push(iso);
        }
        if let Some(boot) = &vm.kernel_boot {
            fds.kernel = Some(next(&files));
            files.push(open_world_readable(
                &images.dir().join(boot.kernel.as_str()),
            )?);
            if let Some(initrd) = &boot.initrd {
                fds.initrd = Some(next(&files));
                files.push(open_world_readable(&images.dir().join(initrd.as_str()))?);
            }
        }
        if vm.display.tls {
            let root = super::tls::tls_root(&self.paths.state);
            let dir = super::tls::server_folder(&root, &vm.name, vm.display.address, gid).await?;
            fds.tls_dir = Some(next(&files));
            files.push(open_dir(&dir)?);
        }
        let launch = Launch {
            vm,
            mode,
            accel: accelerator,
            spice_port,
            fds,
        };
        let args = qemu::command_line(&launch);
        let console = log_file(&run.join("console.log"))?;
        let qemu_log = log_file(&run.join("qemu.log"))?;
        let mut groups = vec![gid];
        if accelerator == Accelerator::Kvm {
            groups.extend(accel::kvm_group());
        }
        let mut cmd = std::process::Command::new(qemu::QEMU);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(console)
            .stderr(qemu_log)
            .process_group(0);
        let raw: Vec<i32> = files.iter().map(AsRawFd::as_raw_fd).collect();
        let groups: Vec<nix::unistd::Gid> =
            groups.into_iter().map(nix::unistd::Gid::from_raw).collect();
        // SAFETY: runs in the forked child before exec and only makes async-signal-safe
        // syscalls (dup2, fcntl, setgroups, setgid, setuid, prctl) on values computed before
        // the fork; no allocation, no locks.
        #[allow(unsafe_code)]
        // dropping to the VM's user with our descriptors in place needs pre_exec
        unsafe {
            cmd.pre_exec(move || drop_into_vm_user(&raw, &groups, gid, uid));
        }
        let mut child = tokio::process::Command::from(cmd)
            .spawn()
            .map_err(|e| io("start QEMU", e))?;
        drop(files);
        let pid = child.id().unwrap_or(0);
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
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
        // Ticketing is on from the first moment, with a password nobody knows that has already
        // expired: no one connects until a console ticket is issued.
        let monitor = self.monitor(&vm.name).await?;
        monitor
            .set_spice_password(&random_secret(), false)
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
        let state = if status.running { "running" } else { "paused" }.to_owned();
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
                state: state.clone(),
                monitor,
                command_line,
                attached: Vec::new(),
                stopping: false,
                shut_down: false,
            },
        );
        self.announce(&vm.name, &state);
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
            Event::STOP { .. } => "paused",
            Event::RESUME { .. } | Event::RESET { .. } => "running",
            Event::SHUTDOWN { .. } => "shutting down",
            Event::GUEST_PANICKED { .. } => "crashed",
            _ => return,
        };
        let mut running = self.running.lock().await;
        if let Some(r) = running.get_mut(name) {
            if matches!(event, Event::SHUTDOWN { .. }) {
                r.shut_down = true;
            }
            r.state = state.to_owned();
        }
        drop(running);
        self.announce(name, state);
    }

    async fn on_exit(&self, vm: &Vm) {
        let gone = self.running.lock().await.remove(&vm.name);
        let Some(r) = gone else { return };
        self.clean_up(vm, r.mode);
        let state = if r.stopping || r.shut_down {
            "shut down"
        } else {
            "crashed"
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
    }

    fn announce(&self, name: &VmName, state: &str) {
        let _ = self.changes.send((name.to_string(), state.to_owned()));
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
        changes: &mut broadcast::Receiver<(String, String)>,
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
            monitor.set_spice_password(&random_secret(), true).await?;
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

    /// Attaches a device through QMP `device_add` on the VM's xHCI controller.
    pub async fn device_add(
        &self,
        name: &VmName,
        driver: &str,
        props: Vec<(String, serde_json::Value)>,
        description: String,
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
            r.attached.push(AttachedDevice {
                id: id.clone(),
                description,
            });
        }
        Ok(id)
    }

    /// Detaches a device attached with `device_add`; returns its description.
    pub async fn device_del(&self, name: &VmName, id: &str) -> Result<AttachedDevice, Error> {
        let monitor = self.monitor(name).await?;
        let known = self
            .running
            .lock()
            .await
            .get(name)
            .and_then(|r| r.attached.iter().find(|d| d.id == id).cloned());
        let Some(device) = known else {
            return Err(Error::NotFound(format!(
                "{name} has no attached device {}",
                palisade_dbus::policy::names::quote(id)
            )));
        };
        monitor.device_del(id).await.map_err(qmp_error)?;
        if let Some(r) = self.running.lock().await.get_mut(name) {
            r.attached.retain(|d| d.id != id);
        }
        Ok(device)
    }

    /// Devices attached to a running VM.
    pub async fn attached(&self, name: &VmName) -> Result<Vec<AttachedDevice>, Error> {
        self.running
            .lock()
            .await
            .get(name)
            .map(|r| r.attached.clone())
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
            state: r.map_or("shut down", |r| r.state.as_str()).into(),
            mode: r.map_or("", |r| r.mode.as_str()).into(),
            spice_port: r.map_or_else(|| images.spice_port(), |r| r.spice_port),
            pid: r.map_or(0, |r| r.pid),
            base_version,
            pending_version,
            console_allowed,
            may_operate,
            viewer_channels,
        })
    }

    /// Where the TLS certificate authority lives.
    pub fn tls_root(&self) -> PathBuf {
        super::tls::tls_root(&self.paths.state)
    }

    /// The state of `name`: its running state, or `shut down`.
    pub async fn state_of(&self, name: &VmName) -> String {
        self.running
            .lock()
            .await
            .get(name)
            .map_or_else(|| "shut down".to_owned(), |r| r.state.clone())
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
                    fds: Fds {
                        qmp: 3,
                        disk: 4,
                        overlay: Some(5),
                        iso: None,
                        kernel: vm.kernel_boot.as_ref().map(|_| 6),
                        tls_dir: vm.display.tls.then_some(8),
                        initrd: vm
                            .kernel_boot
                            .as_ref()
                            .and_then(|b| b.initrd.as_ref())
                            .map(|_| 7),
                    },
                };
                qemu::command_line(&launch)
            }
        };
        let mut full = vec![qemu::QEMU.to_owned()];
        full.extend(command_line);
        VmDetails {
            command_line: full,
            firewall_chain: chain,
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

/// In the child, before exec: put our descriptors at 3.., drop to the VM's user for good.
/// Allocates nothing: after fork only async-signal-safe calls are allowed.
fn drop_into_vm_user(
    fds: &[i32],
    groups: &[nix::unistd::Gid],
    gid: u32,
    uid: u32,
) -> std::io::Result<()> {
    use nix::unistd::{Gid, Uid};
    let err = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // Move every descriptor above the target range first, so a dup2 never overwrites one that
    // is still to be moved; dup2's copies are not close-on-exec, so QEMU inherits exactly these.
    let mut high = [0i32; MAX_CHILD_FDS];
    if fds.len() > MAX_CHILD_FDS {
        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
    }
    for (slot, fd) in high.iter_mut().zip(fds) {
        // SAFETY: plain descriptor syscalls in the forked child on descriptors the parent keeps
        // open until exec; no memory is touched.
        #[allow(unsafe_code)] // fcntl/dup2 on raw numbers in a pre_exec hook
        {
            *slot = check(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100) })?;
        }
    }
    for (i, fd) in high.iter().take(fds.len()).enumerate() {
        let target = FIRST_CHILD_FD + i32::try_from(i).unwrap_or(0);
        // SAFETY: as above.
        #[allow(unsafe_code)] // fcntl/dup2 on raw numbers in a pre_exec hook
        check(unsafe { libc::dup2(*fd, target) })?;
    }
    nix::unistd::setgroups(groups).map_err(err)?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(err)?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(err)?;
    Ok(())
}

fn is_our_qemu(pid: u32, vm: &Vm) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let wanted = format!("guest={},", vm.name);
    let uid_ok = fs::metadata(format!("/proc/{pid}"))
        .map(|m| Some(m.uid()) == account::vm_uid(&vm.name))
        .unwrap_or(false);
    uid_ok
        && cmdline
            .split(|c| *c == 0)
            .any(|a| a.starts_with(wanted.as_bytes()))
}

async fn create_overlay(base: &Path, overlay: &Path) -> Result<(), Error> {
    let out = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(overlay)
        .output()
        .await
        .map_err(|e| io("run qemu-img", e))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "cannot create the overlay: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    fs::set_permissions(overlay, fs::Permissions::from_mode(0o600))
        .map_err(|e| io("protect the overlay", e))
}

fn open(path: &Path, write: bool) -> Result<OwnedFd, Error> {
    fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| io(&format!("open {}", path.display()), e))
}

/// Kernel files are reopened by QEMU through /proc/self/fd, which checks the file's own mode.
fn open_world_readable(path: &Path) -> Result<OwnedFd, Error> {
    let meta =
        fs::symlink_metadata(path).map_err(|e| io(&format!("find {}", path.display()), e))?;
    if !meta.file_type().is_file()
        || meta.mode() & 0o004 == 0
        || meta.uid() != 0
        || meta.mode() & 0o022 != 0
    {
        return Err(Error::InvalidArgument(format!(
            "{} must be a plain file owned by root, readable by all and writable by root only",
            path.display()
        )));
    }
    open(path, false)
}

/// A folder as a descriptor QEMU reaches through /proc/self/fd, past folders it cannot enter.
fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| io(&format!("open {}", path.display()), e))
}

fn log_file(path: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create a log file", e))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn next_device_number(attached: &[AttachedDevice]) -> u32 {
    (1..)
        .find(|n| !attached.iter().any(|d| d.id == format!("usb{n}")))
        .unwrap_or(1)
}

/// 24 random bytes from the kernel, hex-encoded.
pub fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    if let Err(e) = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        // Without randomness no password is safe; the expired one still keeps everyone out.
        tracing::error!("cannot read /dev/urandom: {e}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn qmp_error(e: super::qmp::QmpError) -> Error {
    Error::Internal(e.to_string())
}

fn io(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("could not {what}: {e}"))
}
