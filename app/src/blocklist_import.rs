//! The dialog that imports a blocklist, from a file or from an address: the file (chosen with
//! the desktop's file chooser, opened by this app as the user and handed to the helper as a
//! descriptor) or the address with how often to download it again, the list's name (checked as
//! it is typed, with the policy's grammar), its format, and the two switches of the helper:
//! refuse the whole list at the first bad line, and accept a list covering every address.
//!
//! **Import** makes the call itself, on the page's connection, allowing polkit to ask for an
//! administrator's password (`interactive`), and waits minutes if need be (a password, a
//! download, a million entries); meanwhile a spinner says what is happening and the form cannot
//! be changed or closed. A refusal is shown in the dialog with the helper's sentence, so
//! the user can correct it and try again; a success closes the dialog and tells the page.

use crate::a11y;
use crate::blocklists::{self, Refresh, FORMATS};
use crate::blocklists_view::LIST_CALL_TIMEOUT;
use crate::format::capitalized;
use crate::i18n::{gettext, i18n_f};
use crate::interactive;
use palisade_app::handover;
use palisade_dbus::proxy::BlocklistsProxy;
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender};
use std::path::PathBuf;

/// Where the list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A file the user chooses.
    File,
    /// An address the helper downloads from.
    Url,
}

/// What the dialog starts with.
#[derive(Debug)]
pub struct BlocklistImportInit {
    /// The page's connection to the bus.
    pub connection: zbus::Connection,
    /// File or address.
    pub source: Source,
    /// Names of the lists already imported: importing one of them replaces it.
    pub taken: Vec<String>,
}

/// The import dialog.
#[derive(Debug)]
pub struct BlocklistImport {
    /// The page's connection to the bus.
    connection: zbus::Connection,
    /// File or address.
    source: Source,
    /// Names already imported.
    taken: Vec<String>,
    /// The chosen file.
    file: Option<PathBuf>,
    /// The name as typed.
    name: String,
    /// The address as typed.
    url: String,
    /// Index into [`FORMATS`].
    format: usize,
    /// Index into [`Refresh::ALL`].
    refresh: usize,
    /// Refuse the whole list at the first bad line.
    strict: bool,
    /// Accept a list covering a whole address family.
    force: bool,
    /// Whether the import call is under way.
    busy: bool,
    /// The helper's sentence when it refused the last import.
    error: Option<String>,
    /// The file chooser, kept alive while it is open.
    chooser: Option<gtk::FileChooserNative>,
}

/// Messages to the import dialog.
#[derive(Debug)]
pub enum BlocklistImportInput {
    /// The name field changed.
    Name(String),
    /// The address field changed.
    Url(String),
    /// A format was chosen (index into [`FORMATS`]).
    Format(u32),
    /// A schedule was chosen (index into [`Refresh::ALL`]).
    Refresh(u32),
    /// The "stop at the first bad line" switch moved.
    Strict(bool),
    /// The "accept everything" switch moved.
    Force(bool),
    /// Open the file chooser.
    ChooseFile,
    /// The file chooser closed, with a file or without.
    FileChosen(Option<PathBuf>),
    /// Import with what the form says.
    Import,
    /// Close without importing (ignored while an import is under way).
    Cancel,
}

/// What the dialog tells the page.
#[derive(Debug)]
pub enum BlocklistImportOutput {
    /// A list was imported; the dialog has closed.
    Imported(Box<BlocklistInfo>),
    /// The dialog closed without importing.
    Closed,
}

/// Results of the dialog's call.
#[derive(Debug)]
pub enum BlocklistImportCmd {
    /// `Blocklists.Import()` or `ImportUrl()` answered.
    Done(Result<BlocklistInfo, Error>),
}

/// What one import sends.
#[derive(Debug)]
struct Request {
    name: String,
    from: Origin,
    format: &'static str,
    strict: bool,
    force: bool,
}

