//! Authorization, first layer: asks polkit whether the caller may perform an action.
//!
//! The subject is the caller's unique bus name taken from the incoming message's header — never
//! our own pid, and never anything the caller claims in its arguments. polkit unreachable, slow
//! or erroring means "no": the helper fails closed. Interactive authentication (a password
//! dialog) is requested only when the call itself carries ALLOW_INTERACTIVE_AUTH, which the app
//! sets for button presses and scripts do not.

use crate::accounts;
use palisade_dbus::{Action, Error};
use std::collections::HashMap;
use std::time::Duration;
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus_polkit::policykit1::{
    AuthorityProxy, AuthorizationResult, CheckAuthorizationFlags, Subject,
};

/// How long polkit may take to answer a non-interactive check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a person may take to type a password.
const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Who called, as established by the bus (not by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The caller's uid, from the bus daemon.
    pub uid: u32,
}

/// The polkit client.
#[derive(Debug, Clone)]
pub struct Authority {
    connection: zbus::Connection,
}

impl Authority {
    /// A client on `connection` (the bus polkitd is on: the system bus).
    pub fn new(connection: zbus::Connection) -> Self {
        Self { connection }
    }

    /// Succeeds only if polkit says the caller of the message with `header` may do `action`.
    pub async fn check(&self, header: &Header<'_>, action: Action) -> Result<Caller, Error> {
        self.authorize(header, action).await?;
        self.caller(header).await
    }

    /// Who sent the message with `header`, as the bus daemon knows it. This asks no one but the
    /// bus, so it can come before polkit where a check must be cheap (rate limits).
    pub async fn caller(&self, header: &Header<'_>) -> Result<Caller, Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::NotAuthorized("the call carries no sender; refused".into()))?;
        let uid = zbus::fdo::DBusProxy::new(&self.connection)
            .await
            .map_err(|e| Error::Internal(format!("cannot ask the bus who called: {e}")))?
            .get_connection_unix_user(BusName::Unique(sender.clone()))
            .await
            .map_err(|e| Error::NotAuthorized(format!("cannot identify the caller: {e}")))?;
        Ok(Caller { uid })
    }

    /// Succeeds only if polkit says the sender of the message with `header` may do `action`.
    pub async fn authorize(&self, header: &Header<'_>, action: Action) -> Result<(), Error> {
        self.authorize_with(header, action, &[]).await
    }

    /// As [`Authority::authorize`], telling polkit `details` (`("vm", "web")`), which rules can
    /// read with `action.lookup("vm")` to grant a kind of action for some objects only.
    pub async fn authorize_with(
        &self,
        header: &Header<'_>,
        action: Action,
        details: &[(&str, &str)],
    ) -> Result<(), Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::NotAuthorized("the call carries no sender; refused".into()))?;
        let subject = Subject::new_for_message_header(header)
            .map_err(|e| Error::NotAuthorized(format!("cannot identify the caller: {e}")))?;
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        let (flags, limit) = if interactive {
            (
                CheckAuthorizationFlags::ALLOW_USER_INTERACTION,
                INTERACTIVE_TIMEOUT,
            )
        } else {
            (CheckAuthorizationFlags::empty(), CHECK_TIMEOUT)
        };
        let unreachable = |why: String| {
            tracing::warn!("polkit check for {action} failed closed: {why}");
            Error::NotAuthorized(format!(
                "the authorization service (polkit) could not be asked whether you may do this \
                 ({why}); refused"
            ))
        };
        let result = self
            .ask(&subject, action, details, flags, limit)
            .await
            .map_err(unreachable)?;
        if !result.is_authorized {
            tracing::info!(
                "{sender} refused {action} (challenge: {}, interactive: {interactive})",
                result.is_challenge
            );
            return Err(Error::NotAuthorized(refusal(action, interactive, &result)));
        }
        Ok(())
    }
}

