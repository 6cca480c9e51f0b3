//! Secrets that specs point at — a database password, an access key — and
//! reading them: a literal value in the config file, an environment
//! variable, or a file. The debug and serialized forms never show a literal
//! unless asked to ([`reveal_secrets`]), so specs can be logged and shown.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a secret (a database password) comes from. In TOML: a string (the
/// secret itself), `{ env = "VAR" }` or `{ file = "/path" }`. The debug form
/// never shows a literal secret.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Secret {
    /// The secret itself, written in the config file.
    #[serde(serialize_with = "redact")]
    Literal(String),
    /// The name of an environment variable holding it.
    Env(String),
    /// A file holding it (trailing newlines are ignored).
    File(PathBuf),
}

thread_local! {
    static REVEAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn redact<S: serde::Serializer>(secret: &str, s: S) -> Result<S::Ok, S::Error> {
    if REVEAL.with(std::cell::Cell::get) {
        s.serialize_str(secret)
    } else {
        s.serialize_str("***")
    }
}

/// Runs `f` with literal secrets serialized as themselves instead of `***`:
/// for storing a spec (sealed) where it must round-trip, never for output.
pub fn reveal_secrets<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            REVEAL.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REVEAL.with(|r| r.replace(true)));
    f()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(***)"),
            Self::Env(v) => write!(f, "Env({v:?})"),
            Self::File(p) => write!(f, "File({p:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, { env = "VARIABLE" } or { file = "/path" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::Literal(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        r#"empty secret: use { env = "VARIABLE" } or { file = "/path" }"#,
                    ));
                };
                let secret = match key.as_str() {
                    "env" => Secret::Env(map.next_value()?),
                    "file" => Secret::File(map.next_value()?),
                    // The serialized form of a literal (see `reveal_secrets`).
                    "literal" => Secret::Literal(map.next_value()?),
                    other => {
                        return Err(de::Error::unknown_field(other, &["env", "file", "literal"]));
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a secret has exactly one of `env` or `file`",
                    ));
                }
                Ok(secret)
            }
        }
        d.deserialize_any(SecretVisitor)
    }
}

/// A secret that cannot be read; the message says where it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

impl Secret {
    /// The secret's value: the literal, the environment variable's value,
    /// or the file's content (one trailing newline stripped, as `echo pw >
    /// file` leaves one).
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            Secret::Literal(s) => Ok(s.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| {
                SecretError(format!(
                    "the secret should come from environment variable {var}, which is not set"
                ))
            }),
            Secret::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SecretError(format!("reading the secret file {}: {e}", path.display()))
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_are_redacted_unless_revealed() {
        let s = Secret::Literal("hunter2".into());
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"literal":"***"}"#);
        let shown = reveal_secrets(|| serde_json::to_string(&s).unwrap());
        assert_eq!(shown, r#"{"literal":"hunter2"}"#);
        let back: Secret = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, s);
        // Only inside the closure.
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"literal":"***"}"#);
    }

    #[test]
    fn secrets_resolve_from_where_they_point() {
        assert_eq!(Secret::Literal("x".into()).resolve().unwrap(), "x");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from a file\n").unwrap();
        assert_eq!(Secret::File(f).resolve().unwrap(), "from a file");
        let e = Secret::Env("COFFER_SURELY_UNSET_VARIABLE".into())
            .resolve()
            .unwrap_err();
        assert!(
            e.to_string().contains("COFFER_SURELY_UNSET_VARIABLE"),
            "{e}"
        );
        let e = Secret::File(dir.path().join("missing"))
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
