//! The metrics file for Prometheus' node_exporter textfile collector: the live generation, its
//! policy hash and source, whether it waits for confirmation, when it was applied, whether the
//! drop-ins on disk drifted from it, and each VM's dropped packets.
//!
//! Written where `[settings.metrics] textfile` says, after every change of the live state and
//! every `PERIOD` (the counters move on their own), atomically (a temporary file renamed over
//! it: the collector reads the old or the new file, never half). As root, the helper writes only
//! into a folder that is root's and writable by nobody else, so a user cannot point the write
//! elsewhere with a link.

use crate::firewall::Firewall;
use crate::log::DropLog;
use palisade_dbus::types::{Drift, GenerationSource, LogOwner, PacketVerdict, RuleCounter};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the file is written when nothing changes, for the drop counters.
const PERIOD: Duration = Duration::from_secs(15);

/// What the file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub generation: u64,
    pub policy_hash: String,
    pub source: GenerationSource,
    pub pending: bool,
    pub applied_at: u64,
    pub drift: Drift,
    /// Packets dropped or rejected by each VM's rules and default, by VM name.
    pub drops: BTreeMap<String, u64>,
}

/// Keeps the file up to date while the helper runs.
pub async fn run(firewall: Arc<Firewall>, drop_log: Arc<DropLog>) {
    let mut changes = firewall.watch_snapshot();
    let mut last_error = String::new();
    loop {
        let snap = firewall.snapshot();
        if let Some(path) = snap.policy.settings.metrics.textfile.clone() {
            let (drift, _) = firewall.drift().await;
            let counters = drop_log.counters(None).await.unwrap_or_default();
            let report = Report {
                generation: snap.generation,
                policy_hash: snap.about.policy_hash.to_string(),
                source: snap.about.source,
                pending: snap.pending_until > 0,
                applied_at: snap.about.applied_at,
                drift,
                drops: drops_by_vm(&counters),
            };
            let result = tokio::task::spawn_blocking(move || write(&path, &render(&report)))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match result {
                Ok(()) => last_error.clear(),
                // Said once, not every 15 s.
                Err(e) if e != last_error => {
                    tracing::error!("cannot write the metrics file: {e}");
                    last_error = e;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}

/// Each VM's dropped and rejected packets, from its rules' counters.
pub fn drops_by_vm(counters: &[RuleCounter]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in counters {
        if c.rule.owner == LogOwner::Vm && c.rule.verdict != PacketVerdict::Accept {
            *out.entry(c.rule.vm.clone()).or_insert(0) += c.packets;
        }
    }
    out
}

/// The file's text, in Prometheus' text exposition format.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "palisade_generation",
        "gauge",
        "The live policy generation.",
        &[(String::new(), r.generation.to_string())],
    );
    metric(
        "palisade_policy_info",
        "gauge",
        "The live policy's SHA-256 and who made its generation.",
        &[(
            format!(
                "{{hash=\"{}\",source=\"{}\"}}",
                escape(&r.policy_hash),
                escape(r.source.as_str())
            ),
            "1".into(),
        )],
    );
    metric(
        "palisade_confirmation_pending",
        "gauge",
        "1 while the live generation waits for confirmation, else 0.",
        &[(String::new(), u8::from(r.pending).to_string())],
    );
    metric(
        "palisade_last_apply_timestamp_seconds",
        "gauge",
        "When the live generation was applied, Unix seconds.",
        &[(String::new(), r.applied_at.to_string())],
    );
    metric(
        "palisade_policy_drift",
        "gauge",
        "1 when the drop-ins on disk say something else than the live policy (or cannot be read), else 0.",
        &[(String::new(), u8::from(r.drift != Drift::InSync).to_string())],
    );
    let drops: Vec<(String, String)> = r
        .drops
        .iter()
        .map(|(vm, n)| (format!("{{vm=\"{}\"}}", escape(vm)), n.to_string()))
        .collect();
    metric(
        "palisade_dropped_packets_total",
        "counter",
        "Packets a VM's rules dropped or rejected since those rules took their present form.",
        &drops,
    );
    out
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `text` to `path` if its folder is root's and writable by no one else.
fn write(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no folder", path.display()))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a folder owned by root and writable by no one else",
            dir.display()
        ));
    }
    crate::store::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_has_every_metric_with_help_and_type() {
        let r = Report {
            generation: 7,
            policy_hash: "ab12".into(),
            source: GenerationSource::DropIns,
            pending: true,
            applied_at: 1_800_000_000,
            drift: Drift::Drifted,
            drops: BTreeMap::from([("web".into(), 12), ("work".into(), 0)]),
        };
        let text = render(&r);
        for line in [
            "# TYPE palisade_generation gauge",
            "palisade_generation 7",
            "palisade_policy_info{hash=\"ab12\",source=\"drop-ins\"} 1",
            "palisade_confirmation_pending 1",
            "palisade_last_apply_timestamp_seconds 1800000000",
            "palisade_policy_drift 1",
            "# TYPE palisade_dropped_packets_total counter",
            "palisade_dropped_packets_total{vm=\"web\"} 12",
            "palisade_dropped_packets_total{vm=\"work\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_folder_others_may_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("palisade-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let e = write(&dir.join("p.prom"), "x\n")
            .err()
            .unwrap_or_else(|| panic!("expected an error"));
        assert!(e.contains("writable by no one else"), "{e}");
        assert!(!dir.join("p.prom").exists());
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    }
}
