//! Coffer's domain types. Data and validation: nothing here touches the
//! network or the backup engine, so every layer can share them. The one
//! exception to "no I/O" is [`secret::Secret::resolve`], which reads the
//! environment variable or file a spec points at — in one place, for every
//! crate that needs a secret's value.
//!
//! The rules follow the products Coffer learns from: labels are DC/OS backup
//! labels (3–25 characters of `[A-Za-z0-9_.-]`, not starting with `..`) and a
//! backup id is `<label>-<uuid>`.

pub mod access;
pub mod component;
pub mod crash;
pub mod s3;
pub mod secret;
pub mod target;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a user-supplied name was refused. The message states the rule, so it can
/// be shown to the operator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A backup label broke the label rule.
    #[error(
        "invalid label {0:?}: a label is 3 to 25 characters of A-Z, a-z, 0-9, '_', '.' or '-', and must not start with '..'"
    )]
    Label(String),
    /// A component name broke the component-name rule.
    #[error(
        "invalid component name {0:?}: a component name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' or '-', and must not start with '.' or '-'"
    )]
    Component(String),
    /// A backup id was not `<label>-<uuid>`.
    #[error("invalid backup id {0:?}: a backup id is <label>-<uuid>, e.g. nightly-0b6c…")]
    BackupId(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A backup label, as in DC/OS: 3–25 characters of `[A-Za-z0-9_.-]`, not
/// starting with `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Validates `s` as a label.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = (3..=25).contains(&s.len()) && s.chars().all(is_name_char) && !s.starts_with("..");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Label(s.to_owned()))
        }
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a component (a database, a directory, …) within an application.
/// It ends up in snapshot tags and paths, so it is restricted to characters
/// that are safe in both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ComponentName(String);

impl ComponentName {
    /// Validates `s` as a component name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = (1..=64).contains(&s.len())
            && s.chars().all(is_name_char)
            && !s.starts_with('.')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Component(s.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A backup id: `<label>-<uuid>` (DC/OS style). The label can be recovered
/// from the id, which lets a catalog be rebuilt from snapshot tags alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A fresh id for a backup with this label.
    pub fn generate(label: &Label) -> Self {
        Self(format!("{}-{}", label.as_str(), uuid::Uuid::new_v4()))
    }

    /// Parses and validates an id: a valid label, a dash, a UUID.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        // A hyphenated UUID is 36 characters; the label is everything before "-<uuid>".
        let err = || NameError::BackupId(s.to_owned());
        if s.len() < 3 + 1 + 36 || !s.is_char_boundary(s.len() - 36) {
            return Err(err());
        }
        let (head, uuid) = s.split_at(s.len() - 36);
        let label = head.strip_suffix('-').ok_or_else(err)?;
        uuid::Uuid::parse_str(uuid).map_err(|_| err())?;
        Label::new(label).map_err(|_| err())?;
        Ok(Self(s.to_owned()))
    }

    /// The label part of the id.
    pub fn label(&self) -> Label {
        Label(self.0[..self.0.len() - 37].to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($t:ty, $ctor:path) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $ctor(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $ctor(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    };
}
string_newtype_impls!(Label, Label::new);
string_newtype_impls!(ComponentName, ComponentName::new);
string_newtype_impls!(BackupId, BackupId::parse);

/// What a snapshot says about the backup it belongs to. Every component of a
/// backup is stored as one snapshot carrying this, so the set of backups — and
/// whether each is complete — can be rebuilt from the repository alone: a
/// backup is complete when it has `component_count` distinct component
/// snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRef {
    /// The backup this snapshot belongs to.
    pub backup_id: BackupId,
    /// The backup's label (also the prefix of its id).
    pub label: Label,
    /// The component stored in this snapshot.
    pub component: ComponentName,
    /// How many components the whole backup has.
    pub component_count: u32,
}

impl BackupRef {
    /// A reference for one component of a backup.
    pub fn new(backup_id: BackupId, component: ComponentName, component_count: u32) -> Self {
        let label = backup_id.label();
        Self {
            backup_id,
            label,
            component,
            component_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn label_rules() {
        for ok in [
            "abc",
            "nightly",
            "a.b-c_d",
            "0123456789012345678901234",
            ".a.",
        ] {
            assert!(Label::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            "ab",
            "..abc",
            "with space",
            "ünï",
            "01234567890123456789012345",
            "a/b",
        ] {
            let err = Label::new(bad).unwrap_err();
            assert!(err.to_string().contains("3 to 25"), "{err}");
        }
    }

    #[test]
    fn component_rules() {
        assert!(ComponentName::new("db").is_ok());
        assert!(ComponentName::new("uploads.v2").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a b", "a,b", "a=b"] {
            assert!(ComponentName::new(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn backup_id_round_trip() {
        let label = Label::new("nightly").unwrap();
        let id = BackupId::generate(&label);
        assert!(id.as_str().starts_with("nightly-"));
        assert_eq!(id.label(), label);
        assert_eq!(BackupId::parse(id.as_str()).unwrap(), id);
        assert!(BackupId::parse("nightly").is_err());
        assert!(BackupId::parse("nightly-not-a-uuid-at-all-not-a-uuid-at-al").is_err());
        assert!(BackupId::parse("..x-0b6c1f4e-4c4b-4a7e-9b1c-2f3e4d5c6b7a").is_err());
    }

    proptest! {
        // COFFER_FUZZ_CASES cases (docs/testing.md records the long runs).
        #![proptest_config(ProptestConfig {
            cases: std::env::var("COFFER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any text as a label, component name or backup id: refused, or
        /// accepted only when it keeps the rule.
        #[test]
        fn names_from_outside_are_refused_or_keep_the_rule(s in any::<String>(), t in "[A-Za-z0-9_.-]{0,70}") {
            for text in [s.as_str(), t.as_str()] {
                if let Ok(l) = Label::new(text) {
                    prop_assert!((3..=25).contains(&l.as_str().len()) && !text.starts_with(".."));
                    prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
                }
                if ComponentName::new(text).is_ok() {
                    prop_assert!((1..=64).contains(&text.len()));
                    prop_assert!(!text.starts_with('.') && !text.starts_with('-'));
                    prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
                }
                if let Ok(id) = BackupId::parse(text) {
                    prop_assert_eq!(id.as_str(), text);
                }
            }
        }

        #[test]
        fn any_valid_label_makes_a_parsable_id(s in "[A-Za-z0-9_.-]{3,25}") {
            prop_assume!(!s.starts_with(".."));
            let label = Label::new(&s).unwrap();
            let id = BackupId::generate(&label);
            prop_assert_eq!(BackupId::parse(id.as_str()).unwrap().label(), label);
        }
    }
}
