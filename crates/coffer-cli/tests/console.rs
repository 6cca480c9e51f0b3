//! The web console in a real browser (Debian's chromium through
//! chromedriver) against the real server binary: sign in, back up and watch
//! it reach READY, restore one component into an override path and compare
//! the files, export and download with the SHA-256 the page shows; a user
//! without `restore` sees no restore action and is refused when posting the
//! form anyway; forms without their CSRF token are refused; and at 390 px
//! nothing scrolls sideways and every field has a label.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, chromedriver};
use common::fixture::Fixture;
use serde_json::json;

const PASSWORD: &str = "console test password";

/// A user with `scopes`, through the admin token.
fn user(f: &Fixture, name: &str, scopes: &[&str]) {
    let body = json!({ "name": name, "password": PASSWORD, "scopes": scopes });
    let (code, v) = f.srv.admin("POST", "/api/v1/users", Some(&body));
    assert_eq!(code, 201, "{v}");
}

const OPERATOR: &[&str] = &[
    "backups:read",
    "backups:write",
    "backups:delete",
    "restore",
    "export",
    "targets:read",
    "targets:write",
    "schedules:read",
    "schedules:write",
    "tokens:admin",
];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_up_restore_and_export_from_the_console() {
    let Some(driver) = chromedriver() else { return };
    let f = Fixture::new("");
    user(&f, "ops", OPERATOR);
    std::fs::create_dir_all(f.tmp.path().join("files/sub")).unwrap();
    std::fs::write(f.tmp.path().join("files/sub/b.txt"), b"only this").unwrap();
    let b = Browser::start(&driver, &f.srv.url, 1280).await;
    let dest = f.root().join("from-console");
    let one = f.root().join("one-file");
    let live = f.tmp.path().join("files");
    let export_file = f.tmp.path().join("downloaded.coffer");
    let srv_url = f.srv.url.clone();
    b.run("back_up_restore_and_export", |b| async move {
        b.sign_in("ops", PASSWORD).await;
        assert!(
            b.main_text().await.contains("never"),
            "no backup yet: the overview says so"
        );

        // Start a backup of one component and watch it reach READY.
        b.open("/backups").await;
        b.fill("#label", "from-console").await;
        b.click("input[name=component][value=files]").await;
        b.click("form[action='/backups'] button[type=submit]").await;
        b.wait_for_text("State: READY", 120).await;
        let backup_path = b.path().await;
        assert!(backup_path.starts_with("/backups/"), "{backup_path}");

        // Restore it into an override path below the restore roots.
        b.click("a[href$='/restore']").await;
        b.fill("input[name='o/files/path']", dest.to_str().unwrap())
            .await;
        b.click("button[value=review]").await;
        let summary = b.wait_for_text("Start restore", 10).await;
        assert!(summary.contains(dest.to_str().unwrap()), "{summary}");
        b.click("button[value=start]").await;
        b.wait_for_text("State: READY", 120).await;
        assert!(b.path().await.starts_with("/restores/"));
        assert_eq!(
            std::fs::read(dest.join("a")).unwrap(),
            b"a",
            "the restored file"
        );
        assert_eq!(std::fs::read(dest.join("sub/b.txt")).unwrap(), b"only this");

        // Browse the backup, open a directory, restore one file of it elsewhere.
        b.open(&backup_path).await;
        b.click("a[href*='/components/files/tree']").await;
        b.click("a[href$='path=sub']").await;
        b.wait_for_text("b.txt", 10).await;
        b.click("a[aria-label='Restore b.txt']").await;
        let part = b
            .find("input[name='part/files']")
            .await
            .prop("value")
            .await
            .unwrap();
        assert_eq!(
            part.as_deref(),
            Some("sub/b.txt"),
            "the wizard knows the part"
        );
        b.fill("input[name='o/files/path']", one.to_str().unwrap())
            .await;
        b.click("button[value=review]").await;
        let summary = b.wait_for_text("only sub/b.txt", 10).await;
        assert!(summary.contains(one.to_str().unwrap()), "{summary}");
        b.click("button[value=start]").await;
        b.wait_for_text("State: READY", 120).await;
        assert_eq!(std::fs::read(one.join("b.txt")).unwrap(), b"only this");
        assert_eq!(
            std::fs::read_dir(&one).unwrap().count(),
            1,
            "only that file"
        );

        // Export with a passphrase; the page shows its SHA-256; the download matches it.
        b.open(&backup_path).await;
        b.fill("#export-password", "an export passphrase").await;
        b.click("form[action$='/exports'] button[type=submit]")
            .await;
        // The POST answers with the page listing the new export: wait for
        // it, or reopening the page at once may abort the POST in flight.
        let started = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !b.has("form[action^='/exports/']").await {
            assert!(
                std::time::Instant::now() < started,
                "the export was never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let link = loop {
            b.open(&backup_path).await;
            if b.has("a[href$='/download']").await {
                break b
                    .find("a[href$='/download']")
                    .await
                    .attr("href")
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the export never became READY"
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        let shown = b.find("td.hash").await.text().await.unwrap();
        let shown = shown.split_whitespace().next().unwrap().to_owned();
        let cookie = b.session_cookie().await;
        let url = format!("{srv_url}{link}");
        let bytes = tokio::task::spawn_blocking(move || {
            let mut res = ureq::get(&url).header("Cookie", &cookie).call().unwrap();
            res.body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            shown,
            "the download's SHA-256 is the one shown"
        );

        // That export uploaded back through the console repairs a damaged file.
        std::fs::write(&export_file, &bytes).unwrap();
        std::fs::write(live.join("a"), b"damaged").unwrap();
        b.open("/backups").await;
        b.click("a[href='/upload']").await;
        b.fill("#u-password", "an export passphrase").await;
        b.fill("#u-components", "files").await;
        b.find("#u-mode option[value=overwrite]")
            .await
            .click()
            .await
            .unwrap();
        b.find("#u-file")
            .await
            .send_keys(export_file.to_str().unwrap())
            .await
            .unwrap();
        b.click("form[action='/upload'] button[type=submit]").await;
        b.wait_for_text("State: READY", 120).await;
        assert!(b.path().await.starts_with("/restores/"));
        assert_eq!(
            std::fs::read(live.join("a")).unwrap(),
            b"a",
            "restored from the upload"
        );
        // A wrong passphrase: the API's refusal on the form, nothing changed.
        std::fs::write(live.join("a"), b"damaged again").unwrap();
        b.open("/upload").await;
        b.fill("#u-password", "not the passphrase").await;
        b.find("#u-mode option[value=overwrite]")
            .await
            .click()
            .await
            .unwrap();
        b.find("#u-file")
            .await
            .send_keys(export_file.to_str().unwrap())
            .await
            .unwrap();
        b.click("form[action='/upload'] button[type=submit]").await;
        let refused = b.wait_for_text("wrong password", 60).await;
        assert!(b.has("p.alert").await, "{refused}");
        assert_eq!(std::fs::read(live.join("a")).unwrap(), b"damaged again");

        // Auth0's and DC/OS's ends: delete the export (confirmed), then the backup (confirmed).
        b.open(&backup_path).await;
        b.click("form[action$='/delete'][data-confirm] button")
            .await;
        b.client.accept_alert().await.unwrap();
        b.wait_for_text("None yet.", 10).await;
        b.click("a[href$='/delete']").await;
        b.wait_for_text("cannot be undone", 10).await;
        b.click("button.danger").await;
        b.wait_for_text("Start a backup", 10).await;
        assert_eq!(b.path().await, "/backups");
        b.open(&backup_path).await;
        b.wait_for_text("no backup", 10).await;

        // Sign out: the console asks for a sign-in again.
        b.click("form.signout button").await;
        b.wait_for_text("Sign in", 10).await;
        b.open("/backups").await;
        assert_eq!(b.path().await, "/login");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_restore_gets_no_restore_action_and_forged_forms_are_refused() {
    let Some(driver) = chromedriver() else { return };
    let f = Fixture::new("");
    let id = f.backup_of(&["files"]);
    user(&f, "viewer", &["backups:read", "backups:write"]);
    let b = Browser::start(&driver, &f.srv.url, 1280).await;
    let dest = f.root().join("forged");
    b.run("forged_forms", |b| async move {
        b.sign_in("viewer", PASSWORD).await;
        b.open(&format!("/backups/{id}")).await;
        b.wait_for_text("State: READY", 10).await;
        assert!(!b.has("a[href$='/restore']").await, "no restore action without `restore`");

        // Post the restore form anyway, with this session's CSRF token: the API refuses.
        let post = |with_csrf: bool, action: String| {
            format!(
                "const f = document.createElement('form'); f.method = 'post'; f.action = '{action}';
                 const add = (n, v) => {{ const i = document.createElement('input'); i.type = 'hidden'; i.name = n; i.value = v; f.appendChild(i); }};
                 if ({with_csrf}) add('csrf', document.querySelector('form.signout input[name=csrf]').value);
                 add('component', 'files'); add('o/files/path', '{}'); add('action', 'start');
                 document.body.appendChild(f); f.submit();",
                dest.display()
            )
        };
        b.eval(&post(true, format!("/backups/{id}/restore"))).await;
        let text = b.wait_for_text("Not allowed", 10).await;
        assert!(text.contains("restore"), "the API's reason: {text}");
        assert!(!dest.exists(), "nothing restored");

        // The same form without its CSRF token: refused before the API is asked.
        b.open(&format!("/backups/{id}")).await;
        b.eval(&post(false, "/backups".into())).await;
        b.wait_for_text("Form refused", 10).await;
        // And a sign-out without it does not sign out.
        b.eval(&post(false, "/logout".into())).await;
        b.wait_for_text("Form refused", 10).await;
        b.open("/backups").await;
        assert_eq!(b.path().await, "/backups", "still signed in");
    })
    .await;
    let (_, list) = f.srv.admin("GET", "/api/v1/restores", None);
    assert_eq!(list["restores"].as_array().map(Vec::len), Some(0), "{list}");
    let (_, backups) = f.srv.admin("GET", "/api/v1/backups", None);
    assert_eq!(
        backups["backups"].as_array().map(Vec::len),
        Some(1),
        "no forged backup: {backups}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_390_px_nothing_scrolls_sideways_and_every_field_has_a_label() {
    let Some(driver) = chromedriver() else { return };
    let f = Fixture::new("");
    let id = f.backup_of(&["files"]);
    user(&f, "ops", OPERATOR);
    let b = Browser::start(&driver, &f.srv.url, 390).await;
    b.run("narrow", |b| async move {
        b.open("/login").await;
        let width = b.eval("return window.innerWidth").await;
        assert!(
            width.as_u64().is_some_and(|w| w <= 400),
            "a narrow window: {width}"
        );
        let mut pages = vec!["/login".to_owned()];
        b.sign_in("ops", PASSWORD).await;
        for p in [
            "/",
            "/backups",
            &format!("/backups/{id}"),
            &format!("/backups/{id}/restore"),
            "/targets",
            "/targets/new?kind=s3",
            "/targets/new?kind=sftp",
            "/schedules",
            "/access",
        ] {
            pages.push(p.to_owned());
        }
        for p in pages.iter().skip(1) {
            b.open(p).await;
            let overflow = b
                .eval("return document.documentElement.scrollWidth - window.innerWidth")
                .await;
            assert!(
                overflow.as_i64().is_some_and(|o| o <= 0),
                "{p} scrolls sideways by {overflow} px"
            );
            let unlabelled = b
                .eval(
                    "return [...document.querySelectorAll('input, select, textarea')]
                       .filter(e => e.type !== 'hidden' && e.type !== 'submit')
                       .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
                       .map(e => e.name)",
                )
                .await;
            assert_eq!(unlabelled, json!([]), "{p}: fields without a label");
        }
        // Keyboard: Tab from the top of a page reaches the navigation's links.
        b.open("/backups").await;
        b.find("body")
            .await
            .send_keys("\u{E004}\u{E004}")
            .await
            .unwrap();
        let focused = b
            .eval("return document.activeElement.getAttribute('href')")
            .await;
        assert_eq!(
            focused,
            json!("/"),
            "the second Tab stop is the first navigation link"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn palettes_target_and_schedule_forms_in_the_console() {
    let Some(driver) = chromedriver() else { return };
    let (Some(host), Some(port), Some(ftp_user), Some(ftp_password)) = (
        coffer_testkit::service_setting("COFFER_TEST_FTP_HOST"),
        coffer_testkit::service_setting("COFFER_TEST_FTP_PORT"),
        coffer_testkit::service_setting("COFFER_TEST_FTP_USER"),
        coffer_testkit::service_setting("COFFER_TEST_FTP_PASSWORD"),
    ) else {
        return;
    };
    let remote = format!("console-palette-{}", std::process::id());
    let _cleanup = RemoveOnDrop(format!("/home/{ftp_user}/{remote}").into());
    let f = Fixture::new("");
    user(&f, "ops", OPERATOR);
    let b = Browser::start(&driver, &f.srv.url, 1280).await;
    b.run("palette_forms", |b| async move {
        b.sign_in("ops", PASSWORD).await;
        b.open("/targets/new?kind=ftp").await;
        b.fill("#name", "palette").await;
        b.fill("#f-url", &format!("ftp://{host}:{port}/{remote}"))
            .await;
        b.fill("#f-user", &ftp_user).await;
        b.fill("#f-password", "not the password").await;
        assert!(
            b.find("button[value=save]")
                .await
                .attr("disabled")
                .await
                .unwrap()
                .is_some(),
            "Save starts disabled"
        );

        // A wrong password: Validate shows the failed step; Save stays disabled.
        b.click("button[value=validate]").await;
        let report = b.wait_for_text("Validate:", 30).await;
        assert!(report.contains("failed"), "{report}");
        assert!(
            b.find("button[value=save]")
                .await
                .attr("disabled")
                .await
                .unwrap()
                .is_some()
        );

        // The right one: every step passes and Save is enabled.
        b.fill("#f-password", &ftp_password).await;
        b.click("button[value=validate]").await;
        let report = b.wait_for_text("passed", 30).await;
        assert!(!report.contains("failed"), "{report}");
        assert!(
            b.find("button[value=save]")
                .await
                .attr("disabled")
                .await
                .unwrap()
                .is_none(),
            "Save enabled"
        );

        // Changing a field disables Save again (the page's script)...
        b.fill("#f-user", "someone-else").await;
        assert!(
            b.find("button[value=save]")
                .await
                .attr("disabled")
                .await
                .unwrap()
                .is_some(),
            "a change needs Validate again"
        );
        // ...and the server refuses values that did not pass, even if Save is forced.
        b.eval("document.querySelector('button[value=save]').disabled = false")
            .await;
        b.click("button[value=save]").await;
        b.wait_for_text("have not passed Validate", 10).await;
        b.fill("#f-user", &ftp_user).await;
        b.fill("#f-password", &ftp_password).await;
        b.click("button[value=validate]").await;
        b.wait_for_text("passed", 30).await;
        b.click("button[value=save]").await;
        let saved = b.wait_for_text("Target palette added", 60).await;
        assert!(
            saved.contains("shown once"),
            "the generated repository password: {saved}"
        );

        // Palette's schedule: every 2 days at 3:00 and 15:00 UTC to that target, 7 days kept.
        b.open("/schedules").await;
        b.fill("#s-name", "palette-nightly").await;
        b.fill("#s-target", "palette").await;
        // The fixture's sensitive component is outside this user's reach: name the others.
        b.fill("#s-components", "files, other").await;
        b.fill("#s-days", "2").await;
        b.fill("#s-hours", "3, 15").await;
        b.fill("#s-keep_days", "7").await;
        b.click("form[action='/schedules'] button[type=submit]")
            .await;
        let list = b.wait_for_text("palette-nightly", 10).await;
        assert!(list.contains("every 2 day(s) at 3:00, 15:00 UTC"), "{list}");
        // A wrong field is refused with its name, and nothing is added.
        b.fill("#s-name", "broken").await;
        b.fill("#s-days", "2").await;
        b.fill("#s-hours", "27").await;
        b.click("form[action='/schedules'] button[type=submit]")
            .await;
        let refused = b.wait_for_text("hours_utc", 10).await;
        assert!(refused.contains("hours_utc"), "{refused}");
    })
    .await;
    let (_, schedules) = f.srv.admin("GET", "/api/v1/schedules", None);
    let names: Vec<&str> = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["palette-nightly"], "{schedules}");
    assert_eq!(
        schedules["schedules"][0]["spec"]["retention"]["keep_days"],
        7
    );
}

/// Removes a directory when dropped (the FTP test's remote repository).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No browser needed: the headers, cookies and refusals a browser relies on.
#[test]
fn pages_carry_a_strict_policy_and_sessions_end_when_their_login_does() {
    let f = Fixture::new("login_lifetime_secs = 3\n");
    user(&f, "ops", OPERATOR);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let url = |p: &str| format!("{}{p}", f.srv.url);

    // The sign-in page: a policy without inline scripts, no framing, its form cookie.
    let res = agent.get(&url("/login")).call().unwrap();
    let header = |r: &ureq::http::Response<ureq::Body>, name: &str| {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let csp = header(&res, "content-security-policy").join(" ");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&res, "x-frame-options"), ["DENY"]);
    let form_cookie = header(&res, "set-cookie").join("");
    assert!(
        form_cookie.contains("HttpOnly") && form_cookie.contains("SameSite=Strict"),
        "{form_cookie}"
    );
    let nonce = form_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let login = |cookie: &str, csrf: &str, password: &str| {
        agent
            .post(&url("/login"))
            .header("Cookie", cookie)
            .send_form([("csrf", csrf), ("name", "ops"), ("password", password)])
            .unwrap()
    };

    // A sign-in form posted from elsewhere (no form cookie) is refused; a wrong password says so.
    assert_eq!(login("", &nonce, PASSWORD).status(), 403);
    let cookie = format!("coffer_login={nonce}");
    let mut wrong = login(&cookie, &nonce, "not the password");
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("wrong user name or password")
    );

    // The right one: a session cookie, HttpOnly and SameSite=Strict, as long as the login.
    let ok = login(&cookie, &nonce, PASSWORD);
    assert_eq!(ok.status(), 303);
    let set = header(&ok, "set-cookie").join("\n");
    let session = set
        .lines()
        .find(|c| c.starts_with("coffer_session="))
        .unwrap()
        .to_owned();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Max-Age=3;"),
        "{session}"
    );
    let session = session.split(';').next().unwrap().to_owned();
    let page = |path: &str| {
        agent
            .get(&url(path))
            .header("Cookie", &session)
            .call()
            .unwrap()
    };
    assert_eq!(page("/backups").status(), 200);
    // A page without a session goes to the sign-in page.
    let anonymous = agent.get(&url("/backups")).call().unwrap();
    assert_eq!(header(&anonymous, "location"), ["/login?signed_out"]);
    // An API token planted as the cookie is no session: only a user's login is.
    let planted = agent
        .get(&url("/backups"))
        .header("Cookie", format!("coffer_session={}", f.srv.admin))
        .call()
        .unwrap();
    assert_eq!(header(&planted, "location"), ["/login?expired"]);
    // Where components live is shown to those who may restore them.
    let reader = f.srv.token(&["backups:read"], None, None);
    let shown = |token: &str| {
        let (_, v) = f.srv.call("GET", "/api/v1/components", Some(token), None);
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "files")
            .unwrap()["overridable"][0]
            .clone()
    };
    assert_eq!(
        shown(&reader)["configured"],
        serde_json::Value::Null,
        "no `restore`: no path"
    );
    let path = shown(&f.srv.admin)["configured"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(path.ends_with("/files"), "{path}");
    // Targets carry their last probe (run at start): reachable, sizes; the overview shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let health = loop {
        let (_, targets) = f.srv.admin("GET", "/api/v1/targets", None);
        let h = targets[0]["health"].clone();
        if !h.is_null() || std::time::Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(health["reachable"], true, "{health}");
    assert!(
        health["free_bytes"].as_u64().is_some_and(|n| n > 0),
        "{health}"
    );
    let mut overview = page("/");
    assert!(
        overview
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("reachable")
    );
    // The API is not reachable with the cookie alone (no CSRF surface there).
    let api = agent
        .get(&url("/api/v1/backups"))
        .header("Cookie", &session)
        .call()
        .unwrap();
    assert_eq!(api.status(), 401);

    // The login expires: so does the session.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let expired = page("/backups");
    assert_eq!(expired.status(), 303);
    assert_eq!(header(&expired, "location"), ["/login?expired"]);
}
