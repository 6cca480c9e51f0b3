//! The client commands (`coffer login`, `coffer logout`, `coffer backup …`)
//! against a real `coffer server`: the sequences operators run, `--json`
//! parsed, and the documented exit codes for READY, ERROR, 401, 403, 404,
//! 409 and 422. A token or password given to the CLI is never printed, and
//! a saved token goes only to the server it was saved for.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::client::{coffer, contexts_file, expect, login_with_token};
use common::fixture::Fixture;
use serde_json::{Value, json};

#[test]
fn an_operator_logs_in_and_drives_backups_from_the_cli() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let file = contexts_file(&config);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "the contexts file holds tokens");
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    // DC/OS: `dcos backup create --label`, then watch it to the end.
    let run = expect(
        &config,
        &[
            "backup",
            "create",
            "--label",
            "cli-run",
            "--component",
            "files",
            "--wait",
            "--json",
        ],
        0,
        &admin,
    );
    let backup = run.json();
    assert_eq!(backup["status"], "READY", "{backup:#}");
    let id = backup["id"].as_str().unwrap().to_owned();
    // Without --json, off a terminal: a line per component state, then the verdict.
    let run = expect(
        &config,
        &[
            "backup",
            "create",
            "--label",
            "cli-run",
            "--component",
            "files",
            "--wait",
        ],
        0,
        &admin,
    );
    assert!(run.stdout.contains("files: READY ("), "{}", run.stdout);
    assert!(
        run.stdout.lines().last().unwrap().ends_with(": READY"),
        "{}",
        run.stdout
    );

    // `dcos backup list` / `show`: the API's JSON, or a readable view.
    let list = expect(&config, &["backup", "list", "cli-run", "--json"], 0, &admin).json();
    let ids: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list:#}");
    assert!(ids.contains(&id.as_str()));
    let none = expect(&config, &["backup", "list", "other-label"], 0, &admin);
    assert_eq!(none.stdout.trim(), "no backups");
    let shown = expect(&config, &["backup", "show", &id, "--json"], 0, &admin).json();
    assert_eq!(shown["components"][0]["name"], "files");
    assert_eq!(shown["components"][0]["status"], "READY");
    let human = expect(&config, &["backup", "show", &id], 0, &admin).stdout;
    assert!(human.starts_with(&format!("backup {id}: READY")), "{human}");
    assert!(
        human.contains("components:") && human.contains("files"),
        "{human}"
    );
    let log = expect(&config, &["backup", "log", &id, "--json"], 0, &admin).json();
    assert!(!log["lines"].as_array().unwrap().is_empty(), "{log:#}");

    // `dcos backup restore`: one component into an allowed place, followed to the end.
    let back = f.root().join("files-back");
    let set = format!("files.path={}", back.display());
    let done = expect(
        &config,
        &[
            "backup",
            "restore",
            &id,
            "--component",
            "files",
            "--set",
            &set,
            "--wait",
            "--json",
        ],
        0,
        &admin,
    )
    .json();
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(std::fs::read(back.join("a")).unwrap(), b"a");
    let human = expect(&config, &["backup", "show", &id], 0, &admin).stdout;
    assert!(
        human.contains("restores:") && human.contains("files READY"),
        "{human}"
    );
    // The restore's own views: listed under its backup, shown, logged, waited for.
    let restore = done["id"].as_str().unwrap();
    let listed = expect(
        &config,
        &["restore", "list", "--backup", &id, "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(listed["restores"][0]["id"], restore, "{listed:#}");
    let shown = expect(&config, &["restore", "show", restore], 0, &admin).stdout;
    assert!(
        shown.starts_with(&format!("{restore} READY (of {id}")),
        "{shown}"
    );
    assert!(shown.contains("files"), "{shown}");
    let log = expect(&config, &["restore", "log", restore, "--json"], 0, &admin).json();
    assert!(!log["lines"].as_array().unwrap().is_empty(), "{log:#}");
    expect(&config, &["restore", "wait", restore], 0, &admin);
    expect(&config, &["backup", "wait", &id], 0, &admin);
    // Pinned: retention never deletes it; unpinned again.
    expect(&config, &["backup", "pin", &id], 0, &admin);
    let pinned = expect(&config, &["backup", "show", &id, "--json"], 0, &admin).json();
    assert_eq!(pinned["pinned"], true);
    expect(&config, &["backup", "unpin", &id], 0, &admin);
    let pinned = expect(&config, &["backup", "show", &id, "--json"], 0, &admin).json();
    assert_eq!(pinned["pinned"], false);

    // Where the rules say no, the server says no: 403 → 9, the field named.
    let run = expect(
        &config,
        &[
            "backup",
            "restore",
            &id,
            "--component",
            "files",
            "--set",
            "files.path=/etc/coffer-cli",
        ],
        9,
        &admin,
    );
    assert!(run.stderr.contains("path"), "{}", run.stderr);
    let run = expect(
        &config,
        &["backup", "restore", &id, "--set", "files"],
        2,
        &admin,
    );
    assert!(
        run.stderr.contains("COMPONENT.FIELD=VALUE"),
        "{}",
        run.stderr
    );

    // The documented codes: 409 (not running), 404, 422 (the field named).
    let run = expect(&config, &["backup", "cancel", &id], 11, &admin);
    assert!(run.stderr.starts_with("coffer: "), "{}", run.stderr);
    let run = expect(&config, &["backup", "show", "cli-run-nothing"], 10, &admin);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let run = expect(
        &config,
        &["backup", "show", "../targets", "--json"],
        10,
        &admin,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&run.stderr).unwrap()["error"],
        "not_found"
    );
    let run = expect(&config, &["backup", "create", "--label", "x"], 2, &admin);
    assert!(run.stderr.contains("label"), "{}", run.stderr);

    // `dcos backup delete`.
    let gone = expect(&config, &["backup", "delete", &id, "--json"], 0, &admin).json();
    assert_eq!(gone["id"], id.as_str(), "{gone:#}");
    expect(&config, &["backup", "show", &id], 10, &admin);
}

#[test]
fn a_user_logs_in_with_a_password_and_gets_only_its_scopes() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let password = "correct horse battery staple";
    let (code, v) = f.srv.admin(
        "POST",
        "/api/v1/users",
        Some(&json!({ "name": "viewer", "password": password, "scopes": ["backups:read"] })),
    );
    assert_eq!(code, 201, "{v}");
    let pw_file = f.tmp.path().join("pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let wrong_file = f.tmp.path().join("wrong");
    std::fs::write(&wrong_file, "not the password at all\n").unwrap();
    let url = f.srv.url.clone();

    let login = |file: &Path| {
        coffer(
            &config,
            &[
                "login",
                &url,
                "--name",
                "viewer",
                "--password-file",
                file.to_str().unwrap(),
                "--json",
            ],
            "",
            &[],
        )
    };
    let refused = login(&wrong_file);
    assert_eq!(refused.code, 8, "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("not the password"),
        "{}",
        refused.stderr
    );
    let run = login(&pw_file);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = run.json();
    assert_eq!(shown["user"], "viewer");
    assert!(shown["expires_at"].is_string(), "{shown:#}");
    assert!(shown.get("token").is_none() && !run.stdout.contains(password));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(contexts_file(&config)).unwrap()).unwrap();
    assert!(
        saved["contexts"]["default"]["token"]
            .as_str()
            .unwrap()
            .starts_with("jwt:")
    );

    // Reading is allowed, starting a backup is not (403 → 9).
    expect(&config, &["backup", "list", "--json"], 0, password);
    let run = expect(
        &config,
        &["backup", "create", "--label", "viewer-try"],
        9,
        password,
    );
    assert!(run.stderr.contains("backups:write"), "{}", run.stderr);

    // After logout the server asks for credentials again, and the CLI says how.
    expect(&config, &["logout"], 0, password);
    let run = expect(&config, &["backup", "list"], 8, password);
    assert!(
        run.stderr.contains(&format!("coffer login {url}")),
        "{}",
        run.stderr
    );
}

