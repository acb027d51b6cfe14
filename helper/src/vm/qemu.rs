//! The QEMU command line, built from validated types only (a pure function).
//!
//! QEMU opens no path it is given by anyone: every file (disk images, ISO, kernel) is opened by
//! the helper after its checks and handed over as a descriptor, through `-add-fd` fdsets for
//! block devices and `/proc/self/fd/N` for the read-only kernel files. The QMP socket is a
//! listening socket the helper created in a root-only folder, also passed as a descriptor.
//! Confinement flags are always present: `-nodefaults -no-user-config`, `-sandbox` with every
//! opt-in denial, no `-cpu host` (it aborts on some nested hosts).

use palisade_dbus::policy::{KernelBoot, NetworkMode, Video, Vm};

pub use palisade_dbus::types::RunMode;

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// Descriptor numbers the child process will have, as arranged by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fds {
    /// The listening QMP socket.
    pub qmp: i32,
    /// The image QEMU reads (the base; in update/install mode the new version, read-write).
    pub disk: i32,
    /// The overlay (ephemeral mode only).
    pub overlay: Option<i32>,
    /// The installer ISO (install mode only).
    pub iso: Option<i32>,
    /// Kernel and initrd for direct kernel boot.
    pub kernel: Option<i32>,
    /// The initrd for direct kernel boot.
    pub initrd: Option<i32>,
    /// The folder with the Spice TLS certificate and key (TLS displays only).
    pub tls_dir: Option<i32>,
}

/// The first descriptor number handed to QEMU (0-2 are its standard streams).
pub const FIRST_FD: i32 = 3;

impl Fds {
    /// The numbers a launch gives, in the order the files are handed over: QMP socket, disk,
    /// overlay (ephemeral runs), ISO, kernel, initrd, TLS folder. `launch` hands the files over
    /// in this order and `vm show` prints the same plan, so the two cannot disagree.
    pub fn plan(vm: &Vm, mode: RunMode, iso: bool) -> Fds {
        let mut numbers = FIRST_FD..;
        let mut take = |wanted: bool| if wanted { numbers.next() } else { None };
        let qmp = take(true).unwrap_or(FIRST_FD);
        let disk = take(true).unwrap_or(FIRST_FD + 1);
        let overlay = take(mode == RunMode::Ephemeral);
        let iso = take(iso);
        let boot = direct_boot(vm, mode);
        let kernel = take(boot.is_some());
        let initrd = take(boot.is_some_and(|b| b.initrd.is_some()));
        let tls_dir = take(vm.display.tls);
        Fds {
            qmp,
            disk,
            overlay,
            iso,
            kernel,
            initrd,
            tls_dir,
        }
    }
}

/// The kernel a run boots directly, if any: the policy's `kernel`, except while installing.
/// An installer boots from its CD-ROM; `-kernel` would win over any boot order and skip it.
pub fn direct_boot(vm: &Vm, mode: RunMode) -> Option<&KernelBoot> {
    vm.kernel_boot.as_ref().filter(|_| mode != RunMode::Install)
}

