//! "Blocklists": the window's third page. The lists imported beside the policy
//! (`Blocklists.List()`), each with its entries, source, last refresh, skipped lines and whether
//! the live policy uses it; **Import from file…** and **Import from URL…** (the dialog of
//! `blocklist_import`), **Update now** and **Remove** (after asking) per row. An empty page says
//! what to do; a user the helper does not let read the lists is told so, with its sentence; a
//! user polkit would not let change them, whatever password was typed, sees the lists without
//! those buttons.
//!
//! The page owns its calls: the window hands it the bus connection each time it reads the helper
//! (a new generation can change which lists are in use), and the page lists, refreshes and
//! removes on its own, as relm4 commands, never on the UI thread; its dialog imports on the same
//! connection. Refreshing, removing and importing change the firewall's data (`policy.manage`),
//! so they go through [`interactive`]: polkit may ask for an administrator's password, and the
//! calls wait for it. With each listing the page asks polkit whether they could work at all. Sentences for the user go to the window's toasts through
//! [`BlocklistsViewOutput`].

use crate::a11y;
use crate::app::CALL_TIMEOUT;
use crate::blocklist_import::{
    BlocklistImport, BlocklistImportInit, BlocklistImportOutput, Source,
};
use crate::blocklist_row::{BlocklistRow, BlocklistRowInit, BlocklistRowInput, BlocklistRowOutput};
use crate::i18n::{gettext, i18n_f};
use crate::interactive::{self, Permission};
use crate::{blocklists, format};
use palisade_dbus::names::Action;
use palisade_dbus::proxy::BlocklistsProxy;
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::gtk::glib;
use relm4::{
    adw, gtk, Component, ComponentController, ComponentParts, ComponentSender, Controller,
    RelmWidgetExt,
};
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a call that downloads or loads a list may take (beyond the time polkit may take to
/// ask for a password): a download is cut by the helper after 2 minutes, a million entries take
/// seconds to load, and another import may be ahead.
pub const LIST_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    /// Nothing read yet.
    Loading,
    /// The lists (perhaps none).
    Lists,
    /// The helper does not let this user read the lists; its sentence.
    Refused(String),
}

/// The Blocklists page.
pub struct BlocklistsView {
    /// What the page shows.
    shown: Shown,
    /// The window's connection to the bus, once it has one.
    connection: Option<zbus::Connection>,
    /// The lists shown, in the order of their rows.
    lists: Vec<BlocklistInfo>,
    /// Whether polkit could let this user change the lists (then the page offers to).
    manage: Permission,
    /// One row per list.
    rows: FactoryVecDeque<BlocklistRow>,
    /// Names of the lists with a call under way.
    busy: HashSet<String>,
    /// Names of the lists whose rows the user opened, kept open across refreshes.
    expanded: HashSet<String>,
    /// Whether a listing is under way.
    loading: bool,
    /// Whether another listing was asked for while one was under way.
    reload_queued: bool,
    /// The import dialog, while it is open.
    import: Option<Controller<BlocklistImport>>,
}

impl std::fmt::Debug for BlocklistsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlocklistsView")
            .field("shown", &self.shown)
            .field("lists", &self.lists.len())
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

/// Messages to the Blocklists page.
#[derive(Debug)]
pub enum BlocklistsViewInput {
    /// Read the lists over this connection (the window read the helper again).
    Load(zbus::Connection),
    /// Show nothing: the helper cannot be reached.
    Clear,
    /// Open the import dialog for a file or an address.
    Import(Source),
    /// The import dialog imported a list or was closed.
    Dialog(BlocklistImportOutput),
    /// A row asked to update or remove its list, or was opened or closed.
    Row(BlocklistRowOutput),
    /// The user confirmed removing the named list.
    RemoveConfirmed(String),
}

/// What the page asks the window to do.
#[derive(Debug)]
pub enum BlocklistsViewOutput {
    /// Show this sentence as a toast.
    Toast(String),
}

