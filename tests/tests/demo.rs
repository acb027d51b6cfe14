//! `make demo` without a display: it boots the tiny guest as VM `demo` under the example policy
//! as the demo admin, and reports what the guest saw (the allowed port reached, the other one
//! blocked), the drop log's entry for the blocked try, and how to reach everything.

use palisade_tests::{bin_dir, run_bounded};
use std::process::Command;
use std::time::Duration;

#[test]
fn the_demo_boots_its_guest_and_shows_a_blocked_connection() {
    let demo = bin_dir().join("palisade-demo");
    assert!(
        demo.exists(),
        "{} is missing: cargo build --workspace",
        demo.display()
    );
    let out = run_bounded(
        Command::new(&demo)
            .args(["--once", "--tcg"])
            .env_remove("DISPLAY"),
        Duration::from_secs(300),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "PALISADE-RESULT connect 10.0.2.2:8443 ok",
        "PALISADE-RESULT connect 10.0.2.2:8444 fail",
        "from vm demo",
        "palisadectl log follow --vm demo",
        "Demo stopped",
    ] {
        assert!(text.contains(wanted), "{wanted:?} missing from:\n{text}");
    }
}
