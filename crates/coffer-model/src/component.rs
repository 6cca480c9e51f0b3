//! Component specs: what an operator declares under `[[components]]` in
//! `coffer.toml`, parsed and validated here so that every layer sees only
//! well-formed specs. Nothing here connects to anything or reads a secret;
//! coffer-components does that.
//!
//! ```toml
//! [[components]]
//! name = "db"
//! kind = "postgres"
//! host = "127.0.0.1"
//! user = "app"
//! password = { env = "APP_DB_PASSWORD" }   # or "literal", or { file = "/run/secrets/db" }
//! database = "app"
//!
//! [[components]]
//! name = "uploads"
//! kind = "files"
//! path = "/srv/app/uploads"
//! excludes = ["*.tmp", "cache/"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ComponentName;
pub use crate::secret::{Secret, reveal_secrets};

/// The placeholder a `command` component uses for a staging file, for tools
/// that write their output to a file instead of standard output.
pub const FILE_PLACEHOLDER: &str = "{file}";

/// Why a components file was refused. Messages name the component (by
/// position and name) and the field, so an operator can fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The file is not valid TOML.
    #[error("invalid TOML: {0}")]
    Toml(String),
    /// One entry is malformed (unknown kind, missing or unknown field, bad value).
    #[error("{section}[{index}]{}: {message}", name.as_deref().map(|n| format!(" ({n:?})")).unwrap_or_default())]
    Component {
        /// `components` or `targets`.
        section: &'static str,
        /// Position in the file, from 0.
        index: usize,
        /// The component's name, when it has a readable one.
        name: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Two entries of a section share a name.
    #[error("duplicate {section} name {name:?}: names must be unique")]
    Duplicate {
        /// `component` or `target`.
        section: &'static str,
        /// The repeated name.
        name: String,
    },
}

/// One component of an application: a name, whether it is sensitive, and
/// what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentSpec {
    /// Unique within the application; ends up in snapshot tags.
    pub name: ComponentName,
    /// Sensitive components (keys, secrets) are kept apart and encrypted to
    /// their own recipient by the server.
    pub sensitive: bool,
    /// The kind and its settings.
    pub kind: ComponentKind,
}

/// The kinds of component Coffer knows, with their settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ComponentKind {
    /// A directory tree.
    Files(FilesSpec),
    /// A SQLite database file.
    Sqlite(SqliteSpec),
    /// A PostgreSQL database.
    Postgres(PostgresSpec),
    /// A MariaDB or MySQL database.
    Mysql(MysqlSpec),
    /// A Redis instance (all its databases).
    Redis(RedisSpec),
    /// Every object of an S3 bucket (or of a prefix).
    S3(S3Spec),
    /// Any dump command and its restore command.
    Command(CommandSpec),
}

impl ComponentKind {
    /// The extension of the stream file a kind stores (`.pgdump`, …);
    /// `None` for `files` (a tree) and `command` (any name).
    pub fn stream_ext(&self) -> Option<&'static str> {
        match self {
            Self::Sqlite(_) => Some(".sqlite"),
            Self::Postgres(_) => Some(".pgdump"),
            Self::Mysql(_) => Some(".sql"),
            Self::Redis(_) => Some(".rdb"),
            Self::S3(_) => Some(".tar"),
            Self::Files(_) | Self::Command(_) => None,
        }
    }

    /// The kind's name as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Files(_) => "files",
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Mysql(_) => "mysql",
            Self::Redis(_) => "redis",
            Self::S3(_) => "s3",
            Self::Command(_) => "command",
        }
    }
}

/// `kind = "files"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSpec {
    /// The directory to back up (absolute).
    pub path: PathBuf,
    /// Glob patterns (gitignore style) of paths to leave out.
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// `kind = "sqlite"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSpec {
    /// The database file (absolute).
    pub path: PathBuf,
}

fn default_pg_port() -> u16 {
    5432
}
fn default_mysql_port() -> u16 {
    3306
}
fn default_redis_port() -> u16 {
    6379
}
fn default_host() -> String {
    "localhost".to_owned()
}

/// `kind = "postgres"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// Server host name or address, or a Unix socket directory.
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port.
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// The role's password, if the server asks for one.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The database to back up (or restore into).
    pub database: String,
    /// Directory of `pg_dump`, `pg_restore` and `psql`, when the ones on
    /// `PATH` are not the right version.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// libpq `sslmode` (`disable`, `require`, `verify-full`, …).
    #[serde(default)]
    pub sslmode: Option<String>,
    /// What a restore drill runs in the restored copy to prove it (its
    /// answer is recorded; an error fails the drill). Read from coffer.toml
    /// only, never from a request. Default: counts the user tables.
    #[serde(default)]
    pub verify_query: Option<String>,
}

