//! One remote console (console client role) as a row: its name, the Spice server it reaches,
//! whether over TLS, and which local users and groups may connect to it; with a lock and its
//! file when a drop-in defines it.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::lock;
use crate::managed::{self, ManagedBy};
use palisade_dbus::policy::RemoteConsole;
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};

/// What a console row shows.
#[derive(Debug)]
pub struct ConsoleRowInit {
    /// The remote console.
    pub console: RemoteConsole,
    /// The drop-in that defines it; `None` for the local policy's.
    pub managed_by: Option<ManagedBy>,
}

/// A read-only remote console row.
#[derive(Debug)]
pub struct ConsoleRow {
    /// The console's name.
    name: String,
    /// Server, port and TLS.
    endpoint: String,
    /// Who may connect.
    access: String,
    /// The drop-in that defines it; `None` for the local policy's.
    managed_by: Option<ManagedBy>,
}

/// Messages to a console row; it is read-only and takes none yet.
#[derive(Debug)]
pub enum ConsoleRowInput {}

#[relm4::factory(pub)]
impl FactoryComponent for ConsoleRow {
    type Init = ConsoleRowInit;
    type Input = ConsoleRowInput;
    type Output = ();
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        adw::ActionRow {
            set_use_markup: false,
            set_title: &self.name,
            set_subtitle: &managed::with_caption(
                &i18n_f(
                    "{endpoint} · may connect: {access}",
                    &[("endpoint", &self.endpoint), ("access", &self.access)],
                ),
                self.managed_by.as_ref(),
            ),
            add_prefix = &gtk::Image {
                set_icon_name: Some("network-server-symbolic"),
            },
            add_suffix = &lock::icon(self.managed_by.as_ref()),
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        let ConsoleRowInit {
            console,
            managed_by,
        } = init;
        let host = format::destination(&console.host);
        let address = if host.contains(':') {
            format!("[{host}]:{}", console.port)
        } else {
            format!("{host}:{}", console.port)
        };
        let endpoint = if console.tls {
            i18n_f("{address}, TLS", &[("address", &address)])
        } else {
            i18n_f(
                "{address}, {plain}",
                &[("address", &address), ("plain", &gettext("no TLS"))],
            )
        };
        ConsoleRow {
            name: console.name.to_string(),
            endpoint,
            access: format::access(&console.access),
            managed_by,
        }
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {}
    }
}
