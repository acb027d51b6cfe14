//! End-to-end test harness for Palisade: real components, no mocks.
//!
//! [`TestEnv::start`] gives each test a private installation — a fresh network namespace, a
//! private system bus (`dbus-daemon` with the repo's bus policy), the real `polkitd` deciding
//! with the repo's actions and rules plus `tests/polkit/*.rules`, and `palisade-helper` — and
//! runs commands in it as the real test users (`pal-alice`, `pal-bob`, `pal-admin`). Dropping the
//! environment tears all of it down, also when the test panics.
//!
//! Tests must run as root and one at a time (`--test-threads=1`): they create users and network
//! namespaces, and the helper applies rulesets. The host's firewall, `/etc`, `/usr` and system
//! bus are never touched; `scripts/cleanup.sh` removes the test users and any leftovers of a
//! crashed run.
//!
//! Environment variables: `PALISADE_BIN_DIR` (where the binaries under test are; default
//! `target/debug`), `PALISADE_KEEP_TMP` (keep the temp dir of each environment for inspection).

mod bus;
pub mod demo;
mod display;
pub mod dns;
mod env;
mod guest;
mod helper;
pub mod lab;
pub mod load;
mod netns;
mod paths;
mod polkit;
mod process;
mod users;

pub use bus::name_has_owner;
pub use display::Xvfb;
pub use env::{TestEnv, TMP_PREFIX};
pub use guest::{
    build_guest, build_installer_iso, install_guest_kernel, vm_policy, vm_policy_with,
    INSTALLER_CMDLINE,
};
pub use netns::{list_netns, Netns, NETNS_PREFIX};
pub use nix::sys::signal::Signal;
pub use paths::{bin_dir, workspace_dir};
pub use polkit::POLKIT_BUS_NAME;
pub use process::{
    describe, open_fds, rss_kib, rss_parts_kib, run_bounded, wait_until, DEFAULT_TIMEOUT,
};
pub use users::{
    account, cleanup_test_users, cleanup_vm_users, ensure_test_users, uid_of, Account, ADMIN,
    ALICE, BOB, TEST_USERS, VM_USER_PREFIX,
};