/// `kind = "mysql"` (MariaDB or MySQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSpec {
    /// Server host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port.
    #[serde(default = "default_mysql_port")]
    pub port: u16,
    /// Account to connect as.
    pub user: String,
    /// The account's password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The database to back up (or restore into).
    pub database: String,
    /// Directory of the dump and client tools (`mariadb-dump`/`mysqldump`,
    /// `mariadb`/`mysql`) when the ones on `PATH` are not wanted.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// What a restore drill runs in the restored copy to prove it (its
    /// answer is recorded; an error fails the drill). Read from coffer.toml
    /// only, never from a request. Default: counts the tables.
    #[serde(default)]
    pub verify_query: Option<String>,
}

/// `kind = "redis"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// Server host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port.
    #[serde(default = "default_redis_port")]
    pub port: u16,
    /// ACL user (Redis 6+); the default user when absent.
    #[serde(default)]
    pub user: Option<String>,
    /// The password (`requirepass` or the ACL user's).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Directory of `redis-cli` and `redis-server` when the ones on `PATH`
    /// are not wanted.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
}

fn default_s3_region() -> String {
    "us-east-1".to_owned()
}
fn yes() -> bool {
    true
}

/// What an S3 backup does when objects change while it copies them (without
/// bucket versioning a bucket has no point in time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Fail the component: nothing is recorded (default).
    #[default]
    Fail,
    /// Record the backup and report the changed objects as warnings.
    Warn,
}

/// `kind = "s3"`: the objects of a bucket, with content type and user metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    /// The endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The region used for signing.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Only keys starting with this (restored under the destination's prefix).
    #[serde(default)]
    pub prefix: String,
    /// Access key id.
    pub access_key: Secret,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style URLs (`endpoint/bucket/key`, most self-hosted servers)
    /// rather than virtual-host style (`bucket.endpoint/key`).
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Objects that changed during the backup: `fail` (default) or `warn`.
    #[serde(default)]
    pub on_change: OnChange,
    /// Where restore drills write their scratch copy (under a
    /// `coffer-drill-<tag>/` prefix): needed when the component covers the
    /// whole bucket, else the drill uses that prefix in the same bucket.
    #[serde(default)]
    pub drill_bucket: Option<String>,
}

/// `kind = "command"`: the escape hatch for anything else (MongoDB, etcd, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The dump command as a program and its arguments (no shell; use
    /// `["sh", "-c", "…"]` for one). Its standard output is the backup, or,
    /// if an argument contains `{file}`, the file it writes there.
    pub backup: Vec<String>,
    /// The restore command: reads the backup on standard input, or from the
    /// file named by `{file}`.
    #[serde(default)]
    pub restore: Option<Vec<String>>,
    /// The name the backup is stored under (default `<component>.dump`).
    #[serde(default)]
    pub file_name: Option<String>,
    /// Extra environment variables for both commands.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl CommandSpec {
    /// Whether the dump command writes a file rather than standard output.
    pub fn backup_uses_file(&self) -> bool {
        self.backup.iter().any(|a| a.contains(FILE_PLACEHOLDER))
    }
}

/// Parses and validates the `[[components]]` of a `coffer.toml`. Other
/// top-level tables (server settings, targets) are ignored here.
pub fn parse_components(toml_text: &str) -> Result<Vec<ComponentSpec>, SpecError> {
    parse_section(
        toml_text,
        "components",
        "component",
        KIND_NAMES,
        |name, mut table, fail| {
            let sensitive = match table.remove("sensitive") {
                None => false,
                Some(toml::Value::Boolean(b)) => b,
                Some(_) => return Err(fail("`sensitive` must be true or false".into())),
            };
            let kind: ComponentKind = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| fail(e.message().trim().to_owned()))?;
            let spec = ComponentSpec {
                name,
                sensitive,
                kind,
            };
            spec.validate().map_err(fail)?;
            Ok(spec)
        },
    )
}

