//! age X25519 keys as Coffer takes them: public keys (`age1…`) to seal or
//! export to, and identities (the key, or an `age-keygen` file's text) to
//! open with. One parser for the engine, the server and the CLI.

use std::fmt;
use std::io;
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// The age X25519 public keys sensitive components are sealed to. Any one
/// of the matching identities can restore them.
#[derive(Clone)]
pub struct AgeRecipients(Vec<age::x25519::Recipient>);

impl AgeRecipients {
    /// Parses `age1…` public keys; at least one is needed.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no age recipient given (an X25519 public key, age1…)".into());
        }
        keys.iter()
            .map(|k| {
                let k = k.as_ref().trim();
                age::x25519::Recipient::from_str(k).map_err(|e| {
                    format!(
                        "{k:?} is not an age X25519 recipient (age1…, from `age-keygen -y`): {e}"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// An encryptor to every key.
    pub fn encryptor(&self) -> io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::other(format!("age: {e}")))
    }

    /// The keys.
    pub fn into_keys(self) -> Vec<age::x25519::Recipient> {
        self.0
    }
}

impl fmt::Display for AgeRecipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&keys.join(", "))
    }
}

impl fmt::Debug for AgeRecipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipients({self})")
    }
}

/// An age X25519 identity (secret key): what restoring a sealed component
/// needs. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AgeIdentity(age::x25519::Identity);

impl AgeIdentity {
    /// A new random identity (for tests and `coffer` helpers).
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }

    /// The identity's public key (`age1…`).
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }

    /// The age identity, to decrypt with.
    pub fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }

    /// The secret key (`AGE-SECRET-KEY-1…`), for writing a key file.
    pub fn secret(&self) -> String {
        self.0.to_string().expose_secret().to_owned()
    }
}

impl FromStr for AgeIdentity {
    type Err = String;

    /// Takes the key itself or the contents of an identity file as
    /// `age-keygen` writes it (comment lines start with `#`).
    fn from_str(s: &str) -> Result<Self, String> {
        let key = s
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or("the age identity is empty (expected AGE-SECRET-KEY-1…)")?;
        age::x25519::Identity::from_str(key).map(Self).map_err(|_| {
            "the age identity is not an X25519 secret key (expected AGE-SECRET-KEY-1…, as \
             written by age-keygen)"
                .to_owned()
        })
    }
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity({}, secret redacted)", self.recipient())
    }
}