/// Where one import reads from.
#[derive(Debug)]
enum Origin {
    File(PathBuf),
    Url { url: String, refresh_seconds: u32 },
}

async fn import(connection: zbus::Connection, request: Request) -> BlocklistImportCmd {
    let result = async {
        let proxy = BlocklistsProxy::new(&connection).await?;
        match request.from {
            Origin::File(path) => {
                // Opened here, as the user; the helper gets the descriptor.
                let file = handover::open_list(path).await?;
                interactive::import_list(
                    &proxy,
                    &request.name,
                    &file,
                    request.format,
                    request.strict,
                    request.force,
                    LIST_CALL_TIMEOUT,
                )
                .await
            }
            Origin::Url {
                url,
                refresh_seconds,
            } => {
                interactive::import_list_url(
                    &proxy,
                    &request.name,
                    &url,
                    refresh_seconds,
                    request.format,
                    request.strict,
                    request.force,
                    LIST_CALL_TIMEOUT,
                )
                .await
            }
        }
    }
    .await;
    BlocklistImportCmd::Done(result)
}

impl BlocklistImport {
    fn title(&self) -> String {
        match self.source {
            Source::File => gettext("Import a Blocklist from a File"),
            Source::Url => gettext("Import a Blocklist from the Web"),
        }
    }

    fn file_label(&self) -> String {
        match &self.file {
            Some(path) => path.display().to_string(),
            None => gettext("No file chosen"),
        }
    }

    /// The request the form describes, or the first thing wrong with it.
    fn request(&self) -> Result<Request, String> {
        // The name first: it is what the user is most likely typing when the hint shows.
        let name = blocklists::check_name(&self.name)?;
        let from = match self.source {
            Source::File => match &self.file {
                Some(path) => Origin::File(path.clone()),
                None => return Err(gettext("Choose the file of the list")),
            },
            Source::Url => Origin::Url {
                url: blocklists::check_url(&self.url)?,
                refresh_seconds: Refresh::ALL
                    .get(self.refresh)
                    .copied()
                    .unwrap_or(Refresh::DEFAULT)
                    .seconds(),
            },
        };
        Ok(Request {
            name,
            from,
            format: FORMATS.get(self.format).copied().unwrap_or(FORMATS[0]),
            strict: self.strict,
            force: self.force,
        })
    }

    /// What the line under the form says: what is missing or wrong (only about fields the user
    /// has started on), or that the import replaces a list.
    fn hint(&self) -> String {
        let typed = !self.name.trim().is_empty()
            || match self.source {
                Source::File => self.file.is_some(),
                Source::Url => !self.url.trim().is_empty(),
            };
        match self.request() {
            Err(why) if typed => why,
            Err(_) => String::new(),
            Ok(r) if self.taken.contains(&r.name) => i18n_f(
                "A list named {name} exists; importing replaces it",
                &[("name", &r.name)],
            ),
            Ok(_) => String::new(),
        }
    }

    fn progress(&self) -> String {
        i18n_f("Importing {name}…", &[("name", self.name.trim())])
    }

    fn choose_file(&mut self, sender: &ComponentSender<Self>, root: &adw::Window) {
        let chooser = gtk::FileChooserNative::new(
            Some(&gettext("Choose a Blocklist File")),
            Some(root),
            gtk::FileChooserAction::Open,
            Some(&gettext("_Open")),
            Some(&gettext("_Cancel")),
        );
        chooser.set_modal(true);
        let input = sender.input_sender().clone();
        chooser.connect_response(move |chooser, response| {
            let path = (response == gtk::ResponseType::Accept)
                .then(|| chooser.file().and_then(|f| f.path()))
                .flatten();
            input.emit(BlocklistImportInput::FileChosen(path));
        });
        chooser.show();
        self.chooser = Some(chooser);
    }
}

