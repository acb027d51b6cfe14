//! One machine of "My machines": its name and state, **Start** and **Stop** for a VM the user
//! operates, the **USB** menu of a running one (the host's devices and the emulated ones, each
//! a toggle: pressed is attached), **Manage…** for an admin, and **Open console**. Every
//! control is named after the machine for screen readers ("Open console of work"); clicks go to
//! the page as [`MachineRowOutput`], which makes the calls.

use crate::a11y;
use crate::i18n::{gettext, i18n_f};
use crate::machines::{Kind, Machine, UsbEntry};
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};

/// A machine row.
#[derive(Debug)]
pub struct MachineRow {
    /// What is shown.
    machine: Machine,
    /// Whether a call for this machine is under way (its buttons wait meanwhile).
    busy: bool,
    /// The USB menu's entries, one toggle each; rebuilt each time the menu opens.
    usb_list: gtk::Box,
    /// The USB menu, a popover of the **USB** button (a plain button rather than a
    /// `MenuButton`: GTK 4.8's menu button is an unnamed toggle inside a named group, which
    /// screen readers and AT-SPI cannot click by the row's name).
    usb_menu: gtk::Popover,
}

/// What a machine row starts with.
#[derive(Debug)]
pub struct MachineRowInit {
    /// The machine.
    pub machine: Machine,
    /// Whether a call for it is under way.
    pub busy: bool,
}

/// Messages to a machine row.
#[derive(Debug)]
pub enum MachineRowInput {
    /// Show this (newer) state of the same machine.
    Set(Machine),
    /// A call for this machine started (`true`) or ended (`false`).
    Busy(bool),
    /// Show these entries in the USB menu (or this sentence when they could not be read).
    Usb(Result<Vec<UsbEntry>, String>),
}

/// What a machine row asks the window to do.
#[derive(Debug)]
pub enum MachineRowOutput {
    /// Open the console of the named machine.
    Open(String),
    /// Start the named VM.
    Start(String),
    /// Stop the named VM.
    Stop(String),
    /// Open the admin's dialog for the named VM (update mode, versions, delete).
    Manage(String),
    /// The USB menu of the named VM opened: read its devices.
    UsbOpened(String),
    /// Attach `device` (as `Vms.UsbAttach` takes it) to VM `vm`.
    UsbAttach {
        /// The VM.
        vm: String,
        /// The device.
        device: String,
    },
    /// Detach the device attached as `id` from VM `vm`.
    UsbDetach {
        /// The VM.
        vm: String,
        /// Its id.
        id: String,
    },
}

impl MachineRow {
    fn icon(&self) -> &'static str {
        match self.machine.kind {
            Kind::Local => "computer-symbolic",
            Kind::Remote => "network-server-symbolic",
        }
    }

    /// Fills the USB menu: a toggle per device, pressed when attached; pressing attaches,
    /// releasing detaches.
    fn fill_usb(&self, entries: Result<Vec<UsbEntry>, String>, sender: &FactorySender<Self>) {
        while let Some(child) = self.usb_list.first_child() {
            self.usb_list.remove(&child);
        }
        let entries = match entries {
            Ok(entries) => entries,
            Err(why) => {
                let label = gtk::Label::new(Some(&why));
                label.set_wrap(true);
                label.set_max_width_chars(40);
                self.usb_list.append(&label);
                return;
            }
        };
        let title = gtk::Label::new(Some(&i18n_f(
            "USB devices of {name}",
            &[("name", &self.machine.name)],
        )));
        title.add_css_class("heading");
        title.set_xalign(0.0);
        self.usb_list.append(&title);
        for entry in entries {
            // A toggle button, not a check box: GTK 4.8 gives check boxes no accessible action,
            // so a screen reader could not tick one.
            let toggle = gtk::ToggleButton::with_label(&entry.label);
            toggle.add_css_class("flat");
            toggle.set_active(entry.attached.is_some());
            // Only attached devices the host no longer lists have no device to attach again.
            toggle.set_sensitive(!entry.device.is_empty() || entry.attached.is_some());
            let (sender, vm) = (sender.clone(), self.machine.name.clone());
            toggle.connect_toggled(move |toggle| {
                let message = match (toggle.is_active(), &entry.attached) {
                    (true, _) => MachineRowOutput::UsbAttach {
                        vm: vm.clone(),
                        device: entry.device.clone(),
                    },
                    (false, Some(id)) => MachineRowOutput::UsbDetach {
                        vm: vm.clone(),
                        id: id.clone(),
                    },
                    (false, None) => return,
                };
                sender.output_sender().emit(message);
            });
            self.usb_list.append(&toggle);
        }
    }

    /// The tooltip of **Open console**, saying why it cannot be clicked when it cannot.
    fn open_tooltip(&self) -> String {
        if self.machine.can_open() {
            i18n_f("Open console of {name}", &[("name", &self.machine.name)])
        } else {
            i18n_f(
                "{name} is not running; start it first",
                &[("name", &self.machine.name)],
            )
        }
    }
}