#[test]
fn failures_say_which_server_and_why_in_one_line() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();

    // Nowhere to go.
    let run = coffer(&config, &["backup", "list"], "", &[]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stderr.contains("coffer login URL"), "{}", run.stderr);
    // Nothing listening: one line naming the URL.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let run = coffer(
        &config,
        &["backup", "list"],
        "",
        &[("COFFER_URL", &dead_url), ("COFFER_TOKEN", &admin)],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("cannot reach {dead_url}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&admin));
    let run = coffer(&config, &["login", &dead_url, "--token"], "cft_x\n", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("cannot reach {dead_url}")),
        "{}",
        run.stderr
    );
    let run = coffer(
        &config,
        &["login", "backup.example.com", "--token"],
        "cft_x\n",
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // A bad token and an expired one: 401 → 8, saying so.
    let bogus = format!("cft_{}", "0".repeat(64));
    let run = coffer(
        &config,
        &["login", &f.srv.url, "--token"],
        &format!("{bogus}\n"),
        &[],
    );
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(
        !contexts_file(&config).exists(),
        "a refused login saves nothing"
    );
    let short = f.srv.token(&["backups:read"], None, Some(1));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", short.as_str()),
    ];
    let run = coffer(&config, &["backup", "list"], "", &env);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert!(!run.stderr.contains(&short));

    // A backup that ends ERROR: exit 5, the component's error shown.
    let broken_dir = tempfile::tempdir().unwrap();
    let broken = common::Server::start(&common::write_config(
        broken_dir.path(),
        "[[components]]\nname = \"broken\"\nkind = \"command\"\n\
         backup = [\"sh\", \"-c\", \"echo no database here >&2; exit 3\"]\nrestore = [\"true\"]\n",
    ));
    let env = [
        ("COFFER_URL", broken.url.as_str()),
        ("COFFER_TOKEN", broken.admin.as_str()),
    ];
    let run = coffer(
        &config,
        &["backup", "create", "--label", "cli-fail", "--wait"],
        "",
        &env,
    );
    assert_eq!(run.code, 5, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("broken: ERROR: "), "{}", run.stdout);
    assert!(
        run.stdout.lines().last().unwrap().contains(": ERROR"),
        "{}",
        run.stdout
    );

    login_with_token(&f, &config, &admin);
    // COFFER_URL naming another server: the saved token is not sent there.
    let (other_url, seen) = one_answer_server("{\"backups\": []}");
    let run = coffer(
        &config,
        &["backup", "list"],
        "",
        &[("COFFER_URL", &other_url)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let head = seen.recv().unwrap();
    assert!(head.starts_with("GET /api/v1/backups "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
}

/// A server on 127.0.0.1 answering one request with 200 and `body`; hands
/// back the request's head.
fn one_answer_server(body: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut conn = conn;
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tx.send(head);
    });
    (url, rx)
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    for shell in ["bash", "zsh", "fish"] {
        let run = coffer(&config, &["completions", shell], "", &[]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(
            run.stdout.contains("backup") && run.stdout.contains("login"),
            "{shell}"
        );
    }
    let pages = tmp.path().join("man1");
    let run = coffer(&config, &["man", "--dir", pages.to_str().unwrap()], "", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in [
        "coffer.1",
        "coffer-login.1",
        "coffer-backup-restore.1",
        "coffer-export-download.1",
    ] {
        let text =
            std::fs::read_to_string(pages.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie"),
            "{page} is not a man page: {}",
            &text[..40.min(text.len())]
        );
    }
    let listed = run.stdout.lines().count();
    assert_eq!(listed, std::fs::read_dir(&pages).unwrap().count());
}