/// A list of words for a combo row.
fn string_list(words: &[String]) -> gtk::StringList {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    gtk::StringList::new(&words)
}

#[relm4::component(pub)]
impl Component for BlocklistImport {
    type Init = BlocklistImportInit;
    type Input = BlocklistImportInput;
    type Output = BlocklistImportOutput;
    type CommandOutput = BlocklistImportCmd;

    view! {
        adw::Window {
            set_modal: true,
            set_default_width: 560,
            set_title: Some(&model.title()),
            connect_close_request[sender] => move |_| {
                sender.input(BlocklistImportInput::Cancel);
                glib::Propagation::Stop
            },

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {
                    set_show_end_title_buttons: false,
                    set_show_start_title_buttons: false,
                    #[wrap(Some)]
                    set_title_widget = &adw::WindowTitle {
                        set_title: &model.title(),
                    },
                    pack_start = &gtk::Button {
                        set_label: &gettext("Cancel"),
                        #[watch]
                        set_sensitive: !model.busy,
                        connect_clicked => BlocklistImportInput::Cancel,
                    },
                    pack_end = &gtk::Button {
                        set_label: &gettext("Import"),
                        add_css_class: "suggested-action",
                        #[watch]
                        set_sensitive: !model.busy && model.request().is_ok(),
                        connect_clicked => BlocklistImportInput::Import,
                    },
                },

                adw::PreferencesPage {
                    #[watch]
                    set_sensitive: !model.busy,

                    add = &adw::PreferencesGroup {
                        adw::ActionRow {
                            set_visible: model.source == Source::File,
                            set_title: &gettext("File"),
                            set_use_markup: false,
                            #[watch]
                            set_subtitle: &model.file_label(),
                            add_suffix = &a11y::text_button(&gettext("Choose…"), &gettext("Choose the file of the list")) -> gtk::Button {
                                set_valign: gtk::Align::Center,
                                connect_clicked => BlocklistImportInput::ChooseFile,
                            },
                        },
                        adw::EntryRow {
                            set_visible: model.source == Source::Url,
                            set_title: &gettext("Address"),
                            set_input_purpose: gtk::InputPurpose::Url,
                            connect_changed[sender] => move |row| {
                                sender.input(BlocklistImportInput::Url(row.text().to_string()));
                            },
                        },
                        adw::ComboRow {
                            set_visible: model.source == Source::Url,
                            set_title: &gettext("Download again"),
                            set_model: Some(&string_list(&Refresh::ALL.map(Refresh::label))),
                            set_selected: Refresh::ALL.iter().position(|r| *r == Refresh::DEFAULT).and_then(|i| u32::try_from(i).ok()).unwrap_or(0),
                            connect_selected_notify[sender] => move |row| {
                                sender.input(BlocklistImportInput::Refresh(row.selected()));
                            },
                        },
                        #[name = "name_row"]
                        adw::EntryRow {
                            set_title: &gettext("Name"),
                            connect_changed[sender] => move |row| {
                                sender.input(BlocklistImportInput::Name(row.text().to_string()));
                            },
                        },
                    },

                    add = &adw::PreferencesGroup {
                        set_title: &gettext("Reading the list"),

                        adw::ComboRow {
                            set_title: &gettext("Format"),
                            set_model: Some(&string_list(&FORMATS.map(blocklists::format_label))),
                            connect_selected_notify[sender] => move |row| {
                                sender.input(BlocklistImportInput::Format(row.selected()));
                            },
                        },
                        adw::ActionRow {
                            set_title: &gettext("Stop at the first bad line"),
                            set_subtitle: &gettext("Refuse the whole list instead of skipping lines that are not an address, network or domain"),
                            set_activatable_widget: Some(strict_switch),
                            #[local_ref]
                            add_suffix = strict_switch -> gtk::Switch {
                                set_valign: gtk::Align::Center,
                                connect_active_notify[sender] => move |s| {
                                    sender.input(BlocklistImportInput::Strict(s.is_active()));
                                },
                            },
                        },
                        adw::ActionRow {
                            set_title: &gettext("Accept a list that blocks everything"),
                            set_subtitle: &gettext("Allow entries such as 0.0.0.0/0 that cover every address of a family; without this such a list is refused as a likely mistake"),
                            set_activatable_widget: Some(force_switch),
                            #[local_ref]
                            add_suffix = force_switch -> gtk::Switch {
                                set_valign: gtk::Align::Center,
                                connect_active_notify[sender] => move |s| {
                                    sender.input(BlocklistImportInput::Force(s.is_active()));
                                },
                            },
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
                            set_visible: model.error.is_some() && !model.busy,
                            #[watch]
                            set_label: &model.error.as_deref().map(capitalized).unwrap_or_default(),
                        },
                        gtk::Label {
                            set_wrap: true,
                            set_xalign: 0.0,
                            add_css_class: "dim-label",
                            #[watch]
                            set_visible: !model.busy && model.error.is_none() && !model.hint().is_empty(),
                            #[watch]
                            set_label: &model.hint(),
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
        let model = BlocklistImport {
            connection: init.connection,
            source: init.source,
            taken: init.taken,
            file: None,
            name: String::new(),
            url: String::new(),
            format: 0,
            refresh: Refresh::ALL
                .iter()
                .position(|r| *r == Refresh::DEFAULT)
                .unwrap_or(0),
            strict: false,
            force: false,
            busy: false,
            error: None,
            chooser: None,
        };
        // A row's activatable widget is named by the row's title (GTK's labelled-by relation).
        let strict_switch = &gtk::Switch::new();
        let force_switch = &gtk::Switch::new();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update_with_view(
        &mut self,
        widgets: &mut Self::Widgets,
        message: Self::Input,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        // A chosen file names the list, unless the user has named it already.
        if let BlocklistImportInput::FileChosen(Some(path)) = &message {
            if widgets.name_row.text().trim().is_empty() {
                widgets.name_row.set_text(&blocklists::suggested_name(path));
            }
        }
        self.update(message, sender.clone(), root);
        self.update_view(widgets, sender);
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            BlocklistImportInput::Name(name) => {
                self.name = name;
                self.error = None;
            }
            BlocklistImportInput::Url(url) => {
                self.url = url;
                self.error = None;
            }
            BlocklistImportInput::Format(i) => {
                self.format = usize::try_from(i).unwrap_or(0);
            }
            BlocklistImportInput::Refresh(i) => {
                self.refresh = usize::try_from(i).unwrap_or(0);
            }
            BlocklistImportInput::Strict(on) => self.strict = on,
            BlocklistImportInput::Force(on) => self.force = on,
            BlocklistImportInput::ChooseFile => self.choose_file(&sender, root),
            BlocklistImportInput::FileChosen(path) => {
                self.chooser = None;
                if let Some(path) = path {
                    self.file = Some(path);
                    self.error = None;
                }
            }
            BlocklistImportInput::Import => {
                if self.busy {
                    return;
                }
                match self.request() {
                    Ok(request) => {
                        self.busy = true;
                        self.error = None;
                        sender.oneshot_command(import(self.connection.clone(), request));
                    }
                    Err(why) => self.error = Some(why),
                }
            }
            BlocklistImportInput::Cancel => {
                if self.busy {
                    return;
                }
                root.destroy();
                let _ = sender.output(BlocklistImportOutput::Closed);
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
            BlocklistImportCmd::Done(Ok(info)) => {
                self.busy = false;
                root.destroy();
                let _ = sender.output(BlocklistImportOutput::Imported(Box::new(info)));
                let _ = sender.output(BlocklistImportOutput::Closed);
            }
            BlocklistImportCmd::Done(Err(e)) => {
                self.busy = false;
                self.error = Some(e.sentence());
            }
        }
    }
}
