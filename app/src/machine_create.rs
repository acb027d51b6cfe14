//! The admin's dialog that creates a virtual machine: its name, disk size, memory and CPUs,
//! each judged as it is typed with the contract's own rules (`machines::check_new_vm`), its
//! network (user networking, or a port on a lab network with its address, MAC, NAT address and
//! forwarded ports: `machines::check_bridge` judges their shape, the helper the rest), and an
//! optional installer ISO chosen with the desktop's file chooser.
//!
//! **Create** calls `Vms.Create` (or `Vms.CreateBridged`), then, with an ISO, opens the file here, as the user, and hands
//! the helper only its descriptor (`Vms.Install`): the root helper never opens the user's path,
//! so it can only boot what the user could read. Both calls allow polkit to ask for a password
//! (`interactive`). Meanwhile a spinner says which step runs and the form cannot be changed. A
//! refused creation is shown in the dialog with the helper's sentence; once the VM exists the
//! dialog closes and tells the page, with the installer's failure if it did not start.

use crate::a11y;
use crate::app::CALL_TIMEOUT;
use crate::format::capitalized;
use crate::i18n::{gettext, i18n_f};
use crate::interactive;
use crate::machines::{self, BridgeForm, Field, NewVm};
use palisade_app::handover;
use palisade_dbus::proxy::VmsProxy;
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender, Sender, ShutdownReceiver};
use std::path::PathBuf;
use std::time::Duration;

/// How long creating may take besides a password: `qemu-img` and a new policy generation.
const CREATE_WORK: Duration = Duration::from_secs(120);

/// What the dialog starts with.
#[derive(Debug)]
pub struct MachineCreateInit {
    /// The page's connection to the bus.
    pub connection: zbus::Connection,
}

/// The create dialog.
#[derive(Debug)]
pub struct MachineCreate {
    /// The page's connection to the bus.
    connection: zbus::Connection,
    /// The fields as typed.
    name: String,
    /// Disk size.
    disk: String,
    /// Memory.
    memory: String,
    /// Virtual CPUs.
    cpus: String,
    /// The lab network fields as typed.
    bridge: BridgeForm,
    /// The installer ISO, when one was chosen.
    iso: Option<PathBuf>,
    /// The step under way, if any.
    step: Option<Step>,
    /// The helper's sentence when it refused the last creation.
    error: Option<String>,
    /// The file chooser, kept alive while it is open.
    chooser: Option<gtk::FileChooserNative>,
}

/// A step of the creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `Vms.Create` runs.
    Creating,
    /// `Vms.Install` runs.
    Installing,
}

/// Messages to the create dialog.
#[derive(Debug)]
pub enum MachineCreateInput {
    /// A field changed.
    Field(Field, String),
    /// Open the file chooser.
    ChooseIso,
    /// The file chooser closed, with a file or without.
    IsoChosen(Option<PathBuf>),
    /// Forget the chosen ISO: create an empty disk only.
    ClearIso,
    /// Create with what the form says.
    Create,
    /// Close without creating (ignored while a creation is under way).
    Cancel,
}

/// What the dialog tells the page.
#[derive(Debug)]
pub enum MachineCreateOutput {
    /// A VM was created; the dialog has closed.
    Created {
        /// Its name.
        name: String,
        /// Whether an installer was started for it.
        installing: bool,
        /// Why the installer did not start, when it did not.
        install_error: Option<String>,
    },
    /// The dialog closed without creating.
    Closed,
}

/// Progress and results of the dialog's calls.
#[derive(Debug)]
pub enum MachineCreateCmd {
    /// The next step started.
    Progress(Step),
    /// `Vms.Create` failed: nothing was made.
    Refused(Error),
    /// The VM exists; with an ISO, the installer started or this is why not.
    Created {
        /// Its name.
        name: String,
        /// `Vms.Install`'s answer, when there was an ISO.
        install: Option<Result<(), Error>>,
    },
    /// The command was stopped (the app is closing).
    Stopped,
}