/// Results of the page's calls.
#[derive(Debug)]
pub enum BlocklistsViewCmd {
    /// `Blocklists.List()` answered.
    Listed {
        /// The lists, or why not.
        lists: Result<Vec<BlocklistInfo>, Error>,
        /// What polkit says about changing them.
        manage: Permission,
    },
    /// `Blocklists.Refresh()` of a list answered.
    Refreshed {
        /// The list.
        name: String,
        /// Its content hash before, to tell "unchanged" from "updated".
        before: String,
        /// The list as stored now, or why not.
        result: Result<BlocklistInfo, Error>,
    },
    /// `Blocklists.Remove()` of a list answered.
    Removed {
        /// The list.
        name: String,
        /// Whether it is gone.
        result: Result<(), Error>,
    },
}

async fn list(connection: zbus::Connection) -> BlocklistsViewCmd {
    let lists = async { BlocklistsProxy::new(&connection).await?.list().await };
    let manage = interactive::permission(&connection, Action::PolicyManage);
    let (lists, manage) = tokio::join!(lists, manage);
    BlocklistsViewCmd::Listed { lists, manage }
}

async fn refresh(connection: zbus::Connection, name: String, before: String) -> BlocklistsViewCmd {
    let result = async {
        let proxy = BlocklistsProxy::new(&connection).await?;
        interactive::refresh_list(&proxy, &name, LIST_CALL_TIMEOUT).await
    }
    .await;
    BlocklistsViewCmd::Refreshed {
        name,
        before,
        result,
    }
}

async fn remove(connection: zbus::Connection, name: String) -> BlocklistsViewCmd {
    let result = async {
        let proxy = BlocklistsProxy::new(&connection).await?;
        interactive::remove_list(&proxy, &name, CALL_TIMEOUT).await
    }
    .await;
    BlocklistsViewCmd::Removed { name, result }
}

impl BlocklistsView {
    fn page(&self) -> &'static str {
        match &self.shown {
            Shown::Refused(_) => "denied",
            Shown::Loading | Shown::Lists => "lists",
        }
    }

    fn denied_description(&self) -> String {
        let reason = match &self.shown {
            Shown::Refused(reason) => format::capitalized(reason),
            Shown::Loading | Shown::Lists => String::new(),
        };
        format!(
            "{}\n\n{}",
            gettext("Your account may not see the imported blocklists. Ask the administrator of this computer."),
            reason
        )
    }

    fn toast(&self, sender: &ComponentSender<Self>, sentence: String) {
        sender
            .output_sender()
            .emit(BlocklistsViewOutput::Toast(sentence));
    }

    fn load(&mut self, sender: &ComponentSender<Self>) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        if self.loading {
            self.reload_queued = true;
            return;
        }
        self.loading = true;
        sender.oneshot_command(list(connection));
    }

    fn empty_description(&self) -> String {
        if self.manage.offered() {
            gettext("Import a list of networks or domains, such as FireHOL or Spamhaus DROP, from a file or from an address on the web. A rule of the policy then blocks what it lists.")
        } else {
            gettext("Lists of networks or domains, such as FireHOL or Spamhaus DROP, appear here once the administrator of this computer imports them. A rule of the policy then blocks what they list.")
        }
    }

    fn show(&mut self, lists: Vec<BlocklistInfo>, manage: Permission) {
        // Rows are made anew when the buttons they offer change too.
        let same_offer = manage.offered() == self.manage.offered();
        self.manage = manage;
        if lists == self.lists && same_offer {
            return;
        }
        // Rows are made anew: a list's problems and details are built once per row.
        let now = unix_now();
        let mut rows = self.rows.guard();
        rows.clear();
        for info in &lists {
            rows.push_back(BlocklistRowInit {
                manage: self.manage.offered(),
                busy: self.busy.contains(&info.name),
                expanded: self.expanded.contains(&info.name),
                info: info.clone(),
                now,
            });
        }
        drop(rows);
        self.lists = lists;
    }

    fn set_busy(&mut self, name: &str, busy: bool) {
        for (i, l) in self.lists.iter().enumerate() {
            if l.name == name {
                self.rows.send(i, BlocklistRowInput::Busy(busy));
            }
        }
        if busy {
            self.busy.insert(name.to_owned());
        } else {
            self.busy.remove(name);
        }
    }

    fn row(
        &mut self,
        action: BlocklistRowOutput,
        sender: &ComponentSender<Self>,
        root: &gtk::Stack,
    ) {
        match action {
            BlocklistRowOutput::Expanded { name, expanded } => {
                if expanded {
                    self.expanded.insert(name);
                } else {
                    self.expanded.remove(&name);
                }
            }
            BlocklistRowOutput::Update(name) => {
                let Some(connection) = self.connection.clone() else {
                    return;
                };
                let before = self
                    .lists
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.content_hash.clone())
                    .unwrap_or_default();
                self.set_busy(&name, true);
                sender.oneshot_command(refresh(connection, name, before));
            }
            BlocklistRowOutput::Remove(name) => self.confirm_remove(name, sender, root),
        }
    }

    /// Asks before removing a list; the helper refuses one the live policy uses, and says so.
    fn confirm_remove(&self, name: String, sender: &ComponentSender<Self>, root: &gtk::Stack) {
        let in_use = self.lists.iter().any(|l| l.name == name && l.in_use);
        let body = if in_use {
            gettext("The live policy uses this list, so it cannot be removed yet: remove the rules that name it and its [[blocklist]] entry from the policy first.")
        } else {
            gettext("Its entries are deleted from this computer. The policy can use it again only after it is imported again.")
        };
        let dialog = adw::MessageDialog::new(
            root.toplevel_window().as_ref(),
            Some(&i18n_f("Remove {name}?", &[("name", &name)])),
            Some(&body),
        );
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("remove", &gettext("_Remove"));
        dialog.set_response_appearance("remove", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| {
            if response == "remove" {
                input.emit(BlocklistsViewInput::RemoveConfirmed(name.clone()));
            }
        });
        dialog.present();
    }

    fn open_import(&mut self, source: Source, sender: &ComponentSender<Self>, root: &gtk::Stack) {
        if let Some(open) = &self.import {
            // One import at a time: bring the open dialog back to the front.
            open.widget().present();
            return;
        }
        let Some(connection) = self.connection.clone() else {
            return;
        };
        let dialog = BlocklistImport::builder()
            .transient_for(root)
            .launch(BlocklistImportInit {
                connection,
                source,
                taken: self.lists.iter().map(|l| l.name.clone()).collect(),
            })
            .forward(sender.input_sender(), BlocklistsViewInput::Dialog);
        dialog.widget().present();
        self.import = Some(dialog);
    }
}

