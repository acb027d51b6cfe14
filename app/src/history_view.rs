//! The History page: every generation of the policy, newest first, with when it was applied,
//! by whom, from where and where it stands (live, pending, confirmed, reverted, superseded).
//! Selecting one shows the diff from it to the live generation (`Policy.Diff`, monospace and
//! selectable); **Roll back to this** applies its policy again as a new generation
//! (`Policy.Rollback`, interactively: the desktop may ask for a password), offered only to a
//! user polkit lets manage the policy.

use crate::a11y;
use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::interactive::{self, Permission};
use crate::policy_editor::diff_view;
use palisade_dbus::names::Action;
use palisade_dbus::proxy::PolicyProxy;
use palisade_dbus::types::{Applied, GenerationInfo, GenerationSource, GenerationState};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender};
use std::time::Duration;

/// The History page.
pub struct HistoryView {
    /// The window's bus connection, once it has one.
    connection: Option<zbus::Connection>,
    /// Whether polkit lets this user manage the policy.
    manage: Permission,
    /// The generations, newest first.
    generations: Vec<GenerationInfo>,
    /// The generation selected, with its diff to the live one once read.
    selected: Option<(u64, Option<String>)>,
    /// The generations' list.
    list: adw::PreferencesGroup,
    /// The selected generation's diff and button.
    detail: gtk::Box,
}

impl std::fmt::Debug for HistoryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryView")
            .field("generations", &self.generations.len())
            .field("selected", &self.selected.as_ref().map(|s| s.0))
            .finish_non_exhaustive()
    }
}

/// Messages to the History page.
#[derive(Debug)]
pub enum HistoryViewInput {
    /// Read the history over this connection (the window read the helper again).
    Load(zbus::Connection),
    /// Show nothing: the helper is gone or refuses.
    Clear,
    /// The user selected this generation.
    Select(u64),
    /// Roll back to this generation.
    RollBack(u64),
}

/// What the History page asks the window to do.
#[derive(Debug)]
pub enum HistoryViewOutput {
    /// Show this sentence as a toast.
    Toast(String),
}

/// Results of the page's calls.
#[derive(Debug)]
pub enum HistoryViewCmd {
    /// `History()` and polkit's answer about `policy.manage`.
    Loaded(Result<Vec<GenerationInfo>, Error>, Permission),
    /// `Diff(generation, live)` answered.
    Diff(u64, Result<String, Error>),
    /// `Rollback()` answered.
    RolledBack(Result<Applied, Error>),
}

async fn load(connection: zbus::Connection) -> HistoryViewCmd {
    let history = async { PolicyProxy::new(&connection).await?.history().await };
    let manage = interactive::permission(&connection, Action::PolicyManage);
    let (history, manage) = tokio::join!(history, manage);
    HistoryViewCmd::Loaded(history, manage)
}

async fn diff(connection: zbus::Connection, from: u64, to: u64) -> HistoryViewCmd {
    let result = async { PolicyProxy::new(&connection).await?.diff(from, to).await }.await;
    HistoryViewCmd::Diff(from, result)
}

async fn roll_back(connection: zbus::Connection, generation: u64) -> HistoryViewCmd {
    let result = async {
        let proxy = PolicyProxy::new(&connection).await?;
        interactive::rollback_policy(&proxy, generation, Duration::from_secs(60)).await
    }
    .await;
    HistoryViewCmd::RolledBack(result)
}

/// The state in words.
fn state(state: GenerationState) -> String {
    match state {
        GenerationState::Live => gettext("live"),
        GenerationState::Pending => gettext("waiting to be kept"),
        GenerationState::Confirmed => gettext("kept"),
        GenerationState::Reverted => gettext("reverted"),
        GenerationState::Superseded => gettext("replaced before it was kept"),
    }
}

/// Where a generation came from, in words.
fn source(source: GenerationSource) -> String {
    match source {
        GenerationSource::App => gettext("the app"),
        GenerationSource::Palisadectl => gettext("palisadectl"),
        GenerationSource::Other => gettext("another program"),
        GenerationSource::DropIns => gettext("the policy files"),
        GenerationSource::Boot => gettext("the helper at start"),
        GenerationSource::Unrecorded => gettext("unrecorded"),
    }
}

/// The login name of `uid`, or the number.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

impl HistoryView {
    /// The live generation.
    fn live(&self) -> Option<u64> {
        self.generations
            .iter()
            .find(|g| matches!(g.state, GenerationState::Live | GenerationState::Pending))
            .or(self.generations.first())
            .map(|g| g.generation)
    }

    /// Shows the list and the selected generation as the model is.
    fn render(&self, sender: &ComponentSender<Self>) {
        // Rows are replaced one by one: the group keeps its title.
        for row in self.rows_shown() {
            self.list.remove(&row);
        }
        for g in &self.generations {
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&i18n_f(
                "Generation {generation} · {state}",
                &[
                    ("generation", &g.generation.to_string()),
                    ("state", &state(g.state)),
                ],
            ));
            row.set_subtitle(&i18n_f(
                "{time} by {user} with {source} ({origin})",
                &[
                    ("time", &format::unix_time(g.applied_at)),
                    ("user", &user_name(g.author_uid)),
                    ("source", &source(g.source)),
                    ("origin", &g.origin),
                ],
            ));
            let show = a11y::icon_button(
                if self.selected.as_ref().map(|s| s.0) == Some(g.generation) {
                    "object-select-symbolic"
                } else {
                    "go-next-symbolic"
                },
                &i18n_f(
                    "Compare generation {generation} with the live one",
                    &[("generation", &g.generation.to_string())],
                ),
            );
            show.add_css_class("flat");
            show.set_valign(gtk::Align::Center);
            let input = sender.input_sender().clone();
            let generation = g.generation;
            show.connect_clicked(move |_| input.emit(HistoryViewInput::Select(generation)));
            row.add_suffix(&show);
            self.list.add(&row);
        }

