//! Gathers what the pure compiler needs to know about this machine.
//!
//! VM uids come from the user database (users are created on demand only when applying, never
//! in a preview); console ports from whoever allocates them (the VM supervisor, through
//! `ConsolePorts`: the firewall never reads VM records); resolvers from /etc/resolv.conf (slirp
//! forwards guests' DNS to these); host names (of rules the forwarder does not serve, and of
//! remote consoles) are resolved by the forwarder's upstream with a short deadline, so a dead
//! resolver cannot stall an apply and the names go where the policy's private upstream says.

use super::compile::{Facts, ImportedFacts, PreviousFacts};
use crate::accounts;
use crate::blocklist::store::{hex_digits, ListStore};
use palisade_dbus::policy::{Destination, HostName, Policy, VmName};
use palisade_dbus::Error;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// How long one host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether missing VM users are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// Create them (apply).
    Create,
    /// Only look them up (preview).
    LookUp,
}

/// The console (Spice) ports of local VMs. The firewall guards each with the console sets; the
/// VM supervisor allocates them and answers this at every compile.
pub trait ConsolePorts: Send + Sync {
    /// The port of every VM of `policy` that has one.
    fn console_ports(&self, policy: &Policy) -> BTreeMap<VmName, u16>;
}

/// The DNS forwarder, as the firewall sees it: it gives each VM that resolves through it a port
/// (which the redirect and the guard rules name), and it follows the names of each generation
/// once that generation is live.
pub trait FollowNames: Send + Sync {
    /// The forwarder port of every VM of `policy` with `dns = true`; when `allocate`, VMs
    /// without one get one (applying), else only existing ports are told (previews).
    fn forwarder_ports(&self, policy: &Policy, allocate: bool) -> BTreeMap<VmName, u16>;
    /// `policy`, compiled into `ruleset`, is live now.
    fn follow(&self, policy: &Policy, ruleset: &super::ruleset::Ruleset);
    /// The addresses of `names`, asked of the upstream `policy` configures, each name within
    /// `deadline` (a name that fails has no addresses: only its own rule is affected).
    fn resolve<'a>(
        &'a self,
        policy: &'a Policy,
        names: Vec<HostName>,
        deadline: Duration,
    ) -> Resolving<'a>;
}

/// What [`FollowNames::resolve`] returns: each name's addresses.
pub type Resolving<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = HashMap<HostName, Vec<IpAddr>>> + Send + 'a>,
>;

/// Collects the facts for `policy`. A policy naming an imported list that was never imported is
/// refused here, with what to do.
pub async fn gather(
    policy: &Policy,
    users: Users,
    ports: &dyn ConsolePorts,
    names: &dyn FollowNames,
    lists: &ListStore,
) -> Result<Facts, Error> {
    let mut facts = Facts {
        now: Some(SystemTime::now()),
        ..Facts::default()
    };
    for vm in &policy.vms {
        let uid = match users {
            Users::Create => Some(accounts::ensure_vm_user(&vm.name).await?),
            Users::LookUp => accounts::vm_uid(&vm.name),
        };
        if let Some(uid) = uid {
            facts.vm_uids.insert(vm.name.clone(), uid);
        }
    }
    for b in policy.blocklists.iter().filter(|b| b.imported) {
        let meta = lists.meta(&b.name).map_err(|_| {
            Error::InvalidPolicy(format!(
                "blocklist[{0}]: the policy names the imported list {0}, but no list of that name \
                 was imported; import it first (palisadectl blocklist import {0} FILE)",
                b.name
            ))
        })?;
        let hash = hex_digits(&meta.content_hash).to_owned();
        let previous = meta.previous.map(|p| PreviousFacts {
            changed: p.changed(),
            added: p.added,
            hash: hex_digits(&p.content_hash).to_owned(),
        });
        facts.imported.insert(
            b.name.clone(),
            ImportedFacts {
                hash,
                ranges: meta.networks,
                previous,
                splits_v4: meta.splits_v4,
                splits_v6: meta.splits_v6,
                ..ImportedFacts::default()
            },
        );
    }
    facts.dns_ports = names.forwarder_ports(policy, users == Users::Create);
    facts.spice_ports.extend(
        ports
            .console_ports(policy)
            .into_iter()
            .filter(|(_, port)| *port > 0),
    );
    let lists = policy
        .vms
        .iter()
        .map(|v| &v.console)
        .chain(policy.remote_consoles.iter().map(|r| &r.access));
    for access in lists {
        for user in &access.users {
            if let Ok(Some(u)) = nix::unistd::User::from_name(user.as_str()) {
                facts.user_uids.insert(user.clone(), u.uid.as_raw());
            }
        }
        for group in &access.groups {
            facts
                .group_uids
                .entry(group.clone())
                .or_insert_with(|| accounts::members_of(group.as_str()));
        }
    }
    facts.dns_servers =
        dns_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    facts.learned_seconds = policy
        .settings
        .dns
        .ttl_floor_seconds
        .saturating_add(policy.settings.dns.grace_seconds);
    facts.resolved = names
        .resolve(policy, resolved_names(policy), RESOLVE_TIMEOUT)
        .await;
    Ok(facts)
}

/// The host names the helper resolves itself: those of host-wide rules, of VMs that do not
/// resolve through the forwarder (the forwarder admits the others' answers as they are asked),
/// and of remote consoles.
fn resolved_names(policy: &Policy) -> Vec<HostName> {
    let rules = policy
        .vms
        .iter()
        .filter(|v| !v.dns)
        .flat_map(|v| v.rules.iter())
        .chain(policy.host_rules.iter())
        .map(|r| &r.destination);
    let consoles = policy.remote_consoles.iter().map(|rc| &rc.host);
    let names: BTreeSet<&HostName> = rules
        .chain(consoles)
        .filter_map(|d| match d {
            Destination::Host(h) => Some(h),
            _ => None,
        })
        .collect();
    names.into_iter().cloned().collect()
}

/// `nameserver` lines of a resolv.conf.
pub fn dns_servers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resolv_conf() {
        let conf = "# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.com\nnameserver bogus\n";
        assert_eq!(dns_servers(conf).len(), 2);
    }
}
