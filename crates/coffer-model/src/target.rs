//! Target specs: where repositories live, declared under `[[targets]]` in
//! `coffer.toml`. Parsed and validated here; coffer-targets opens them.
//!
//! ```toml
//! [[targets]]
//! name = "offsite"
//! kind = "s3"
//! endpoint = "https://s3.eu-west-1.amazonaws.com"
//! region = "eu-west-1"
//! bucket = "acme-backups"
//! prefix = "app1"
//! access_key = { env = "S3_KEY" }
//! secret_key = { file = "/run/secrets/s3" }
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ComponentName;
use crate::component::{Secret, SpecError, parse_section};

/// A named target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSpec {
    /// Unique among targets (same rules as component names).
    pub name: ComponentName,
    /// The kind and its settings.
    pub kind: TargetKind,
}

/// The kinds of target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetKind {
    /// A local (or locally mounted) directory.
    Local(LocalTarget),
    /// An S3-compatible bucket.
    S3(S3Target),
    /// A directory on an SFTP server.
    Sftp(SftpTarget),
    /// A directory on an FTP or FTPS server.
    Ftp(FtpTarget),
}

/// `kind = "local"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    /// The repository directory (absolute).
    pub path: PathBuf,
}

fn us_east_1() -> String {
    "us-east-1".to_owned()
}
fn yes() -> bool {
    true
}
fn ssh_port() -> u16 {
    22
}
fn ftp_port() -> u16 {
    21
}

/// `kind = "s3"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// Endpoint URL.
    pub endpoint: String,
    /// Signing region.
    #[serde(default = "us_east_1")]
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Key prefix in the bucket.
    #[serde(default)]
    pub prefix: String,
    /// Access key id.
    pub access_key: Secret,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style URLs (default) or virtual-host style.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// `x-amz-storage-class` for new objects.
    #[serde(default)]
    pub storage_class: Option<String>,
}

/// `kind = "sftp"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpTarget {
    /// Server host.
    pub host: String,
    /// SSH port.
    #[serde(default = "ssh_port")]
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (or use `private_key`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Private key file.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// The key's passphrase.
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// The pinned host key: `SHA256:…` fingerprint or public key line. Required.
    pub host_key: String,
    /// Repository directory.
    pub directory: String,
}

/// FTPS mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FtpTlsMode {
    /// Plain FTP.
    #[default]
    None,
    /// Explicit FTPS (`AUTH TLS`), required.
    Explicit,
}

/// `kind = "ftp"`. Also written with one `url = "ftp://host:21/dir"` (or
/// `ftps://…`, explicit TLS) in place of `host`, `port`, `directory` and
/// `tls`, as Palette's form asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FtpSettings")]
pub struct FtpTarget {
    /// Server host.
    pub host: String,
    /// Control port.
    #[serde(default = "ftp_port")]
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Repository directory.
    pub directory: String,
    /// `none` or `explicit`.
    #[serde(default)]
    pub tls: FtpTlsMode,
    /// Verify the server certificate (default true).
    #[serde(default = "yes")]
    pub verify_certificate: bool,
    /// CA certificates (PEM) to verify against instead of the web PKI.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Passive mode (default true).
    #[serde(default = "yes")]
    pub passive: bool,
}

/// `kind = "ftp"` as written: either `url` or `host` + `directory`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FtpSettings {
    url: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    user: String,
    password: Secret,
    directory: Option<String>,
    tls: Option<FtpTlsMode>,
    #[serde(default = "yes")]
    verify_certificate: bool,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "yes")]
    passive: bool,
}

impl TryFrom<FtpSettings> for FtpTarget {
    type Error = String;

    fn try_from(s: FtpSettings) -> Result<Self, String> {
        let (host, port, directory, tls) = match s.url {
            Some(url) => {
                if s.host.is_some() || s.port.is_some() || s.directory.is_some() || s.tls.is_some()
                {
                    return Err(
                        "give either `url` or `host`/`port`/`directory`/`tls`, not both".into(),
                    );
                }
                parse_ftp_url(&url)?
            }
            None => (
                s.host.ok_or("missing field `host` (or give `url`)")?,
                s.port.unwrap_or_else(ftp_port),
                s.directory
                    .ok_or("missing field `directory` (or give `url`)")?,
                s.tls.unwrap_or_default(),
            ),
        };
        Ok(Self {
            host,
            port,
            user: s.user,
            password: s.password,
            directory,
            tls,
            verify_certificate: s.verify_certificate,
            ca_file: s.ca_file,
            passive: s.passive,
        })
    }
}

