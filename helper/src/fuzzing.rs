//! Entry points for the fuzz targets (`fuzz/`, cargo fuzz) and for the replay of their corpus
//! that the unit tests run on stable: each takes arbitrary bytes and must neither panic, nor
//! hang, nor allocate without bound, and each checks the properties its parser promises.
//!
//! The targets are what reaches the helper from outside: policy documents (parse, validate,
//! compile, render as text and as the structure transaction), blocklists (every format and option), the USB sysfs tree, the `.vv` file
//! written from a ticket, what the kernel's log sends the drop log, and the arguments of every D-Bus method, decoded from the wire as zbus
//! decodes them and then parsed as `bus/` parses them.

use crate::blocklist::parse::{parse, Format, ParseOptions};
use crate::blocklist::ranges::diff;
use crate::firewall::compile::{compile_ruleset, Facts};
use crate::firewall::kernel::Existing;
use crate::firewall::render::render_batch;
use crate::firewall::render::render_ruleset;
use palisade_dbus::policy::{Policy, ShortName, VmName};
use palisade_dbus::types::{ConsoleTicket, RunMode};
use zbus::wire::serialized::{Context, Data};
use zbus::wire::Endian;

/// A policy document: parse and validate; a valid one is compiled, rendered as text and as the
/// structure transaction, and each VM's guest ruleset is rendered too.
pub fn policy(data: &[u8]) {
    let Ok(parsed) = Policy::parse(data) else {
        return;
    };
    let facts = Facts::default();
    let ruleset = compile_ruleset(&parsed.policy, &facts);
    let text = render_ruleset(&ruleset);
    assert!(text.contains("table inet palisade"), "{text}");
    let batch = render_batch(&ruleset, &Existing::default());
    assert!(batch.is_ok_and(|b| b.starts_with("add table inet palisade\n")));
    for vm in &parsed.policy.vms {
        let _ = crate::firewall::guest::guest_ruleset(vm, &parsed.policy, &facts);
    }
}

/// Several policy files, separated by NUL bytes (at most 8; the first byte of each says whether
/// it is a vendor, admin or local file): merged, and the merge validated and compiled. Merging is
/// deterministic, a lone file stays verbatim, and a merge that succeeds names a source for every
/// VM of the policy it gives.
pub fn policy_merge(data: &[u8]) {
    use palisade_dbus::policy::merge::merge;
    use palisade_dbus::types::{PolicySource, SourceKind};
    let sources: Vec<PolicySource> = data
        .split(|&b| b == 0)
        .take(8)
        .enumerate()
        .filter_map(|(i, part)| {
            let (&kind, text) = part.split_first()?;
            Some(PolicySource {
                name: format!("{i}-part.toml"),
                kind: [SourceKind::Vendor, SourceKind::Admin, SourceKind::Local]
                    [usize::from(kind % 3)],
                path: format!("/fuzz/{i}-part.toml"),
                document: std::str::from_utf8(text).ok()?.to_owned(),
            })
        })
        .collect();
    let Ok(merged) = merge(&sources) else {
        return;
    };
    assert_eq!(
        merge(&sources).ok(),
        Some(merged.clone()),
        "merging is not deterministic"
    );
    if let [one] = sources.as_slice() {
        assert_eq!(merged.document, one.document);
    }
    match Policy::parse(merged.document.as_bytes()) {
        Ok(parsed) => {
            for vm in &parsed.policy.vms {
                assert!(
                    merged.source_of(&format!("vm[{}]", vm.name)).is_some(),
                    "no source for VM {}",
                    vm.name
                );
            }
            let _ = compile_ruleset(&parsed.policy, &Facts::default());
        }
        Err(findings) => {
            let _ = merged.attribute(findings);
        }
    }
}

/// A blocklist; the first byte picks the format and options. A list that parses is merged
/// (its difference to itself is empty) and never covers a whole family unless forced.
pub fn blocklist(data: &[u8]) {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    const FORMATS: [Format; 6] = [
        Format::Auto,
        Format::Plain,
        Format::Netset,
        Format::SpamhausDrop,
        Format::Hosts,
        Format::Domains,
    ];
    let options = ParseOptions {
        format: FORMATS[usize::from(choice) % FORMATS.len()],
        strict: choice & 0x40 != 0,
        force: choice & 0x80 != 0,
    };
    let Ok(list) = parse(text, &options) else {
        return;
    };
    assert!(diff(&list.networks, &list.networks).is_empty());
    if !options.force {
        assert!(!list
            .networks
            .covers_everything(palisade_dbus::policy::Family::V4));
        assert!(!list
            .networks
            .covers_everything(palisade_dbus::policy::Family::V6));
    }
    assert!(!options.strict || list.problems.is_empty());
}