        if self.generations.is_empty() {
            let row = adw::ActionRow::new();
            row.set_title(&gettext("No generations to show"));
            row.set_subtitle(&gettext(
                "They appear here once a policy is applied and your account may read it",
            ));
            self.list.add(&row);
        }

        while let Some(child) = self.detail.first_child() {
            self.detail.remove(&child);
        }
        let Some((generation, text)) = &self.selected else {
            return;
        };
        let live = self.live();
        let heading = gtk::Label::new(Some(&i18n_f(
            "From generation {generation} to the live one",
            &[("generation", &generation.to_string())],
        )));
        heading.set_xalign(0.0);
        heading.add_css_class("heading");
        self.detail.append(&heading);
        match text {
            Some(text) => self.detail.append(&diff_view(text)),
            None => self
                .detail
                .append(&gtk::Spinner::builder().spinning(true).build()),
        }
        if self.manage.offered() && live != Some(*generation) {
            let button = a11y::text_button(
                &gettext("Roll Back to This"),
                &i18n_f(
                    "Roll back to generation {generation}",
                    &[("generation", &generation.to_string())],
                ),
            );
            button.set_halign(gtk::Align::End);
            let input = sender.input_sender().clone();
            let generation = *generation;
            button.connect_clicked(move |_| input.emit(HistoryViewInput::RollBack(generation)));
            self.detail.append(&button);
        }
    }

    /// The rows the list shows now.
    fn rows_shown(&self) -> Vec<gtk::Widget> {
        let mut rows = Vec::new();
        // The rows live in the group's list box, a few levels down.
        let mut stack = vec![self.list.clone().upcast::<gtk::Widget>()];
        while let Some(widget) = stack.pop() {
            if widget.is::<adw::ActionRow>() {
                rows.push(widget);
                continue;
            }
            let mut child = widget.first_child();
            while let Some(c) = child {
                child = c.next_sibling();
                stack.push(c);
            }
        }
        rows
    }
}

impl Component for HistoryView {
    type Init = ();
    type Input = HistoryViewInput;
    type Output = HistoryViewOutput;
    type CommandOutput = HistoryViewCmd;
    type Root = gtk::ScrolledWindow;
    type Widgets = ();

    fn init_root() -> Self::Root {
        let root = gtk::ScrolledWindow::new();
        root.set_hscrollbar_policy(gtk::PolicyType::Never);
        root
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        _sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let clamp = adw::Clamp::new();
        clamp.set_maximum_size(720);
        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        content.set_margin_top(18);
        content.set_margin_bottom(18);
        content.set_margin_start(18);
        content.set_margin_end(18);
        let list = adw::PreferencesGroup::new();
        list.set_title(&gettext("Generations"));
        list.set_description(Some(&gettext(
            "Every policy applied, newest first. Select one to see how it differs from the live one",
        )));
        let detail = gtk::Box::new(gtk::Orientation::Vertical, 12);
        content.append(&list);
        content.append(&detail);
        clamp.set_child(Some(&content));
        root.set_child(Some(&clamp));
        let model = HistoryView {
            connection: None,
            manage: Permission::Unknown,
            generations: Vec::new(),
            selected: None,
            list,
            detail,
        };
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, _root: &Self::Root) {
        match message {
            HistoryViewInput::Load(connection) => {
                self.connection = Some(connection.clone());
                sender.oneshot_command(load(connection));
                return;
            }
            HistoryViewInput::Clear => {
                self.connection = None;
                self.generations.clear();
                self.selected = None;
            }
            HistoryViewInput::Select(generation) => {
                let (Some(connection), Some(live)) = (&self.connection, self.live()) else {
                    return;
                };
                self.selected = Some((generation, None));
                sender.oneshot_command(diff(connection.clone(), generation, live));
            }
            HistoryViewInput::RollBack(generation) => {
                if let Some(connection) = &self.connection {
                    sender.oneshot_command(roll_back(connection.clone(), generation));
                }
                return;
            }
        }
        self.render(&sender);
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        let toast = |s: String| sender.output_sender().emit(HistoryViewOutput::Toast(s));
        match message {
            HistoryViewCmd::Loaded(result, manage) => {
                self.manage = manage;
                match result {
                    Ok(generations) => {
                        self.generations = generations;
                        // The live generation moved: read the selected one's diff again.
                        if let (Some((generation, _)), Some(connection), Some(live)) =
                            (&self.selected, &self.connection, self.live())
                        {
                            sender.oneshot_command(diff(connection.clone(), *generation, live));
                        }
                    }
                    Err(e) => {
                        self.generations.clear();
                        self.selected = None;
                        if !matches!(e, Error::NotAuthorized(_)) {
                            toast(e.sentence());
                        }
                    }
                }
            }
            HistoryViewCmd::Diff(generation, result) => match result {
                Ok(text) => {
                    if self.selected.as_ref().map(|s| s.0) == Some(generation) {
                        self.selected = Some((generation, Some(text)));
                    }
                }
                Err(e) => {
                    self.selected = None;
                    toast(e.sentence());
                }
            },
            HistoryViewCmd::RolledBack(result) => match result {
                Ok(applied) => toast(i18n_f(
                    "Rolled back: generation {generation} is live",
                    &[("generation", &applied.generation.to_string())],
                )),
                Err(e) => toast(e.sentence()),
            },
        }
        self.render(&sender);
    }
}