/// `ftp://host[:port]/dir` or `ftps://…` (explicit TLS on the control
/// port, 21 by default) → host, port, directory, TLS.
fn parse_ftp_url(url: &str) -> Result<(String, u16, String, FtpTlsMode), String> {
    // A URL with credentials is not echoed: error messages end up in logs.
    let shown = if url.contains('@') {
        "(not shown: it holds credentials)".to_owned()
    } else {
        format!("{url:?}")
    };
    let bad = |why: &str| format!("`url` {shown}: {why} (ftp://host:21/dir or ftps://host:21/dir)");
    let (tls, rest) = if let Some(r) = url.strip_prefix("ftp://") {
        (FtpTlsMode::None, r)
    } else if let Some(r) = url.strip_prefix("ftps://") {
        (FtpTlsMode::Explicit, r)
    } else {
        return Err(bad("not an ftp:// or ftps:// URL"));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(bad(
            "credentials go in `user` and `password`, not in the URL",
        ));
    }
    if url.contains(['?', '#']) {
        return Err(bad("no query or fragment"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        ),
        _ => (authority, ftp_port()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let directory = format!("/{}", path.trim_end_matches('/'));
    Ok((host.to_owned(), port, directory, tls))
}

/// A target declared in `coffer.toml`, with what the server needs besides
/// its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTarget {
    /// Where and how.
    pub spec: TargetSpec,
    /// The repository's password: needed to attach an existing repository;
    /// for a new one optional (the server generates one and shows it once).
    pub repository_password: Option<Secret>,
    /// Backups that name no target go here.
    pub default: bool,
}

/// Parses and validates the `[[targets]]` of a `coffer.toml` as the server
/// reads them: each spec plus `repository_password` and `default`.
pub fn parse_declared_targets(toml_text: &str) -> Result<Vec<DeclaredTarget>, SpecError> {
    let declared = parse_section(
        toml_text,
        "targets",
        "target",
        TARGET_KIND_NAMES,
        |name, mut table, fail| {
            let repository_password = table
                .remove("repository_password")
                .map(|v| {
                    v.try_into::<Secret>()
                        .map_err(|e| fail(format!("`repository_password`: {}", e.message().trim())))
                })
                .transpose()?;
            let default = match table.remove("default") {
                None => false,
                Some(toml::Value::Boolean(b)) => b,
                Some(_) => return Err(fail("`default` must be true or false".into())),
            };
            let kind: TargetKind = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| fail(e.message().trim().to_owned()))?;
            validate_kind(&kind).map_err(fail)?;
            Ok(DeclaredTarget {
                spec: TargetSpec { name, kind },
                repository_password,
                default,
            })
        },
    )?;
    if declared.iter().filter(|t| t.default).count() > 1 {
        return Err(SpecError::Toml(
            "`default = true` is set on more than one [[targets]]: choose one".into(),
        ));
    }
    Ok(declared)
}

/// Every target kind name, for messages.
pub const TARGET_KIND_NAMES: &[&str] = &["local", "s3", "sftp", "ftp"];

/// Parses and validates the `[[targets]]` of a `coffer.toml`.
pub fn parse_targets(toml_text: &str) -> Result<Vec<TargetSpec>, SpecError> {
    parse_section(
        toml_text,
        "targets",
        "target",
        TARGET_KIND_NAMES,
        |name, table, fail| {
            let kind: TargetKind = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| fail(e.message().trim().to_owned()))?;
            validate_kind(&kind).map_err(fail)?;
            Ok(TargetSpec { name, kind })
        },
    )
}

