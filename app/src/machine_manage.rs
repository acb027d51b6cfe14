//! The admin's dialog for one VM: start it in update mode or boot an installer ISO (chosen with
//! the desktop's file chooser, opened as the user and handed to `Vms.Install` as a descriptor,
//! as the create dialog does), its disk versions (`Vms.Versions`)
//! with **Promote** and **Discard** for a finished update or install and **Restore** for a kept
//! version, and **Delete** after a confirmation naming what is lost. What `palisadectl vm
//! start --update`, `vm install`, `promote`, `discard`, `versions`, `restore` and `delete` do.
//!
//! Every change is a call that allows polkit to ask for a password (`interactive`); the dialog
//! reads the versions again after each and tells the page, which lists the machines again. A
//! refusal is shown in the dialog with the helper's sentence.

use crate::a11y;
use crate::app::CALL_TIMEOUT;
use crate::format::{self, capitalized};
use crate::i18n::{gettext, i18n_f};
use crate::interactive;
use crate::machine_create::{self, iso_chooser};
use palisade_dbus::proxy::VmsProxy;
use palisade_dbus::types::{ImageRole, ImageVersion, RunMode, VmState};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender};
use std::path::PathBuf;
use std::time::Duration;

/// How long a version change may take besides a password (promote and restore are renames;
/// delete applies a policy generation).
const WORK: Duration = Duration::from_secs(60);

/// What the dialog starts with.
#[derive(Debug)]
pub struct MachineManageInit {
    /// The page's connection to the bus.
    pub connection: zbus::Connection,
    /// The VM.
    pub name: String,
    /// Its state when the dialog opened.
    pub state: VmState,
}

/// The manage dialog.
#[derive(Debug)]
pub struct MachineManage {
    connection: zbus::Connection,
    /// The VM.
    name: String,
    /// Its state, as the page follows it.
    state: VmState,
    /// Its versions, as last read.
    versions: Vec<ImageVersion>,
    /// Whether a call is under way.
    busy: bool,
    /// The helper's sentence when it refused the last call.
    error: Option<String>,
    /// The rows of the versions list, rebuilt after each read.
    list: gtk::ListBox,
    /// The installer ISO chooser while it is open.
    chooser: Option<gtk::FileChooserNative>,
}

/// Messages to the manage dialog.
#[derive(Debug)]
pub enum MachineManageInput {
    /// The VM's state changed.
    State(VmState),
    /// Start it in update mode.
    StartUpdate,
    /// Choose an installer ISO to boot.
    ChooseIso,
    /// The chooser answered: the ISO, or `None` when cancelled.
    IsoChosen(Option<PathBuf>),
    /// Make the finished update the base.
    Promote,
    /// Throw the finished update away.
    Discard,
    /// Make this kept version the base again.
    Restore(u32),
    /// Ask whether to delete the VM.
    Delete,
    /// The admin confirmed the deletion.
    DeleteConfirmed,
    /// Close the dialog.
    Close,
}

/// What the dialog tells the page.
#[derive(Debug)]
pub enum MachineManageOutput {
    /// The VM changed (versions, state): list the machines again; with a sentence to show.
    Changed(Option<String>),
    /// The VM was deleted; the dialog has closed.
    Deleted(String),
    /// The dialog closed.
    Closed,
}

/// Results of the dialog's calls.
#[derive(Debug)]
pub enum MachineManageCmd {
    /// `Vms.Versions()` answered.
    Versions(Result<Vec<ImageVersion>, Error>),
    /// A change was made (with the sentence saying so), or refused.
    Changed(Result<String, Error>),
    /// `Vms.Start(update)` answered.
    Started(Result<(), Error>),
    /// `Vms.Install` answered.
    Installing(Result<(), Error>),
    /// `Vms.Delete()` answered.
    Deleted(Result<u64, Error>),
}

/// A change's call: its sentence for the user, or the helper's refusal.
type Change = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Error>> + Send>>;

async fn versions(connection: zbus::Connection, name: String) -> MachineManageCmd {
    let result = async { VmsProxy::new(&connection).await?.versions(&name).await }.await;
    MachineManageCmd::Versions(result)
}

impl MachineManage {
    fn title(&self) -> String {
        i18n_f("Manage {name}", &[("name", &self.name)])
    }

    fn is_off(&self) -> bool {
        matches!(self.state, VmState::ShutDown | VmState::Crashed)
    }

