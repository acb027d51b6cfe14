//! Palisade's desktop app: "My machines" (the VMs and consoles the user may use, with one-click
//! **Open console**), the helper's status and the live firewall policy, the imported
//! blocklists, and the firewall's activity (the drop log).
//!
//! The window talks to the root helper only through the proxies of the `palisade-dbus` contract
//! crate, on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` selects a private bus for tests and
//! `make demo`).

mod a11y;
mod access_dialog;
mod activity;
mod activity_row;
mod activity_view;
mod app;
mod blocklist_import;
mod blocklist_row;
mod blocklists;
mod blocklists_view;
mod config;
mod console_row;
mod expiry;
mod format;
mod history_view;
mod hits;
mod i18n;
mod info_row;
mod interactive;
mod lock;
mod machine_create;
mod machine_manage;
mod machine_row;
mod machines;
mod machines_view;
mod managed;
mod policy_editor;
mod policy_view;
mod quick;
mod rule_dialog;
mod rule_row;
mod status_view;
use palisade_app::viewer;
mod vm_row;

use relm4::gtk::glib;
use relm4::RelmApp;

fn main() {
    i18n::init();
    glib::set_prgname(Some("palisade"));
    // Initialises GTK, which sets the locale; translate only after this.
    let app = RelmApp::new(config::APP_ID);
    glib::set_application_name(&i18n::gettext("Palisade"));
    app.run::<app::App>(());
}
