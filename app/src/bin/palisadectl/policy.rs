//! `palisadectl policy`: show, validate, preview, apply, confirm, roll back and list the
//! generations of the firewall policy.

use crate::output::{print, report_findings, warnings_text, when};
use crate::PolicyCommand;
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::PolicyProxy;
use palisade_dbus::types::Client;
use palisade_dbus::Error;
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// `policy validate --offline`: checks a policy file here, without the helper or the bus.
pub fn validate_offline(json: bool, file: &PathBuf) -> Result<ExitCode, Error> {
    let findings = match Policy::parse(&read_file(file)?) {
        Ok(p) => p.warnings,
        Err(f) => f,
    };
    Ok(report_findings(json, &findings))
}

/// Runs a `policy` subcommand against the helper.
pub async fn run(
    json: bool,
    proxy: &PolicyProxy<'_>,
    cmd: &PolicyCommand,
) -> Result<ExitCode, Error> {
    match cmd {
        PolicyCommand::Show { merged: true } => {
            let sources = proxy.sources().await?;
            let merged = palisade_dbus::policy::merge::merge(&sources.sources).map_err(|f| {
                Error::InvalidPolicy(
                    f.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
            let generation = sources.generation;
            #[derive(Serialize)]
            struct Shown {
                generation: u64,
                document: String,
            }
            let shown = Shown {
                generation,
                document: merged.document,
            };
            print(json, &shown, || {
                format!("# generation {generation}, merged\n{}", shown.document)
            });
        }
        PolicyCommand::Sources => {
            let s = proxy.sources().await?;
            print(json, &s, || {
                let mut out = format!("# generation {}, merged in this order:\n", s.generation);
                for src in &s.sources {
                    out.push_str(&format!("{:<7} {}\n", src.kind, src.path));
                }
                out.push_str(&format!(
                    "# drop-ins go in {} (packages: {}); the local policy is {}\n",
                    s.admin_dir, s.vendor_dir, s.local_file
                ));
                out
            });
        }
        PolicyCommand::Check { candidate, name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => candidate
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{} has no file name to use as the drop-in's; give one with --as",
                            candidate.display()
                        ))
                    })?,
            };
            let report = proxy.check(&name, &read_file(candidate)?).await?;
            print(json, &report, || {
                let mut out = String::new();
                for f in &report.findings {
                    out.push_str(&format!("{f}\n"));
                }
                if report.valid {
                    out.push_str(&format!(
                        "With {name} in place the policy is valid{}.\n",
                        if report.changes {
                            "; reloading would change it"
                        } else {
                            " and nothing would change"
                        }
                    ));
                    if report.changes {
                        out.push_str(&report.ruleset_diff);
                    }
                } else {
                    out.push_str(&format!("With {name} in place the policy is not valid.\n"));
                }
                out
            });
            return Ok(if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(65)
            });
        }
        PolicyCommand::Reload { confirm } => {
            let r = proxy.reload(*confirm).await?;
            print(json, &r, || {
                let a = &r.applied;
                let mut out = if r.changed {
                    format!("The drop-ins changed: generation {} is live.", a.generation)
                } else {
                    format!(
                        "The drop-ins say what is live: generation {} stays.",
                        a.generation
                    )
                };
                if a.pending_until > 0 {
                    out.push_str(&format!(
                        " Run `palisadectl policy confirm {}` before {} or the previous generation comes back.",
                        a.generation,
                        when(a.pending_until)
                    ));
                }
                out.push('\n');
                out.push_str(&warnings_text(&a.warnings));
                out
            });
        }
        PolicyCommand::Show { merged: false } => {
            let (generation, document) = proxy.get().await?;
            #[derive(Serialize)]
            struct Shown {
                generation: u64,
                document: String,
            }
            print(
                json,
                &Shown {
                    generation,
                    document: document.clone(),
                },
                || format!("# generation {generation}\n{document}"),
            );
        }
        PolicyCommand::Validate { file, .. } => {
            let findings = proxy.validate(&read_file(file)?).await?;
            return Ok(report_findings(json, &findings));
        }
        PolicyCommand::Preview { file } => {
            let p = proxy.preview(&read_file(file)?).await?;
            print(json, &p, || {
                let mut out = p.ruleset.clone();
                out.push_str("\n# changes against the live ruleset:\n");
                out.push_str(if p.diff.is_empty() {
                    "(none)\n"
                } else {
                    &p.diff
                });
                out.push_str(&warnings_text(&p.warnings));
                out
            });
        }
        PolicyCommand::Apply {
            file,
            confirm,
            base,
        } => {
            let document = read_file(file)?;
            let base = match base {
                Some(b) => *b,
                None => proxy.get().await?.0,
            };
            let a = proxy
                .apply(&document, base, *confirm, Client::Palisadectl)
                .await?;
            print(json, &a, || {
                let mut out = format!("Generation {} is live.", a.generation);
                if a.pending_until > 0 {
                    out.push_str(&format!(
                        " Run `palisadectl policy confirm {}` before {} or the previous generation comes back.",
                        a.generation,
                        when(a.pending_until)
                    ));
                }
                if a.connections_cut > 0 {
                    out.push_str(&format!(
                        " {} open connections were cut.",
                        a.connections_cut
                    ));
                }
                out.push('\n');
                out.push_str(&warnings_text(&a.warnings));
                out
            });
        }
        PolicyCommand::Confirm { generation } => {
            proxy.confirm(*generation).await?;
            print(
                json,
                &serde_json::json!({ "confirmed": generation }),
                || format!("Generation {generation} is confirmed.\n"),
            );
        }
        PolicyCommand::Rollback { generation } => {
            let a = proxy.rollback(*generation, Client::Palisadectl).await?;
            print(json, &a, || {
                format!(
                    "Generation {} is live again, as generation {}.\n",
                    generation, a.generation
                )
            });
        }
        PolicyCommand::Diff { from, to } => {
            let to = match to {
                Some(to) => *to,
                None => proxy.get().await?.0,
            };
            let diff = proxy.diff(*from, to).await?;
            print(
                json,
                &serde_json::json!({ "from": from, "to": to, "diff": diff }),
                || {
                    if diff.is_empty() {
                        format!("Generations {from} and {to} have the same policy.\n")
                    } else {
                        diff.clone()
                    }
                },
            );
        }
        PolicyCommand::History => {
            let h = proxy.history().await?;
            print(json, &h, || {
                let mut out = format!(
                    "{:>6}  {:<20}  {:>6}  {:<10}  {:<11}  {:<12}  {}\n",
                    "GEN", "APPLIED", "UID", "STATE", "SOURCE", "HASH", "ORIGIN"
                );
                for g in &h {
                    out.push_str(&format!(
                        "{:>6}  {:<20}  {:>6}  {:<10}  {:<11}  {:<12}  {}\n",
                        g.generation,
                        when(g.applied_at),
                        g.author_uid,
                        g.state,
                        g.source,
                        g.policy_hash.get(..12).unwrap_or("-"),
                        g.origin
                    ));
                }
                out
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a policy file as bytes: the helper, not this tool, decides what is valid text.
fn read_file(path: &PathBuf) -> Result<Vec<u8>, Error> {
    let limit = palisade_dbus::policy::MAX_DOCUMENT_BYTES;
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
    // Checked here, before the bus: a message over its limit only shows as a broken connection.
    if bytes.len() > limit {
        return Err(Error::InvalidArgument(format!(
            "{} is larger than {} MiB, the most a policy may be; import big lists with \
             `palisadectl blocklist import` and name them with imported = true",
            path.display(),
            limit >> 20
        )));
    }
    Ok(bytes)
}
