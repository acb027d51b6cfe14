//! Data and words of the Blocklists page: the formats and refresh schedules an import offers,
//! the local checks of a list's name and address (the same grammar the helper applies again on
//! receipt), the name suggested for a chosen file, and how an imported list reads in its row.
//! Pure functions of their arguments (and the clock, passed in), translated with gettext.

use crate::format;
use crate::i18n::{gettext, i18n_f, ni18n_f};
use palisade_dbus::policy::ShortName;
use palisade_dbus::types::{BlocklistInfo, ListProblem, ListSourceKind};
use std::path::Path;

/// Separator between the parts of a row's subtitle.
const SEP: &str = " · ";
/// The longest address the helper accepts (`Blocklists.ImportUrl`).
const MAX_URL_LEN: usize = 2048;
/// Skipped lines shown in a row; the helper keeps more, the rest is counted.
pub const PROBLEMS_SHOWN: usize = 5;

/// The formats `Blocklists.Import` reads, in the order the format list offers them; the first
/// is the default.
pub const FORMATS: [&str; 6] = ["auto", "plain", "netset", "spamhaus", "hosts", "domains"];

/// How a format word reads in the format list.
pub fn format_label(word: &str) -> String {
    match word {
        "auto" => gettext("Detect automatically"),
        "plain" => gettext("Addresses and networks, one per line"),
        "netset" => gettext("FireHOL netset"),
        "spamhaus" => gettext("Spamhaus DROP"),
        "hosts" => gettext("Hosts file"),
        "domains" => gettext("Domain names, one per line"),
        other => other.to_owned(),
    }
}

/// How often a list downloaded from an address is downloaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Only when someone presses **Update now**.
    Never,
    /// Every six hours.
    SixHours,
    /// Once a day.
    Daily,
    /// Once a week.
    Weekly,
}

impl Refresh {
    /// The schedules in the order the list offers them.
    pub const ALL: [Refresh; 4] = [
        Refresh::Never,
        Refresh::SixHours,
        Refresh::Daily,
        Refresh::Weekly,
    ];
    /// The schedule offered first: what `palisadectl blocklist import --url` does by default.
    pub const DEFAULT: Refresh = Refresh::Daily;

    /// The seconds `Blocklists.ImportUrl` takes; 0 means never.
    pub fn seconds(self) -> u32 {
        match self {
            Refresh::Never => 0,
            Refresh::SixHours => 6 * 3600,
            Refresh::Daily => 86_400,
            Refresh::Weekly => 7 * 86_400,
        }
    }

    /// How the schedule reads in the list.
    pub fn label(self) -> String {
        match self {
            Refresh::Never => gettext("Never"),
            Refresh::SixHours => gettext("Every 6 hours"),
            Refresh::Daily => gettext("Daily"),
            Refresh::Weekly => gettext("Weekly"),
        }
    }
}

/// Checks a list name as the helper will (`ShortName::parse`), with a sentence saying what is
/// wrong. Surrounding spaces are ignored.
pub fn check_name(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(gettext("Give the list a name"));
    }
    ShortName::parse(text).map(|n| n.to_string()).map_err(|_| {
        gettext("Use lower-case letters, digits, “_” and “-”, starting with a letter, at most 32 characters")
    })
}

