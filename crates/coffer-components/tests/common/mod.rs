//! Shared set-up for the component tests: a fresh repository per test, and
//! backup/restore through the public API exactly as the server will call it.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_components::{
    BackupContext, ComponentError, PortableFile, RestoreContext, RestoreOptions, RestoreReport,
    RestoreSource,
};
use coffer_engine::{AgeIdentity, Repo, SnapshotFilter, SnapshotInfo};
use coffer_model::component::{ComponentSpec, parse_components};
use coffer_model::{BackupId, BackupRef, Label};
use coffer_targets::LocalStorage;

pub const PW: &str = "component test password";

/// A repository and a staging directory in a temporary directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub repo: Repo,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repo::init(Arc::new(LocalStorage::new(tmp.path().join("repo"))), PW)
            .expect("init repository");
        Self { tmp, repo }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn staging(&self) -> PathBuf {
        self.tmp.path().join("staging")
    }

    pub fn backup(&self, spec: &ComponentSpec) -> Result<SnapshotInfo, ComponentError> {
        let id = BackupId::generate(&Label::new("test").expect("label"));
        let bref = BackupRef::new(id, spec.name.clone(), 1);
        let staging = self.staging();
        coffer_components::backup(
            spec,
            &BackupContext {
                repo: &self.repo,
                backup: &bref,
                staging_dir: &staging,
                progress: None,
            },
        )
    }

    pub fn restore(
        &self,
        spec: &ComponentSpec,
        snapshot: &SnapshotInfo,
        options: &RestoreOptions,
    ) -> Result<RestoreReport, ComponentError> {
        let staging = self.staging();
        coffer_components::restore(
            spec,
            &RestoreContext {
                source: RestoreSource::Snapshot {
                    repo: &self.repo,
                    snapshot,
                },
                staging_dir: &staging,
                options,
                progress: None,
                part: None,
            },
        )
    }

    /// Restores from a local file (an upload), as the server and
    /// `coffer restore --from-file` do; the file is sealed when `identity`
    /// is given.
    pub fn restore_file(
        &self,
        spec: &ComponentSpec,
        path: &Path,
        options: &RestoreOptions,
        identity: Option<Arc<AgeIdentity>>,
    ) -> Result<RestoreReport, ComponentError> {
        let staging = self.staging();
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        let file = PortableFile {
            path: path.to_path_buf(),
            file_name,
            content: coffer_components::native_content(spec),
            sealed: identity.is_some(),
            identity,
        };
        coffer_components::restore(
            spec,
            &RestoreContext {
                source: RestoreSource::File(&file),
                staging_dir: &staging,
                options,
                progress: None,
                part: None,
            },
        )
    }

    /// Writes `data` to `name` in the fixture's directory.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, data).expect("write file");
        path
    }

    /// Writes `data` sealed to `identity` (an age file) to `name`.
    pub fn sealed_file(&self, name: &str, data: &[u8], identity: &AgeIdentity) -> PathBuf {
        use std::io::Write;
        let path = self.path(name);
        let recipients =
            coffer_engine::AgeRecipients::parse(&[identity.recipient()]).expect("recipient");
        let out = std::fs::File::create(&path).expect("create sealed file");
        let mut w = recipients
            .encryptor()
            .expect("encryptor")
            .wrap_output(out)
            .expect("age header");
        w.write_all(data).expect("seal");
        w.finish().expect("finish seal");
        path
    }

    /// Snapshots recorded so far (a failed backup must add none).
    pub fn snapshot_count(&self) -> usize {
        self.repo
            .snapshots(&SnapshotFilter::default())
            .expect("list snapshots")
            .len()
    }

    /// No staging leftovers, and plain restic accepts the repository.
    pub fn assert_clean(&self) {
        if let Ok(entries) = std::fs::read_dir(self.staging()) {
            let left: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            assert!(left.is_empty(), "staging leftovers: {left:?}");
        }
        coffer_testkit::restic_check(&self.tmp.path().join("repo"), PW);
    }
}

/// Parses one `[[components]]` entry written in TOML.
pub fn spec(toml: &str) -> ComponentSpec {
    let mut specs = parse_components(&format!("[[components]]\n{toml}")).expect("valid spec");
    specs.remove(0)
}

/// Runs a shell command, panicking with its output unless it succeeds;
/// returns standard output.
pub fn sh(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Compares two dumps without printing megabytes: the first differing line.
pub fn assert_same(expected: &str, actual: &str, what: &str) {
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{what}: dumps differ at line {line}: {:?} vs {:?} ({} vs {} bytes)",
            expected.lines().nth(line),
            actual.lines().nth(line),
            expected.len(),
            actual.len()
        );
    }
}
