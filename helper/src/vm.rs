//! Virtual machines: their system users (the identity the firewall matches with `meta skuid`),
//! disk image versions, the QEMU command line, the QMP monitor, and the supervisor that runs
//! them.

pub mod accel;
pub mod images;
pub mod launch;
pub mod qemu;
pub mod qmp;
pub mod supervisor;
pub mod tls;
pub mod usb;

/// An I/O failure while doing `what`, as the error the caller sees.
fn io(what: &str, e: impl std::fmt::Display) -> palisade_dbus::Error {
    palisade_dbus::Error::Internal(format!("could not {what}: {e}"))
}
