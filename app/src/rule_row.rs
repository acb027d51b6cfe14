//! One firewall rule as a row: its position, a coloured verdict badge, the destination, and the
//! protocol, ports, expiry, logging and comment underneath, and for a rule naming a host or a
//! wildcard the state of that name (its last answer's addresses, or why it fails). Also the
//! closing "anything else" row that shows a VM's default action. Each row also says how often
//! its rule decided a packet, once the policy view has read the helper's counters. A host rule
//! that a drop-in defines shows a lock and its file.
//!
//! The rows of a list ([`RuleRows`]) are plain widgets, shown again in place: row `k` stays row
//! `k` and changes only what differs from what it shows, so that a new generation of a policy
//! with a thousand rules does not make a thousand rows again (GTK announces every new widget on
//! the accessibility bus). They are not relm4 factory components on purpose: each component runs
//! its own message loop as a source of GLib's main loop, which checks every source on every turn;
//! with a thousand rules that was the app's main cost while anything happened.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::lock;
use crate::managed::{self, ManagedBy};
use palisade_dbus::policy::{Rule, Verdict};
use palisade_dbus::types::DnsNameState;
use relm4::adw::prelude::*;
use relm4::{adw, gtk};
use std::time::SystemTime;

/// What a rule row shows.
#[derive(Debug)]
pub enum RuleRowInit {
    /// A rule at its 1-based position in the ordered list.
    Rule {
        /// Where it stands: rules are matched in order, first match wins.
        position: usize,
        /// The rule.
        rule: Rule,
        /// The state of the name its destination names, when it names one.
        name: Option<Box<DnsNameState>>,
        /// The drop-in that defines it, when that is not the local policy. A VM's rules leave
        /// it `None`: their VM's row says where the whole VM comes from.
        managed_by: Option<ManagedBy>,
    },
    /// What happens to traffic no rule matched.
    Default(Verdict),
}

/// What a row shows, apart from its hits: compared to tell whether the row must change.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    /// The number in front, empty for the default row.
    position: String,
    /// The verdict badge's text.
    verdict: String,
    /// The verdict badge's style class.
    verdict_css: &'static str,
    /// The row's title.
    title: String,
    /// The row's subtitle, without the hits.
    details: String,
    /// The rule and the line about its name, kept to say again how long it has left.
    rule: Option<(Rule, Option<String>)>,
    /// Whether the rule decides nothing now: expired or turned off (shown dimmed).
    inactive: bool,
    /// The drop-in that defines the rule; `None` for the local policy's (and a VM's rules).
    managed_by: Option<ManagedBy>,
}

impl Shown {
    fn of(init: RuleRowInit, now: SystemTime) -> Shown {
        match init {
            RuleRowInit::Rule {
                position,
                rule,
                name,
                managed_by,
            } => {
                let name = name.as_deref().map(format::name_state);
                let details = details(&rule, name.as_deref(), managed_by.as_ref(), now);
                Shown {
                    position: position.to_string(),
                    verdict: format::verdict(rule.action),
                    verdict_css: format::verdict_css(rule.action),
                    title: format::destination(&rule.destination),
                    details,
                    inactive: !rule.is_active(now),
                    rule: Some((rule, name)),
                    managed_by,
                }
            }
            RuleRowInit::Default(verdict) => Shown {
                position: String::new(),
                verdict: format::verdict(verdict),
                verdict_css: format::verdict_css(verdict),
                // Translators: the last row of a VM's rules: traffic no rule matched.
                title: gettext("Anything else"),
                details: gettext("The default action, always logged"),
                inactive: false,
                rule: None,
                managed_by: None,
            },
        }
    }

    /// The details, then the hits on a line of their own.
    fn subtitle(&self, hits: Option<&str>) -> String {
        match hits {
            Some(hits) if self.details.is_empty() => hits.to_owned(),
            Some(hits) => format!("{}\n{hits}", self.details),
            None => self.details.clone(),
        }
    }

    /// The whole rule in one sentence, for the tooltip.
    fn sentence(&self, hits: Option<&str>) -> String {
        if self.position.is_empty() {
            match hits {
                Some(hits) => i18n_f(
                    "{verdict}: {title}, {hits}",
                    &[
                        ("verdict", &self.verdict),
                        ("title", &self.title),
                        ("hits", hits),
                    ],
                ),
                None => i18n_f(
                    "{verdict}: {title}",
                    &[("verdict", &self.verdict), ("title", &self.title)],
                ),
            }
        } else {
            i18n_f(
                "Rule {position}: {verdict} {title}, {details}",
                &[
                    ("position", &self.position),
                    ("verdict", &self.verdict),
                    ("title", &self.title),
                    ("details", &self.subtitle(hits)),
                ],
            )
        }
    }
}

