//! What the desktop app and `palisadectl` share beyond the D-Bus contract: handing a console
//! ticket to the Spice viewer, and files to the helper as descriptors.

pub mod handover;
pub mod viewer;
