//! Opening a target from its `coffer.toml` spec: secrets resolved, the
//! right storage built, and its Validate probe at hand.

use std::sync::Arc;

use coffer_model::component::Secret;
use coffer_model::target::{FtpTlsMode, TargetKind, TargetSpec};

use crate::validate::{
    ValidateOptions, ValidationReport, validate_ftp, validate_local, validate_s3, validate_sftp,
};
use crate::{
    FtpSettings, FtpStorage, FtpTls, LocalStorage, S3Settings, S3Storage, SftpAuth, SftpSettings,
    SftpStorage, Storage, StorageError, StorageErrorKind, StorageResult,
};

/// A secret's value ([`Secret::resolve`]), with its message as a string.
pub fn resolve_secret(secret: &Secret) -> Result<String, String> {
    secret.resolve().map_err(|e| e.0)
}

/// An opened target of any kind.
#[derive(Debug, Clone)]
pub enum OpenTarget {
    /// Local directory.
    Local(Arc<LocalStorage>),
    /// S3 bucket.
    S3(Arc<S3Storage>),
    /// SFTP directory.
    Sftp(Arc<SftpStorage>),
    /// FTP(S) directory.
    Ftp(Arc<FtpStorage>),
}

impl OpenTarget {
    /// Builds the storage for `spec` (nothing is contacted yet).
    pub fn open(spec: &TargetSpec) -> StorageResult<Self> {
        let name = format!("target {}", spec.name);
        let secret = |s: &Secret| {
            resolve_secret(s)
                .map_err(|m| StorageError::new(StorageErrorKind::Other, &name, "open", "", m))
        };
        Ok(match &spec.kind {
            TargetKind::Local(l) => Self::Local(Arc::new(LocalStorage::new(&l.path))),
            TargetKind::S3(s) => {
                let mut settings = S3Settings::new(
                    &s.endpoint,
                    &s.region,
                    &s.bucket,
                    &secret(&s.access_key)?,
                    &secret(&s.secret_key)?,
                );
                settings.prefix = s.prefix.clone();
                settings.path_style = s.path_style;
                settings.storage_class = s.storage_class.clone();
                Self::S3(Arc::new(S3Storage::new(settings)?))
            }
            TargetKind::Sftp(s) => {
                let auth = match (&s.password, &s.private_key) {
                    (Some(pw), _) => SftpAuth::Password(secret(pw)?),
                    (None, Some(path)) => SftpAuth::Key {
                        path: path.clone(),
                        passphrase: s.passphrase.as_ref().map(secret).transpose()?,
                    },
                    (None, None) => {
                        return Err(StorageError::new(
                            StorageErrorKind::Other,
                            &name,
                            "open",
                            "",
                            "no password and no private_key",
                        ));
                    }
                };
                let settings =
                    SftpSettings::new(&s.host, s.port, &s.user, auth, &s.host_key, &s.directory);
                Self::Sftp(Arc::new(SftpStorage::new(settings)?))
            }
            TargetKind::Ftp(f) => {
                let mut settings = FtpSettings::new(
                    &f.host,
                    f.port,
                    &f.user,
                    &secret(&f.password)?,
                    &f.directory,
                );
                settings.passive = f.passive;
                settings.tls = match f.tls {
                    FtpTlsMode::None => FtpTls::None,
                    FtpTlsMode::Explicit => FtpTls::Explicit {
                        verify: f.verify_certificate,
                        ca_file: f.ca_file.clone(),
                    },
                };
                Self::Ftp(Arc::new(FtpStorage::new(settings)?))
            }
        })
    }

    /// The storage.
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Self::Local(s) => s.clone(),
            Self::S3(s) => s.clone(),
            Self::Sftp(s) => s.clone(),
            Self::Ftp(s) => s.clone(),
        }
    }

    /// Runs the target's Validate probe.
    pub fn validate(&self, opts: ValidateOptions) -> ValidationReport {
        match self {
            Self::Local(s) => validate_local(s.clone(), opts),
            Self::S3(s) => validate_s3(s.clone(), opts),
            Self::Sftp(s) => validate_sftp(s.clone(), opts),
            Self::Ftp(s) => validate_ftp(s.clone(), opts),
        }
    }
}