/// Creates the VM, then starts its installer from `iso` (opened here, as the user).
async fn create(
    connection: zbus::Connection,
    new: NewVm,
    iso: Option<PathBuf>,
    out: Sender<MachineCreateCmd>,
) -> MachineCreateCmd {
    let proxy = match VmsProxy::new(&connection).await {
        Ok(proxy) => proxy,
        Err(e) => return MachineCreateCmd::Refused(e.into()),
    };
    let created = match &new.bridge {
        None => {
            interactive::create_vm(
                &proxy,
                &new.name,
                &new.disk_size,
                &new.memory,
                new.cpus,
                CREATE_WORK,
            )
            .await
        }
        Some(bridge) => {
            interactive::create_bridged_vm(
                &proxy,
                &new.name,
                &new.disk_size,
                &new.memory,
                new.cpus,
                bridge,
                CREATE_WORK,
            )
            .await
        }
    };
    if let Err(e) = created {
        return MachineCreateCmd::Refused(e);
    }
    let Some(iso) = iso else {
        return MachineCreateCmd::Created {
            name: new.name,
            install: None,
        };
    };
    out.emit(MachineCreateCmd::Progress(Step::Installing));
    let install = install(&proxy, &new.name, iso).await;
    MachineCreateCmd::Created {
        name: new.name,
        install: Some(install),
    }
}

