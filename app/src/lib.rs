//! What the desktop app and `palisadectl` share beyond the D-Bus contract: handing a console
//! ticket to the Spice viewer.

pub mod viewer;