    /// Reads the versions again.
    fn reload(&mut self, sender: &ComponentSender<Self>) {
        sender.oneshot_command(versions(self.connection.clone(), self.name.clone()));
    }

    /// Runs a change, then reads the versions again.
    fn change<F>(&mut self, sender: &ComponentSender<Self>, call: F)
    where
        F: FnOnce(zbus::Connection, String) -> Change + Send + 'static,
    {
        if self.busy {
            return;
        }
        self.busy = true;
        self.error = None;
        let (connection, name) = (self.connection.clone(), self.name.clone());
        sender.oneshot_command(
            async move { MachineManageCmd::Changed(call(connection, name).await) },
        );
    }

    /// The versions list: each with its role, age and size; a kept one with **Restore**, a
    /// finished update with **Promote** and **Discard**.
    fn fill(&self, sender: &ComponentSender<Self>) {
        while let Some(row) = self.list.first_child() {
            self.list.remove(&row);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for v in &self.versions {
            let number = v.version.to_string();
            let role = match v.role {
                ImageRole::Base => gettext("Boots at every start"),
                ImageRole::Kept => gettext("Kept: can be restored"),
                ImageRole::Update if self.is_off() => {
                    gettext("Finished update: promote it to keep it, or discard it")
                }
                ImageRole::Update => gettext("Being written by update mode"),
            };
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&i18n_f("Version {version}", &[("version", &number)]));
            row.set_subtitle(&format!(
                "{role} · {} · {}",
                format::ago(v.created_at, now),
                glib::format_size(v.bytes)
            ));
            let button = |label: &str, accessible: &str, message: fn(u32) -> MachineManageInput| {
                let b = a11y::text_button(label, accessible);
                b.set_valign(gtk::Align::Center);
                b.set_sensitive(!self.busy);
                let (sender, version) = (sender.clone(), v.version);
                b.connect_clicked(move |_| sender.input(message(version)));
                row.add_suffix(&b);
                b
            };
            match v.role {
                ImageRole::Kept => {
                    button(
                        &gettext("Restore"),
                        &i18n_f(
                            "Restore version {version} of {name}",
                            &[("version", &number), ("name", &self.name)],
                        ),
                        MachineManageInput::Restore,
                    );
                }
                ImageRole::Update if self.is_off() => {
                    button(
                        &gettext("Discard"),
                        &i18n_f(
                            "Discard version {version} of {name}",
                            &[("version", &number), ("name", &self.name)],
                        ),
                        |_| MachineManageInput::Discard,
                    );
                    button(
                        &gettext("Promote"),
                        &i18n_f(
                            "Promote version {version} of {name}",
                            &[("version", &number), ("name", &self.name)],
                        ),
                        |_| MachineManageInput::Promote,
                    )
                    .add_css_class("suggested-action");
                }
                ImageRole::Base | ImageRole::Update => {}
            }
            self.list.append(&row);
        }
    }

    fn confirm_delete(&self, sender: &ComponentSender<Self>, root: &adw::Window) {
        let count = self.versions.len().max(1).to_string();
        let body = i18n_f(
            "Its disk and every version of it ({count}) are deleted, and it leaves the policy with its firewall rules and who may use it. This cannot be undone.",
            &[("count", &count)],
        );
        let dialog = adw::MessageDialog::new(
            Some(root),
            Some(&i18n_f("Delete {name}?", &[("name", &self.name)])),
            Some(&body),
        );
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("delete", &gettext("_Delete"));
        dialog.set_response_appearance("delete", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| {
            if response == "delete" {
                input.emit(MachineManageInput::DeleteConfirmed);
            }
        });
        dialog.present();
    }
}

#[relm4::component(pub)]
impl Component for MachineManage {
    type Init = MachineManageInit;
    type Input = MachineManageInput;
    type Output = MachineManageOutput;
    type CommandOutput = MachineManageCmd;

