//! How palisadectl speaks: text for people or JSON for scripts, from the same value, plus the
//! small formatting helpers (findings, times, command lines) the commands share.

use palisade_dbus::types::{Finding, Severity};
use serde::Serialize;
use std::process::ExitCode;

/// Prints `value` as pretty JSON when `json` is set, otherwise the text `text` builds.
pub fn print<T: Serialize + ?Sized>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("palisadectl: cannot encode JSON: {e}"),
        }
    } else {
        print!("{}", text());
    }
}

/// Prints findings; exit code 65 if any is an error.
pub fn report_findings(json: bool, findings: &[Finding]) -> ExitCode {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    print(json, &findings, || {
        let mut out = String::new();
        for f in findings {
            let label = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{label}: {f}\n"));
        }
        if findings.is_empty() {
            out.push_str("The policy is valid.\n");
        }
        out
    });
    if errors > 0 {
        ExitCode::from(65)
    } else {
        ExitCode::SUCCESS
    }
}

/// One "warning: …" line per finding.
pub fn warnings_text(w: &[Finding]) -> String {
    w.iter().map(|f| format!("warning: {f}\n")).collect()
}

/// Unix seconds as UTC date and time.
pub fn when(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// A command line as a shell would need it typed.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