/// The sentence for a refusal of `action`: what would have helped, when a password would have.
fn refusal(action: Action, interactive: bool, result: &AuthorizationResult) -> String {
    if result.is_challenge && interactive {
        // The caller allowed a password dialog, and polkit still only says "challenge": it
        // found no authentication agent for the caller's session.
        format!(
            "{} needs an administrator's password, and no authentication agent is running to \
             ask for it",
            describe(action)
        )
    } else if result.is_challenge {
        format!(
            "{} needs an administrator's password; use the Palisade app, or run this as a member \
             of the {} group",
            describe(action),
            palisade_dbus::names::ADMIN_GROUP
        )
    } else if interactive && result.details.contains_key("polkit.dismissed") {
        format!(
            "{} needs an administrator's password, and the password dialog was closed without one",
            describe(action)
        )
    } else {
        format!(
            "you are not allowed to {} (polkit action {action})",
            describe_verb(action)
        )
    }
}

impl Authority {
    /// Whether polkit allows `action` right now, without ever asking for a password; for
    /// "is this caller an administrator" questions that only widen what they may see or do.
    pub async fn allows(&self, header: &Header<'_>, action: Action) -> bool {
        let Ok(subject) = Subject::new_for_message_header(header) else {
            return false;
        };
        let flags = CheckAuthorizationFlags::empty();
        matches!(self.ask(&subject, action, &[], flags, CHECK_TIMEOUT).await, Ok(r) if r.is_authorized)
    }

    /// One CheckAuthorization call, bounded by `limit`; the error is the reason in words.
    async fn ask(
        &self,
        subject: &Subject,
        action: Action,
        details: &[(&str, &str)],
        flags: CheckAuthorizationFlags,
        limit: Duration,
    ) -> Result<AuthorizationResult, String> {
        let details: HashMap<&str, &str> = details.iter().copied().collect();
        let ask = async {
            let proxy = AuthorityProxy::builder(&self.connection)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            proxy
                .check_authorization(subject, action.id(), &details, flags, "")
                .await
        };
        match tokio::time::timeout(limit, ask).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
        }
    }
}

/// Whether the user `uid` is named in `access`, directly or through one of their groups (as
/// [`accounts::groups_of`] defines membership, the same definition the kernel's console sets use).
pub fn is_granted(access: &palisade_dbus::policy::Access, uid: u32) -> bool {
    let Some(user) = accounts::groups_of(uid) else {
        return false;
    };
    access.users.iter().any(|u| u.as_str() == user.name)
        || access
            .groups
            .iter()
            .any(|g| user.groups.contains(g.as_str()))
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::PolicyRead => "Reading the firewall policy",
        Action::PolicyManage => "Changing the firewall policy",
        Action::VmManage => "Managing virtual machines",
        Action::VmOperate => "Operating this virtual machine",
        Action::ConsoleOpen => "Opening this console",
        Action::LogRead => "Reading the firewall log",
    }
}

fn describe_verb(action: Action) -> &'static str {
    match action {
        Action::PolicyRead => "read the firewall policy",
        Action::PolicyManage => "change the firewall policy",
        Action::VmManage => "manage virtual machines",
        Action::VmOperate => "operate this virtual machine",
        Action::ConsoleOpen => "open this console",
        Action::LogRead => "read the firewall log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(is_challenge: bool, details: &[(&str, &str)]) -> AuthorizationResult {
        AuthorizationResult {
            is_authorized: false,
            is_challenge,
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_refusal_says_what_would_have_helped() {
        let manage = Action::PolicyManage;
        // Scripts (no interactive flag) keep their sentences.
        assert_eq!(
            refusal(manage, false, &result(true, &[])),
            "Changing the firewall policy needs an administrator's password; use the Palisade \
             app, or run this as a member of the palisade-admin group"
        );
        assert_eq!(
            refusal(manage, false, &result(false, &[])),
            "you are not allowed to change the firewall policy (polkit action \
             io.palisade.policy.manage)"
        );
        // The app allowed a dialog: no agent, a dialog closed, a refused password.
        assert_eq!(
            refusal(manage, true, &result(true, &[])),
            "Changing the firewall policy needs an administrator's password, and no \
             authentication agent is running to ask for it"
        );
        assert_eq!(
            refusal(
                manage,
                true,
                &result(false, &[("polkit.dismissed", "true")])
            ),
            "Changing the firewall policy needs an administrator's password, and the password \
             dialog was closed without one"
        );
        assert_eq!(
            refusal(manage, true, &result(false, &[])),
            "you are not allowed to change the firewall policy (polkit action \
             io.palisade.policy.manage)"
        );
    }
}
