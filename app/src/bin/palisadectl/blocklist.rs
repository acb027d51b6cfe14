//! `palisadectl blocklist`: import (from a file or an http(s) address), refresh, list, show and
//! remove the lists the policy names with `[[blocklist]] imported = true`. A file is opened here,
//! as the caller, and handed to the helper as a descriptor: the helper never opens a caller's
//! path. An address is checked and downloaded by the helper, which also refreshes it on schedule.

use crate::output::{print, when};
use crate::BlocklistCommand;
use palisade_app::handover;
use palisade_dbus::proxy::BlocklistsProxy;
use palisade_dbus::types::{BlocklistInfo, ListSourceKind};
use palisade_dbus::Error;
use std::process::ExitCode;

/// Runs one `blocklist` subcommand.
pub async fn run(
    json: bool,
    proxy: &BlocklistsProxy<'_>,
    cmd: &BlocklistCommand,
) -> Result<ExitCode, Error> {
    match cmd {
        BlocklistCommand::Import {
            name,
            file,
            url,
            refresh,
            format,
            strict,
            force,
        } => {
            let info = match (url, file) {
                (Some(url), _) => {
                    let every = refresh_seconds(refresh.as_deref().unwrap_or("1d"))?;
                    proxy
                        .import_url(name, url, every, format, *strict, *force)
                        .await?
                }
                (None, Some(_)) if refresh.is_some() => {
                    return Err(Error::InvalidArgument(
                        "--refresh applies to a list imported with --url; a file is read once"
                            .into(),
                    ))
                }
                (None, Some(file)) => {
                    handover::import_list(proxy, name, file.clone(), format, *strict, *force)
                        .await?
                }
                (None, None) => {
                    return Err(Error::InvalidArgument(
                        "give the list's file or --url ADDRESS".into(),
                    ))
                }
            };
            print(json, &info, || {
                let mut out = format!(
                    "Imported {}: {} ranges, {} domains from {} lines.{}\n",
                    info.name,
                    info.ranges,
                    info.domains,
                    info.lines,
                    if info.in_use {
                        " The firewall enforces it now."
                    } else {
                        " No rule names it yet: add [[blocklist]] name = \"…\" imported = true."
                    }
                );
                out.push_str(&problems_text(&info));
                out
            });
        }
        BlocklistCommand::Refresh { name } => {
            let before = proxy.show(name).await?;
            let info = proxy.refresh(name).await?;
            print(json, &info, || {
                if info.content_hash == before.content_hash {
                    format!("{} is unchanged at its source.\n", info.name)
                } else {
                    let mut out = format!(
                        "Refreshed {}: {} ranges, {} domains from {} lines.{}\n",
                        info.name,
                        info.ranges,
                        info.domains,
                        info.lines,
                        if info.in_use {
                            " The firewall enforces the new version now."
                        } else {
                            ""
                        }
                    );
                    out.push_str(&problems_text(&info));
                    out
                }
            });
        }
        BlocklistCommand::List => {
            let lists = proxy.list().await?;
            print(json, &lists, || {
                if lists.is_empty() {
                    return "No lists imported.\n".into();
                }
                lists
                    .iter()
                    .map(|l| {
                        format!(
                            "{}\t{} ranges\t{} domains\t{}\t{}\trefreshed {}\t{} skipped lines\n",
                            l.name,
                            l.ranges,
                            l.domains,
                            l.source_kind,
                            if l.in_use { "in use" } else { "unused" },
                            when(l.refreshed_at),
                            l.problems.len() as u64 + l.problems_not_listed
                        )
                    })
                    .collect()
            });
        }
        BlocklistCommand::Show { name } => {
            let l = proxy.show(name).await?;
            print(json, &l, || {
                let mut out = format!(
                    "{}\nSource: {} {}\nFormat: {}{}\nRanges: {} ({} IPv4 addresses, {} IPv6 addresses)\nDomains: {}\nLines: {}\nImported: {}\nRefreshed: {}\nIn use by the live policy: {}\nContent: {}\n",
                    l.name,
                    l.source_kind,
                    l.source,
                    l.format,
                    if l.strict { ", strict" } else { "" },
                    l.ranges,
                    l.addresses_v4,
                    l.addresses_v6,
                    l.domains,
                    l.lines,
                    when(l.imported_at),
                    when(l.refreshed_at),
                    if l.in_use { "yes" } else { "no" },
                    l.content_hash
                );
                if l.source_kind == ListSourceKind::Url {
                    out.push_str(&match l.refresh_seconds {
                        0 => "Refreshed on schedule: never\n".to_owned(),
                        s => format!(
                            "Refreshed on schedule: every {}\n",
                            humantime::format_duration(std::time::Duration::from_secs(s))
                        ),
                    });
                }
                out.push_str(&problems_text(&l));
                out
            });
        }
        BlocklistCommand::Remove { name } => {
            proxy.remove(name).await?;
            print(json, &serde_json::json!({ "removed": name }), || {
                format!("Removed {name}.\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn problems_text(l: &BlocklistInfo) -> String {
    let mut out: String = l
        .problems
        .iter()
        .map(|p| format!("skipped line {}: {} ({})\n", p.line, p.reason, p.text))
        .collect();
    if l.problems_not_listed > 0 {
        out.push_str(&format!(
            "… and {} more skipped lines\n",
            l.problems_not_listed
        ));
    }
    out
}

/// The refresh interval in seconds: "never" or 0, a number of seconds, or a duration such as
/// `6h` or `1d` (the helper checks the range).
fn refresh_seconds(text: &str) -> Result<u32, Error> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Ok(0);
    }
    let seconds = match text.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "--refresh {text}: {e}; give a duration such as 6h or 1d, or never"
                ))
            })?
            .as_secs(),
    };
    u32::try_from(seconds).map_err(|_| {
        Error::InvalidArgument(format!(
            "--refresh {text} is too long; at most 30d is accepted"
        ))
    })
}