/// One row.
struct RuleRow {
    row: adw::ActionRow,
    badge: gtk::Label,
    number: gtk::Label,
    lock: gtk::Image,
    shown: Shown,
    /// How often the rule at this position decided a packet, when the helper told.
    hits: Option<String>,
}

impl RuleRow {
    fn new(shown: Shown) -> RuleRow {
        let row = adw::ActionRow::new();
        row.set_use_markup(false);
        let badge = gtk::Label::new(None);
        badge.set_width_chars(7);
        badge.set_xalign(0.0);
        badge.add_css_class("heading");
        let number = gtk::Label::new(None);
        number.set_width_chars(3);
        number.set_xalign(1.0);
        number.add_css_class("dim-label");
        number.add_css_class("numeric");
        // libadwaita puts each prefix before the previous one: badge first, number last.
        row.add_prefix(&badge);
        row.add_prefix(&number);
        let lock = lock::icon(shown.managed_by.as_ref());
        row.add_suffix(&lock);
        let mut made = RuleRow {
            row,
            badge,
            number,
            lock,
            shown: shown.clone(),
            hits: None,
        };
        made.show_all(None);
        made
    }

    /// Shows `self.shown`, changing only what differs from `old`, what the row showed
    /// (`None`: nothing yet).
    fn show_all(&mut self, old: Option<&Shown>) {
        let next = &self.shown;
        if old.is_none_or(|o| o.title != next.title) {
            self.row.set_title(&next.title);
        }
        if old.is_none_or(|o| o.verdict != next.verdict) {
            self.badge.set_label(&next.verdict);
        }
        if let Some(o) = old.filter(|o| o.verdict_css != next.verdict_css) {
            self.badge.remove_css_class(o.verdict_css);
        }
        self.badge.add_css_class(next.verdict_css);
        if old.is_none_or(|o| o.position != next.position) {
            self.number.set_label(&next.position);
        }
        if old.is_none_or(|o| o.inactive != next.inactive) {
            self.row.set_sensitive(!next.inactive);
        }
        if old.is_some_and(|o| o.managed_by != next.managed_by) {
            // The lock is named for screen readers when it is made.
            let lock = lock::icon(next.managed_by.as_ref());
            self.row.remove(&self.lock);
            self.row.add_suffix(&lock);
            self.lock = lock;
        }
        self.text();
    }

    /// The subtitle and tooltip, which the hits are part of.
    fn text(&self) {
        let hits = self.hits.as_deref();
        self.row.set_subtitle(&self.shown.subtitle(hits));
        // Also the row's description for screen readers.
        self.row.set_tooltip_text(Some(&self.shown.sentence(hits)));
    }

    fn set(&mut self, next: Shown) {
        if next == self.shown {
            return;
        }
        let old = std::mem::replace(&mut self.shown, next);
        self.show_all(Some(&old));
    }

    fn set_hits(&mut self, hits: Option<String>) {
        if hits != self.hits {
            self.hits = hits;
            self.text();
        }
    }

    /// Says again how long an expiring rule has left.
    fn now(&mut self, now: SystemTime) {
        let Some((rule, name)) = &self.shown.rule else {
            return;
        };
        if rule.expires.is_none() {
            return;
        }
        let mut next = self.shown.clone();
        next.details = details(rule, name.as_deref(), self.shown.managed_by.as_ref(), now);
        next.inactive = !rule.is_active(now);
        self.set(next);
    }
}

/// The rule rows of one list, in an expander row after whatever it held before.
pub struct RuleRows {
    parent: adw::ExpanderRow,
    rows: Vec<RuleRow>,
}