/// Checks an address enough to tell the user before sending it: http or https, no spaces, not
/// too long. The helper checks it fully and says what else is wrong.
pub fn check_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(gettext("Give the address of the list"));
    }
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &text[8..]
    } else if lower.starts_with("http://") {
        &text[7..]
    } else {
        return Err(gettext("The address must start with http:// or https://"));
    };
    if rest.is_empty() || rest.starts_with(['/', ':', '?', '#']) {
        return Err(gettext("The address names no server"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(gettext("The address contains a space"));
    }
    if text.len() > MAX_URL_LEN {
        return Err(i18n_f(
            "The address is longer than {count} characters",
            &[("count", &MAX_URL_LEN.to_string())],
        ));
    }
    Ok(text.to_owned())
}

/// A list name made from a file's name (`firehol_level1.netset` → `firehol_level1`), for the
/// name field when it is still empty; empty when nothing usable is left.
pub fn suggested_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in stem.chars() {
        if name.len() >= 32 {
            break;
        }
        let inner = c.is_ascii_digit() || c == '_' || c == '-';
        if c.is_ascii_lowercase() || (inner && !name.is_empty()) {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_end_matches('-').to_owned()
}

/// What a list holds, for the row's subtitle: "3 networks", "2 networks · 10 domains".
pub fn entries(info: &BlocklistInfo) -> String {
    let networks = usize::try_from(info.ranges).unwrap_or(usize::MAX);
    let domains = usize::try_from(info.domains).unwrap_or(usize::MAX);
    let mut parts = Vec::new();
    if networks > 0 || domains == 0 {
        parts.push(ni18n_f(
            "{count} network",
            "{count} networks",
            format::count(networks),
            &[("count", &networks.to_string())],
        ));
    }
    if domains > 0 {
        parts.push(ni18n_f(
            "{count} domain",
            "{count} domains",
            format::count(domains),
            &[("count", &domains.to_string())],
        ));
    }
    parts.join(SEP)
}

/// The addresses a list covers, for its details.
pub fn addresses(info: &BlocklistInfo) -> String {
    i18n_f(
        "{ipv4} IPv4 and {ipv6} IPv6 addresses, from {lines} lines",
        &[
            ("ipv4", &info.addresses_v4.to_string()),
            ("ipv6", &info.addresses_v6),
            ("lines", &info.lines.to_string()),
        ],
    )
}

/// Where a list comes from: the address, or that it was a file (the helper keeps only its size).
pub fn source(info: &BlocklistInfo) -> String {
    match info.source_kind {
        ListSourceKind::Url => info.source.clone(),
        ListSourceKind::File => gettext("Imported from a file"),
    }
}

/// How a list is kept current.
pub fn schedule(info: &BlocklistInfo) -> String {
    match (info.source_kind, info.refresh_seconds) {
        (ListSourceKind::File, _) => gettext("Import the file again to update it"),
        (ListSourceKind::Url, 0) => gettext("Downloaded again only when you update it"),
        (ListSourceKind::Url, s) => i18n_f("Downloaded again {every}", &[("every", &every(s))]),
    }
}

/// A refresh interval: "every 6 hours", "every day".
fn every(seconds: u64) -> String {
    let preset = Refresh::ALL
        .into_iter()
        .find(|r| u64::from(r.seconds()) == seconds);
    match preset {
        Some(Refresh::Daily) => gettext("every day"),
        Some(Refresh::Weekly) => gettext("every week"),
        _ if seconds.is_multiple_of(86_400) => {
            let days = seconds / 86_400;
            ni18n_f(
                "every {count} day",
                "every {count} days",
                format::saturated(days),
                &[("count", &days.to_string())],
            )
        }
        _ if seconds.is_multiple_of(3600) => {
            let hours = seconds / 3600;
            ni18n_f(
                "every {count} hour",
                "every {count} hours",
                format::saturated(hours),
                &[("count", &hours.to_string())],
            )
        }
        _ => {
            let minutes = seconds.div_ceil(60);
            ni18n_f(
                "every {count} minute",
                "every {count} minutes",
                format::saturated(minutes),
                &[("count", &minutes.to_string())],
            )
        }
    }
}

/// When a list was last read from its source: "refreshed 3 hours ago".
pub fn refreshed(info: &BlocklistInfo, now: u64) -> String {
    i18n_f(
        "refreshed {ago}",
        &[("ago", &format::ago(info.refreshed_at, now))],
    )
}

/// Whether the live policy uses the list.
pub fn usage(info: &BlocklistInfo) -> String {
    if info.in_use {
        gettext("Used by the live policy")
    } else {
        gettext("Not used by the live policy")
    }
}

/// The row's subtitle: entries, when it was refreshed, whether the policy uses it.
pub fn summary(info: &BlocklistInfo, now: u64) -> String {
    [entries(info), refreshed(info, now), usage(info)].join(SEP)
}

/// Skipped lines in all, listed or not.
pub fn problem_count(info: &BlocklistInfo) -> u64 {
    u64::try_from(info.problems.len())
        .unwrap_or(u64::MAX)
        .saturating_add(info.problems_not_listed)
}

/// The title of the problems part of a row.
pub fn problems_title(info: &BlocklistInfo) -> String {
    let n = problem_count(info);
    if n == 0 {
        return gettext("No lines skipped");
    }
    ni18n_f(
        "{count} line skipped",
        "{count} lines skipped",
        format::saturated(n),
        &[("count", &n.to_string())],
    )
}

/// One skipped line: its number and why, and the line itself.
pub fn problem(p: &ListProblem) -> (String, String) {
    (
        i18n_f(
            "Line {line}: {reason}",
            &[("line", &p.line.to_string()), ("reason", &p.reason)],
        ),
        p.text.clone(),
    )
}

/// The skipped lines the row does not list, if any: "and 12 more".
pub fn more_problems(info: &BlocklistInfo, shown: usize) -> Option<String> {
    let shown = u64::try_from(shown).unwrap_or(u64::MAX);
    let rest = problem_count(info).saturating_sub(shown);
    (rest > 0).then(|| {
        ni18n_f(
            "and {count} more line",
            "and {count} more lines",
            format::saturated(rest),
            &[("count", &rest.to_string())],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BlocklistInfo {
        BlocklistInfo {
            name: "spamhaus".into(),
            source_kind: ListSourceKind::Url,
            source: "https://lists.example/drop.txt".into(),
            format: "auto".into(),
            strict: false,
            ranges: 3,
            addresses_v4: 768,
            addresses_v6: "0".into(),
            domains: 0,
            lines: 5,
            imported_at: 1_000,
            refreshed_at: 1_000,
            problems: vec![ListProblem {
                line: 2,
                reason: "not an address".into(),
                text: "nonsense".into(),
            }],
            problems_not_listed: 0,
            content_hash: "sha256:00".into(),
            in_use: true,
            refresh_seconds: 86_400,
        }
    }

    #[test]
    fn names_follow_the_policy_grammar() {
        assert_eq!(check_name(" spamhaus "), Ok("spamhaus".to_owned()));
        assert_eq!(check_name("a-b_9"), Ok("a-b_9".to_owned()));
        assert!(check_name("").is_err());
        assert!(check_name("Spamhaus").is_err());
        assert!(check_name("9lives").is_err());
        assert!(check_name("x; flush ruleset").is_err());
        assert!(check_name(&"a".repeat(33)).is_err());
    }

    #[test]
    fn addresses_are_http_or_https() {
        assert_eq!(
            check_url(" http://127.0.0.1:8470/list.txt "),
            Ok("http://127.0.0.1:8470/list.txt".to_owned())
        );
        assert!(check_url("HTTPS://example.org/x").is_ok());
        assert!(check_url("file:///etc/shadow").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("https:///x").is_err());
        assert!(check_url("https://a b").is_err());
        assert!(check_url("").is_err());
        assert!(check_url(&format!("https://x/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn file_names_suggest_valid_names() {
        let cases = [
            ("/tmp/firehol_level1.netset", "firehol_level1"),
            ("/tmp/Spamhaus DROP.txt", "spamhaus-drop"),
            ("/tmp/2024-list.txt", "list"),
            ("/tmp/...", ""),
        ];
        for (file, want) in cases {
            let got = suggested_name(Path::new(file));
            assert_eq!(got, want, "{file}");
            if !got.is_empty() {
                assert!(check_name(&got).is_ok(), "{got}");
            }
        }
        let long = suggested_name(Path::new(&format!("/{}.txt", "a".repeat(50))));
        assert_eq!(long.len(), 32);
    }

    #[test]
    fn rows_say_what_a_list_holds_and_where_it_comes_from() {
        let mut l = info();
        assert_eq!(entries(&l), "3 networks");
        assert_eq!(
            summary(&l, 1_000 + 3 * 3600 + 5),
            "3 networks · refreshed 3 hours ago · Used by the live policy"
        );
        assert_eq!(schedule(&l), "Downloaded again every day");
        l.refresh_seconds = 6 * 3600;
        assert_eq!(schedule(&l), "Downloaded again every 6 hours");
        l.refresh_seconds = 0;
        assert_eq!(schedule(&l), "Downloaded again only when you update it");
        l.ranges = 1;
        l.domains = 10;
        assert_eq!(entries(&l), "1 network · 10 domains");
        l.ranges = 0;
        assert_eq!(entries(&l), "10 domains");
        l.domains = 0;
        assert_eq!(entries(&l), "0 networks");
        l.source_kind = ListSourceKind::File;
        assert_eq!(source(&l), "Imported from a file");
        assert_eq!(schedule(&l), "Import the file again to update it");
    }

    #[test]
    fn problems_are_counted_and_listed_with_their_lines() {
        let mut l = info();
        assert_eq!(problems_title(&l), "1 line skipped");
        assert_eq!(
            problem(&l.problems[0]),
            ("Line 2: not an address".to_owned(), "nonsense".to_owned())
        );
        assert_eq!(more_problems(&l, 1), None);
        l.problems_not_listed = 12;
        assert_eq!(problems_title(&l), "13 lines skipped");
        assert_eq!(more_problems(&l, 1).as_deref(), Some("and 12 more lines"));
        l.problems.clear();
        l.problems_not_listed = 0;
        assert_eq!(problems_title(&l), "No lines skipped");
    }
}
