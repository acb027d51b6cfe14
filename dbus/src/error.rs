//! The named errors of the contract.
//!
//! Each variant is a failure a user can act on and carries the sentence to show them. Proxy methods
//! return this type, so a client matches on `Error::Conflict(..)` rather than parsing strings.

/// An error returned by the helper, named `io.palisade.Error.<Variant>` on the bus.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.palisade.Error", impl_display = false)]
pub enum Error {
    /// A transport error below the contract (bus unreachable, helper not running, ...).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// polkit or the helper's own assignments refused the caller, or polkit could not be asked.
    NotAuthorized(String),
    /// The policy document has problems; the sentence lists each as `path: sentence`.
    InvalidPolicy(String),
    /// An argument other than a policy document is malformed (a name, a number out of range).
    InvalidArgument(String),
    /// The named thing (generation, VM, console) does not exist.
    NotFound(String),
    /// The live state moved on since the caller read it (another admin applied first).
    Conflict(String),
    /// The kernel refused the ruleset; nothing was changed.
    ApplyFailed(String),
    /// The caller sent too many requests in a short time.
    RateLimited(String),
    /// Something went wrong inside the helper; the log has details.
    Internal(String),
}

impl Error {
    /// The sentence for the user, without the D-Bus error name.
    pub fn sentence(&self) -> String {
        match self {
            Error::ZBus(zbus::Error::MethodError(_, Some(text), _)) => text.clone(),
            Error::ZBus(e) => format!("cannot reach the Palisade helper: {e}"),
            Error::NotAuthorized(s)
            | Error::InvalidPolicy(s)
            | Error::InvalidArgument(s)
            | Error::NotFound(s)
            | Error::Conflict(s)
            | Error::ApplyFailed(s)
            | Error::RateLimited(s)
            | Error::Internal(s) => s.clone(),
        }
    }

    /// A process exit code for command-line tools, stable so scripts can branch on it.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ZBus(_) => 69,            // EX_UNAVAILABLE
            Error::NotAuthorized(_) => 77,   // EX_NOPERM
            Error::InvalidPolicy(_) => 65,   // EX_DATAERR
            Error::InvalidArgument(_) => 64, // EX_USAGE
            Error::NotFound(_) => 66,        // EX_NOINPUT
            Error::Conflict(_) => 75,        // EX_TEMPFAIL
            Error::ApplyFailed(_) => 70,     // EX_SOFTWARE
            Error::RateLimited(_) => 75,     // EX_TEMPFAIL
            Error::Internal(_) => 70,        // EX_SOFTWARE
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence())
    }
}
