//! Names that reach nftables, file paths, user databases or QEMU arguments.
//!
//! Each type can only hold a value of its strict grammar, so code past the parse never re-checks
//! and never interpolates anything a client invented. Grammars are deliberately narrower than
//! what the kernel or the user database would accept.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest VM name: `palisade-vm-` plus the name must fit a 32-character user name.
pub const VM_NAME_MAX: usize = 20;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }
    };
}

string_newtype!(
    /// A VM name: `[a-z][a-z0-9-]*`, at most 20 characters, not ending in `-`.
    VmName
);

impl VmName {
    /// Parses a VM name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= VM_NAME_MAX
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| is_lower_alnum(c) || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{} is not a valid VM name: use lower-case letters, digits and '-', start with a \
                 letter, at most {VM_NAME_MAX} characters",
                quote(s)
            ))
        }
    }

    /// The system user the VM's QEMU runs as, which the firewall matches with `meta skuid`.
    pub fn system_user(&self) -> String {
        format!("palisade-vm-{}", self.0)
    }

    /// The nftables chain holding this VM's egress rules.
    pub fn chain(&self) -> String {
        format!("vm_{}", self.0.replace('-', "_"))
    }
}

string_newtype!(
    /// A local user or group name: `[a-z_][a-z0-9_-]*`, at most 32 characters.
    AccountName
);

impl AccountName {
    /// Parses a user or group name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars().all(|c| is_lower_alnum(c) || c == '_' || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{} is not a valid user or group name: use lower-case letters, digits, '_' and \
                 '-', at most 32 characters",
                quote(s)
            ))
        }
    }
}

string_newtype!(
    /// A disk image file name inside the VM's own image folder: no folders, no leading dot.
    DiskName
);

impl DiskName {
    /// Parses a disk file name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !s.contains("..");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{} is not a valid disk name: give a file name such as \"work.qcow2\" (letters, \
                 digits, '.', '_' and '-'; no folders); images live in the VM's own folder",
                quote(s)
            ))
        }
    }
}

string_newtype!(
    /// A name for a blocklist or a remote console: `[a-z][a-z0-9_-]*`, at most 32 characters.
    ShortName
);

impl ShortName {
    /// Parses a short identifier, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| is_lower_alnum(c) || c == '_' || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{} is not a valid name: use lower-case letters, digits, '_' and '-', start with \
                 a letter, at most 32 characters",
                quote(s)
            ))
        }
    }
}

string_newtype!(
    /// A DNS host name (RFC 1123), lower-cased, without trailing dot.
    HostName
);

impl HostName {
    /// Parses a host name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| is_lower_alnum(c) || c == '-')
        };
        let ok = !lower.is_empty()
            && lower.len() <= 253
            && lower.contains('.')
            && lower.split('.').all(label_ok)
            && !lower
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
        if ok {
            Ok(Self(lower))
        } else {
            Err(format!(
                "{} is not a valid host name: use dot-separated labels of letters, digits and '-'",
                quote(s)
            ))
        }
    }

    /// The domains above this name that are still host names (`a.b.example.com` gives
    /// `b.example.com` and `example.com`).
    pub fn parents(&self) -> impl Iterator<Item = HostName> + '_ {
        self.0
            .match_indices('.')
            .map(|(i, _)| &self.0[i + 1..])
            .filter(|rest| rest.contains('.'))
            .map(|rest| HostName(rest.to_owned()))
    }

    /// Whether this name is `suffix` or lies below it.
    pub fn is_within(&self, suffix: &HostName) -> bool {
        self.0 == suffix.0 || self.0.ends_with(&format!(".{}", suffix.0))
    }
}

/// Quotes user input for an error sentence: shortened, with control characters escaped, so a
/// 5 MB or terminal-escaping value cannot flood or hijack the reader's screen.
pub fn quote(s: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_names() {
        assert!(VmName::parse("work").is_ok());
        assert!(VmName::parse("work-2").is_ok());
        for bad in [
            "",
            "Work",
            "work; flush ruleset",
            "a/b",
            "-x",
            "x-",
            "2work",
            "abcdefghijklmnopqrstu",
        ] {
            assert!(VmName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            VmName::parse("my-vm").map(|v| v.chain()),
            Ok("vm_my_vm".into())
        );
    }

    #[test]
    fn disk_names() {
        assert!(DiskName::parse("work.qcow2").is_ok());
        for bad in [
            "../../etc/passwd",
            "/etc/shadow",
            ".hidden",
            "a/b",
            "a..b",
            "",
        ] {
            assert!(DiskName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names() {
        assert_eq!(
            HostName::parse("Mail.Example.com.").map(String::from),
            Ok("mail.example.com".into())
        );
        for bad in ["localhost", "a..b", "-a.com", "a b.com", "1.2.3.4"] {
            assert!(HostName::parse(bad).is_err(), "{bad}");
        }
        let suffix = HostName::parse("example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(HostName::parse("a.example.com").is_ok_and(|h| h.is_within(&suffix)));
        assert!(HostName::parse("badexample.com").is_ok_and(|h| !h.is_within(&suffix)));
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert!(quote(&"x".repeat(5_000_000)).len() < 50);
    }
}
