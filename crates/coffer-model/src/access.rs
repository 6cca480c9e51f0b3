//! Permission scopes of API tokens and users.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One permission. A token or user holds a set of them, optionally limited to
/// named components (docs/api.md maps every endpoint to its scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// List and show backups, restores and their logs.
    BackupsRead,
    /// Start and cancel backups.
    BackupsWrite,
    /// Delete backups.
    BackupsDelete,
    /// Start restores (and upload component data) into the configured
    /// places, with the allowed overrides (a database name, a bucket, a path
    /// under `server.restore_roots`).
    Restore,
    /// Restores that send data (and the credentials given with them) to
    /// another server: overriding a host, port, endpoint or user.
    RestoreRedirect,
    /// Download backups and component data.
    Export,
    /// List and show targets.
    TargetsRead,
    /// Create, change, validate and delete targets.
    TargetsWrite,
    /// Prune targets' repositories (space comes back; exclusive lock).
    Maintenance,
    /// List schedules and what each of their due times became.
    SchedulesRead,
    /// Create, change, delete and run schedules (runs act with no more
    /// than their creator's components and `sensitive`).
    SchedulesWrite,
    /// List and show notification destinations.
    NotificationsRead,
    /// Create, change, delete and test notification destinations.
    NotificationsWrite,
    /// Create, list and revoke tokens and users.
    TokensAdmin,
    /// Read and verify the audit log (unlimited tokens only: it tells of
    /// every component).
    AuditRead,
    /// Touch sensitive components at all (with the scope the operation needs).
    Sensitive,
    /// Restore an upload into components this server does not configure
    /// (whole specs in the request); held by the first admin token.
    Admin,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 17] = [
        Scope::BackupsRead,
        Scope::BackupsWrite,
        Scope::BackupsDelete,
        Scope::Restore,
        Scope::RestoreRedirect,
        Scope::Export,
        Scope::TargetsRead,
        Scope::TargetsWrite,
        Scope::Maintenance,
        Scope::SchedulesRead,
        Scope::SchedulesWrite,
        Scope::NotificationsRead,
        Scope::NotificationsWrite,
        Scope::TokensAdmin,
        Scope::AuditRead,
        Scope::Sensitive,
        Scope::Admin,
    ];

    /// The wire name, e.g. `backups:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::BackupsRead => "backups:read",
            Scope::BackupsWrite => "backups:write",
            Scope::BackupsDelete => "backups:delete",
            Scope::Restore => "restore",
            Scope::RestoreRedirect => "restore:redirect",
            Scope::Export => "export",
            Scope::TargetsRead => "targets:read",
            Scope::TargetsWrite => "targets:write",
            Scope::Maintenance => "maintenance",
            Scope::SchedulesRead => "schedules:read",
            Scope::SchedulesWrite => "schedules:write",
            Scope::NotificationsRead => "notifications:read",
            Scope::NotificationsWrite => "notifications:write",
            Scope::TokensAdmin => "tokens:admin",
            Scope::AuditRead => "audit:read",
            Scope::Sensitive => "sensitive",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: use one of {list}", list = Scope::ALL.map(Scope::as_str).join(", "))]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl TryFrom<String> for Scope {
    type Error = UnknownScope;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> Self {
        s.as_str().to_owned()
    }
}

/// The state of a backup or of one of its components (DC/OS's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupStatus {
    /// Running.
    BackingUp,
    /// Durably stored.
    Ready,
    /// Failed, cancelled or interrupted; the reason is kept.
    Error,
}

/// The state of a restore or of one of its components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestoreStatus {
    /// Running.
    Restoring,
    /// Restored.
    Ready,
    /// Failed; the reason is kept.
    Error,
}

macro_rules! status_str {
    ($t:ty, $($v:ident => $s:literal),+) => {
        impl $t {
            /// The wire and catalog form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("unknown status {other:?}: use one of {}", [$($s),+].join(", "))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
status_str!(BackupStatus, BackingUp => "BACKING_UP", Ready => "READY", Error => "ERROR");
status_str!(RestoreStatus, Restoring => "RESTORING", Ready => "READY", Error => "ERROR");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_ones_list_the_valid_names() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        let e = "backups:all".parse::<Scope>().unwrap_err().to_string();
        assert!(
            e.contains("backups:read") && e.contains("tokens:admin"),
            "{e}"
        );
        let json = serde_json::to_string(&Scope::BackupsRead).unwrap();
        assert_eq!(json, "\"backups:read\"");
    }

    #[test]
    fn statuses_use_the_dcos_spelling() {
        assert_eq!(
            serde_json::to_string(&BackupStatus::BackingUp).unwrap(),
            "\"BACKING_UP\""
        );
        assert_eq!(
            "RESTORING".parse::<RestoreStatus>().unwrap(),
            RestoreStatus::Restoring
        );
        assert!("DONE".parse::<BackupStatus>().is_err());
    }
}
