//! The Prometheus alert rules shipped in docs/alerts: valid for
//! `promtool check rules`, their unit tests pass `promtool test rules`, and
//! every metric they use is one the server exports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts")
}

#[test]
fn every_metric_the_rules_use_is_exported() {
    let rules = std::fs::read_to_string(alerts_dir().join("coffer.rules.yml")).unwrap();
    let metrics = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../coffer-server/src/metrics.rs"),
    )
    .unwrap();
    let mut used = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let Some(name) = word.strip_prefix("coffer_") else {
            continue;
        };
        // Counters are registered without `_total`.
        let name = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            metrics.contains(&format!("\"{name}\"")),
            "coffer_{name} is not registered in metrics.rs"
        );
        used += 1;
    }
    assert!(used >= 7, "only {used} metric references?");
}

#[test]
fn the_rules_pass_promtool() {
    if !coffer_testkit::require_tool("promtool") {
        return;
    }
    for args in [
        ["check", "rules", "coffer.rules.yml"],
        ["test", "rules", "coffer.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(alerts_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