/// A USB sysfs tree written from the input (entries separated by `\0\0`, an entry's name and
/// attributes by `\0`, each attribute `name=value`), listed as the helper lists the real one;
/// then the rest of the input as a caller's device argument, selected against it.
pub fn usb(data: &[u8]) {
    use crate::vm::usb::{list_host_devices, select, AttachRequest};
    let dir = scratch_dir("usb");
    let (tree, argument) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for entry in tree
        .split(|&b| b == 0)
        .collect::<Vec<_>>()
        .split(|part| part.is_empty())
    {
        let Some((name, attributes)) = entry.split_first() else {
            continue;
        };
        let Some(name) = file_name(name) else {
            continue;
        };
        let entry_dir = dir.join(name);
        if std::fs::create_dir_all(&entry_dir).is_err() {
            continue;
        }
        for attribute in attributes {
            let Some(eq) = attribute.iter().position(|&b| b == b'=') else {
                continue;
            };
            if let Some(attr) = file_name(&attribute[..eq]) {
                let _ = std::fs::write(entry_dir.join(attr), &attribute[eq + 1..]);
            }
        }
    }
    let devices = list_host_devices(&dir);
    for d in &devices {
        assert!(d.bus >= 1 && (1..=127).contains(&d.address), "{d:?}");
        assert!(!d.product.chars().any(char::is_control), "{d:?}");
    }
    if let Ok(argument) = std::str::from_utf8(argument) {
        if let Ok(AttachRequest::Host(selector)) = AttachRequest::parse(argument) {
            let _ = select(&devices, &selector);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `.vv` file from a ticket whose fields come from the input (split at `0xff`): whatever the
/// fields hold, the file has one `[virt-viewer]` group and each key once, so no value adds a key.
pub fn vv(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0xff).map(String::from_utf8_lossy);
    let mut next = || fields.next().map(|s| s.into_owned()).unwrap_or_default();
    let (name, host, password, ca_pem) = (next(), next(), next(), next());
    let flags = next();
    let ticket = ConsoleTicket {
        name,
        host,
        port: u16::try_from(flags.len()).unwrap_or(u16::MAX),
        password,
        expires_at: 0,
        tls: flags.len() % 2 == 1,
        ca_pem,
    };
    let file = palisade_dbus::vv::vv_file(&ticket);
    let mut lines = file.lines();
    assert_eq!(lines.next(), Some("[virt-viewer]"), "{file}");
    let mut keys = std::collections::BTreeSet::new();
    for line in lines {
        let Some((key, _)) = line.split_once('=') else {
            panic!("a line without a key: {line:?} in {file}");
        };
        assert!(
            [
                "type",
                "host",
                "port",
                "tls-port",
                "ca",
                "password",
                "title",
                "delete-this-file"
            ]
            .contains(&key),
            "an unknown key {key:?} in {file}"
        );
        assert!(keys.insert(key.to_owned()), "{key} twice in {file}");
    }
}

/// The arguments of one D-Bus method (the first byte picks it), decoded from the wire as zbus
/// decodes a call's body, then parsed as `bus/` parses them. Descriptor arguments are left out:
/// the bus daemon, not the caller, puts descriptors in a message.
pub fn bus_arguments(data: &[u8]) {
    let Some((&method, body)) = data.split_first() else {
        return;
    };
    let body = Data::new(body, Context::new(Endian::Little, 0));
    match method % 12 {
        // Policy.Validate, Preview, Apply(document, base, confirm_seconds)
        0 => {
            if let Ok(((document, _base, _confirm), _)) = body.deserialize::<(Vec<u8>, u64, u32)>()
            {
                let _ = Policy::parse(&document);
            }
        }
        // Vms.Create(name, disk_size, memory, cpus); CreateBridged(name, disk_size, memory,
        // cpus, network, address, mac, nat, forwards): its entry built and validated on a policy
        // with a lab network, as the helper does.
        1 => {
            if let Ok(((name, disk, _memory, _cpus), _)) =
                body.deserialize::<(String, String, String, u32)>()
            {
                let _ = VmName::parse(&name);
                let _ = crate::machines::parse_disk_size(&disk);
            }
            type Bridged = (
                String,
                String,
                String,
                u32,
                String,
                String,
                String,
                String,
                Vec<(String, u16, u16)>,
            );
            if let Ok(((name, disk, memory, cpus, network, address, mac, nat, forwards), _)) =
                body.deserialize::<Bridged>()
            {
                let _ = crate::machines::parse_disk_size(&disk);
                let bridge = crate::machines::NewBridge::from_arguments(
                    &network, &address, &mac, &nat, forwards,
                );
                if let (Ok(name), Ok(bridge)) = (VmName::parse(&name), bridge) {
                    let new = crate::machines::NewVm {
                        name,
                        disk_bytes: 0,
                        memory,
                        cpus,
                        bridge: Some(bridge),
                    };
                    let lab = "[[network]]\nname = \"lab\"\nsubnet = \"10.77.0.0/24\"\naddress = \"10.77.0.1\"\n";
                    if let Ok(document) = crate::machines::document_with_vm(lab, &new) {
                        let _ = Policy::parse(document.as_bytes());
                    }
                }
            }
        }
        // Vms.Start(name, mode)
        2 => {
            if let Ok(((name, mode), _)) = body.deserialize::<(String, String)>() {
                let _ = VmName::parse(&name);
                let _ = RunMode::parse(&mode);
            }
        }
        // Vms.UsbAttach(name, device), UsbDetach(name, id)
        3 => {
            if let Ok(((name, device), _)) = body.deserialize::<(String, String)>() {
                let _ = VmName::parse(&name);
                let _ = crate::vm::usb::AttachRequest::parse(&device);
                let _ = crate::vm::usb::parse_device_selector(&device);
            }
        }
        // Vms.Stop(name, force, timeout_seconds)
        4 => {
            if let Ok(((name, _force, _timeout), _)) = body.deserialize::<(String, bool, u32)>() {
                let _ = VmName::parse(&name);
            }
        }
        // Vms.Restore(name, version), Policy.Confirm / Rollback(generation)
        5 => {
            let _ = body.deserialize::<(String, u32)>();
            let _ = body.deserialize::<(u64,)>();
        }
        // Consoles.Open(name), Blocklists.Refresh / Show / Remove(name), Vms.Show etc.
        6 => {
            if let Ok(((name,), _)) = body.deserialize::<(String,)>() {
                let _ = ShortName::parse(&name);
                let _ = VmName::parse(&name);
                let _ = crate::bus::blocklists::list_name(&name);
            }
        }
        // Blocklists.ImportUrl(name, url, refresh_seconds, format, strict, force)
        7 => {
            if let Ok(((name, url, refresh, format, _strict, _force), _)) =
                body.deserialize::<(String, String, u32, String, bool, bool)>()
            {
                let _ = crate::bus::blocklists::list_name(&name);
                let _ = crate::lists::url(&url);
                let _ = crate::lists::refresh_interval(refresh);
                let _ = crate::lists::format(&format);
            }
        }
        // Blocklists.Import(name, <fd>, format, strict, force), without the descriptor
        8 => {
            if let Ok(((name, format, _strict, _force), _)) =
                body.deserialize::<(String, String, bool, bool)>()
            {
                let _ = crate::bus::blocklists::list_name(&name);
                let _ = crate::lists::format(&format);
            }
        }
        // Policy.Check(name, document): the name, and the candidate merged on its own.
        9 => {
            if let Ok(((name, document), _)) = body.deserialize::<(String, Vec<u8>)>() {
                if crate::dropins::DropInName::parse(&name).is_ok() {
                    if let Ok(text) = String::from_utf8(document) {
                        let candidate = palisade_dbus::types::PolicySource {
                            name,
                            kind: palisade_dbus::types::SourceKind::Admin,
                            path: String::new(),
                            document: text,
                        };
                        if let Ok(m) = palisade_dbus::policy::merge::merge(&[candidate]) {
                            let _ = Policy::parse(m.document.as_bytes());
                        }
                    }
                }
            }
        }
        // Policy.Apply(document, base, confirm_seconds, client), Rollback(generation, client),
        // Reload(confirm_seconds)
        10 => {
            if let Ok(((document, _base, _confirm, client), _)) =
                body.deserialize::<(Vec<u8>, u64, u32, String)>()
            {
                let _ = crate::bus::parse_client(&client);
                let _ = Policy::parse(&document);
            }
            if let Ok(((_generation, client), _)) = body.deserialize::<(u64, String)>() {
                let _ = crate::bus::parse_client(&client);
            }
            let _ = body.deserialize::<(u32,)>();
        }
        // Whole values of any signature the input names: the decoder on its own.
        _ => {
            if let Some(end) = body.bytes().iter().position(|&b| b == 0) {
                if let Ok(signature) = zbus::wire::Signature::try_from(&body.bytes()[..end]) {
                    let rest = Data::new(&body.bytes()[end + 1..], Context::new(Endian::Little, 0));
                    let _ =
                        rest.deserialize_for_signature::<_, zbus::wire::OwnedVariant>(&signature);
                }
            }
        }
    }
}

/// A folder of its own for one run of a target (fuzzers run targets in many processes).
fn scratch_dir(target: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "palisade-fuzz-{target}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Bytes usable as one file name inside the scratch folder (no `/`, not `.` or `..`).
fn file_name(bytes: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && s.len() < 64 && !s.contains('/') && s != "." && s != "..").then_some(s)
}

#[cfg(test)]
mod tests;

/// What the kernel's log hands the drop log: the first byte chooses a prefix (one of ours, one
/// of ours cut short, someone else's, a port guard's, or the next bytes as text), the rest is the
/// packet. Whatever arrives, an entry names a rule only for one of our prefixes, and the ports
/// it reports come from a TCP or UDP header.
pub fn drop_log(data: &[u8]) {
    use crate::log::entry::{entry, Sender};
    use crate::log::nflog::Logged;
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let (prefix, payload) = match choice % 5 {
        0 => ("palisade vm=web rule=3 drop: ".to_owned(), rest),
        1 => ("palisade console refused".to_owned(), rest),
        2 => ("ulogd: ".to_owned(), rest),
        3 => ("palisade vm=web spoofed drop: ".to_owned(), rest),
        _ => {
            let cut = rest.len().min(usize::from(choice >> 2));
            (
                String::from_utf8_lossy(&rest[..cut]).into_owned(),
                &rest[cut..],
            )
        }
    };
    let logged = Logged {
        prefix: prefix.clone(),
        uid: Some(990),
        payload: payload.to_vec(),
        // A bridged frame claims ARP or IPv4 by the choice byte's high bit.
        ethertype: Some(if choice & 0x80 == 0 { 0x0806 } else { 0x0800 }),
        source_mac: Some([0x52, 0x54, 0, 0, 0, choice]),
    };
    match entry(&logged, 1, Sender::default()) {
        Some(e) => {
            assert!(crate::firewall::ruleset::RuleTag::parse(&prefix).is_some());
            if e.protocol != "tcp" && e.protocol != "udp" {
                assert_eq!((e.source_port, e.destination_port), (0, 0));
            }
        }
        None => assert!(crate::firewall::ruleset::RuleTag::parse(&prefix).is_none()),
    }
}

/// A DNS message, read as a guest's question (the forwarder's own answers to it must read back
/// as answers to the same question) and as the upstream's answer to a fixed question (whatever
/// it holds, the addresses that count are bounded by its records).
pub fn dns(data: &[u8]) {
    use crate::dns::answer::{addresses, own_answer, read_question};
    use hickory_proto::op::ResponseCode;
    if let Ok(q) = read_question(data) {
        let refusal = own_answer(&q, ResponseCode::Refused);
        let back = addresses(&refusal, &q);
        assert!(back.is_ok_and(|a| a.found.is_empty() && a.code == ResponseCode::Refused));
        // The presentation form: at most 255 bytes on the wire, each written as itself, `\c`
        // or `\DDD`.
        assert!(q.name.len() <= 4 * 255);
        if let Ok(found) = addresses(data, &q) {
            assert!(found.found.len() <= data.len() / 11);
        }
    }
    let mut fixed = hickory_proto::op::Message::new();
    fixed.set_id(u16::from_be_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]));
    fixed.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("allowed.test.").unwrap_or_default(),
        hickory_proto::rr::RecordType::A,
    ));
    if let Ok(Ok(q)) = fixed.to_vec().map(|b| read_question(&b)) {
        let _ = addresses(data, &q);
    }
}