/// Boots VM `name`'s installer from `iso`, opened here as the user, off the async workers: the
/// helper gets the descriptor only.
pub async fn install(proxy: &VmsProxy<'_>, name: &str, iso: PathBuf) -> Result<(), Error> {
    let file = tokio::task::spawn_blocking(move || {
        handover::open_as_caller(&iso, &gettext("the installer ISO"))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    interactive::install_vm(proxy, name, &file, CALL_TIMEOUT).await?;
    Ok(())
}

impl MachineCreate {
    /// The form, checked.
    fn checked(&self) -> Result<NewVm, Vec<(Field, String)>> {
        let vm = machines::check_new_vm(&self.name, &self.disk, &self.memory, &self.cpus);
        if !self.bridged() {
            return vm;
        }
        match (vm, machines::check_bridge(&self.bridge)) {
            (Ok(vm), Ok(bridge)) => Ok(NewVm {
                bridge: Some(bridge),
                ..vm
            }),
            (Ok(_), Err(problems)) => Err(problems),
            (Err(mut problems), Err(more)) => {
                problems.extend(more);
                Err(problems)
            }
            (Err(problems), Ok(_)) => Err(problems),
        }
    }

    /// Whether the VM gets a port on a lab network: one is named.
    fn bridged(&self) -> bool {
        !self.bridge.network.trim().is_empty()
    }

    /// Whether the user typed into `field` (an empty field is not reported until then).
    fn typed(&self, field: Field) -> bool {
        match field {
            Field::Name => !self.name.trim().is_empty(),
            Field::Address => !self.bridge.address.trim().is_empty(),
            _ => true,
        }
    }

    /// The problems of the fields the user has typed in, each named by its field.
    fn hint(&self) -> String {
        let Err(problems) = self.checked() else {
            return String::new();
        };
        problems
            .iter()
            .filter(|(field, _)| self.typed(*field))
            .map(|(field, why)| {
                let field = match field {
                    Field::Name => gettext("Name"),
                    Field::Disk => gettext("Disk size"),
                    Field::Memory => gettext("Memory"),
                    Field::Cpus => gettext("CPUs"),
                    Field::Network => gettext("Lab network"),
                    Field::Address => gettext("Address on the lab network"),
                    Field::Mac => gettext("MAC address"),
                    Field::Nat => gettext("NAT address"),
                    Field::Forwards => gettext("Forwarded ports"),
                };
                i18n_f("{field}: {problem}", &[("field", &field), ("problem", why)])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn iso_label(&self) -> String {
        match &self.iso {
            Some(path) => path.display().to_string(),
            None => gettext("None: the VM starts with an empty disk"),
        }
    }

    fn progress(&self) -> String {
        let name = self.name.trim();
        match self.step {
            Some(Step::Creating) => i18n_f("Creating {name}…", &[("name", name)]),
            Some(Step::Installing) => {
                i18n_f("Starting the installer of {name}…", &[("name", name)])
            }
            None => String::new(),
        }
    }

    fn choose_iso(&mut self, sender: &ComponentSender<Self>, root: &adw::Window) {
        let input = sender.input_sender().clone();
        self.chooser = Some(iso_chooser(root, move |path| {
            input.emit(MachineCreateInput::IsoChosen(path));
        }));
    }
}

/// Shows the desktop's file chooser for an installer ISO over `root`; `chosen` gets the path,
/// or `None` when the chooser was cancelled. The chooser must be kept until it answers.
pub fn iso_chooser(
    root: &adw::Window,
    chosen: impl Fn(Option<PathBuf>) + 'static,
) -> gtk::FileChooserNative {
    let chooser = gtk::FileChooserNative::new(
        Some(&gettext("Choose an Installer ISO")),
        Some(root),
        gtk::FileChooserAction::Open,
        Some(&gettext("_Open")),
        Some(&gettext("_Cancel")),
    );
    chooser.set_modal(true);
    let filter = gtk::FileFilter::new();
    filter.set_name(Some(&gettext("ISO images")));
    filter.add_pattern("*.iso");
    filter.add_pattern("*.ISO");
    filter.add_mime_type("application/x-cd-image");
    chooser.add_filter(&filter);
    let all = gtk::FileFilter::new();
    all.set_name(Some(&gettext("All files")));
    all.add_pattern("*");
    chooser.add_filter(&all);
    chooser.connect_response(move |chooser, response| {
        let path = (response == gtk::ResponseType::Accept)
            .then(|| chooser.file().and_then(|f| f.path()))
            .flatten();
        chosen(path);
    });
    chooser.show();
    chooser
}

#[relm4::component(pub)]
impl Component for MachineCreate {
    type Init = MachineCreateInit;
    type Input = MachineCreateInput;
    type Output = MachineCreateOutput;
    type CommandOutput = MachineCreateCmd;

    view! {
        adw::Window {
            set_modal: true,
            set_default_width: 560,
            set_title: Some(&gettext("Create a Virtual Machine")),
            connect_close_request[sender] => move |_| {
                sender.input(MachineCreateInput::Cancel);
                glib::Propagation::Stop
            },

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {
                    set_show_end_title_buttons: false,
                    set_show_start_title_buttons: false,
                    #[wrap(Some)]
                    set_title_widget = &adw::WindowTitle {
                        set_title: &gettext("Create a Virtual Machine"),
                    },
                    pack_start = &gtk::Button {
                        set_label: &gettext("Cancel"),
                        #[watch]
                        set_sensitive: model.step.is_none(),
                        connect_clicked => MachineCreateInput::Cancel,
                    },
                    pack_end = &gtk::Button {
                        set_label: &gettext("Create"),
                        add_css_class: "suggested-action",
                        #[watch]
                        set_sensitive: model.step.is_none() && model.checked().is_ok(),
                        connect_clicked => MachineCreateInput::Create,
                    },
                },

                adw::PreferencesPage {
                    #[watch]
                    set_sensitive: model.step.is_none(),

                    // What is under way or wrong comes first: the form is taller than many
                    // screens, and Create (in the header) says nothing about why it is off.
                    add = &adw::PreferencesGroup {
                        gtk::Box {
                            set_spacing: 12,
                            set_halign: gtk::Align::Center,
                            #[watch]
                            set_visible: model.step.is_some(),
                            gtk::Spinner {
                                #[watch]
                                set_spinning: model.step.is_some(),
                            },
                            gtk::Label {
                                #[watch]
                                set_label: &model.progress(),
                            },
                        },
                        gtk::Label {
                            set_wrap: true,
                            set_xalign: 0.0,
                            set_selectable: true,
                            add_css_class: "error",
                            #[watch]
                            set_visible: model.error.is_some() && model.step.is_none(),
                            #[watch]
                            set_label: &model.error.as_deref().map(capitalized).unwrap_or_default(),
                        },
                        gtk::Label {
                            set_wrap: true,
                            set_xalign: 0.0,
                            add_css_class: "error",
                            #[watch]
                            set_visible: model.step.is_none() && !model.hint().is_empty(),
                            #[watch]
                            set_label: &model.hint(),
                        },
                    },

                    add = &adw::PreferencesGroup {
                        adw::EntryRow {
                            set_title: &gettext("Name"),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Name, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("Disk size"),
                            set_text: &model.disk,
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Disk, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("Memory"),
                            set_text: &model.memory,
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Memory, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("CPUs"),
                            set_text: &model.cpus,
                            set_input_purpose: gtk::InputPurpose::Digits,
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Cpus, row.text().to_string()));
                            },
                        },
                    },

                    add = &adw::PreferencesGroup {
                        set_title: &gettext("Network"),
                        set_description: Some(&gettext("Without a lab network the VM reaches the network through this computer (user networking). Name a lab network of the policy to give it a port on that bridge, with its own address.")),
                        adw::EntryRow {
                            set_title: &gettext("Lab network"),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Network, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("Address on the lab network"),
                            #[watch]
                            set_visible: model.bridged(),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Address, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("MAC address"),
                            #[watch]
                            set_visible: model.bridged(),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Mac, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("NAT address"),
                            #[watch]
                            set_visible: model.bridged(),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Nat, row.text().to_string()));
                            },
                        },
                        adw::EntryRow {
                            set_title: &gettext("Forwarded ports"),
                            #[watch]
                            set_visible: model.bridged(),
                            connect_changed[sender] => move |row| {
                                sender.input(MachineCreateInput::Field(Field::Forwards, row.text().to_string()));
                            },
                        },
                        gtk::Label {
                            set_wrap: true,
                            set_xalign: 0.0,
                            add_css_class: "dim-label",
                            #[watch]
                            set_visible: model.bridged(),
                            set_label: &gettext("The MAC address may stay empty (a stable one is chosen). With a NAT address the VM is reachable at that address of this computer and leaves from it; forwarded ports are written like tcp:2222:22, none forwards every port."),
                        },
                    },

                    add = &adw::PreferencesGroup {
                        set_title: &gettext("Installer"),
                        set_description: Some(&gettext("An ISO image the new VM boots once to install its system onto its disk. You promote the installed version afterwards.")),

                        adw::ActionRow {
                            set_title: &gettext("Installer ISO"),
                            set_use_markup: false,
                            #[watch]
                            set_subtitle: &model.iso_label(),
                            add_suffix = &a11y::text_button(&gettext("Clear"), &gettext("Create without an installer")) -> gtk::Button {
                                set_valign: gtk::Align::Center,
                                #[watch]
                                set_visible: model.iso.is_some(),
                                connect_clicked => MachineCreateInput::ClearIso,
                            },
                            add_suffix = &a11y::text_button(&gettext("Choose…"), &gettext("Choose the installer ISO")) -> gtk::Button {
                                set_valign: gtk::Align::Center,
                                connect_clicked => MachineCreateInput::ChooseIso,
                            },
                        },
                    },

                },
            },
        }
    }

    fn init(
        init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = MachineCreate {
            connection: init.connection,
            name: String::new(),
            disk: "20G".to_owned(),
            memory: "2G".to_owned(),
            cpus: "2".to_owned(),
            bridge: BridgeForm::default(),
            iso: None,
            step: None,
            error: None,
            chooser: None,
        };
        let widgets = view_output!();
        root.present();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            MachineCreateInput::Field(field, text) => {
                match field {
                    Field::Name => self.name = text,
                    Field::Disk => self.disk = text,
                    Field::Memory => self.memory = text,
                    Field::Cpus => self.cpus = text,
                    Field::Network => self.bridge.network = text,
                    Field::Address => self.bridge.address = text,
                    Field::Mac => self.bridge.mac = text,
                    Field::Nat => self.bridge.nat = text,
                    Field::Forwards => self.bridge.forwards = text,
                }
                self.error = None;
            }
            MachineCreateInput::ChooseIso => self.choose_iso(&sender, root),
            MachineCreateInput::IsoChosen(path) => {
                self.chooser = None;
                if path.is_some() {
                    self.iso = path;
                    self.error = None;
                }
            }
            MachineCreateInput::ClearIso => self.iso = None,
            MachineCreateInput::Create => {
                let Ok(new) = self.checked() else {
                    return;
                };
                if self.step.is_some() {
                    return;
                }
                self.step = Some(Step::Creating);
                self.error = None;
                let (connection, iso) = (self.connection.clone(), self.iso.clone());
                sender.command(move |out, shutdown: ShutdownReceiver| {
                    let progress = out.clone();
                    async move {
                        let done = shutdown
                            .register(create(connection, new, iso, progress))
                            .on_shutdown(async { MachineCreateCmd::Stopped })
                            .await;
                        out.emit(done);
                    }
                });
            }
            MachineCreateInput::Cancel => {
                if self.step.is_none() {
                    root.destroy();
                    let _ = sender.output(MachineCreateOutput::Closed);
                }
            }
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        match message {
            MachineCreateCmd::Progress(step) => self.step = Some(step),
            MachineCreateCmd::Refused(e) => {
                self.step = None;
                self.error = Some(e.sentence());
            }
            MachineCreateCmd::Created { name, install } => {
                self.step = None;
                root.destroy();
                let _ = sender.output(MachineCreateOutput::Created {
                    name,
                    installing: matches!(install, Some(Ok(()))),
                    install_error: install.and_then(Result::err).map(|e| e.sentence()),
                });
            }
            MachineCreateCmd::Stopped => self.step = None,
        }
    }
}
