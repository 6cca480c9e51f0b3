//! The server key: seals secrets at rest in the catalog (target credentials,
//! repository passwords) with ChaCha20-Poly1305, and hashes API tokens.
//!
//! The key is 32 random bytes, hex-encoded, in `<data_dir>/server.key`
//! (created with mode 0600 on first start) or in `COFFER_SERVER_KEY`. Losing it
//! loses the sealed secrets — not the backups: every repository password was
//! shown to the operator once, to be kept offline (docs/operations.md).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Environment variable that supplies the server key instead of the file.
pub const SERVER_KEY_ENV: &str = "COFFER_SERVER_KEY";

/// Problems with the server key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or created.
    #[error("server key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key is not 64 hex digits, or the file is readable by others.
    #[error("server key {0}")]
    Invalid(String),
    /// A sealed value does not open with this key: another server's catalog,
    /// a changed key, or corruption.
    #[error("a sealed secret in the catalog does not open with this server key ({0})")]
    Unseal(&'static str),
}

/// The server's secret key.
pub struct ServerKey {
    aead: LessSafeKey,
    /// HMAC-SHA256(key, "coffer login tokens v1"): signs login JWTs.
    login_secret: [u8; 32],
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// From `COFFER_SERVER_KEY` if set, else `<data_dir>/server.key`, created
    /// (mode 0600) if missing. A key file readable by group or others is refused.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        if let Ok(hex) = std::env::var(SERVER_KEY_ENV) {
            return Self::from_hex(hex.trim())
                .map_err(|m| KeyError::Invalid(format!("from {SERVER_KEY_ENV}: {m}")));
        }
        let path = data_dir.join("server.key");
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Invalid(format!(
                        "{} is readable by other users (mode {:o}): run chmod 600 on it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                Self::from_hex(text.trim())
                    .map_err(|m| KeyError::Invalid(format!("{}: {m}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let hex = hex::encode(bytes);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                f.write_all(format!("{hex}\n").as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Self::from_hex(&hex).map_err(KeyError::Invalid)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_hex(hex: &str) -> Result<Self, String> {
        let bytes = hex::decode(hex).map_err(|_| "is not hex".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!(
                "has {} bytes; it must have 32 (64 hex digits)",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| "is unusable")?;
        let prf = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes);
        let tag = ring::hmac::sign(&prf, b"coffer login tokens v1");
        let mut login_secret = [0u8; 32];
        login_secret.copy_from_slice(tag.as_ref());
        Ok(Self {
            aead: LessSafeKey::new(key),
            login_secret,
        })
    }

    /// The key that signs login tokens, derived from the server key (so a
    /// new server key also ends every login session).
    pub fn login_secret(&self) -> &[u8; 32] {
        &self.login_secret
    }

    /// Encrypts `plain`, bound to `context` (e.g. `target:offsite`) so a
    /// sealed value cannot be moved to another row. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = plain.to_vec();
        // Cannot fail for inputs under 256 GiB.
        if self
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .is_err()
        {
            unreachable!("ChaCha20-Poly1305 seals any input of this size");
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(KeyError::Unseal("too short"));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal("nonce"))?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unseal("authentication failed"))?;
        Ok(plain.to_vec())
    }
}

/// SHA-256 of an API token, hex: what the catalog stores. Tokens carry 256
/// random bits, so a fast hash is enough (no password stretching needed).
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// A new random secret: `prefix` + 64 hex digits (256 bits).
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = key.seal("target:a", b"hunter2");
        assert_eq!(key.open("target:a", &sealed).unwrap(), b"hunter2");
        assert!(key.open("target:b", &sealed).is_err());
        // The same file gives the same key.
        let again = ServerKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open("target:a", &sealed).unwrap(), b"hunter2");
        // Another key does not open it.
        let other = tempfile::tempdir().unwrap();
        let other = ServerKey::load_or_create(other.path()).unwrap();
        assert!(other.open("target:a", &sealed).is_err());
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join("server.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ServerKey::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