impl std::fmt::Debug for RuleRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRows")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl RuleRows {
    /// Rows to be added to `parent`.
    pub fn new(parent: adw::ExpanderRow) -> RuleRows {
        RuleRows {
            parent,
            rows: Vec::new(),
        }
    }

    /// The expander row the rows are in.
    pub fn widget(&self) -> &adw::ExpanderRow {
        &self.parent
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Shows `inits`, row `k` the `k`th, in place (see the module's comment).
    pub fn show(&mut self, inits: Vec<RuleRowInit>) {
        let now = SystemTime::now();
        let count = inits.len();
        while self.rows.len() > count {
            if let Some(row) = self.rows.pop() {
                self.parent.remove(&row.row);
            }
        }
        for (i, init) in inits.into_iter().enumerate() {
            let shown = Shown::of(init, now);
            match self.rows.get_mut(i) {
                Some(row) => row.set(shown),
                None => {
                    let row = RuleRow::new(shown);
                    self.parent.add_row(&row.row);
                    self.rows.push(row);
                }
            }
        }
    }

    /// Shows no rows.
    pub fn clear(&mut self) {
        self.show(Vec::new());
    }

    /// Row `index` says how often its rule decided a packet ("12 hits, last 3 minutes ago");
    /// `None` when unknown.
    pub fn set_hits(&mut self, index: usize, hits: Option<String>) {
        if let Some(row) = self.rows.get_mut(index) {
            row.set_hits(hits);
        }
    }

    /// The time is now `now`: rows of expiring rules say again how long they have left.
    pub fn now(&mut self, now: SystemTime) {
        for row in &mut self.rows {
            row.now(now);
        }
    }
}

/// A rule's subtitle at `now`: its details, the state of its name, the file that defines it.
fn details(
    rule: &Rule,
    name: Option<&str>,
    managed_by: Option<&ManagedBy>,
    now: SystemTime,
) -> String {
    let mut details = format::rule_details(rule, now);
    if let Some(state) = name {
        details.push('\n');
        details.push_str(state);
    }
    managed::with_caption(&details, managed_by)
}

/// The state of the name `rule` names among `names` (those of the rule's VM, or of the host).
pub fn name_of(rule: &Rule, names: &[DnsNameState]) -> Option<Box<DnsNameState>> {
    use palisade_dbus::policy::Destination;
    match &rule.destination {
        Destination::Host(_) | Destination::Wildcard(_) => {
            let pattern = rule.destination.to_string();
            names
                .iter()
                .find(|n| n.pattern == pattern)
                .map(|n| Box::new(n.clone()))
        }
        _ => None,
    }
}

/// How many of `rules` name a host or wildcard whose last lookup failed.
pub fn failing_names(rules: &[Rule], names: &[DnsNameState]) -> usize {
    rules
        .iter()
        .filter_map(|r| name_of(r, names))
        .filter(|n| !n.problem.is_empty())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::{Destination, Protocol};

    fn rule(action: Verdict, comment: &str) -> Rule {
        Rule {
            action,
            destination: Destination::Any,
            protocol: Protocol::Any,
            ports: None,
            icmp_type: None,
            expires: None,
            log: false,
            comment: comment.into(),
            enabled: true,
        }
    }

    fn shown(position: usize, rule: Rule) -> Shown {
        Shown::of(
            RuleRowInit::Rule {
                position,
                rule,
                name: None,
                managed_by: None,
            },
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_row_changes_only_when_what_it_shows_changes() {
        let accept = rule(Verdict::Accept, "mail");
        assert_eq!(shown(3, accept.clone()), shown(3, accept.clone()));
        let web = shown(3, rule(Verdict::Accept, "web"));
        assert_ne!(shown(3, accept.clone()), web);
        assert!(web.details.contains("web"), "{web:?}");
        let off = shown(
            3,
            Rule {
                enabled: false,
                ..accept.clone()
            },
        );
        assert!(off.inactive && !shown(3, accept.clone()).inactive);
        let drop = shown(3, rule(Verdict::Drop, "mail"));
        assert_ne!(drop.verdict_css, shown(3, accept.clone()).verdict_css);
        assert_eq!(shown(4, accept.clone()).position, "4");
        let default = Shown::of(RuleRowInit::Default(Verdict::Drop), SystemTime::UNIX_EPOCH);
        assert_eq!(default.position, "");
        assert!(default.rule.is_none());
    }

    #[test]
    fn the_hits_follow_the_details_and_the_sentence_names_the_rule() {
        let row = shown(2, rule(Verdict::Accept, "mail"));
        assert_eq!(
            row.subtitle(Some("3 hits")),
            format!("{}\n3 hits", row.details)
        );
        let sentence = row.sentence(Some("3 hits"));
        assert!(sentence.starts_with("Rule 2: "), "{sentence}");
        assert!(sentence.ends_with("3 hits"), "{sentence}");
    }
}
