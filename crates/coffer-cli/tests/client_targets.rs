//! Targets from the CLI against a real server and the real FTP server of
//! scripts/services.sh — Palette's backup location form: fill in, Validate,
//! saved only when every step passed; then a backup goes there. And logins
//! to a server with its own certificate (`--ca-file`, `--insecure`).

mod common;

use coffer_testkit::service_setting;
use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;
use common::{Server, write_config_with};

#[test]
fn palettes_location_form_validates_saves_and_backs_up_from_the_cli() {
    let (Some(host), Some(port), Some(user), Some(password)) = (
        service_setting("COFFER_TEST_FTP_HOST"),
        service_setting("COFFER_TEST_FTP_PORT"),
        service_setting("COFFER_TEST_FTP_USER"),
        service_setting("COFFER_TEST_FTP_PASSWORD"),
    ) else {
        return;
    };
    let remote = format!("cli-palette-{}", std::process::id());
    // Declared before the server, so dropped after it has stopped.
    let _cleanup = RemoveOnDrop(format!("/home/{user}/{remote}").into());
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let right = f.tmp.path().join("ftp-password");
    std::fs::write(&right, format!("{password}\n")).unwrap();
    let wrong = f.tmp.path().join("wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    // What must never be printed (the test server's password is its user
    // name, which the location shows: then nothing to look for).
    let secret = if password == user {
        "\u{0}never".to_owned()
    } else {
        password.clone()
    };
    let add = |secret: &std::path::Path| {
        let url = format!("url=ftp://{host}:{port}/{remote}");
        let user = format!("user={user}");
        let secret = format!("password={}", secret.display());
        coffer(
            &config,
            &[
                "target", "add", "palette", "--kind", "ftp", "--set", &url, "--set", &user,
                "--secret", &secret,
            ],
            "",
            &[],
        )
    };

    // Validate with a wrong password: the failed step shown, nothing saved.
    let run = add(&wrong);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("failed") && run.stdout.contains("NOT saved"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&secret) && !run.stdout.contains("not the password"));
    let list = expect(&config, &["target", "list", "--json"], 0, &admin).json();
    assert!(!list.to_string().contains("palette"), "{list}");

    // The right one: every step ok, saved, the generated repository password shown once.
    let run = add(&right);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("saved target palette"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Repository password (generated, shown once)"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains(&secret),
        "the FTP password is never echoed"
    );
    let shown = expect(
        &config,
        &["target", "show", "palette", "--json"],
        0,
        &secret,
    )
    .json();
    assert_eq!(shown["spec"]["password"]["literal"], "***", "{shown:#}");
    let run = expect(&config, &["target", "validate", "palette"], 0, &secret);
    assert!(
        run.stdout.ends_with("the target can be used\n"),
        "{}",
        run.stdout
    );
    let backup = expect(
        &config,
        &[
            "backup",
            "create",
            "--label",
            "palette",
            "--component",
            "files",
            "--target",
            "palette",
            "--wait",
            "--json",
        ],
        0,
        &secret,
    )
    .json();
    assert_eq!(backup["target"], "palette");
    assert_eq!(backup["status"], "READY", "{backup:#}");
    // Its backups keep it: 409 → 11.
    let run = expect(&config, &["target", "rm", "palette"], 11, &secret);
    assert!(run.stderr.contains("palette"), "{}", run.stderr);

    // Without `targets:write` the form is refused before anything is probed.
    let reader = f.srv.token(&["targets:read"], None, None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", reader.as_str()),
    ];
    let run = coffer(
        &config,
        &[
            "target",
            "add",
            "other",
            "--kind",
            "local",
            "--set",
            "path=/tmp/x",
        ],
        "",
        &env,
    );
    assert_eq!(run.code, 9, "{}", run.stderr);
}

/// The test's directory on the FTP server, removed at the end.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_server_with_its_own_certificate_needs_its_ca_or_an_explicit_insecure() {
    // The test CA and its 127.0.0.1 certificate from scripts/services.sh (made for FTPS).
    let Some(ca) = service_setting("COFFER_TEST_FTPS_CA") else {
        return;
    };
    let certs = std::path::Path::new(&ca).parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let srv = Server::start(&write_config_with(tmp.path(), &tls, ""));
    let config = tmp.path().join("config");
    let token = format!("{}\n", srv.admin);

    let run = coffer(&config, &["login", &srv.url, "--token"], &token, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("cannot reach {}", srv.url)),
        "{}",
        run.stderr
    );
    let run = coffer(
        &config,
        &["login", &srv.url, "--token", "--ca-file", &ca],
        &token,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = expect(&config, &["backup", "list"], 0, &srv.admin);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let run = coffer(
        &config,
        &[
            "login",
            &srv.url,
            "--token",
            "--insecure",
            "--context",
            "lab",
        ],
        &token,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = expect(&config, &["backup", "list"], 0, &srv.admin);
    assert!(
        run.stderr.contains("not checked"),
        "every use says so: {}",
        run.stderr
    );
}
