//! USB listing tests: a fixture sysfs tree (`fixture/sys/bus/usb/devices`, plain directories), the
//! same tree reached through symlinks as in real sysfs, hostile attribute values in scratch trees,
//! and one pass over the machine's own `/sys/bus/usb/devices`.

use super::*;
use std::os::unix::fs::symlink;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/vm/usb/fixture/sys/bus/usb/devices")
}

/// A scratch directory removed when dropped. No `tempfile` crate: this is all the tests need.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("palisade-usb-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self(dir)
    }

    /// Writes a device directory `entry` with the given attributes (values as the kernel
    /// writes them, newline added here).
    fn device(&self, entry: &str, attrs: &[(&str, &[u8])]) {
        let dir = self.0.join(entry);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for (name, value) in attrs {
            let mut bytes = value.to_vec();
            bytes.push(b'\n');
            fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The attributes of an ordinary device on bus 1 at address 9, with `overrides` replacing or
/// adding some.
fn attrs<'a>(overrides: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
    let mut all: Vec<(&str, &[u8])> = vec![
        ("idVendor", b"1234"),
        ("idProduct", b"abcd"),
        ("busnum", b"1"),
        ("devnum", b"9"),
        ("bDeviceClass", b"00"),
        ("manufacturer", b"Maker"),
        ("product", b"Gadget"),
    ];
    for (name, value) in overrides {
        all.retain(|(n, _)| n != name);
        all.push((name, value));
    }
    all
}

/// A device with no names, not a hub; see [`Named`] for the rest.
fn dev(bus: u8, address: u8, vendor_id: u16, product_id: u16, port_path: &str) -> HostUsbDevice {
    HostUsbDevice {
        bus,
        address,
        vendor_id,
        product_id,
        manufacturer: String::new(),
        product: String::new(),
        serial: String::new(),
        port_path: port_path.into(),
        is_hub: false,
    }
}

/// Keeps the expected lists one line per device.
trait Named {
    fn names(self, manufacturer: &str, product: &str, serial: &str) -> Self;
    fn hub(self) -> Self;
}

impl Named for HostUsbDevice {
    fn names(self, manufacturer: &str, product: &str, serial: &str) -> Self {
        Self {
            manufacturer: manufacturer.into(),
            product: product.into(),
            serial: serial.into(),
            ..self
        }
    }

    fn hub(self) -> Self {
        Self {
            is_hub: true,
            ..self
        }
    }
}

fn expected_fixture() -> Vec<HostUsbDevice> {
    let kernel = "Linux 6.1.0-18-amd64 xhci-hcd";
    let (xhci, pci) = ("xHCI Host Controller", "0000:00:14.0");
    vec![
        dev(1, 1, 0x1d6b, 0x0002, "").names(kernel, xhci, pci).hub(),
        dev(1, 2, 0x046d, 0xc31c, "1").names("Logitech", "USB Keyboard", ""),
        // Leading and trailing spaces (sticks pad their strings) are trimmed.
        dev(1, 3, 0x0781, 0x5567, "2").names("SanDisk", "Cruzer Blade", "4C530001230605117484"),
        dev(1, 4, 0x05e3, 0x0610, "3")
            .names("GenesysLogic", "USB2.1 Hub", "")
            .hub(),
        dev(1, 5, 0x1050, 0x0407, "3.2").names("Yubico", "YubiKey OTP+FIDO+CCID", ""),
        // 1-4 (idVendor "04g6") is skipped; interfaces are not devices.
        dev(2, 1, 0x1d6b, 0x0003, "").names(kernel, xhci, pci).hub(),
        // No manufacturer file: an empty name, not a malformed device.
        dev(2, 2, 0x046d, 0xc31c, "1").names("", "USB Keyboard", ""),
    ]
}

#[test]
fn usb_fixture_tree() {
    assert_eq!(list_host_devices(&fixture()), expected_fixture());
}

#[test]
fn usb_follows_symlinks_like_real_sysfs() {
    // Real /sys/bus/usb/devices holds only symlinks into /sys/devices/...; rebuild the fixture
    // that way, plus a dangling link, which must be skipped.
    let scratch = Scratch::new("symlinks");
    let entries = fs::read_dir(fixture()).unwrap_or_else(|e| panic!("{e}"));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        symlink(entry.path(), scratch.0.join(entry.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
    symlink(scratch.0.join("nowhere"), scratch.0.join("3-1")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list_host_devices(&scratch.0), expected_fixture());
}

#[test]
fn usb_missing_directory_is_empty() {
    assert_eq!(
        list_host_devices(Path::new("/nonexistent/sys/bus/usb/devices")),
        vec![]
    );
}

#[test]
fn usb_real_sysfs_does_not_fail() {
    // Often empty or absent in a VM or container; whatever is there must parse or be skipped.
    let devices = list_host_devices(Path::new(SYSFS_USB_DEVICES));
    for d in &devices {
        assert!(d.bus >= 1 && (1..=127).contains(&d.address), "{d:?}");
        assert!(d.product.chars().count() <= MAX_NAME_CHARS, "{d:?}");
        assert!(device_node(d).starts_with("/dev/bus/usb"), "{d:?}");
    }
    assert!(devices
        .windows(2)
        .all(|w| (w[0].bus, w[0].address) < (w[1].bus, w[1].address)));
}

#[test]
fn usb_hostile_names_are_cleaned() {
    let scratch = Scratch::new("names");
    let long = "A".repeat(5000);
    scratch.device(
        "1-1",
        &attrs(&[
            // A terminal escape that would clear the screen, and a newline inside.
            ("manufacturer", b"\x1b[2J\x1b]0;pwned\x07Evil\nCorp\t"),
            // A right-to-left override that would display "exe.txt" as "txt.exe", a zero-width
            // space, and a byte that is not UTF-8.
            ("product", b"Stick \xe2\x80\xaeexe.txt\xe2\x80\x8b \xff"),
            ("serial", long.as_bytes()),
        ]),
    );
    let devices = list_host_devices(&scratch.0);
    assert_eq!(devices.len(), 1, "{devices:?}");
    let d = &devices[0];
    assert_eq!(d.manufacturer, "[2J]0;pwnedEvilCorp");
    assert_eq!(d.product, "Stick exe.txt \u{fffd}");
    assert_eq!(d.serial, "A".repeat(MAX_NAME_CHARS));
}

#[test]
fn usb_huge_attribute_is_not_read_whole() {
    let scratch = Scratch::new("huge");
    let huge = vec![b'x'; 10 * 1024 * 1024];
    scratch.device("1-1", &attrs(&[("product", &huge)]));
    let devices = list_host_devices(&scratch.0);
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].product.len(), MAX_NAME_CHARS);
}

#[test]
fn usb_malformed_values_skip_the_device() {
    let bad: &[(&str, &[u8])] = &[
        ("idVendor", b"04g6"),
        ("idVendor", b"46d"),
        ("idVendor", b"0046d"),
        ("idVendor", b"+46d"),
        ("idVendor", b" 46d"),
        ("idVendor", b""),
        ("idProduct", b"c31c\n"), // a second newline: not what the kernel writes
        ("idProduct", b"0x31"),
        ("busnum", b"2"), // the entry name says bus 1
        ("busnum", b"0"),
        ("busnum", b"256"),
        ("busnum", b"+1"),
        ("busnum", b" 1"),
        ("busnum", b"1.0"),
        ("devnum", b"0"),
        ("devnum", b"128"),
        ("devnum", b"-3"),
        ("devnum", b"0009"),
        ("devnum", b"nine"),
        ("bDeviceClass", b"9"),
        ("bDeviceClass", b"0x09"),
    ];
    for (attr, value) in bad {
        let scratch = Scratch::new("bad");
        scratch.device("1-1", &attrs(&[(attr, value)]));
        // One good device beside it must still be listed.
        scratch.device("1-2", &attrs(&[("devnum", b"10")]));
        let devices = list_host_devices(&scratch.0);
        let listed: Vec<_> = devices.iter().map(|d| d.port_path.as_str()).collect();
        assert_eq!(
            listed,
            ["2"],
            "{attr} = {:?}",
            String::from_utf8_lossy(value)
        );
    }
    for required in ["idVendor", "idProduct", "busnum", "devnum", "bDeviceClass"] {
        let scratch = Scratch::new("missing");
        scratch.device("1-1", &attrs(&[]));
        fs::remove_file(scratch.0.join("1-1").join(required)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list_host_devices(&scratch.0), vec![], "without {required}");
    }
}

#[test]
fn usb_entry_names() {
    let device = |bus, port_path: &str| {
        Some(EntryKind::Device {
            bus,
            port_path: port_path.into(),
        })
    };
    assert_eq!(EntryKind::of("usb1"), Some(EntryKind::RootHub { bus: 1 }));
    assert_eq!(EntryKind::of("usb12"), Some(EntryKind::RootHub { bus: 12 }));
    assert_eq!(EntryKind::of("1-2"), device(1, "2"));
    assert_eq!(EntryKind::of("3-1.4.2"), device(3, "1.4.2"));
    assert_eq!(EntryKind::of("1-1.1.1.1.1.1.1"), device(1, "1.1.1.1.1.1.1"));
    for not_a_device in [
        "1-2:1.0",
        "usb1:1.0",
        "usb",
        "usb0",
        "usb256",
        "1-",
        "-1",
        "1-0",
        "1-2.",
        "1-2..3",
        "1-+2",
        "1-1.1.1.1.1.1.1.1",
        "0-1",
        "a-1",
        "..",
        "driver",
    ] {
        assert_eq!(EntryKind::of(not_a_device), None, "{not_a_device}");
    }
}

#[test]
fn usb_duplicate_address_drops_both() {
    let scratch = Scratch::new("dup");
    scratch.device("1-1", &attrs(&[]));
    scratch.device("1-2", &attrs(&[]));
    scratch.device("1-3", &attrs(&[("devnum", b"10")]));
    let devices = list_host_devices(&scratch.0);
    let listed: Vec<_> = devices.iter().map(|d| d.port_path.as_str()).collect();
    assert_eq!(listed, ["3"]);
}

#[test]
fn usb_device_node() {
    let d = dev(1, 5, 0x1050, 0x0407, "3.2");
    assert_eq!(device_node(&d), PathBuf::from("/dev/bus/usb/001/005"));
    let d = dev(255, 127, 0, 0, "1");
    assert_eq!(device_node(&d), PathBuf::from("/dev/bus/usb/255/127"));
}

#[test]
fn usb_parse_device_selector() {
    let vp = |vendor, product| Ok(DeviceSelector::VendorProduct { vendor, product });
    let ba = |bus, address| Ok(DeviceSelector::BusAddress { bus, address });
    assert_eq!(parse_device_selector("046d:c31c"), vp(0x046d, 0xc31c));
    assert_eq!(parse_device_selector("046D:C31C"), vp(0x046d, 0xc31c));
    assert_eq!(parse_device_selector(" 1050:0407\n"), vp(0x1050, 0x0407));
    assert_eq!(parse_device_selector("1.4"), ba(1, 4));
    assert_eq!(parse_device_selector("1-4"), ba(1, 4));
    assert_eq!(parse_device_selector("001.004"), ba(1, 4));
    assert_eq!(parse_device_selector("255.127"), ba(255, 127));
    for bad in [
        "",
        "046d",
        "46d:c31c",
        "046d:c31",
        "046d:c31cc",
        "046d-c31c",
        "0x46d:c31c",
        "046d:c31c:1",
        "046d: c31c",
        "1",
        "1.",
        ".4",
        "1.4.2",
        "0.4",
        "1.0",
        "1.128",
        "256.1",
        "+1.4",
        "1.-4",
        "1 .4",
        "0001.4",
        "bus1.4",
        "/dev/bus/usb/001/004",
    ] {
        let err = parse_device_selector(bad).err();
        assert!(err.is_some(), "{bad:?} was accepted");
    }
    // The sentence echoes the input cleaned, never a raw escape.
    let err = parse_device_selector("\x1b[2J").err().unwrap_or_default();
    assert!(err.starts_with("\"[2J\" is not a USB device"), "{err}");
}

#[test]
fn usb_selector_display_round_trips() {
    for s in ["046d:c31c", "1.4", "255.127"] {
        let sel = parse_device_selector(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.to_string(), s);
    }
}

#[test]
fn usb_select() {
    let devices = expected_fixture();
    let pick = |s: &str| {
        let sel = parse_device_selector(s).unwrap_or_else(|e| panic!("{e}"));
        select(&devices, &sel).map(|d| (d.bus, d.address))
    };
    assert_eq!(pick("0781:5567"), Ok((1, 3)));
    assert_eq!(pick("1050:0407"), Ok((1, 5)));
    assert_eq!(pick("1.2"), Ok((1, 2)));
    assert_eq!(pick("2-2"), Ok((2, 2)));
    assert_eq!(
        pick("046d:c31c"),
        Err("2 USB devices are 046d:c31c (1.2, 2.2); name one by its bus.address instead".into())
    );
    assert_eq!(
        pick("dead:beef"),
        Err("no USB device dead:beef is connected to this host".into())
    );
    let err = pick("3.1").err().unwrap_or_default();
    assert!(
        err.starts_with("no USB device has bus 3, address 1"),
        "{err}"
    );
    assert_eq!(
        pick("05e3:0610"),
        Err(
            "USB device 1.4 (GenesysLogic USB2.1 Hub) is a hub; a hub cannot be attached to a \
             virtual machine (attach the device plugged into it instead)"
                .into()
        )
    );
    let err = pick("1.1").err().unwrap_or_default();
    assert!(err.contains("is a hub"), "{err}");
    assert!(select(&[], &DeviceSelector::BusAddress { bus: 1, address: 1 }).is_err());
}

#[test]
fn usb_serializes_for_the_bus() {
    let d = &expected_fixture()[2];
    let json = serde_json::to_value(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["vendor_id"], 0x0781);
    assert_eq!(json["serial"], "4C530001230605117484");
    assert_eq!(json["port_path"], "2");
    assert_eq!(json["is_hub"], false);
}