/// The entries of a `[[section]]` array: each must be a table with a valid,
/// unique `name` and a `kind`; `build` turns the rest of the table into a
/// spec, reporting problems through the error builder it is given (which
/// names the section, the position and the entry).
pub(crate) fn parse_section<T>(
    toml_text: &str,
    section: &'static str,
    singular: &'static str,
    kinds: &[&str],
    build: impl Fn(ComponentName, toml::Table, &dyn Fn(String) -> SpecError) -> Result<T, SpecError>,
) -> Result<Vec<T>, SpecError> {
    let table: toml::Table =
        toml::from_str(toml_text).map_err(|e| SpecError::Toml(e.to_string()))?;
    let Some(list) = table.get(section) else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(SpecError::Toml(format!(
            "`{section}` must be an array of tables: write [[{section}]]"
        )));
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let raw_name = value
            .get("name")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let fail = |message: String| SpecError::Component {
            section,
            index,
            name: raw_name.clone(),
            message,
        };
        let Some(table) = value.as_table() else {
            return Err(fail(format!("a {singular} is a table ([[{section}]])")));
        };
        let mut table = table.clone();
        let name = match table.remove("name") {
            None => return Err(fail("missing field `name`".into())),
            Some(toml::Value::String(s)) => {
                ComponentName::new(&s).map_err(|e| fail(e.to_string()))?
            }
            Some(_) => return Err(fail("`name` must be a string".into())),
        };
        if !table.contains_key("kind") {
            return Err(fail(format!(
                "missing field `kind` (one of {})",
                kinds.join(", ")
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(SpecError::Duplicate {
                section: singular,
                name: name.to_string(),
            });
        }
        out.push(build(name, table, &fail)?);
    }
    Ok(out)
}

/// Every kind name, for messages.
pub const KIND_NAMES: &[&str] = &[
    "files", "sqlite", "postgres", "mysql", "redis", "s3", "command",
];

impl ComponentSpec {
    /// Checks what serde cannot: absolute paths, non-empty names and commands.
    pub fn validate(&self) -> Result<(), String> {
        fn absolute(field: &str, p: &Path) -> Result<(), String> {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(format!("`{field}` must be an absolute path, not {p:?}"))
            }
        }
        fn non_empty(field: &str, s: &str) -> Result<(), String> {
            if s.trim().is_empty() {
                Err(format!("`{field}` must not be empty"))
            } else {
                Ok(())
            }
        }
        match &self.kind {
            ComponentKind::Files(f) => {
                absolute("path", &f.path)?;
                if let Some(bad) = f.excludes.iter().find(|e| e.starts_with('!')) {
                    return Err(format!(
                        "exclude {bad:?}: a leading '!' (re-include) is not supported"
                    ));
                }
            }
            ComponentKind::Sqlite(s) => absolute("path", &s.path)?,
            ComponentKind::Postgres(p) => {
                non_empty("host", &p.host)?;
                non_empty("user", &p.user)?;
                non_empty("database", &p.database)?;
            }
            ComponentKind::Mysql(m) => {
                non_empty("host", &m.host)?;
                non_empty("user", &m.user)?;
                non_empty("database", &m.database)?;
            }
            ComponentKind::Redis(r) => non_empty("host", &r.host)?,
            ComponentKind::S3(s) => {
                if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")) {
                    return Err(format!(
                        "`endpoint` must be an http:// or https:// URL, not {:?}",
                        s.endpoint
                    ));
                }
                crate::s3::check_bucket_name(&s.bucket).map_err(|e| format!("`bucket`: {e}"))?;
                crate::s3::check_object_key(&s.prefix).map_err(|e| format!("`prefix`: {e}"))?;
            }
            ComponentKind::Command(c) => {
                if c.backup.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err("`backup` must name a program: [\"program\", \"arg\", …]".into());
                }
                if let Some(r) = &c.restore
                    && r.first().is_none_or(|p| p.trim().is_empty())
                {
                    return Err("`restore` must name a program: [\"program\", \"arg\", …]".into());
                }
                if let Some(n) = &c.file_name
                    && (n.is_empty() || n.contains('/') || n == "." || n == "..")
                {
                    return Err(format!("`file_name` {n:?} must be a plain file name"));
                }
            }
        }
        Ok(())
    }

    /// The name a stream component is stored under in its snapshot.
    pub fn stream_file_name(&self) -> Option<String> {
        let n = self.name.as_str();
        match &self.kind {
            ComponentKind::Files(_) => None,
            ComponentKind::Command(c) => {
                Some(c.file_name.clone().unwrap_or_else(|| format!("{n}.dump")))
            }
            kind => kind.stream_ext().map(|ext| format!("{n}{ext}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_components(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind() {
        let specs = parse_components(
            r#"
            [server]
            listen = "127.0.0.1:8080"

            [[components]]
            name = "uploads"
            kind = "files"
            path = "/srv/uploads"
            excludes = ["*.tmp"]

            [[components]]
            name = "state"
            kind = "sqlite"
            path = "/srv/app.db"

            [[components]]
            name = "db"
            kind = "postgres"
            user = "app"
            password = { env = "APP_PG" }
            database = "app"

            [[components]]
            name = "shop"
            kind = "mysql"
            host = "db.internal"
            user = "shop"
            password = { file = "/run/secrets/shop" }
            database = "shop"

            [[components]]
            name = "cache"
            kind = "redis"
            password = "hunter2"
            sensitive = true

            [[components]]
            name = "blobs"
            kind = "s3"
            endpoint = "http://127.0.0.1:3900"
            bucket = "uploads"
            access_key = { env = "S3_KEY" }
            secret_key = { file = "/run/secrets/s3" }

            [[components]]
            name = "etcd"
            kind = "command"
            backup = ["etcdctl", "snapshot", "save", "{file}"]
            restore = ["sh", "-c", "cat > /dev/null"]
            "#,
        )
        .unwrap();
        assert_eq!(specs.len(), 7);
        let ComponentKind::Postgres(pg) = &specs[2].kind else {
            panic!("{:?}", specs[2])
        };
        assert_eq!((pg.host.as_str(), pg.port), ("localhost", 5432));
        assert_eq!(pg.password, Some(Secret::Env("APP_PG".into())));
        let ComponentKind::Redis(r) = &specs[4].kind else {
            panic!()
        };
        assert!(specs[4].sensitive);
        assert_eq!(r.port, 6379);
        assert_eq!(format!("{:?}", r.password), "Some(Literal(***))");
        let ComponentKind::S3(s3) = &specs[5].kind else {
            panic!()
        };
        assert!(s3.path_style && s3.prefix.is_empty() && s3.on_change == OnChange::Fail);
        assert_eq!(s3.region, "us-east-1");
        let ComponentKind::Command(c) = &specs[6].kind else {
            panic!()
        };
        assert!(c.backup_uses_file());
        assert_eq!(specs[6].stream_file_name().unwrap(), "etcd.dump");
        assert_eq!(specs[0].stream_file_name(), None);
        assert!(parse_components("").unwrap().is_empty());
    }

    #[test]
    fn precise_messages() {
        let e = err("[[components]]\nname = \"db\"\nkind = \"postgress\"\n");
        assert!(
            e.starts_with("components[0] (\"db\"): unknown variant `postgress`"),
            "{e}"
        );
        assert!(e.contains("`postgres`"), "{e}");

        let e = err("[[components]]\nname = \"db\"\nkind = \"postgres\"\nuser = \"u\"\n");
        assert_eq!(e, "components[0] (\"db\"): missing field `database`");

        let e =
            err("[[components]]\nname = \"d\"\nkind = \"files\"\npath = \"/x\"\nexclude = []\n");
        assert!(e.contains("unknown field `exclude`"), "{e}");

        let e = err("[[components]]\nkind = \"files\"\npath = \"/x\"\n");
        assert_eq!(e, "components[0]: missing field `name`");

        let e = err("[[components]]\nname = \"a b\"\nkind = \"files\"\npath = \"/x\"\n");
        assert!(e.contains("invalid component name \"a b\""), "{e}");

        let e = err("[[components]]\nname = \"x\"\npath = \"/x\"\n");
        assert!(
            e.contains("missing field `kind` (one of files, sqlite"),
            "{e}"
        );

        let e = err(
            "[[components]]\nname = \"x\"\nkind = \"files\"\npath = \"/x\"\n\
             [[components]]\nname = \"x\"\nkind = \"sqlite\"\npath = \"/y\"\n",
        );
        assert_eq!(e, "duplicate component name \"x\": names must be unique");

        let e = err("[[components]]\nname = \"x\"\nkind = \"files\"\npath = \"rel\"\n");
        assert!(e.contains("`path` must be an absolute path"), "{e}");

        let e =
            err("[[components]]\nname = \"x\"\nkind = \"redis\"\npassword = { vault = \"k\" }\n");
        assert!(e.contains("unknown field `vault`"), "{e}");

        let e = err("[[components]]\nname = \"x\"\nkind = \"command\"\nbackup = []\n");
        assert!(e.contains("`backup` must name a program"), "{e}");

        let e = err(
            "[[components]]\nname = \"x\"\nkind = \"files\"\npath = \"/x\"\nsensitive = \"yes\"\n",
        );
        assert!(e.contains("`sensitive` must be true or false"), "{e}");

        let s3 = |bucket: &str, prefix: &str| {
            err(&format!(
                "[[components]]\nname = \"b\"\nkind = \"s3\"\nendpoint = \"http://h\"\n\
                 bucket = \"{bucket}\"\nprefix = '{prefix}'\naccess_key = \"k\"\nsecret_key = \"s\"\n"
            ))
        };
        // The bucket and the prefix end up in URL paths: only names that
        // cannot be normalised into another bucket or key.
        for bucket in ["..", "a/b", "Upper_Case", "xy"] {
            let e = s3(bucket, "");
            assert!(e.contains("invalid bucket name"), "{bucket}: {e}");
        }
        for prefix in ["../other/", "a/./b/", "/abs/", "a\\b/"] {
            let e = s3("bucket", prefix);
            assert!(
                e.contains("`prefix`") && e.contains("is refused"),
                "{prefix}: {e}"
            );
        }

        assert!(err("components = 3").contains("array of tables"));
        assert!(err("[[components]\n").starts_with("invalid TOML"));
    }
}
