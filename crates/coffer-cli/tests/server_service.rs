//! Coffer under a service manager: readiness told through `NOTIFY_SOCKET`
//! (systemd's `Type=notify`, as `examples/systemd/coffer.service` uses it),
//! and the whole job — back up, restore — run by an unprivileged user.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::{Server, small_dir, write_config_with};
use serde_json::json;

fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_and_stopping_are_told_to_the_service_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let config = write_config_with(tmp.path(), "", "");
    let srv = Server::start_env(&config, &[("NOTIFY_SOCKET", &socket_path)]);
    assert!(next_message(&socket).contains("READY=1"));
    // Ready means serving.
    assert_eq!(srv.call("GET", "/healthz", None, None).0, 200);
    drop(srv); // SIGTERM
    assert!(next_message(&socket).contains("STOPPING=1"));
}

/// The unprivileged user the test runs the server as, when it runs as root.
const NOBODY: u32 = 65534;

fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

#[test]
fn an_unprivileged_user_runs_the_whole_job() {
    let tmp = tempfile::tempdir().unwrap();
    let src = small_dir(tmp.path());
    let restored = tmp.path().join("restored");
    let config = write_config_with(
        tmp.path(),
        "",
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            src.display()
        ),
    );
    let root = rustix::process::geteuid().is_root();
    let wrapper = tmp.path().join("as-nobody");
    let srv = if root {
        // The binary is copied where the user can run it (the build
        // directory is under root's home), and the user owns the tree.
        let bin = tmp.path().join("coffer");
        std::fs::copy(common::coffer_bin(), &bin).unwrap();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nshift\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \
                 --inh-caps=-all {} \"$@\"\n",
                bin.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        chown_tree(tmp.path());
        Server::start_wrapped(&config, &[wrapper.to_str().unwrap()])
    } else {
        Server::start(&config)
    };
    let b = srv.backup(&json!({ "label": "unprivileged", "components": ["files"] }));
    assert_eq!(b["status"], "READY", "{b}");
    let id = b["id"].as_str().unwrap();
    let (code, r) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({ "components": ["files"], "overrides": { "files": { "path": restored } } })),
    );
    assert_eq!(code, 202, "{r}");
    let r = srv.wait_restore(r["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r}");
    assert_eq!(
        std::fs::read(restored.join("a")).ok(),
        std::fs::read(src.join("a")).ok()
    );
    let catalog = std::fs::metadata(tmp.path().join("data/catalog.sqlite")).unwrap();
    assert_eq!(catalog.mode() & 0o777, 0o600);
    if root {
        assert_eq!(catalog.uid(), NOBODY, "the server ran as the user");
        assert_eq!(std::fs::metadata(restored.join("a")).unwrap().uid(), NOBODY);
    }
}