    view! {
        adw::Window {
            set_modal: true,
            set_default_width: 560,
            // Room for every group without scrolling on a 900-pixel-high screen.
            set_default_height: 780,
            #[watch]
            set_title: Some(&model.title()),
            connect_close_request[sender] => move |_| {
                sender.input(MachineManageInput::Close);
                glib::Propagation::Stop
            },

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {
                    #[wrap(Some)]
                    set_title_widget = &adw::WindowTitle {
                        #[watch]
                        set_title: &model.title(),
                    },
                },

                gtk::ScrolledWindow {
                    set_vexpand: true,
                    set_hscrollbar_policy: gtk::PolicyType::Never,

                    adw::PreferencesPage {
                        add = &adw::PreferencesGroup {
                            set_title: &gettext("Update mode"),
                            set_description: Some(&gettext("Starts the VM so that what you change inside it is kept: as a new version of its disk, which you promote or discard when it has shut down.")),
                            adw::ActionRow {
                                set_title: &gettext("Start in update mode"),
                                add_suffix = &a11y::text_button(
                                    &gettext("Start"),
                                    &i18n_f("Start {name} in update mode", &[("name", &model.name)]),
                                ) -> gtk::Button {
                                    set_valign: gtk::Align::Center,
                                    #[watch]
                                    set_sensitive: !model.busy && model.is_off(),
                                    connect_clicked => MachineManageInput::StartUpdate,
                                },
                            },
                        },

                        add = &adw::PreferencesGroup {
                            set_title: &gettext("Installer"),
                            set_description: Some(&gettext("Boots an installer ISO once, with the disk as a new version: install or repair the system, then promote or discard that version when it has shut down.")),
                            adw::ActionRow {
                                set_title: &gettext("Boot an installer ISO"),
                                add_suffix = &a11y::text_button(
                                    &gettext("Choose…"),
                                    &i18n_f("Install {name} from an ISO", &[("name", &model.name)]),
                                ) -> gtk::Button {
                                    set_valign: gtk::Align::Center,
                                    #[watch]
                                    set_sensitive: !model.busy && model.is_off(),
                                    connect_clicked => MachineManageInput::ChooseIso,
                                },
                            },
                        },

                        add = &adw::PreferencesGroup {
                            set_title: &gettext("Versions"),
                            set_description: Some(&gettext("The disk as it was after each update or install. A normal start boots the base and forgets what the VM changed.")),
                            #[local_ref]
                            list -> gtk::ListBox {
                                add_css_class: "boxed-list",
                                set_selection_mode: gtk::SelectionMode::None,
                            },
                        },

                        add = &adw::PreferencesGroup {
                            gtk::Box {
                                set_spacing: 12,
                                set_halign: gtk::Align::Center,
                                #[watch]
                                set_visible: model.busy,
                                gtk::Spinner {
                                    #[watch]
                                    set_spinning: model.busy,
                                },
                                gtk::Label {
                                    set_label: &gettext("Working…"),
                                },
                            },
                            gtk::Label {
                                set_wrap: true,
                                set_xalign: 0.0,
                                set_selectable: true,
                                add_css_class: "error",
                                #[watch]
                                set_visible: model.error.is_some() && !model.busy,
                                #[watch]
                                set_label: &model.error.as_deref().map(capitalized).unwrap_or_default(),
                            },
                        },

                        add = &adw::PreferencesGroup {
                            set_title: &gettext("Delete"),
                            adw::ActionRow {
                                set_title: &gettext("Delete this VM"),
                                set_subtitle: &gettext("Its disk, every version of it and its place in the policy are lost"),
                                add_suffix = &a11y::text_button(
                                    &gettext("Delete…"),
                                    &i18n_f("Delete {name}", &[("name", &model.name)]),
                                ) -> gtk::Button {
                                    set_valign: gtk::Align::Center,
                                    add_css_class: "destructive-action",
                                    #[watch]
                                    set_sensitive: !model.busy,
                                    connect_clicked => MachineManageInput::Delete,
                                },
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
        let mut model = MachineManage {
            connection: init.connection,
            name: init.name,
            state: init.state,
            versions: Vec::new(),
            busy: false,
            error: None,
            list: gtk::ListBox::new(),
            chooser: None,
        };
        let list = &model.list.clone();
        let widgets = view_output!();
        model.reload(&sender);
        root.present();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            MachineManageInput::State(state) => {
                self.state = state;
                self.reload(&sender);
            }
            MachineManageInput::StartUpdate => {
                if self.busy {
                    return;
                }
                self.busy = true;
                self.error = None;
                let (connection, name) = (self.connection.clone(), self.name.clone());
                sender.oneshot_command(async move {
                    let result = async {
                        let proxy = VmsProxy::new(&connection).await?;
                        interactive::start_vm(&proxy, &name, RunMode::Update, CALL_TIMEOUT).await
                    }
                    .await;
                    MachineManageCmd::Started(result.map(|_| ()))
                });
            }
            MachineManageInput::ChooseIso => {
                if self.busy || self.chooser.is_some() {
                    return;
                }
                let input = sender.input_sender().clone();
                self.chooser = Some(iso_chooser(root, move |path| {
                    input.emit(MachineManageInput::IsoChosen(path));
                }));
            }
            MachineManageInput::IsoChosen(path) => {
                self.chooser = None;
                let Some(iso) = path else {
                    return;
                };
                if self.busy {
                    return;
                }
                self.busy = true;
                self.error = None;
                let (connection, name) = (self.connection.clone(), self.name.clone());
                sender.oneshot_command(async move {
                    let result = async {
                        let proxy = VmsProxy::new(&connection).await?;
                        machine_create::install(&proxy, &name, iso).await
                    }
                    .await;
                    MachineManageCmd::Installing(result)
                });
            }
            MachineManageInput::Promote => self.change(&sender, |connection, name| {
                Box::pin(async move {
                    let proxy = VmsProxy::new(&connection).await?;
                    let v = interactive::promote_vm(&proxy, &name, WORK).await?;
                    Ok(i18n_f(
                        "Version {version} is now the base of {name}",
                        &[("version", &v.to_string()), ("name", &name)],
                    ))
                })
            }),
            MachineManageInput::Discard => self.change(&sender, |connection, name| {
                Box::pin(async move {
                    let proxy = VmsProxy::new(&connection).await?;
                    interactive::discard_vm(&proxy, &name, WORK).await?;
                    Ok(i18n_f(
                        "The update of {name} was thrown away",
                        &[("name", &name)],
                    ))
                })
            }),
            MachineManageInput::Restore(version) => {
                self.change(&sender, move |connection, name| {
                    Box::pin(async move {
                        let proxy = VmsProxy::new(&connection).await?;
                        interactive::restore_vm(&proxy, &name, version, WORK).await?;
                        Ok(i18n_f(
                            "Version {version} is the base of {name} again",
                            &[("version", &version.to_string()), ("name", &name)],
                        ))
                    })
                })
            }
            MachineManageInput::Delete => self.confirm_delete(&sender, root),
            MachineManageInput::DeleteConfirmed => {
                if self.busy {
                    return;
                }
                self.busy = true;
                self.error = None;
                let (connection, name) = (self.connection.clone(), self.name.clone());
                sender.oneshot_command(async move {
                    let result = async {
                        let proxy = VmsProxy::new(&connection).await?;
                        interactive::delete_vm(&proxy, &name, WORK).await
                    }
                    .await;
                    MachineManageCmd::Deleted(result)
                });
            }
            MachineManageInput::Close => {
                root.destroy();
                let _ = sender.output(MachineManageOutput::Closed);
            }
        }
        self.fill(&sender);
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        match message {
            MachineManageCmd::Versions(Ok(versions)) => self.versions = versions,
            MachineManageCmd::Versions(Err(e)) => self.error = Some(e.sentence()),
            MachineManageCmd::Changed(result) => {
                self.busy = false;
                match result {
                    Ok(sentence) => {
                        let _ = sender.output(MachineManageOutput::Changed(Some(sentence)));
                    }
                    Err(e) => self.error = Some(e.sentence()),
                }
                self.reload(&sender);
            }
            MachineManageCmd::Started(result) => {
                self.busy = false;
                match result {
                    Ok(()) => {
                        self.state = VmState::Running;
                        let _ = sender.output(MachineManageOutput::Changed(Some(i18n_f(
                            "{name} runs in update mode: what changes in it is kept",
                            &[("name", &self.name)],
                        ))));
                    }
                    Err(e) => self.error = Some(e.sentence()),
                }
                self.reload(&sender);
            }
            MachineManageCmd::Installing(result) => {
                self.busy = false;
                match result {
                    Ok(()) => {
                        self.state = VmState::Running;
                        let _ = sender.output(MachineManageOutput::Changed(Some(i18n_f(
                            "The installer of {name} runs: open its console to install, then promote the new version",
                            &[("name", &self.name)],
                        ))));
                    }
                    Err(e) => self.error = Some(e.sentence()),
                }
                self.reload(&sender);
            }
            MachineManageCmd::Deleted(result) => {
                self.busy = false;
                match result {
                    Ok(_) => {
                        root.destroy();
                        let _ = sender.output(MachineManageOutput::Deleted(self.name.clone()));
                    }
                    Err(e) => self.error = Some(e.sentence()),
                }
            }
        }
        self.fill(&sender);
    }
}