#[relm4::component(pub)]
impl Component for BlocklistsView {
    type Init = ();
    type Input = BlocklistsViewInput;
    type Output = BlocklistsViewOutput;
    type CommandOutput = BlocklistsViewCmd;

    view! {
        gtk::Stack {
            set_transition_type: gtk::StackTransitionType::Crossfade,

            add_named[Some("denied")] = &adw::StatusPage {
                set_icon_name: Some("system-lock-screen-symbolic"),
                set_title: &gettext("Not allowed"),
                #[watch]
                set_description: Some(&glib::markup_escape_text(&model.denied_description())),
            },

            add_named[Some("lists")] = &gtk::ScrolledWindow {
                set_hscrollbar_policy: gtk::PolicyType::Never,

                adw::Clamp {
                    set_maximum_size: 720,
                    set_margin_all: 18,

                    gtk::Box {
                        set_orientation: gtk::Orientation::Vertical,
                        set_spacing: 24,

                        #[local_ref]
                        list_group -> adw::PreferencesGroup {
                            set_title: &gettext("Imported blocklists"),
                            set_description: Some(&gettext("Large lists of networks and domains, kept beside the policy. A rule uses one when the policy names it with imported = true.")),
                            #[watch]
                            set_visible: !model.lists.is_empty(),

                            #[wrap(Some)]
                            set_header_suffix = &gtk::Box {
                                set_spacing: 6,
                                set_valign: gtk::Align::Center,
                                #[watch]
                                set_visible: model.manage.offered(),
                                append = &a11y::icon_button("document-open-symbolic", &gettext("Import from file…")) -> gtk::Button {
                                    connect_clicked => BlocklistsViewInput::Import(Source::File),
                                },
                                append = &a11y::icon_button("folder-download-symbolic", &gettext("Import from URL…")) -> gtk::Button {
                                    connect_clicked => BlocklistsViewInput::Import(Source::Url),
                                },
                            },
                        },

                        adw::StatusPage {
                            set_icon_name: Some("security-high-symbolic"),
                            set_title: &gettext("No blocklists yet"),
                            #[watch]
                            set_description: Some(&glib::markup_escape_text(&model.empty_description())),
                            #[watch]
                            set_visible: model.lists.is_empty() && model.shown == Shown::Lists,

                            #[wrap(Some)]
                            set_child = &gtk::Box {
                                set_orientation: gtk::Orientation::Vertical,
                                set_spacing: 12,
                                set_halign: gtk::Align::Center,
                                #[watch]
                                set_visible: model.manage.offered(),
                                gtk::Button {
                                    set_label: &gettext("Import from file…"),
                                    add_css_class: "pill",
                                    add_css_class: "suggested-action",
                                    connect_clicked => BlocklistsViewInput::Import(Source::File),
                                },
                                gtk::Button {
                                    set_label: &gettext("Import from URL…"),
                                    add_css_class: "pill",
                                    connect_clicked => BlocklistsViewInput::Import(Source::Url),
                                },
                            },
                        },

                        adw::StatusPage {
                            set_icon_name: Some("security-high-symbolic"),
                            set_title: &gettext("Reading the blocklists…"),
                            #[watch]
                            set_visible: model.shown == Shown::Loading,
                        },
                    },
                },
            },

            #[watch]
            set_visible_child_name: model.page(),
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = BlocklistsView {
            shown: Shown::Loading,
            connection: None,
            lists: Vec::new(),
            manage: Permission::Unknown,
            rows: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .forward(sender.input_sender(), BlocklistsViewInput::Row),
            busy: HashSet::new(),
            expanded: HashSet::new(),
            loading: false,
            reload_queued: false,
            import: None,
        };
        let list_group = model.rows.widget();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            BlocklistsViewInput::Load(connection) => {
                self.connection = Some(connection);
                self.load(&sender);
            }
            BlocklistsViewInput::Clear => {
                self.connection = None;
                self.shown = Shown::Loading;
                self.show(Vec::new(), self.manage);
            }
            BlocklistsViewInput::Import(source) => self.open_import(source, &sender, root),
            BlocklistsViewInput::Dialog(BlocklistImportOutput::Imported(info)) => {
                self.toast(
                    &sender,
                    i18n_f(
                        "Imported {name}: {entries}",
                        &[
                            ("name", &info.name),
                            ("entries", &blocklists::entries(&info)),
                        ],
                    ),
                );
                self.load(&sender);
            }
            BlocklistsViewInput::Dialog(BlocklistImportOutput::Closed) => self.import = None,
            BlocklistsViewInput::Row(action) => self.row(action, &sender, root),
            BlocklistsViewInput::RemoveConfirmed(name) => {
                let Some(connection) = self.connection.clone() else {
                    return;
                };
                self.set_busy(&name, true);
                sender.oneshot_command(remove(connection, name));
            }
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match message {
            BlocklistsViewCmd::Listed { lists, manage } => {
                self.loading = false;
                match lists {
                    Ok(lists) => {
                        self.shown = Shown::Lists;
                        self.show(lists, manage);
                    }
                    Err(Error::NotAuthorized(reason)) => {
                        self.shown = Shown::Refused(reason);
                        self.show(Vec::new(), manage);
                    }
                    Err(e) => self.toast(&sender, e.sentence()),
                }
                if std::mem::take(&mut self.reload_queued) {
                    self.load(&sender);
                }
            }
            BlocklistsViewCmd::Refreshed {
                name,
                before,
                result,
            } => {
                self.set_busy(&name, false);
                match result {
                    Ok(info) if info.content_hash == before => self.toast(
                        &sender,
                        i18n_f("{name} is unchanged at its source", &[("name", &name)]),
                    ),
                    Ok(info) => self.toast(
                        &sender,
                        i18n_f(
                            "Updated {name}: {entries}",
                            &[("name", &name), ("entries", &blocklists::entries(&info))],
                        ),
                    ),
                    Err(e) => self.toast(&sender, e.sentence()),
                }
                self.load(&sender);
            }
            BlocklistsViewCmd::Removed { name, result } => {
                self.set_busy(&name, false);
                match result {
                    Ok(()) => {
                        self.toast(&sender, i18n_f("Removed {name}", &[("name", &name)]));
                        self.expanded.remove(&name);
                    }
                    Err(e) => self.toast(&sender, e.sentence()),
                }
                self.load(&sender);
            }
        }
    }
}
