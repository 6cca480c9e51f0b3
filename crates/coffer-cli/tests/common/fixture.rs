//! A server with a files component, a command component and a sensitive
//! one — what the access and limit tests work against.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, small_dir, write_config_with};

/// A server with a files component, a command component and a sensitive
/// one, restores allowed below `<tmp>/restores`.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub srv: Server,
    pub identity: coffer_engine::AgeIdentity,
}

impl Fixture {
    pub fn new(extra_server: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let files = small_dir(tmp.path());
        let keys = tmp.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("k"), b"secret").unwrap();
        std::fs::create_dir_all(tmp.path().join("restores")).unwrap();
        let identity = coffer_engine::AgeIdentity::generate();
        let config = write_config_with(
            tmp.path(),
            &format!(
                "restore_roots = [\"{}\"]\n{extra_server}",
                tmp.path().join("restores").display()
            ),
            &format!(
                "[sensitive]\nrecipients = [\"{}\"]\n\n\
                 [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
                 [[components]]\nname = \"other\"\nkind = \"command\"\nbackup = [\"echo\", \"other\"]\n\
                 restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
                 [[components]]\nname = \"keys\"\nkind = \"files\"\npath = \"{}\"\nsensitive = true\n",
                identity.recipient(),
                files.display(),
                keys.display()
            ),
        );
        let srv = Server::start(&config);
        Self { tmp, srv, identity }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("restores")
    }

    /// A READY backup of `components`, once no other job holds them.
    pub fn backup_of(&self, components: &[&str]) -> String {
        let body = json!({ "label": "authz", "components": components });
        let id = when_free(|| self.srv.admin("POST", "/api/v1/backups", Some(&body)));
        let b = self
            .srv
            .wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 120);
        assert_eq!(b["status"], "READY", "{b:#}");
        id
    }
}

/// Repeats a job request answered 409 (another job holds what it needs)
/// until it is accepted; returns the job's id.
pub fn when_free(call: impl Fn() -> (u16, Value)) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, v) = call();
        if code == 202 {
            return v["id"].as_str().unwrap().to_owned();
        }
        assert!(code == 409 && Instant::now() < deadline, "{code} {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
