//! Client proxies, declared once for the app, `palisadectl` and the tests alike.
//!
//! Method names and signatures mirror the helper's `#[interface]` impls; the helper's
//! introspection test fails if a method is added there without a polkit check.
//! Arguments are basic D-Bus types (`ay`, `t`, `u`, `s`) so any tool (`dbus-send`, `busctl`) can
//! call them too.

use crate::error::Error;
use crate::types::{Applied, Finding, GenerationInfo, Preview, Status};

/// `io.palisade.Helper1`: status of the helper.
#[zbus::proxy(
    interface = "io.palisade.Helper1",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Helper {
    /// Health, version and live generation. polkit: `io.palisade.policy.read`.
    fn status(&self) -> Result<Status, Error>;
}

/// `io.palisade.Helper1.Policy`: the firewall policy and its generations.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Policy",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Policy {
    /// The live generation and its policy document (TOML). polkit: `policy.read`.
    fn get(&self) -> Result<(u64, String), Error>;

    /// Every problem (errors and warnings) of a policy document. polkit: `policy.read`.
    fn validate(&self, document: &[u8]) -> Result<Vec<Finding>, Error>;

    /// The ruleset a document compiles to and its diff against the live one. polkit: `policy.read`.
    fn preview(&self, document: &[u8]) -> Result<Preview, Error>;

    /// Applies a document atomically if `base_generation` is still live. With
    /// `confirm_seconds > 0` the previous generation returns unless `Confirm` arrives in time.
    /// polkit: `policy.manage`.
    fn apply(
        &self,
        document: &[u8],
        base_generation: u64,
        confirm_seconds: u32,
    ) -> Result<Applied, Error>;

    /// Keeps a pending generation. polkit: `policy.manage`.
    fn confirm(&self, generation: u64) -> Result<(), Error>;

    /// Applies an earlier generation's policy again, as a new generation. polkit: `policy.manage`.
    fn rollback(&self, generation: u64) -> Result<Applied, Error>;

    /// Every generation, newest first. polkit: `policy.read`.
    fn history(&self) -> Result<Vec<GenerationInfo>, Error>;

    /// A new generation became live (apply, confirm timeout, rollback, expiry).
    #[zbus(signal)]
    fn generation_changed(&self, generation: u64) -> zbus::Result<()>;
}
