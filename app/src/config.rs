//! Build-time configuration: application id, version, text domain and where the translations live.
//!
//! Packagers set `PALISADE_LOCALEDIR` (and optionally `PALISADE_VERSION`) in the environment of
//! `cargo build`; without them the defaults below make a plain `cargo run` work. At run time the
//! same `PALISADE_LOCALEDIR` variable, when set, points the app at freshly compiled catalogues
//! (useful for `make demo` and translators checking their work without installing).
//!
//! Run-time environment variables the app honours: `PALISADE_LOCALEDIR` (above),
//! `PALISADE_VIEWER` (the console viewer, see [`viewer`]), `DBUS_SYSTEM_BUS_ADDRESS` (the bus
//! the helper is on) and `XDG_RUNTIME_DIR` (where console files are written).

use std::path::PathBuf;

/// The application id, also the app's name on the session bus and its desktop file's name.
pub const APP_ID: &str = palisade_dbus::names::APP_ID;

/// The gettext text domain of every translatable string in the app.
pub const GETTEXT_PACKAGE: &str = "palisade";

/// The version shown in the window.
pub const VERSION: &str = match option_env!("PALISADE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Where the compiled catalogues (`<lang>/LC_MESSAGES/palisade.mo`) were installed.
pub const LOCALE_DIR: &str = match option_env!("PALISADE_LOCALEDIR") {
    Some(d) => d,
    None => "/usr/share/locale",
};

/// The locale directory to bind the text domain to: `PALISADE_LOCALEDIR` from the environment
/// when set and not empty, else the build-time [`LOCALE_DIR`].
pub fn locale_dir() -> PathBuf {
    match std::env::var_os("PALISADE_LOCALEDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(LOCALE_DIR),
    }
}

/// The Spice viewer started by **Open console**, given one argument: the `.vv` file. At run time
/// `PALISADE_VIEWER`, when set and not empty, names another program: the end-to-end tests point
/// it at a script that records what the viewer was given. Default: `remote-viewer` on `PATH`.
pub fn viewer() -> std::ffi::OsString {
    crate::viewer::program(std::env::var_os("PALISADE_VIEWER"))
}
