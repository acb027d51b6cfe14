//! A plain row of text: a validation finding about the live policy, or a blocklist's size (with
//! a lock and its file when a drop-in defines the list).

use crate::lock;
use crate::managed::{self, ManagedBy};
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};

/// What an info row shows.
#[derive(Debug)]
pub struct InfoRowInit {
    /// The row's title.
    pub title: String,
    /// The row's subtitle.
    pub subtitle: String,
    /// The icon in front, if any.
    pub icon: Option<&'static str>,
    /// The drop-in that defines what the row shows; `None` for the local policy (and findings).
    pub managed_by: Option<ManagedBy>,
}

/// A read-only row of text.
#[derive(Debug)]
pub struct InfoRow {
    /// What it shows.
    init: InfoRowInit,
}

/// Messages to an info row; it is read-only and takes none.
#[derive(Debug)]
pub enum InfoRowInput {}

#[relm4::factory(pub)]
impl FactoryComponent for InfoRow {
    type Init = InfoRowInit;
    type Input = InfoRowInput;
    type Output = ();
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        adw::ActionRow {
            set_use_markup: false,
            set_title: &self.init.title,
            set_subtitle: &managed::with_caption(&self.init.subtitle, self.init.managed_by.as_ref()),
            add_prefix = &gtk::Image {
                set_visible: self.init.icon.is_some(),
                set_icon_name: self.init.icon,
            },
            add_suffix = &lock::icon(self.init.managed_by.as_ref()),
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        InfoRow { init }
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {}
    }
}
