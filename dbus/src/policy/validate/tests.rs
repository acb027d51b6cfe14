use super::*;

fn problems(doc: &str) -> Vec<Finding> {
    match Policy::parse(doc.as_bytes()) {
        Ok(p) => panic!("accepted: {:?}", p.policy),
        Err(f) => f,
    }
}

fn has(findings: &[Finding], path: &str, needle: &str) -> bool {
    findings
        .iter()
        .any(|f| f.path == path && f.message.contains(needle))
}

const GOOD: &str = r#"
[[blocklist]]
name = "bad-nets"
entries = ["192.0.2.0/24", "2001:db8:dead::/48"]

[[vm]]
name = "work"
disk = "work.qcow2"
memory = "2G"
cpus = 2
operators = { users = ["alice"] }
console = { users = ["alice"], groups = ["staff"] }
default = "drop"
dns = true

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8443
comment = "the mail server"

[[vm.rule]]
action = "accept"
special_target = "dns"

[[vm.rule]]
action = "reject"
blocklist = "bad-nets"
log = true

[[vm.rule]]
action = "accept"
destination = "*.example.com"
proto = "tcp"
ports = ["80", 443, "8000-8100"]
expires = 2030-01-01T00:00:00Z

[[remote_console]]
name = "server-work"
host = "192.0.2.10"
port = 5901
users = ["alice"]
"#;

