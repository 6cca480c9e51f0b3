//! How an export is encrypted, and what opens it.

use age::secrecy::SecretString;

use crate::{AgeIdentity, AgeRecipients, ExportError, SCRYPT_WORK_FACTOR};

/// How an export is encrypted.
pub enum Protection {
    /// A passphrase (scrypt, [`SCRYPT_WORK_FACTOR`]).
    Passphrase(SecretString),
    /// age X25519 public keys: whoever holds one of the identities opens it.
    Recipients(Vec<age::x25519::Recipient>),
}

impl Protection {
    /// A passphrase (scrypt at [`SCRYPT_WORK_FACTOR`]).
    pub fn passphrase(p: &str) -> Self {
        Self::Passphrase(SecretString::from(p.to_owned()))
    }

    /// Parses `age1…` recipients.
    pub fn recipients<S: AsRef<str>>(keys: &[S]) -> Result<Self, ExportError> {
        AgeRecipients::parse(keys)
            .map(|r| Self::Recipients(r.into_keys()))
            .map_err(ExportError::Invalid)
    }

    pub(crate) fn encryptor(&self) -> Result<age::Encryptor, ExportError> {
        let result = match self {
            Self::Passphrase(p) => {
                let mut r = age::scrypt::Recipient::new(p.clone());
                r.set_work_factor(SCRYPT_WORK_FACTOR);
                age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            }
            Self::Recipients(rs) => {
                age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
            }
        };
        result.map_err(|e| ExportError::Invalid(format!("age: {e}")))
    }
}

/// What opens an export.
pub enum Secret {
    /// The passphrase it was written with.
    Passphrase(SecretString),
    /// An X25519 identity matching one of its recipients.
    Identity(age::x25519::Identity),
}

impl Secret {
    /// A passphrase.
    pub fn passphrase(p: &str) -> Self {
        Self::Passphrase(SecretString::from(p.to_owned()))
    }

    /// An identity: the key or an `age-keygen` file's text.
    pub fn identity(text: &str) -> Result<Self, ExportError> {
        text.parse::<AgeIdentity>()
            .map(|id| Self::Identity(id.as_age().clone()))
            .map_err(ExportError::Invalid)
    }
}