/// Everything the command line depends on besides the VM's policy.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// The VM.
    pub vm: &'a Vm,
    /// The run mode.
    pub mode: RunMode,
    /// The accelerator.
    pub accel: Accelerator,
    /// The Spice port on 127.0.0.1.
    pub spice_port: u16,
    /// Descriptor numbers.
    pub fds: Fds,
}

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// The full argument vector (without the program name).
pub fn command_line(l: &Launch<'_>) -> Vec<String> {
    let vm = l.vm;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    push(&["-name", &format!("guest={},debug-threads=on", vm.name)]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    let accel = match l.accel {
        Accelerator::Kvm => "kvm",
        Accelerator::Tcg => "tcg",
    };
    push(&["-machine", &format!("q35,accel={accel}")]);
    push(&[
        "-m",
        &vm.memory_mib.to_string(),
        "-smp",
        &vm.cpus.to_string(),
    ]);
    push(&[
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]);
    push(&[
        "-chardev",
        &format!("socket,id=qmp,fd={},server=on,wait=off", l.fds.qmp),
    ]);
    push(&["-mon", "chardev=qmp,mode=control"]);
    // The serial console goes to the process's stdout, which the helper points at a log file.
    push(&[
        "-chardev",
        "stdio,id=serial0,signal=off",
        "-serial",
        "chardev:serial0",
    ]);

    push(&["-add-fd", &format!("fd={},set=1,opaque=disk", l.fds.disk)]);
    let writable = l.mode != RunMode::Ephemeral;
    push(&["-blockdev", &blockdev_file("disk-file", 1, !writable)]);
    push(&["-blockdev", &format!(
        "{{\"driver\":\"qcow2\",\"file\":\"disk-file\",\"node-name\":\"disk-base\",\"read-only\":{}}}",
        !writable
    )]);
    let root = match l.fds.overlay {
        Some(fd) if l.mode == RunMode::Ephemeral => {
            push(&["-add-fd", &format!("fd={fd},set=2,opaque=overlay")]);
            push(&["-blockdev", &blockdev_file("overlay-file", 2, false)]);
            // The overlay's backing is given here, so QEMU never opens the path recorded in it.
            push(&["-blockdev", "{\"driver\":\"qcow2\",\"file\":\"overlay-file\",\"backing\":\"disk-base\",\"node-name\":\"disk\",\"read-only\":false}"]);
            "disk"
        }
        _ => "disk-base",
    };
    push(&[
        "-device",
        &format!("virtio-blk-pci,drive={root},id=vda,bootindex=1"),
    ]);
    if let Some(fd) = l.fds.iso {
        push(&["-add-fd", &format!("fd={fd},set=3,opaque=iso")]);
        push(&["-blockdev", &blockdev_file("iso-file", 3, true)]);
        push(&[
            "-blockdev",
            "{\"driver\":\"raw\",\"file\":\"iso-file\",\"node-name\":\"iso\",\"read-only\":true}",
        ]);
        push(&["-device", "ide-cd,drive=iso,id=cdrom,bootindex=0"]);
    }
    if let Some(boot) = direct_boot(vm, l.mode) {
        if let Some(fd) = l.fds.kernel {
            push(&["-kernel", &format!("/proc/self/fd/{fd}")]);
        }
        if let (Some(_), Some(fd)) = (&boot.initrd, l.fds.initrd) {
            push(&["-initrd", &format!("/proc/self/fd/{fd}")]);
        }
        if !boot.cmdline.is_empty() {
            push(&["-append", &boot.cmdline]);
        }
    }

    match vm.network {
        NetworkMode::User => {
            push(&["-netdev", "user,id=net0"]);
            // romfile= : no iPXE option ROM; guests boot from disk, not the network.
            push(&["-device", "virtio-net-pci,netdev=net0,romfile="]);
        }
        NetworkMode::None => {}
        NetworkMode::Bridge => {
            // The port is a persistent tap the helper made, owned by the VM's user: QEMU, as
            // that user, attaches to it by name and needs no privilege. Its MAC is the one the
            // bridge's anti-spoofing rules bind the port to.
            if let Some(port) = &vm.bridge {
                push(&[
                    "-netdev",
                    &format!(
                        "tap,id=net0,ifname={},script=no,downscript=no",
                        palisade_dbus::policy::lab::port_name(vm.name.as_str())
                    ),
                ]);
                push(&[
                    "-device",
                    &format!("virtio-net-pci,netdev=net0,romfile=,mac={}", port.mac),
                ]);
            }
        }
    }

    push(&["-device", "qemu-xhci,id=xhci"]);
    let mut spice = match l.fds.tls_dir {
        // TLS only: no plain port at all, so the password never crosses the wire in the clear.
        Some(fd) if vm.display.tls => format!(
            "tls-port={},addr={},x509-dir=/proc/self/fd/{fd}",
            l.spice_port, vm.display.address
        ),
        _ => format!("port={},addr={}", l.spice_port, vm.display.address),
    };
    if !vm.display.clipboard {
        spice.push_str(",disable-copy-paste=on");
    }
    // No password option and no disable-ticketing: nobody connects until a ticket is issued.
    push(&["-spice", &spice]);
    push(&[
        "-device",
        match vm.display.video {
            Video::Qxl => "qxl-vga",
            Video::Virtio => "virtio-vga",
        },
    ]);
    push(&["-device", "virtio-serial-pci,id=vserial"]);
    push(&["-chardev", "spicevmc,id=vdagent,name=vdagent"]);
    push(&[
        "-device",
        "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
    ]);
    a
}

fn blockdev_file(node: &str, fdset: u32, read_only: bool) -> String {
    format!(
        "{{\"driver\":\"file\",\"filename\":\"/dev/fdset/{fdset}\",\"node-name\":\"{node}\",\"read-only\":{read_only}}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::Policy;

    fn vm(extra: &str) -> Vm {
        let doc = format!("[[vm]]\nname = \"work\"\nmemory = 512\ncpus = 2\n{extra}");
        let p = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
        p.policy.vms[0].clone()
    }

    fn fds() -> Fds {
        Fds {
            qmp: 3,
            disk: 4,
            overlay: Some(5),
            iso: None,
            kernel: None,
            initrd: None,
            tls_dir: None,
        }
    }

    #[test]
    fn ephemeral_runs_on_an_overlay_with_the_base_read_only() {
        let v = vm("");
        let args = command_line(&Launch {
            vm: &v,
            mode: RunMode::Ephemeral,
            accel: Accelerator::Tcg,
            spice_port: 5901,
            fds: fds(),
        });
        let line = args.join(" ");
        assert!(
            line.contains("\"node-name\":\"disk-base\",\"read-only\":true"),
            "{line}"
        );
        assert!(line.contains("\"backing\":\"disk-base\""), "{line}");
        assert!(line.contains("drive=disk,"), "{line}");
        assert!(line.contains(
            "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        ));
        assert!(line.contains("-nodefaults -no-user-config"));
        assert!(line.contains("port=5901,addr=127.0.0.1,disable-copy-paste=on"));
        assert!(!line.contains("disable-ticketing") && !line.contains("-cpu host"));
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with('/') && !a.starts_with("/proc/self/fd/")),
            "a path reached QEMU: {line}"
        );
    }

    #[test]
    fn update_writes_the_new_version_and_install_adds_the_iso() {
        let v = vm("");
        let mut f = fds();
        f.overlay = None;
        f.iso = Some(6);
        let args = command_line(&Launch {
            vm: &v,
            mode: RunMode::Install,
            accel: Accelerator::Kvm,
            spice_port: 5900,
            fds: f,
        });
        let line = args.join(" ");
        assert!(
            line.contains("\"node-name\":\"disk-base\",\"read-only\":false"),
            "{line}"
        );
        assert!(
            line.contains("fd=6,set=3") && line.contains("ide-cd,drive=iso"),
            "{line}"
        );
        assert!(line.contains("q35,accel=kvm"));
    }

    #[test]
    fn the_descriptor_plan_has_no_gaps() {
        let v = vm("kernel = \"vmlinuz\"\ndisplay = { tls = true }\n");
        let f = Fds::plan(&v, RunMode::Ephemeral, false);
        assert_eq!(
            (f.qmp, f.disk, f.overlay, f.kernel, f.initrd, f.tls_dir),
            (3, 4, Some(5), Some(6), None, Some(7))
        );
        let f = Fds::plan(&v, RunMode::Update, false);
        assert_eq!(
            (f.overlay, f.iso, f.kernel, f.tls_dir),
            (None, None, Some(5), Some(6))
        );
        // An installer boots from its CD: no kernel is handed over.
        let f = Fds::plan(&v, RunMode::Install, true);
        assert_eq!(
            (f.overlay, f.iso, f.kernel, f.initrd, f.tls_dir),
            (None, Some(5), None, None, Some(6))
        );
    }

    #[test]
    fn tls_displays_have_no_plain_port() {
        let v = vm("display = { tls = true, address = \"192.0.2.5\" }\n");
        let mut f = fds();
        f.tls_dir = Some(9);
        let line = command_line(&Launch {
            vm: &v,
            mode: RunMode::Ephemeral,
            accel: Accelerator::Tcg,
            spice_port: 5900,
            fds: f,
        })
        .join(" ");
        assert!(
            line.contains("-spice tls-port=5900,addr=192.0.2.5,x509-dir=/proc/self/fd/9"),
            "{line}"
        );
    }

    #[test]
    fn kernel_boot_and_no_network() {
        let v = vm("network = \"none\"\nkernel = \"vmlinuz\"\ninitrd = \"initrd.img\"\ncmdline = \"console=ttyS0 pal.stay=1\"\n");
        let mut f = fds();
        f.kernel = Some(7);
        f.initrd = Some(8);
        let args = command_line(&Launch {
            vm: &v,
            mode: RunMode::Ephemeral,
            accel: Accelerator::Tcg,
            spice_port: 5900,
            fds: f,
        });
        let line = args.join(" ");
        assert!(
            line.contains("-kernel /proc/self/fd/7 -initrd /proc/self/fd/8"),
            "{line}"
        );
        assert!(
            args.iter().any(|a| a == "console=ttyS0 pal.stay=1"),
            "the command line is one argument"
        );
        assert!(!line.contains("-netdev"));
    }

    #[test]
    fn install_mode_boots_the_installer_not_the_policy_kernel() {
        let v = vm("kernel = \"vmlinuz\"\ninitrd = \"initrd.img\"\ncmdline = \"console=ttyS0\"\n");
        let fds = Fds::plan(&v, RunMode::Install, true);
        let args = command_line(&Launch {
            vm: &v,
            mode: RunMode::Install,
            accel: Accelerator::Tcg,
            spice_port: 5900,
            fds,
        });
        let line = args.join(" ");
        assert!(
            line.contains("ide-cd,drive=iso,id=cdrom,bootindex=0"),
            "{line}"
        );
        for direct in ["-kernel", "-initrd", "-append"] {
            assert!(
                !args.iter().any(|a| a == direct),
                "{direct} while installing: {line}"
            );
        }
        // The same VM started normally boots its kernel.
        let fds = Fds::plan(&v, RunMode::Update, false);
        let args = command_line(&Launch {
            vm: &v,
            mode: RunMode::Update,
            accel: Accelerator::Tcg,
            spice_port: 5900,
            fds,
        });
        assert!(args.iter().any(|a| a == "-kernel"), "{args:?}");
    }

    #[test]
    fn a_bridged_vm_attaches_to_its_own_port_with_its_mac() {
        let doc =
            "[[network]]\nname = \"lab\"\nsubnet = \"10.77.0.0/24\"\naddress = \"10.77.0.1\"\n\
                   [[vm]]\nname = \"work\"\nnetwork = \"bridge\"\nbridge = \"lab\"\n\
                   address = \"10.77.0.10\"\nmac = \"52:54:00:00:00:10\"\n";
        let p = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
        let args = command_line(&Launch {
            vm: &p.policy.vms[0],
            mode: RunMode::Ephemeral,
            accel: Accelerator::Tcg,
            spice_port: 5900,
            fds: fds(),
        });
        let line = args.join(" ");
        let port = palisade_dbus::policy::lab::port_name("work");
        assert!(
            line.contains(&format!(
                "-netdev tap,id=net0,ifname={port},script=no,downscript=no"
            )),
            "{line}"
        );
        assert!(
            line.contains("virtio-net-pci,netdev=net0,romfile=,mac=52:54:00:00:00:10"),
            "{line}"
        );
    }
}
