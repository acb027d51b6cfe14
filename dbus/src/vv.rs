//! The `.vv` file remote-viewer reads: how the app and `palisadectl` hand a console ticket to the
//! viewer without the password ever appearing on a command line (where `ps` would show it).
//!
//! The file is written with mode 0600 and `delete-this-file=1`, so the viewer removes it as soon
//! as it has read it.

use crate::types::ConsoleTicket;

/// The file's contents for `ticket`.
pub fn vv_file(ticket: &ConsoleTicket) -> String {
    // Values come from the helper, which only ever sends validated names, addresses and hex
    // passwords; newlines are still removed so no value can add a key of its own.
    let clean = |s: &str| s.replace(['\n', '\r'], "");
    let mut out = String::from("[virt-viewer]\ntype=spice\n");
    out.push_str(&format!("host={}\n", clean(&ticket.host)));
    if ticket.tls {
        out.push_str(&format!("tls-port={}\n", ticket.port));
        if !ticket.ca_pem.is_empty() {
            out.push_str(&format!(
                "ca={}\n",
                ticket.ca_pem.trim_end().replace('\n', "\\n")
            ));
        }
    } else {
        out.push_str(&format!("port={}\n", ticket.port));
    }
    if !ticket.password.is_empty() {
        out.push_str(&format!("password={}\n", clean(&ticket.password)));
    }
    out.push_str(&format!("title={}\n", clean(&ticket.name)));
    out.push_str("delete-this-file=1\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> ConsoleTicket {
        ConsoleTicket {
            name: "work".into(),
            host: "127.0.0.1".into(),
            port: 5900,
            password: "0a1b".into(),
            expires_at: 0,
            tls: false,
            ca_pem: String::new(),
        }
    }

    #[test]
    fn plain_ticket() {
        let vv = vv_file(&ticket());
        assert!(vv.starts_with("[virt-viewer]\ntype=spice\n"));
        assert!(
            vv.contains("port=5900\n")
                && vv.contains("password=0a1b\n")
                && vv.contains("delete-this-file=1\n")
        );
    }

    #[test]
    fn tls_and_remote() {
        let mut t = ticket();
        t.tls = true;
        t.password.clear();
        t.ca_pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n".into();
        let vv = vv_file(&t);
        assert!(vv.contains("tls-port=5900\n") && !vv.contains("\nport="));
        assert!(vv.contains("ca=-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\n"));
        assert!(!vv.contains("password="));
    }

    #[test]
    fn values_cannot_add_keys() {
        let mut t = ticket();
        t.name = "work\npassword=x".into();
        assert_eq!(
            vv_file(&t)
                .lines()
                .filter(|l| l.starts_with("password="))
                .count(),
            1
        );
    }
}
