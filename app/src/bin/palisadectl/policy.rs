//! `palisadectl policy`: show, validate, preview, apply, confirm, roll back and list the
//! generations of the firewall policy.

use crate::output::{print, report_findings, warnings_text, when};
use crate::PolicyCommand;
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::PolicyProxy;
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
        PolicyCommand::Show => {
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
            let a = proxy.apply(&document, base, *confirm).await?;
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
            let a = proxy.rollback(*generation).await?;
            print(json, &a, || {
                format!(
                    "Generation {} is live again, as generation {}.\n",
                    generation, a.generation
                )
            });
        }
        PolicyCommand::History => {
            let h = proxy.history().await?;
            print(json, &h, || {
                let mut out = format!(
                    "{:>6}  {:<20}  {:>6}  {:<10}  {}\n",
                    "GEN", "APPLIED", "UID", "STATE", "ORIGIN"
                );
                for g in &h {
                    out.push_str(&format!(
                        "{:>6}  {:<20}  {:>6}  {:<10}  {}\n",
                        g.generation,
                        when(g.applied_at),
                        g.author_uid,
                        g.state,
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
