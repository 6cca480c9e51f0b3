//! The storage conformance suite (`coffer_testkit::storage`) against every
//! backend: a local directory, S3 (Garage), SFTP (OpenSSH, password login),
//! FTP and FTPS (vsftpd, CA-verified) from scripts/services.sh. Each test only
//! says how to reach its server; the contract is asserted once, in the suite.
//! Outside CI a missing server skips loudly; under `CI=true` it fails.

use std::path::PathBuf;
use std::time::Duration;

use coffer_targets::{
    FtpSettings, FtpStorage, FtpTls, LocalStorage, RetryPolicy, S3Settings, S3Storage, SftpAuth,
    SftpSettings, SftpStorage, Storage,
};
use coffer_testkit::service_setting;
use coffer_testkit::storage::{LARGE, conformance, unique};
use coffer_testkit::tree::random_bytes;

/// Removes a directory when dropped, also when the suite panics.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Quick retries: the servers are local.
fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(50),
        cap: Duration::from_millis(200),
    }
}

#[test]
fn local_storage_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let s = LocalStorage::new(&root);
    assert!(s.location().starts_with("local:/"), "{}", s.location());
    conformance(&s);
    // Every temporary was renamed into place or removed.
    let left: Vec<_> = std::fs::read_dir(root.join("coffer/tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

/// S3 settings from the environment, under a fresh prefix of the test bucket.
fn s3() -> Option<S3Settings> {
    let mut s = S3Settings::new(
        &service_setting("COFFER_TEST_S3_ENDPOINT")?,
        &service_setting("COFFER_TEST_S3_REGION")?,
        &service_setting("COFFER_TEST_S3_BUCKET")?,
        &service_setting("COFFER_TEST_S3_ACCESS_KEY")?,
        &service_setting("COFFER_TEST_S3_SECRET_KEY")?,
    );
    s.prefix = unique("conformance");
    s.retry = retry();
    Some(s)
}

#[test]
fn s3_storage_conforms() {
    let Some(mut settings) = s3() else { return };
    // The suite's large object goes up as a two-part multipart upload
    // (5 MiB + 12 345 bytes), everything else as single PUTs.
    settings.multipart_threshold = 1 << 20;
    settings.part_size = 5 << 20;
    let s = S3Storage::new(settings).unwrap();
    assert!(s.location().starts_with("s3:http://"), "{}", s.location());
    let wipe = WipeOnDrop(s);
    let s = &wipe.0;
    conformance(s);

    // The large size really is a multipart upload of two parts: S3's ETag of
    // a multipart object ends in `-<parts>`.
    let big = random_bytes(11, LARGE);
    s.put("multipart", &big).unwrap();
    let listed = s.client().list("multipart").unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].etag.trim_matches('"').ends_with("-2"),
        "not a two-part upload: {listed:?}"
    );
    assert!(s.get("multipart").unwrap() == big);
    s.delete("multipart").unwrap();
    assert!(s.list("").unwrap().is_empty(), "the suite left objects");
}

/// Deletes every object under the storage's prefix when dropped, also when
/// the suite panics.
struct WipeOnDrop(S3Storage);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        for o in self.0.list("").unwrap_or_default() {
            let _ = self.0.delete(&o.key);
        }
    }
}

/// SFTP settings (password login) from the environment, in a fresh
/// directory; the server runs on this machine, so the path is local too.
fn sftp() -> Option<SftpSettings> {
    let user = service_setting("COFFER_TEST_SFTP_USER")?;
    let host_key = std::fs::read_to_string(service_setting("COFFER_TEST_SFTP_HOST_KEY_PUB")?)
        .expect("reading the SFTP server's host key");
    let mut s = SftpSettings::new(
        &service_setting("COFFER_TEST_SFTP_HOST")?,
        service_setting("COFFER_TEST_SFTP_PORT")?.parse().ok()?,
        &user,
        SftpAuth::Password(service_setting("COFFER_TEST_SFTP_PASSWORD")?),
        host_key.trim(),
        &format!("/home/{user}/{}", unique("conformance")),
    );
    s.retry = retry();
    s.timeout = Duration::from_secs(10);
    Some(s)
}

#[test]
fn sftp_storage_conforms() {
    let Some(settings) = sftp() else { return };
    let _remove = RemoveDir(settings.directory.clone().into());
    let s = SftpStorage::new(settings).unwrap();
    assert!(s.location().starts_with("sftp://"), "{}", s.location());
    conformance(&s);
}

/// FTP settings from the environment, with `tls`, in a fresh directory;
/// also where the server keeps that directory (the user is chrooted to its
/// home on this machine).
fn ftp(name: &str, tls: bool) -> Option<(FtpSettings, PathBuf)> {
    let host = service_setting("COFFER_TEST_FTP_HOST")?;
    let port = service_setting("COFFER_TEST_FTP_PORT")?.parse().ok()?;
    let user = service_setting("COFFER_TEST_FTP_USER")?;
    let password = service_setting("COFFER_TEST_FTP_PASSWORD")?;
    let ca = service_setting("COFFER_TEST_FTPS_CA")?;
    let dir = format!("/{}", unique(name));
    let mut s = FtpSettings::new(&host, port, &user, &password, &dir);
    s.retry = retry();
    s.timeout = Duration::from_secs(10);
    if tls {
        s.tls = FtpTls::Explicit {
            verify: true,
            ca_file: Some(ca.into()),
        };
    }
    Some((s, PathBuf::from(format!("/home/{user}{dir}"))))
}

#[test]
fn ftp_storage_conforms() {
    let Some((settings, local)) = ftp("conformance", false) else {
        return;
    };
    let _remove = RemoveDir(local);
    let s = FtpStorage::new(settings).unwrap();
    assert!(s.location().starts_with("ftp://"), "{}", s.location());
    conformance(&s);
}

#[test]
fn ftps_storage_conforms() {
    let Some((settings, local)) = ftp("conformance-tls", true) else {
        return;
    };
    let _remove = RemoveDir(local);
    let s = FtpStorage::new(settings).unwrap();
    assert!(s.location().starts_with("ftps://"), "{}", s.location());
    conformance(&s);
}
