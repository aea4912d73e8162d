//! The example systemd units in `deploy/systemd/`: each passes `systemd-analyze verify` (unknown
//! keys, bad values, a command that is not executable) with the built binary in place of
//! `/usr/local/bin/pinball`, and runs the mode its name says. Skipped with a message where
//! systemd-analyze is not installed.

use std::path::Path;

#[test]
fn the_example_systemd_units_verify_and_run_their_modes() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for mode in ["master", "ui", "scheduler", "workers"] {
        let name = format!("pinball-{mode}.service");
        let text = std::fs::read_to_string(units.join(&name)).unwrap();
        assert!(
            text.contains(&format!(
                "ExecStart=/usr/local/bin/pinball -c /etc/pinball/pinball.yaml -m {mode}\n"
            )),
            "{name} runs -m {mode}"
        );
        assert!(text.contains("NoNewPrivileges=yes") && text.contains("User=pinball"));
        let local = text.replace("/usr/local/bin/pinball", env!("CARGO_BIN_EXE_pinball"));
        std::fs::write(dir.path().join(&name), local).unwrap();
        names.push(dir.path().join(&name));
    }
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .output()
    else {
        crate::helpers::skipped("(deploy::units): systemd-analyze is not installed");
        return;
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
