//! The console service: which Spice consoles a user may open, and one-time tickets for them.
//!
//! Two layers stand between a user and a console. The kernel admits a new connection to a
//! console port only from an assigned uid (see the firewall's console sets), and Spice wants a
//! password that this service issues fresh per request and that expires within a minute. A
//! ticket is therefore worthless to anyone else, and a connection is refused to anyone else
//! even with the ticket. Tickets are rate-limited per user, so a flood of requests cannot turn
//! the helper into a QMP hammer.

use crate::authz::is_granted;
use crate::clock::unix_now;
use crate::firewall::Firewall;
use crate::vm::supervisor::{random_secret, Supervisor};
use palisade_dbus::policy::{Destination, ShortName};
use palisade_dbus::types::{ConsoleInfo, ConsoleKind, ConsoleTicket, VmState};
use palisade_dbus::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Tickets one user may take in a burst.
const BURST: f64 = 20.0;
/// Tickets per second one user may take in the long run.
const PER_SECOND: f64 = 2.0;

/// A token bucket per uid. The map holds one small entry per local user who ever asked, so it
/// cannot grow with the number of calls.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<u32, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token for `uid`, or says how long to wait.
    pub fn take(&self, uid: u32) -> Result<(), Error> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::Internal("rate limiter poisoned".into()))?;
        let now = Instant::now();
        let (tokens, last) = buckets.entry(uid).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * PER_SECOND).min(BURST);
        *last = now;
        if *tokens < 1.0 {
            return Err(Error::RateLimited(
                "too many console requests in a short time; wait a few seconds and try again"
                    .into(),
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// The console service.
pub struct Consoles {
    firewall: Arc<Firewall>,
    supervisor: Arc<Supervisor>,
    limiter: RateLimiter,
}

impl Consoles {
    /// The service over the live policy and the running VMs.
    pub fn new(firewall: Arc<Firewall>, supervisor: Arc<Supervisor>) -> Self {
        Self {
            firewall,
            supervisor,
            limiter: RateLimiter::default(),
        }
    }

    /// The consoles `uid` may open: local VMs first, then remote consoles.
    pub async fn list(&self, uid: u32) -> Result<Vec<ConsoleInfo>, Error> {
        let (_, policy) = self.firewall.live_policy();
        let mut out = Vec::new();
        for vm in policy.vms.iter().filter(|v| is_granted(&v.console, uid)) {
            let info = self.supervisor.info_of(vm, true, false).await?;
            out.push(ConsoleInfo {
                name: vm.name.to_string(),
                kind: ConsoleKind::Local,
                state: info.state,
                host: vm.display.address.to_string(),
                port: info.spice_port,
                tls: vm.display.tls,
            });
        }
        for rc in policy
            .remote_consoles
            .iter()
            .filter(|r| is_granted(&r.access, uid))
        {
            out.push(ConsoleInfo {
                name: rc.name.to_string(),
                kind: ConsoleKind::Remote,
                state: VmState::Unknown,
                host: host_text(&rc.host),
                port: rc.port,
                tls: rc.tls,
            });
        }
        Ok(out)
    }

    /// Takes one of `uid`'s ticket requests from its rate limit, or refuses the request.
    pub fn admit(&self, uid: u32) -> Result<(), Error> {
        self.limiter.take(uid)
    }

    /// A one-time ticket for console `name`, if `uid` may open it; the caller was
    /// [admitted](Self::admit) first.
    pub async fn open(&self, uid: u32, name: &ShortName) -> Result<ConsoleTicket, Error> {
        let (_, policy) = self.firewall.live_policy();
        if let Some(vm) = policy.vm(name.as_str()) {
            if !is_granted(&vm.console, uid) {
                return Err(Error::NotAuthorized(format!(
                    "you may not open the console of {name}"
                )));
            }
            let password = random_secret()?;
            let seconds = policy.settings.console_ticket_seconds;
            let port = self
                .supervisor
                .console_ticket(&vm.name, &password, seconds)
                .await?;
            tracing::info!("console ticket for {name} issued to uid {uid} (valid {seconds} s)");
            let ca_pem = if vm.display.tls {
                crate::vm::tls::ca_certificate(&self.supervisor.tls_root()).await?
            } else {
                String::new()
            };
            return Ok(ConsoleTicket {
                name: name.to_string(),
                host: vm.display.address.to_string(),
                port,
                password,
                expires_at: unix_now() + u64::from(seconds),
                tls: vm.display.tls,
                ca_pem,
            });
        }
        if let Some(rc) = policy.remote_consoles.iter().find(|r| &r.name == name) {
            if !is_granted(&rc.access, uid) {
                return Err(Error::NotAuthorized(format!(
                    "you may not open the console {name}"
                )));
            }
            return Ok(ConsoleTicket {
                name: name.to_string(),
                host: host_text(&rc.host),
                port: rc.port,
                password: String::new(),
                expires_at: 0,
                tls: rc.tls,
                ca_pem: String::new(),
            });
        }
        Err(Error::NotFound(format!("there is no console named {name}")))
    }
}

fn host_text(d: &Destination) -> String {
    match d {
        Destination::Net(n) => n.addr().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refuses_floods_per_user() {
        let limiter = RateLimiter::default();
        let granted = (0..10_000).filter(|_| limiter.take(1000).is_ok()).count();
        assert!((20..30).contains(&granted), "granted {granted}");
        assert!(limiter.take(1001).is_ok(), "another user is not affected");
    }
}
