//! What the desktop app and `palisadectl` share beyond the D-Bus contract: handing a console
//! ticket to the Spice viewer, files to the helper as descriptors, and reading port forwards.

pub mod forward;
pub mod handover;
pub mod viewer;
