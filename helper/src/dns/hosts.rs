//! Host names the helper resolves itself: those of host-wide rules, of VMs that do not resolve
//! through the forwarder, and of remote consoles. No guest asks for these, so nothing would
//! ever refresh their addresses; the refresher asks the upstream for them again as their TTLs
//! run out and puts the answers in the names' learned sets with a timeout of max(TTL, floor)
//! plus grace, so the sets follow the names as their addresses change, and an address the name
//! no longer has leaves once its last answer expires.
//!
//! Invariants: a name is asked again at max(TTL, floor) after its last answer, while its
//! addresses stay for `grace` longer, so a name that keeps answering never has a gap. A name
//! that fails keeps what it had until that expires and is asked again after [`RETRY`]; only its
//! own rule is affected. Memory is bounded by the policy's names.

use super::answer::{self, Question};
use super::upstream::{Transport, Upstream};
use hickory_proto::rr::RecordType;
use palisade_dbus::policy::HostName;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// How soon a name whose lookup failed is asked again.
pub const RETRY: Duration = Duration::from_secs(10);

/// Longest time between two lookups of a name, whatever its TTL says.
pub const LONGEST: Duration = Duration::from_secs(6 * 3600);

/// The addresses of `name` (A and AAAA, asked at once; a truncated answer is asked again over
/// TCP), each with its TTL. A name that does not exist, or answers with an error, is a
/// sentence; a name without addresses of one family is fine.
pub async fn lookup(upstream: &Upstream, name: &HostName) -> Result<Vec<(IpAddr, u32)>, String> {
    let (v4, v6) = tokio::join!(
        ask(upstream, name, RecordType::A),
        ask(upstream, name, RecordType::AAAA)
    );
    match (v4, v6) {
        (Ok(mut a), Ok(aaaa)) => {
            a.extend(aaaa);
            Ok(a)
        }
        (Ok(found), Err(e)) | (Err(e), Ok(found)) if !found.is_empty() => {
            tracing::debug!("{name}: {e}");
            Ok(found)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

async fn ask(
    upstream: &Upstream,
    name: &HostName,
    kind: RecordType,
) -> Result<Vec<(IpAddr, u32)>, String> {
    let id = random_id();
    let (q, bytes): (Question, Vec<u8>) = answer::own_question(name.as_str(), kind, id)
        .ok_or_else(|| format!("{name} cannot be written as a DNS name"))?;
    let mut transport = Transport::Udp;
    loop {
        let reply = upstream
            .exchange(&bytes, transport)
            .await
            .map_err(|e| e.to_string())?;
        let found = answer::addresses(&reply, &q).map_err(|e| e.to_string())?;
        if found.truncated && transport == Transport::Udp {
            transport = Transport::Tcp;
            continue;
        }
        if found.code != hickory_proto::op::ResponseCode::NoError {
            return Err(format!("the upstream answered {} for {name}", found.code));
        }
        return Ok(found.found);
    }
}

/// When to ask for a name again after an answer with these addresses.
pub fn next_lookup(found: &[(IpAddr, u32)], floor_seconds: u32) -> Duration {
    let ttl = found.iter().map(|(_, ttl)| *ttl).min().unwrap_or(0);
    Duration::from_secs(u64::from(ttl.max(floor_seconds).max(1))).min(LONGEST)
}

/// The distinct addresses of an answer.
pub fn addresses_of(found: &[(IpAddr, u32)]) -> BTreeSet<IpAddr> {
    found.iter().map(|(a, _)| *a).collect()
}

fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    // An unpredictable id makes a spoofed answer harder; a failing source still works.
    let _ = getrandom::fill(&mut bytes);
    u16::from_ne_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_lookup_follows_the_shortest_ttl_within_the_floor_and_a_ceiling() {
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        assert_eq!(
            next_lookup(&[(a, 300), (b, 120)], 30),
            Duration::from_secs(120)
        );
        assert_eq!(next_lookup(&[(a, 5)], 30), Duration::from_secs(30));
        assert_eq!(next_lookup(&[], 30), Duration::from_secs(30));
        assert_eq!(next_lookup(&[(a, 0)], 0), Duration::from_secs(1));
        assert_eq!(next_lookup(&[(a, u32::MAX)], 30), LONGEST);
        assert_eq!(addresses_of(&[(a, 1), (a, 2), (b, 3)]).len(), 2);
    }

    #[test]
    fn own_questions_are_read_back_as_questions() {
        let (q, bytes) = answer::own_question("Allowed.Test", RecordType::AAAA, 7)
            .unwrap_or_else(|| panic!("no question"));
        assert_eq!(q.name, "allowed.test");
        let read = answer::read_question(&bytes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (read.id, read.name.as_str(), read.kind),
            (7, "allowed.test", RecordType::AAAA)
        );
    }
}
