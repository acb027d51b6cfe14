//! The contract between Palisade's unprivileged clients and its root helper.
//!
//! Everything both sides must agree on lives here and only here: the bus name and object path, the
//! interface names and their proxies, the polkit action ids, the types that cross the bus, the
//! named errors, and the policy model with its validation. The app validates with this code to show
//! problems before sending; the helper validates again with the same code on receipt, because it
//! never trusts a client.

pub mod error;
pub mod names;
pub mod policy;
pub mod proxy;
pub mod types;
pub mod vv;

pub use error::Error;
pub use names::Action;