#[relm4::factory(pub)]
impl FactoryComponent for MachineRow {
    type Init = MachineRowInit;
    type Input = MachineRowInput;
    type Output = MachineRowOutput;
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        adw::ActionRow {
            set_use_markup: false,
            set_title: &self.machine.name,
            #[watch]
            set_subtitle: &self.machine.subtitle(),
            add_prefix = &gtk::Image {
                set_icon_name: Some(self.icon()),
            },

            add_suffix = &gtk::Spinner {
                #[watch]
                set_spinning: self.busy,
                #[watch]
                set_visible: self.busy,
            },
            add_suffix = &a11y::text_button(
                &gettext("Start"),
                &i18n_f("Start {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_start(),
                #[watch]
                set_sensitive: !self.busy,
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Start(name.clone()));
                },
            },
            add_suffix = &a11y::text_button(
                &gettext("Stop"),
                &i18n_f("Stop {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_stop(),
                #[watch]
                set_sensitive: !self.busy,
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Stop(name.clone()));
                },
            },
            #[name = "usb_button"]
            add_suffix = &a11y::text_button(
                &gettext("USB"),
                &i18n_f("USB devices of {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_usb(),
                connect_clicked[sender, popover = self.usb_menu.clone(), name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::UsbOpened(name.clone()));
                    popover.popup();
                },
            },
            add_suffix = &a11y::text_button(
                &gettext("Manage…"),
                &i18n_f("Manage {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_manage(),
                #[watch]
                set_sensitive: !self.busy,
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Manage(name.clone()));
                },
            },
            add_suffix = &a11y::text_button(
                &gettext("Open console"),
                &i18n_f("Open console of {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                add_css_class: "suggested-action",
                #[watch]
                set_visible: self.machine.console,
                #[watch]
                set_sensitive: self.machine.can_open() && !self.busy,
                #[watch]
                set_tooltip_text: Some(&self.open_tooltip()),
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Open(name.clone()));
                },
            },
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        let usb_list = gtk::Box::new(gtk::Orientation::Vertical, 6);
        usb_list.set_margin_top(6);
        usb_list.set_margin_bottom(6);
        usb_list.set_margin_start(6);
        usb_list.set_margin_end(6);
        usb_list.append(&gtk::Spinner::builder().spinning(true).build());
        let usb_menu = gtk::Popover::new();
        usb_menu.set_child(Some(&usb_list));
        MachineRow {
            machine: init.machine,
            busy: init.busy,
            usb_list,
            usb_menu,
        }
    }

    fn init_widgets(
        &mut self,
        _index: &DynamicIndex,
        root: Self::Root,
        _returned_widget: &gtk::Widget,
        sender: FactorySender<Self>,
    ) -> Self::Widgets {
        let widgets = view_output!();
        self.usb_menu.set_parent(&widgets.usb_button);
        widgets
    }

    fn shutdown(&mut self, _widgets: &mut Self::Widgets, _output: relm4::Sender<Self::Output>) {
        // A popover is not a child the button drops by itself.
        self.usb_menu.unparent();
    }

    fn update(&mut self, message: Self::Input, sender: FactorySender<Self>) {
        match message {
            MachineRowInput::Set(machine) => self.machine = machine,
            MachineRowInput::Busy(busy) => self.busy = busy,
            MachineRowInput::Usb(entries) => self.fill_usb(entries, &sender),
        }
    }
}
