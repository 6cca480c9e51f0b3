//! `--repo` locations: a local directory, or a network target written the
//! way restic writes them, with credentials from the environment.
//!
//! | `--repo` | target | credentials |
//! |----------|--------|-------------|
//! | `/srv/backups/app` | local directory | — |
//! | `s3:https://host[:port]/bucket[/prefix]` | S3-compatible | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION` (default `us-east-1`) |
//! | `ftp://user@host[:port]/dir`, `ftps://…` | FTP, explicit FTPS | `COFFER_FTP_PASSWORD`; `COFFER_FTPS_CA_FILE`, `COFFER_FTPS_INSECURE=1` |
//! | `sftp://user@host[:port]/dir` (`//dir` for an absolute path) | SFTP | `COFFER_SFTP_HOST_KEY` (required); `COFFER_SFTP_PASSWORD` or `COFFER_SFTP_KEY_FILE` (+ `COFFER_SFTP_KEY_PASSPHRASE`) |

use std::path::PathBuf;
use std::sync::Arc;

use coffer_targets::{
    FtpSettings, FtpStorage, FtpTls, LocalStorage, OpenTarget, S3Settings, S3Storage, SftpAuth,
    SftpSettings, SftpStorage,
};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (needed for this --repo)"))
}

/// Parses `--repo` into an opened target.
pub fn parse(repo: &str) -> anyhow::Result<OpenTarget> {
    if let Some(rest) = repo.strip_prefix("s3:") {
        let (scheme, rest) = rest.split_once("://").ok_or_else(|| {
            anyhow::anyhow!("--repo {repo:?}: expected s3:https://host/bucket[/prefix]")
        })?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if host.is_empty() || bucket.is_empty() {
            anyhow::bail!("--repo {repo:?}: expected s3:https://host/bucket[/prefix]");
        }
        let region = std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into());
        let mut s = S3Settings::new(
            &format!("{scheme}://{host}"),
            &region,
            bucket,
            &env("AWS_ACCESS_KEY_ID")?,
            &env("AWS_SECRET_ACCESS_KEY")?,
        );
        s.prefix = prefix.to_owned();
        return Ok(OpenTarget::S3(Arc::new(S3Storage::new(s)?)));
    }
    let ftp = repo.strip_prefix("ftp://").map(|r| (r, false));
    let ftps = repo.strip_prefix("ftps://").map(|r| (r, true));
    if let Some((rest, tls)) = ftp.or(ftps) {
        let (authority, dir) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            anyhow::anyhow!("--repo {repo:?}: expected ftp://user@host[:port]/dir")
        })?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| anyhow::anyhow!("--repo {repo:?}: bad port {p:?}"))?,
            ),
            None => (hostport, 21),
        };
        let mut s = FtpSettings::new(
            host,
            port,
            user,
            &env("COFFER_FTP_PASSWORD")?,
            &format!("/{dir}"),
        );
        if tls {
            s.tls = FtpTls::Explicit {
                verify: std::env::var("COFFER_FTPS_INSECURE").map_or(true, |v| v != "1"),
                ca_file: std::env::var_os("COFFER_FTPS_CA_FILE").map(PathBuf::from),
            };
        }
        return Ok(OpenTarget::Ftp(Arc::new(FtpStorage::new(s)?)));
    }
    if let Some(rest) = repo.strip_prefix("sftp://") {
        let (authority, dir) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            anyhow::anyhow!("--repo {repo:?}: expected sftp://user@host[:port]/dir")
        })?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| anyhow::anyhow!("--repo {repo:?}: bad port {p:?}"))?,
            ),
            None => (hostport, 22),
        };
        let auth = match std::env::var_os("COFFER_SFTP_KEY_FILE") {
            Some(path) => SftpAuth::Key {
                path: PathBuf::from(path),
                passphrase: std::env::var("COFFER_SFTP_KEY_PASSPHRASE").ok(),
            },
            None => SftpAuth::Password(env("COFFER_SFTP_PASSWORD").map_err(|_| {
                anyhow::anyhow!(
                    "set COFFER_SFTP_PASSWORD or COFFER_SFTP_KEY_FILE for an sftp:// --repo"
                )
            })?),
        };
        let host_key = env("COFFER_SFTP_HOST_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "set COFFER_SFTP_HOST_KEY to the server's key fingerprint (ssh-keyscan -p PORT HOST | ssh-keygen -lf -) or public key line"
                )
            })?;
        let s = SftpSettings::new(host, port, user, auth, &host_key, dir);
        return Ok(OpenTarget::Sftp(Arc::new(SftpStorage::new(s)?)));
    }
    if repo.contains("://") {
        anyhow::bail!(
            "--repo {repo:?}: unknown scheme (a directory, s3:…, sftp://…, ftp://… or ftps://…)"
        );
    }
    Ok(OpenTarget::Local(Arc::new(LocalStorage::new(repo))))
}