/// Checks what serde cannot (absolute paths, URLs, one SFTP credential).
pub fn validate_kind(kind: &TargetKind) -> Result<(), String> {
    match kind {
        TargetKind::Local(l) if !l.path.is_absolute() => {
            Err(format!("`path` must be an absolute path, not {:?}", l.path))
        }
        TargetKind::S3(s) if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")) => {
            Err(format!("`endpoint` must be an http:// or https:// URL, not {:?}", s.endpoint))
        }
        TargetKind::S3(s) => {
            crate::s3::check_bucket_name(&s.bucket).map_err(|e| format!("`bucket`: {e}"))?;
            crate::s3::check_object_key(s.prefix.trim_matches('/'))
                .map_err(|e| format!("`prefix`: {e}"))
        }
        TargetKind::Sftp(s) if s.password.is_none() == s.private_key.is_none() => {
            Err("give exactly one of `password` or `private_key`".into())
        }
        TargetKind::Sftp(s) if s.host_key.trim().is_empty() => Err(
            "`host_key` is required: the server's SHA256: fingerprint (ssh-keyscan HOST | ssh-keygen -lf -)"
                .into(),
        ),
        TargetKind::Ftp(f) if f.tls == FtpTlsMode::None && f.ca_file.is_some() => {
            Err("`ca_file` needs tls = \"explicit\"".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_explains_mistakes() {
        let t = parse_targets(
            r#"
            [[targets]]
            name = "disk"
            kind = "local"
            path = "/srv/backups"

            [[targets]]
            name = "offsite"
            kind = "s3"
            endpoint = "https://s3.example.com"
            bucket = "acme-backups"
            access_key = { env = "K" }
            secret_key = { env = "S" }

            [[targets]]
            name = "nas"
            kind = "sftp"
            host = "nas"
            user = "backup"
            private_key = "/root/.ssh/id_ed25519"
            host_key = "SHA256:abc"
            directory = "/volume1/backups"

            [[targets]]
            name = "palette"
            kind = "ftp"
            host = "ftp.example.net"
            user = "u"
            password = { file = "/run/secrets/ftp" }
            directory = "/backups"
            tls = "explicit"
            "#,
        )
        .unwrap();
        assert_eq!(t.len(), 4);
        let TargetKind::Ftp(f) = &t[3].kind else {
            panic!()
        };
        assert!(f.verify_certificate && f.passive && f.port == 21);
        let TargetKind::Sftp(s) = &t[2].kind else {
            panic!()
        };
        assert_eq!(s.port, 22);

        let err = |text: &str| parse_targets(text).unwrap_err().to_string();
        assert!(
            err("[[targets]]\nname = \"x\"\nkind = \"webdav\"\n")
                .contains("targets[0] (\"x\"): unknown variant `webdav`")
        );
        assert!(err("[[targets]]\nname = \"x\"\nkind = \"sftp\"\nhost = \"h\"\nuser = \"u\"\nhost_key = \"k\"\ndirectory = \"/d\"\n").contains("exactly one of `password` or `private_key`"));
        assert!(
            err("[[targets]]\nname = \"x\"\nkind = \"local\"\npath = \"rel\"\n")
                .contains("absolute")
        );
        assert_eq!(
            err(
                "[[targets]]\nname = \"x\"\nkind = \"local\"\npath = \"/a\"\n[[targets]]\nname = \"x\"\nkind = \"local\"\npath = \"/b\"\n"
            ),
            "duplicate target name \"x\": names must be unique"
        );
        let s3 = |bucket: &str, prefix: &str| {
            err(&format!(
                "[[targets]]\nname = \"x\"\nkind = \"s3\"\nendpoint = \"http://h\"\n\
                 bucket = \"{bucket}\"\nprefix = \"{prefix}\"\naccess_key = \"k\"\nsecret_key = \"s\"\n"
            ))
        };
        assert!(s3("b", "").contains("invalid bucket name"));
        assert!(s3("../acme", "").contains("invalid bucket name"));
        assert!(s3("acme", "app/../../other").contains("`prefix`"));
        // Slashes around a target prefix are trimmed, as the storage does.
        assert!(
            parse_targets(
                "[[targets]]\nname = \"x\"\nkind = \"s3\"\nendpoint = \"http://h\"\n\
                 bucket = \"acme\"\nprefix = \"/app1/\"\naccess_key = \"k\"\nsecret_key = \"s\"\n"
            )
            .is_ok()
        );
        assert!(err("[[targets]]\nname = \"x\"\nkind = \"ftp\"\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\ndirectory = \"/\"\nca_file = \"/ca\"\n").contains("needs tls"));
    }

    #[test]
    fn an_ftp_url_is_host_port_directory_and_tls() {
        let one = |url: &str| {
            let t = parse_declared_targets(&format!(
                "[[targets]]\nname = \"p\"\nkind = \"ftp\"\nurl = \"{url}\"\nuser = \"u\"\npassword = \"pw\"\n"
            ));
            t.map(|mut t| {
                let TargetKind::Ftp(f) = t.remove(0).spec.kind else {
                    panic!("not ftp")
                };
                (f.host, f.port, f.directory, f.tls)
            })
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            one("ftp://ftp.example.net:2121/backups/app1/").unwrap(),
            (
                "ftp.example.net".into(),
                2121,
                "/backups/app1".into(),
                FtpTlsMode::None
            )
        );
        assert_eq!(
            one("ftps://10.0.0.5/palette").unwrap(),
            (
                "10.0.0.5".into(),
                21,
                "/palette".into(),
                FtpTlsMode::Explicit
            )
        );
        assert_eq!(one("ftp://[::1]:21/d").unwrap().0, "::1");
        for (bad, why) in [
            ("sftp://h/d", "not an ftp://"),
            ("ftp://user:pw@h/d", "credentials go in `user`"),
            ("ftp://h:0/d", "port"),
            ("ftp://h:x/d", "port"),
            ("ftp:///d", "no host"),
        ] {
            let e = one(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let both = parse_declared_targets(
            "[[targets]]\nname = \"p\"\nkind = \"ftp\"\nurl = \"ftp://h/d\"\nhost = \"h\"\nuser = \"u\"\npassword = \"pw\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("not both"), "{both}");
    }

    #[test]
    fn declared_targets_carry_their_password_and_one_default() {
        let t = parse_declared_targets(
            "[[targets]]\nname = \"disk\"\nkind = \"local\"\npath = \"/srv/b\"\n\
             repository_password = { env = \"REPO_PW\" }\ndefault = true\n\n\
             [[targets]]\nname = \"nas\"\nkind = \"local\"\npath = \"/mnt/nas\"\n",
        )
        .unwrap();
        assert!(t[0].default && !t[1].default);
        assert!(t[0].repository_password.is_some() && t[1].repository_password.is_none());
        let e = parse_declared_targets(
            "[[targets]]\nname = \"a\"\nkind = \"local\"\npath = \"/a\"\ndefault = true\n\n\
             [[targets]]\nname = \"b\"\nkind = \"local\"\npath = \"/b\"\ndefault = true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than one"), "{e}");
    }
}
