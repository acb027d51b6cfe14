//! Virtual machines. For now: the system user each VM's QEMU runs as, which is also the identity
//! the firewall matches (`meta skuid`).

pub mod account;
pub mod usb;
pub mod guest_firewall;