#[test]
fn accepts_a_full_policy() {
    let parsed = Policy::parse(GOOD.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
    let vm = &parsed.policy.vms[0];
    assert_eq!(vm.memory_mib, 2048);
    assert_eq!(vm.rules.len(), 4);
    assert_eq!(
        vm.rules[3].ports.as_ref().map(ToString::to_string),
        Some("80,443,8000-8100".into())
    );
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn bad_names_and_paths() {
    let f = problems("[[vm]]\nname = \"work; flush ruleset\"\n");
    assert!(has(&f, "vm#1.name", "not a valid VM name"), "{f:?}");
    let f = problems("[[vm]]\nname = \"work\"\ndisk = \"../../etc/passwd\"\n");
    assert!(has(&f, "vm[work].disk", "not a valid disk name"), "{f:?}");
}

#[test]
fn bad_ports_and_networks() {
    let doc = "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 70000\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.0/33\"\n";
    let f = problems(doc);
    assert!(has(&f, "vm[work].rule[1].ports", "70000"), "{f:?}");
    assert!(
        has(&f, "vm[work].rule[2].destination", "prefix length"),
        "{f:?}"
    );
}

#[test]
fn huge_comment() {
    let doc = format!(
        "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"drop\"\ncomment = \"{}\"\n",
        "x".repeat(5 * 1024 * 1024)
    );
    let f = problems(&doc);
    assert!(has(&f, "vm[work].rule[1].comment", "at most 256"), "{f:?}");
    assert!(f.iter().all(|x| x.message.len() < 200));
}

#[test]
fn invalid_utf8_duplicates_unknown_fields() {
    let f = Policy::parse(b"[[vm]]\nname = \"w\xffork\"\n")
        .err()
        .unwrap_or_default();
    assert!(has(&f, "policy", "not valid UTF-8"), "{f:?}");
    let f = problems("[[vm]]\nname = \"work\"\n[[vm]]\nname = \"work\"\n");
    assert!(has(&f, "vm[work]", "used twice"), "{f:?}");
    let f = problems("[[vm]]\nname = \"work\"\nfirewall = \"off\"\n");
    assert!(
        f.iter()
            .any(|x| x.path.starts_with("vm") && x.message.contains("unknown field")),
        "{f:?}"
    );
}

#[test]
fn memory_and_cpus() {
    let f = problems("[[vm]]\nname = \"work\"\nmemory = 0\ncpus = 0\n");
    assert!(has(&f, "vm[work].memory", "0 MiB"), "{f:?}");
    assert!(has(&f, "vm[work].cpus", "0 CPUs"), "{f:?}");
}

#[test]
fn protocol_consistency() {
    let doc = "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\nports = 80\n\
               [[vm.rule]]\naction = \"accept\"\nproto = \"icmp\"\ndestination = \"::1\"\n";
    let f = problems(doc);
    assert!(has(&f, "vm[work].rule[1].ports", "tcp"), "{f:?}");
    assert!(has(&f, "vm[work].rule[2].proto", "IPv4"), "{f:?}");
}

#[test]
fn warns_about_shadowed_rules() {
    let doc = "[[vm]]\nname = \"work\"\nconsole = { users = [\"alice\"] }\ndns = true\n\
               [[vm.rule]]\naction = \"drop\"\ndestination = \"10.0.0.0/8\"\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"10.1.2.3\"\nproto = \"tcp\"\nports = 443\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"*.example.com\"\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"mail.example.com\"\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"example.com\"\n";
    let parsed = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
    let w: Vec<_> = parsed.warnings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(w, ["vm[work].rule[2]", "vm[work].rule[4]"]);
    assert!(parsed.warnings[0].message.contains("rule 1"));
}

#[test]
fn expired_rules_do_not_shadow() {
    let doc = "[[vm]]\nname = \"work\"\nconsole = { users = [\"alice\"] }\n\
               [[vm.rule]]\naction = \"accept\"\nexpires = \"2020-01-01T00:00:00Z\"\n\
               [[vm.rule]]\naction = \"drop\"\n";
    let parsed = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
    assert!(parsed.warnings.is_empty());
}

#[test]
fn disabled_rules_neither_shadow_nor_are_shadowed() {
    let doc = "[[vm]]\nname = \"work\"\nconsole = { users = [\"alice\"] }\n\
               [[vm.rule]]\naction = \"drop\"\nenabled = false\n\
               [[vm.rule]]\naction = \"accept\"\ndestination = \"10.1.2.3\"\n\
               [[vm.rule]]\naction = \"drop\"\ndestination = \"10.1.2.3\"\nenabled = false\n";
    let parsed = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let rules = &parsed.policy.vms[0].rules;
    assert_eq!(
        rules.iter().map(|r| r.enabled).collect::<Vec<_>>(),
        [false, true, false]
    );
    let bad = doc.replace("enabled = false", "enabled = \"no\"");
    assert!(Policy::parse(bad.as_bytes()).is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size_mib("2G"), Some(2048));
    assert_eq!(parse_size_mib("512M"), Some(512));
    assert_eq!(parse_size_mib("1GiB"), Some(1024));
    assert_eq!(parse_size_mib("-1G"), None);
    assert_eq!(parse_size_mib("1E"), None);
}

#[test]
fn icmp_names_follow_the_protocol() {
    let doc = "[[vm]]\nname = \"work\"\nconsole = { users = [\"a\"] }\n\
               [[vm.rule]]\naction = \"accept\"\nproto = \"icmp\"\nicmp_type = \"echo-request\"\n\
               [[vm.rule]]\naction = \"accept\"\nproto = \"icmpv6\"\nicmp_type = \"echo-request\"\n";
    let p = Policy::parse(doc.as_bytes())
        .unwrap_or_else(|f| panic!("{f:?}"))
        .policy;
    assert_eq!(p.vms[0].rules[0].icmp_type, Some(8));
    assert_eq!(p.vms[0].rules[1].icmp_type, Some(128));
}

#[test]
fn spice_beyond_loopback_needs_tls() {
    let f = problems("[[vm]]\nname = \"work\"\ndisplay = { address = \"192.0.2.5\" }\n");
    assert!(
        has(&f, "vm[work].display.address", "needs display.tls"),
        "{f:?}"
    );
    let ok = Policy::parse(b"[[vm]]\nname = \"work\"\nconsole = { users = [\"a\"] }\ndisplay = { address = \"192.0.2.5\", tls = true }\n");
    assert!(ok.is_ok_and(|p| p.policy.vms[0].display.tls));
    let f = problems("[[vm]]\nname = \"work\"\ndisplay = { address = \"0.0.0.0\", tls = true }\n");
    assert!(has(&f, "vm[work].display.address", "wildcard"), "{f:?}");
}

#[test]
fn imported_lists_are_named_and_inline_lists_stay_small() {
    let ok = Policy::parse(
        br#"
[[blocklist]]
name = "firehol"
imported = true

[[host_rule]]
action = "drop"
blocklist = "firehol"
"#,
    )
    .expect("an imported list needs only its name");
    assert!(ok.policy.blocklists[0].imported);
    assert!(ok.policy.blocklists[0].entries.is_empty());

    let both = problems(
        r#"
[[blocklist]]
name = "mixed"
imported = true
entries = ["192.0.2.0/24"]
"#,
    );
    assert!(has(&both, "blocklist[mixed].imported", "remove `entries`"));

    let entries: Vec<String> = (0..=MAX_INLINE_ENTRIES)
        .map(|i| format!("\"10.{}.{}.0/24\"", i / 256, i % 256))
        .collect();
    let big = problems(&format!(
        "[[blocklist]]\nname = \"big\"\nentries = [{}]\n",
        entries.join(",")
    ));
    assert!(has(
        &big,
        "blocklist[big].entries",
        "palisadectl blocklist import"
    ));
}

const VM: &str = "[[vm]]\nname = \"work\"\ndisk = \"w.qcow2\"\n";

#[test]
fn dns_upstreams_are_read_with_what_each_needs() {
    let parse = |doc: &str| Policy::parse(doc.as_bytes()).map(|p| p.policy.settings.dns);
    let d = parse("").unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(d.upstream, DnsUpstream::System);
    let d = parse(
        "[settings.dns]\nupstream = \"tls\"\nserver = \"10.0.0.53:853\"\ntls_name = \"dns.test\"\n\
         tls_ca = \"/etc/palisade/ca.pem\"\nttl_floor_seconds = 2\ngrace_seconds = 0\n",
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(
        d.upstream,
        DnsUpstream::Tls {
            server: "10.0.0.53:853".parse().unwrap_or_else(|e| panic!("{e}")),
            name: HostName::parse("dns.test").unwrap_or_else(|e| panic!("{e}")),
            ca: Some("/etc/palisade/ca.pem".into()),
        }
    );
    assert_eq!((d.ttl_floor_seconds, d.grace_seconds), (2, 0));
    let f = problems("[settings.dns]\nupstream = \"tls\"\nserver = \"10.0.0.53\"\n");
    assert!(
        has(&f, "settings.dns.server", "not an address with a port"),
        "{f:?}"
    );
    assert!(has(&f, "settings.dns.tls_name", "certificate"), "{f:?}");
    let f = problems("[settings.dns]\nupstream = \"socks\"\nserver = \"10.0.0.53:53\"\n");
    assert!(
        has(&f, "settings.dns.socks_proxy", "proxy's address"),
        "{f:?}"
    );
    let f = problems("[settings.dns]\nserver = \"10.0.0.53:53\"\ntls_ca = \"../ca.pem\"\n");
    assert!(has(&f, "settings.dns.server", "only read with"), "{f:?}");
    let f = problems("[settings.dns]\nupstream = \"doh\"\n");
    assert!(has(&f, "settings.dns.upstream", "not an upstream"), "{f:?}");
    let f = problems("[settings.dns]\nttl_floor_seconds = -1\n");
    assert!(
        has(&f, "settings.dns.ttl_floor_seconds", "0 to 86400"),
        "{f:?}"
    );
}

#[test]
fn strict_dns_needs_the_forwarder() {
    let f = problems(&format!("{VM}strict_dns = true\n"));
    assert!(has(&f, "vm[work].strict_dns", "dns = true"), "{f:?}");
    let p = Policy::parse(format!("{VM}dns = true\nstrict_dns = true\n").as_bytes())
        .unwrap_or_else(|f| panic!("{f:?}"));
    assert!(p.policy.vms[0].strict_dns);
}

/// The warning names the rule by its number in the document, also when an invalid rule before
/// it was left out.
#[test]
fn a_name_rules_warning_counts_invalid_rules_before_it() {
    let doc = format!(
        "{VM}[[vm.rule]]\naction = \"maybe\"\n\
         [[vm.rule]]\naction = \"accept\"\ndestination = \"*.example.com\"\n"
    );
    let findings = Policy::parse(doc.as_bytes())
        .err()
        .unwrap_or_else(|| panic!("an invalid action passed"));
    assert!(
        has(&findings, "vm[work].rule[2]", "add dns = true"),
        "{findings:?}"
    );
}

#[test]
fn a_name_rule_without_the_forwarder_is_warned_about() {
    let doc = format!("{VM}[[vm.rule]]\naction = \"accept\"\ndestination = \"*.example.com\"\n");
    let parsed = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{f:?}"));
    assert!(
        has(&parsed.warnings, "vm[work].rule[1]", "add dns = true"),
        "{:?}",
        parsed.warnings
    );
    let with = Policy::parse(
        format!(
            "{VM}dns = true\n[[vm.rule]]\naction = \"accept\"\ndestination = \"a.example.com\"\n"
        )
        .as_bytes(),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert!(!with
        .warnings
        .iter()
        .any(|f| f.message.contains("dns = true")));
}

#[test]
fn the_drop_log_file_is_off_unless_asked_and_bounded() {
    let parse = |doc: &str| Policy::parse(doc.as_bytes()).map(|p| p.policy.settings.log);
    assert_eq!(parse("").ok(), Some(LogSettings::default()));
    assert!(!LogSettings::default().keep_on_disk);
    let on = parse("[settings.log]\nkeep_on_disk = true\ndisk_size = \"2M\"\n");
    assert_eq!(
        on.ok(),
        Some(LogSettings {
            keep_on_disk: true,
            disk_bytes: 2 << 20
        })
    );
    for size in ["1K", "2G", "lots", "-1"] {
        let f = problems(&format!("[settings.log]\ndisk_size = \"{size}\"\n"));
        assert!(
            has(&f, "settings.log.disk_size", "64K to 1G"),
            "{size}: {f:?}"
        );
    }
    let f = problems("[settings.log]\nkeep = true\n");
    assert!(!f.is_empty());
}
