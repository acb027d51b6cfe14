//! Cutting open connections that a new ruleset no longer allows.
//!
//! Accepting rules mark their connections with the rule's id (see `compile`). After an apply,
//! any connection still carrying the id of a rule that is gone is deleted from conntrack; its
//! next packet is then a new connection, judged by the new rules, and refused if they refuse it.
//! (The `live_marks` check in each VM chain already stops such packets; deleting the entries
//! also ends the reply direction and frees the table.)

use std::collections::BTreeSet;
use tokio::process::Command;

/// Deletes conntrack entries whose mark is in `gone`; returns how many were deleted.
pub async fn cut_connections(gone: &BTreeSet<u32>) -> u32 {
    if gone.is_empty() {
        return 0;
    }
    let listing = match Command::new("conntrack")
        .args(["-L", "-o", "id"])
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => {
            tracing::warn!("cannot list connections (is conntrack installed?): {e}");
            return 0;
        }
    };
    let present: BTreeSet<u32> = listing
        .lines()
        .filter_map(mark_of)
        .filter(|m| gone.contains(m))
        .collect();
    let mut cut = 0;
    for mark in present {
        match Command::new("conntrack")
            .args(["-D", "--mark", &mark.to_string()])
            .output()
            .await
        {
            Ok(out) => cut += deleted_count(&String::from_utf8_lossy(&out.stderr)),
            Err(e) => tracing::warn!("cannot delete connections with mark {mark:#x}: {e}"),
        }
    }
    cut
}

/// The `mark=N` field of one `conntrack -L` line.
fn mark_of(line: &str) -> Option<u32> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("mark=")?.parse().ok())
}

/// Parses conntrack's "N flow entries have been deleted."
fn deleted_count(stderr: &str) -> u32 {
    stderr
        .lines()
        .find(|l| {
            l.contains("flow entries have been deleted")
                || l.contains("flow entry has been deleted")
        })
        .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conntrack_output() {
        let line = "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=4 dport=8443 \
                    src=127.0.0.1 dst=127.0.0.1 sport=8443 dport=4 [ASSURED] mark=4262621383 use=1 id=7";
        assert_eq!(mark_of(line), Some(4_262_621_383));
        assert_eq!(mark_of("tcp 6 src=1 mark=0"), Some(0));
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n"
            ),
            2
        );
        assert_eq!(
            deleted_count("conntrack v1.4.7 (conntrack-tools): 1 flow entry has been deleted.\n"),
            1
        );
    }
}
