//! `palisadectl blocklist`: import, list, show and remove the lists the policy names with
//! `[[blocklist]] imported = true`. The file is opened here, as the caller, and handed to the
//! helper as a descriptor: the helper never opens a caller's path.

use crate::output::{print, when};
use crate::BlocklistCommand;
use palisade_dbus::proxy::BlocklistsProxy;
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::Error;
use std::path::Path;
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
            format,
            strict,
            force,
        } => {
            let opened = open_list(file)?;
            let info = proxy
                .import(name, zbus::Fd::from(&opened), format, *strict, *force)
                .await?;
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

/// Opens the list as the caller; symbolic links are refused, as for ISOs.
fn open_list(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(40) {
                "it is a symbolic link; give the real file".to_owned()
            } else {
                e.to_string()
            };
            Error::InvalidArgument(format!("cannot open the list {}: {why}", path.display()))
        })
}
