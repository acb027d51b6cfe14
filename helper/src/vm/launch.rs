//! Starting QEMU confined: the files it may touch opened by the helper and handed over as
//! descriptors, then the process dropped to the VM's own user before it runs a single instruction
//! of QEMU.
//!
//! Invariants: QEMU receives exactly the descriptors listed in `Fds` (everything else the helper
//! holds is close-on-exec); it runs in its own process group, so it outlives the helper; its
//! serial console and its own messages go to log files in the root-only run folder.

use super::accel;
use super::images::Images;
use super::io;
use super::qemu::{self, Accelerator, Fds, Launch, RunMode};
use palisade_dbus::policy::Vm;
use palisade_dbus::Error;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Most descriptors handed to QEMU (QMP, disk, overlay, ISO, kernel, initrd, TLS folder).
const MAX_CHILD_FDS: usize = 8;

/// Everything a launch needs to know.
pub struct LaunchRequest<'a> {
    /// The VM, from the live policy.
    pub vm: &'a Vm,
    /// How the disk is used.
    pub mode: RunMode,
    /// KVM or TCG.
    pub accel: Accelerator,
    /// The Spice port, already guarded by the firewall.
    pub spice_port: u16,
    /// The VM's image versions.
    pub images: &'a Images,
    /// The (fresh, root-only) run folder.
    pub run: &'a Path,
    /// Where the Spice TLS certificates live.
    pub tls_root: &'a Path,
    /// The VM user's uid.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// Opens every file, starts QEMU as the VM's user, and returns its pid and arguments.
pub async fn launch(
    r: &LaunchRequest<'_>,
    iso: Option<OwnedFd>,
) -> Result<(u32, Vec<String>), Error> {
    let (vm, mode, images, run, gid, uid) = (r.vm, r.mode, r.images, r.run, r.gid, r.uid);
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
    // The files follow the order of `Fds::plan`.
    let fds = Fds::plan(vm, mode, iso.is_some());
    if mode == RunMode::Ephemeral {
        let overlay = run.join("overlay.qcow2");
        create_overlay(&disk_path, &overlay).await?;
        files.push(open(&overlay, true)?);
    }
    files.extend(iso);
    if let Some(boot) = qemu::direct_boot(vm, mode) {
        files.push(open_world_readable(
            &images.dir().join(boot.kernel.as_str()),
        )?);
        if let Some(initrd) = &boot.initrd {
            files.push(open_world_readable(&images.dir().join(initrd.as_str()))?);
        }
    }
    if vm.display.tls {
        let dir = super::tls::server_folder(r.tls_root, &vm.name, vm.display.address, gid).await?;
        files.push(open_dir(&dir)?);
    }
    let launch = Launch {
        vm,
        mode,
        accel: r.accel,
        spice_port: r.spice_port,
        fds,
    };
    let args = qemu::command_line(&launch);
    let console = log_file(&run.join("console.log"))?;
    let qemu_log = log_file(&run.join("qemu.log"))?;
    let mut groups = vec![gid];
    if r.accel == Accelerator::Kvm {
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
    let mut child = tokio::process::Command::from(cmd).spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            palisade_dbus::Error::Internal(format!(
                "{} is not installed, so no virtual machine can start: install the \
                 qemu-system-x86 package",
                qemu::QEMU
            ))
        } else {
            io("start QEMU", e)
        }
    })?;
    drop(files);
    let pid = child.id().unwrap_or(0);
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok((pid, args))
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
        let target = qemu::FIRST_FD + i32::try_from(i).unwrap_or(0);
        // SAFETY: as above.
        #[allow(unsafe_code)] // fcntl/dup2 on raw numbers in a pre_exec hook
        check(unsafe { libc::dup2(*fd, target) })?;
    }
    nix::unistd::setgroups(groups).map_err(err)?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(err)?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(err)?;
    Ok(())
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
