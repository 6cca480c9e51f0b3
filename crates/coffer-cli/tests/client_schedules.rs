//! Schedules from the CLI against a real server — Palette's schedule form
//! (every 2 days at 03:00 and 15:00 UTC, kept 7 days): added, refused with
//! the field named when wrong, run now and followed, its runs and its
//! retention preview shown, removed.

mod common;

use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;

#[test]
fn palettes_schedule_form_runs_end_to_end_from_the_cli() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);

    // A wrong hour: 422 → 2, the field named, nothing recorded.
    let run = expect(
        &config,
        &[
            "schedule",
            "add",
            "palette",
            "--every-days",
            "2",
            "--hours-utc",
            "3,24",
            "--component",
            "files",
        ],
        2,
        &admin,
    );
    assert!(run.stderr.contains("hours_utc"), "{}", run.stderr);
    let none = expect(&config, &["schedule", "list"], 0, &admin);
    assert_eq!(none.stdout.trim(), "no schedules");

    let added = expect(
        &config,
        &[
            "schedule",
            "add",
            "palette",
            "--every-days",
            "2",
            "--hours-utc",
            "3,15",
            "--component",
            "files",
            "--keep-days",
            "7",
            "--json",
        ],
        0,
        &admin,
    )
    .json();
    assert_eq!(added["spec"]["every_days"], 2, "{added:#}");
    assert_eq!(added["spec"]["hours_utc"], serde_json::json!([3, 15]));
    assert_eq!(added["spec"]["retention"]["keep_days"], 7);
    assert!(added["next_run"].is_string(), "{added:#}");
    let list = expect(&config, &["schedule", "list"], 0, &admin).stdout;
    assert!(list.starts_with("palette"), "{list}");

    // Run now, followed to the end; the run is recorded with its backup.
    let run = expect(
        &config,
        &["schedule", "run", "palette", "--wait"],
        0,
        &admin,
    );
    assert!(
        run.stdout.lines().last().unwrap().ends_with(": READY"),
        "{}",
        run.stdout
    );
    let shown = expect(
        &config,
        &["schedule", "show", "palette", "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(shown["runs"][0]["outcome"], "STARTED", "{shown:#}");
    let backup = shown["runs"][0]["backup_id"].as_str().unwrap().to_owned();
    let text = expect(&config, &["schedule", "show", "palette"], 0, &admin).stdout;
    assert!(text.contains(&backup), "{text}");

    // Its retention, previewed: the one backup is kept (newest READY, within 7 days).
    let preview = expect(&config, &["schedule", "preview", "palette"], 0, &admin).stdout;
    assert!(
        preview.starts_with("schedule palette {\"keep_days\":7}: keeps 1, would delete 0"),
        "{preview}"
    );
    assert!(preview.contains(&format!("keep   {backup}")), "{preview}");
    let json = expect(
        &config,
        &["schedule", "preview", "palette", "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(json["policies"][0]["schedule"], "palette");

    // Reading schedules does not allow making them: 403 → 9.
    let reader = f.srv.token(&["schedules:read"], None, None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", reader.as_str()),
    ];
    let run = coffer(
        &config,
        &["schedule", "add", "other", "--every-secs", "3600"],
        "",
        &env,
    );
    assert_eq!(run.code, 9, "{}", run.stderr);
    let run = coffer(&config, &["schedule", "list", "--json"], "", &env);
    assert_eq!(run.code, 0, "{}", run.stderr);

    expect(&config, &["schedule", "rm", "palette"], 0, &admin);
    expect(&config, &["schedule", "show", "palette"], 10, &admin);
    // Its backups stay.
    expect(&config, &["backup", "show", &backup], 0, &admin);
}
