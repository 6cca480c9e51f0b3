//! What a restore request may change of a component's configured
//! destination. A request chooses *which* backup and *where among the
//! configured places* it goes — never *what runs* or *where credentials go*
//! beyond what its scopes say:
//!
//! | kind | with `restore` | with `restore:redirect` too |
//! |------|----------------|-----------------------------|
//! | `files`, `sqlite` | `path`, below `server.restore_roots` | — |
//! | `postgres` | `database` | `host`, `port`, `user`, `password`, `sslmode` |
//! | `mysql` | `database` | `host`, `port`, `user`, `password` |
//! | `redis` | — | `host`, `port`, `user`, `password` |
//! | `s3` | `bucket`, `prefix` | `endpoint`, `region`, `path_style`, `access_key`, `secret_key` |
//! | `command` | — | — |
//!
//! Never over the API: `bin_dir`, commands and their environment, excludes,
//! and secrets as `{file}`/`{env}` (a literal string only). A destination
//! moved to another server must bring its own credentials (the configured
//! ones never follow it), and its host must pass `server.target_allow`. No
//! path may overlap the server's data or staging directory or a local
//! repository. A whole spec for a component this server does not configure
//! (an upload) needs the `admin` scope and an unlimited token, under the
//! same field rules.

use std::path::{Component, Path, PathBuf};

use coffer_model::ComponentName;
use coffer_model::access::Scope;
use coffer_model::component::{ComponentKind, ComponentSpec, reveal_secrets};
use serde_json::{Map, Value};

use crate::access::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::targets::policy::{check_host, overlaps, url_host};

/// What the server protects from restores, from its configuration.
#[derive(Debug)]
pub struct Rules<'a> {
    /// `server.restore_roots`.
    pub restore_roots: &'a [PathBuf],
    /// `server.target_allow`.
    pub target_allow: &'a [String],
    /// The data and staging directories and every local repository.
    pub protected: Vec<PathBuf>,
}

/// The fields of a kind a request may set: (with `restore`, with `restore:redirect`).
fn allowed(kind: &ComponentKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ComponentKind::Files(_) | ComponentKind::Sqlite(_) => (&["path"], &[]),
        ComponentKind::Postgres(_) => (
            &["database"],
            &["host", "port", "user", "password", "sslmode"],
        ),
        ComponentKind::Mysql(_) => (&["database"], &["host", "port", "user", "password"]),
        ComponentKind::Redis(_) => (&[], &["host", "port", "user", "password"]),
        ComponentKind::S3(_) => (
            &["bucket", "prefix"],
            &[
                "endpoint",
                "region",
                "path_style",
                "access_key",
                "secret_key",
            ],
        ),
        ComponentKind::Command(_) => (&[], &[]),
    }
}

/// A field a restore request may override, with its configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverridableField {
    /// The field's name (`path`, `database`, `bucket`, …).
    pub name: &'static str,
    /// Its configured value when it is a plain literal (never a secret).
    pub configured: Option<String>,
    /// Whether overriding it needs `restore:redirect` too.
    pub redirect: bool,
}

/// The fields of `kind` a restore may override, with their configured
/// values — what a restore form shows next to each field.
pub fn overridable_fields(kind: &ComponentKind) -> Vec<OverridableField> {
    let (plain, redirect) = allowed(kind);
    let secrets = secret_fields(kind);
    let settings = serde_json::to_value(kind).unwrap_or(Value::Null);
    let shown = |name: &str| -> Option<String> {
        if secrets.contains(&name) {
            return None;
        }
        match settings.get(name)? {
            Value::String(s) => Some(s.clone()),
            v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
            _ => None,
        }
    };
    let field = |name: &'static str, redirect: bool| OverridableField {
        configured: shown(name),
        name,
        redirect,
    };
    plain
        .iter()
        .map(|n| field(n, false))
        .chain(redirect.iter().map(|n| field(n, true)))
        .collect()
}

/// The secret fields of a kind: what must come with a moved destination.
fn secret_fields(kind: &ComponentKind) -> &'static [&'static str] {
    match kind {
        ComponentKind::Postgres(_) | ComponentKind::Mysql(_) | ComponentKind::Redis(_) => {
            &["password"]
        }
        ComponentKind::S3(_) => &["access_key", "secret_key"],
        _ => &[],
    }
}

/// The fields that say which server a destination is on.
const LOCATION: &[&str] = &["host", "port", "endpoint"];

fn as_object<'v>(field: &str, v: &'v Value) -> ServiceResult<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| {
        ServiceError::Invalid(format!(
            "{field} must be an object of settings, e.g. {{\"database\": \"new_db\"}}"
        ))
    })
}

fn spec_fields(kind: &ComponentKind) -> ServiceResult<Map<String, Value>> {
    match reveal_secrets(|| serde_json::to_value(kind)).map_err(ServiceError::internal)? {
        Value::Object(m) => Ok(m),
        _ => Err(ServiceError::internal("a component spec is not an object")),
    }
}

/// Refuses a secret given as anything but a string (`{file}`, `{env}`).
fn require_literal(field: &str, v: &Value) -> ServiceResult<()> {
    match v {
        Value::String(_) | Value::Null => Ok(()),
        _ => Err(ServiceError::Forbidden(format!(
            "{field}: only a literal string is accepted over the API; {{\"file\": …}} and \
             {{\"env\": …}} name the server's own files and variables"
        ))),
    }
}

/// The configured `spec` with the request's `over` laid over it, checked
/// field by field against `p` and `rules`. `field` names the override in
/// messages (`overrides.db`).
pub fn overridden(
    spec: &ComponentSpec,
    over: &Value,
    p: &Principal,
    rules: &Rules,
    field: &str,
) -> ServiceResult<ComponentSpec> {
    let fields = as_object(field, over)?;
    let mut base = spec_fields(&spec.kind)?;
    let (plain, redirect) = allowed(&spec.kind);
    for (k, v) in fields {
        let f = format!("{field}.{k}");
        if k == "kind" {
            if v.as_str() != Some(spec.kind.name()) {
                return Err(ServiceError::Invalid(format!(
                    "{f}: a {0} component restores into a {0} destination only",
                    spec.kind.name()
                )));
            }
            continue;
        }
        if !base.contains_key(k) {
            return Err(ServiceError::Invalid(format!(
                "{f}: unknown field for a {} component",
                spec.kind.name()
            )));
        }
        if redirect.contains(&k.as_str()) {
            if !p.has(Scope::RestoreRedirect) {
                return Err(ServiceError::Forbidden(format!(
                    "{f}: restoring to another server needs the `restore:redirect` scope"
                )));
            }
        } else if !plain.contains(&k.as_str()) {
            let may = plain.iter().chain(redirect).copied().collect::<Vec<_>>();
            return Err(ServiceError::Forbidden(format!(
                "{f} cannot be set over the API (a {} component's destination may change only: \
                 {})",
                spec.kind.name(),
                if may.is_empty() {
                    "nothing".to_owned()
                } else {
                    may.join(", ")
                }
            )));
        }
        if secret_fields(&spec.kind).contains(&k.as_str()) {
            require_literal(&f, v)?;
        }
    }
    // A destination on another server brings its own credentials.
    let moved = LOCATION
        .iter()
        .any(|k| fields.get(*k).is_some_and(|v| base.get(*k) != Some(v)));
    if moved
        && let Some(missing) = secret_fields(&spec.kind)
            .iter()
            .find(|k| !fields.contains_key(**k) && base.get(**k).is_some_and(|v| !v.is_null()))
    {
        return Err(ServiceError::Invalid(format!(
            "{field}.{missing}: a destination on another server needs its own credentials in \
             the request; the configured ones never leave for another server"
        )));
    }
    for (k, v) in fields {
        base.insert(k.clone(), v.clone());
    }
    base.insert("kind".into(), Value::String(spec.kind.name().into()));
    let kind: ComponentKind = serde_json::from_value(Value::Object(base))
        .map_err(|e| ServiceError::Invalid(format!("{field}: {e}")))?;
    let out = ComponentSpec {
        name: spec.name.clone(),
        sensitive: spec.sensitive,
        kind,
    };
    out.validate()
        .map_err(|e| ServiceError::Invalid(format!("{field}: {e}")))?;
    check_places(&out, Some(spec), rules, field)?;
    Ok(out)
}

/// A whole spec for a component this server does not configure (restoring
/// an upload into a new place): `admin` and an unlimited token only, and
/// never a `command`, a `bin_dir` or a secret that is not a literal.
pub fn whole_spec(
    name: &str,
    sensitive: bool,
    over: &Value,
    p: &Principal,
    rules: &Rules,
    field: &str,
) -> ServiceResult<ComponentSpec> {
    p.require(Scope::Admin).map_err(|_| {
        ServiceError::Forbidden(format!(
            "{field}: component {name:?} is not configured here; restoring it from a whole spec \
             in the request needs the `admin` scope (or add it to [[components]])"
        ))
    })?;
    if p.components.is_some() {
        return Err(ServiceError::Forbidden(format!(
            "{field}: a token limited to some components cannot restore into an unconfigured one"
        )));
    }
    let fields = as_object(field, over)?;
    let kind: ComponentKind = serde_json::from_value(over.clone()).map_err(|e| {
        ServiceError::Invalid(format!(
            "{field}: component {name:?} is not configured here, so give a whole spec with \
             \"kind\": {e}"
        ))
    })?;
    if matches!(kind, ComponentKind::Command(_)) {
        return Err(ServiceError::Forbidden(format!(
            "{field}.kind: a command component runs programs; it can only come from coffer.toml"
        )));
    }
    if fields.get("bin_dir").is_some_and(|v| !v.is_null()) {
        return Err(ServiceError::Forbidden(format!(
            "{field}.bin_dir cannot be set over the API"
        )));
    }
    for k in secret_fields(&kind) {
        if let Some(v) = fields.get(*k) {
            require_literal(&format!("{field}.{k}"), v)?;
        }
    }
    let name = name
        .parse::<ComponentName>()
        .map_err(|e| ServiceError::Invalid(format!("{field}: the component name {name:?}: {e}")))?;
    let spec = ComponentSpec {
        name,
        sensitive,
        kind,
    };
    spec.validate()
        .map_err(|e| ServiceError::Invalid(format!("{field}: {e}")))?;
    check_places(&spec, None, rules, field)?;
    Ok(spec)
}

/// The destination's paths and hosts against the rules: a path other than
/// the configured one must lie below a restore root and overlap nothing
/// the server protects; a host other than the configured one must pass
/// `server.target_allow`.
fn check_places(
    spec: &ComponentSpec,
    configured: Option<&ComponentSpec>,
    rules: &Rules,
    field: &str,
) -> ServiceResult<()> {
    let same_host = |h: &str| configured.and_then(|c| host_of(&c.kind)).as_deref() == Some(h);
    if let Some(host) = host_of(&spec.kind)
        && !same_host(&host)
    {
        check_host(&format!("{field}.host"), &host, rules.target_allow)?;
    }
    let path = match &spec.kind {
        ComponentKind::Files(f) => &f.path,
        ComponentKind::Sqlite(s) => &s.path,
        _ => return Ok(()),
    };
    let configured_path = configured.and_then(|c| match &c.kind {
        ComponentKind::Files(f) => Some(&f.path),
        ComponentKind::Sqlite(s) => Some(&s.path),
        _ => None,
    });
    if configured_path == Some(path) {
        return Ok(());
    }
    check_restore_path(&format!("{field}.path"), path, rules)
}

fn host_of(kind: &ComponentKind) -> Option<String> {
    match kind {
        ComponentKind::Postgres(p) => Some(p.host.clone()),
        ComponentKind::Mysql(m) => Some(m.host.clone()),
        ComponentKind::Redis(r) => Some(r.host.clone()),
        ComponentKind::S3(s) => url_host(&s.endpoint).map(str::to_owned),
        _ => None,
    }
}

/// `path` with symbolic links in its existing part resolved, so a link
/// cannot carry a restore out of a root.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(c, |acc: PathBuf, p| acc.join(p));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A path a request chose: absolute, without `.`/`..`, strictly below one
/// of `server.restore_roots` (links resolved), and overlapping nothing the
/// server protects.
fn check_restore_path(field: &str, path: &Path, rules: &Rules) -> ServiceResult<()> {
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(ServiceError::Invalid(format!(
            "{field}: {} must be an absolute path without . or ..",
            path.display()
        )));
    }
    let real = resolved(path);
    for p in &rules.protected {
        let p = resolved(p);
        if overlaps(&real, &p) {
            return Err(ServiceError::Forbidden(format!(
                "{field}: {} overlaps {}, which the server keeps for itself (its data, staging \
                 or a repository)",
                path.display(),
                p.display()
            )));
        }
    }
    let inside = rules.restore_roots.iter().any(|root| {
        let root = resolved(root);
        real.starts_with(&root) && real != root
    });
    if inside {
        return Ok(());
    }
    Err(ServiceError::Forbidden(if rules.restore_roots.is_empty() {
        format!(
            "{field}: restoring to {} needs it to lie below a directory listed in \
             server.restore_roots (none is configured: only the configured path is allowed)",
            path.display()
        )
    } else {
        format!(
            "{field}: {} is not below server.restore_roots ({})",
            path.display(),
            rules
                .restore_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_model::component::parse_components;
    use serde_json::json;

    fn spec(toml: &str) -> ComponentSpec {
        parse_components(toml).unwrap().remove(0)
    }

    fn principal(scopes: &[Scope]) -> Principal {
        Principal {
            id: "tok-1".into(),
            name: "t".into(),
            scopes: scopes.iter().copied().collect(),
            components: None,
            expires_at: None,
        }
    }

    fn forbidden(r: ServiceResult<ComponentSpec>) -> String {
        match r {
            Err(ServiceError::Forbidden(m)) => m,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn only_allowed_fields_change_and_never_what_runs() {
        let roots: Vec<PathBuf> = vec![];
        let rules = Rules {
            restore_roots: &roots,
            target_allow: &[],
            protected: vec![],
        };
        let restore = principal(&[Scope::Restore]);
        let pg = spec(
            "[[components]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"u\"\n\
             password = \"secret\"\ndatabase = \"app\"\n",
        );
        let out = overridden(
            &pg,
            &json!({"database": "copy"}),
            &restore,
            &rules,
            "overrides.db",
        )
        .unwrap();
        assert!(matches!(out.kind, ComponentKind::Postgres(ref p) if p.database == "copy"));
        let m = forbidden(overridden(
            &pg,
            &json!({"bin_dir": "/tmp"}),
            &restore,
            &rules,
            "o.db",
        ));
        assert!(m.contains("o.db.bin_dir"), "{m}");
        let m = forbidden(overridden(
            &pg,
            &json!({"host": "10.0.0.9"}),
            &restore,
            &rules,
            "o.db",
        ));
        assert!(m.contains("restore:redirect"), "{m}");
        let redirect = principal(&[Scope::Restore, Scope::RestoreRedirect]);
        let e = overridden(&pg, &json!({"host": "10.0.0.9"}), &redirect, &rules, "o.db")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("o.db.password") && e.contains("own credentials"),
            "{e}"
        );
        overridden(
            &pg,
            &json!({"host": "10.0.0.9", "password": "theirs"}),
            &redirect,
            &rules,
            "o.db",
        )
        .unwrap();
        let m = forbidden(overridden(
            &pg,
            &json!({"host": "10.0.0.9", "password": {"file": "/srv/coffer/server.key"}}),
            &redirect,
            &rules,
            "o.db",
        ));
        assert!(m.contains("literal"), "{m}");
        let m = forbidden(overridden(
            &pg,
            &json!({"host": "169.254.169.254", "password": "x"}),
            &redirect,
            &rules,
            "o.db",
        ));
        assert!(m.contains("metadata"), "{m}");
        let cmd = spec(
            "[[components]]\nname = \"c\"\nkind = \"command\"\nbackup = [\"true\"]\n\
             restore = [\"true\"]\n",
        );
        let m = forbidden(overridden(
            &cmd,
            &json!({"restore": ["sh", "-c", "id"]}),
            &restore,
            &rules,
            "o.c",
        ));
        assert!(m.contains("nothing"), "{m}");
        let e = overridden(&pg, &json!({"databse": "x"}), &restore, &rules, "o.db").unwrap_err();
        assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    }

    #[test]
    fn paths_stay_below_restore_roots_and_away_from_the_servers_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("restores");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&data, root.join("sneaky")).unwrap();
        let roots = vec![root.clone()];
        let rules = Rules {
            restore_roots: &roots,
            target_allow: &[],
            protected: vec![data.clone()],
        };
        let p = principal(&[Scope::Restore]);
        let files = spec(&format!(
            "[[components]]\nname = \"f\"\nkind = \"files\"\npath = \"{}\"\n",
            dir.path().join("app").display()
        ));
        overridden(
            &files,
            &json!({"path": root.join("copy")}),
            &p,
            &rules,
            "o.f",
        )
        .unwrap();
        // The configured path itself needs no root.
        overridden(
            &files,
            &json!({"path": dir.path().join("app")}),
            &p,
            &rules,
            "o.f",
        )
        .unwrap();
        for bad in [
            dir.path().join("elsewhere"),
            root.clone(),
            root.join("sneaky").join("x"),
            data.join("catalog.sqlite"),
        ] {
            forbidden(overridden(&files, &json!({"path": bad}), &p, &rules, "o.f"));
        }
        let e = overridden(&files, &json!({"path": "/a/../etc"}), &p, &rules, "o.f").unwrap_err();
        assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    }

    #[test]
    fn whole_specs_need_admin_and_never_run_commands() {
        let roots = vec![PathBuf::from("/srv/restores")];
        let rules = Rules {
            restore_roots: &roots,
            target_allow: &[],
            protected: vec![],
        };
        let spec = json!({"kind": "files", "path": "/srv/restores/x"});
        forbidden(whole_spec(
            "x",
            false,
            &spec,
            &principal(&[Scope::Restore]),
            &rules,
            "o.x",
        ));
        let admin = principal(&[Scope::Restore, Scope::Admin]);
        whole_spec("x", false, &spec, &admin, &rules, "o.x").unwrap();
        let cmd = json!({"kind": "command", "backup": ["true"], "restore": ["sh"]});
        forbidden(whole_spec("x", false, &cmd, &admin, &rules, "o.x"));
        let pg = json!({"kind": "postgres", "user": "u", "database": "d", "bin_dir": "/tmp"});
        forbidden(whole_spec("x", false, &pg, &admin, &rules, "o.x"));
        forbidden(whole_spec(
            "x",
            false,
            &json!({"kind": "files", "path": "/etc"}),
            &admin,
            &rules,
            "o.x",
        ));
    }

    // ------------------------------------------------------------ fuzzing

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "(/srv/restores/[a-z]{1,8}|/srv/restores/\\.\\./x|\\.\\./\\.\\./etc|/etc/passwd|127\\.0\\.0\\.1|[a-z0-9_.:/-]{0,20})"
                .prop_map(Value::String),
            any::<String>().prop_map(Value::String),
            Just(json!({"file": "/etc/shadow"})),
            Just(json!({"env": "HOME"})),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const KEYS: &[&str] = &[
        "path",
        "database",
        "host",
        "port",
        "user",
        "password",
        "sslmode",
        "bucket",
        "prefix",
        "endpoint",
        "region",
        "path_style",
        "access_key",
        "secret_key",
        "kind",
        "backup",
        "restore",
        "name",
        "sensitive",
        "on_change",
        "drill_bucket",
        "excludes",
        "x",
    ];

    fn specs() -> Vec<ComponentSpec> {
        [
            "kind = \"files\"\npath = \"/srv/app\"",
            "kind = \"sqlite\"\npath = \"/srv/app.db\"",
            "kind = \"postgres\"\nhost = \"db\"\nuser = \"u\"\npassword = \"p\"\ndatabase = \"app\"",
            "kind = \"mysql\"\nhost = \"db\"\nuser = \"u\"\npassword = \"p\"\ndatabase = \"app\"",
            "kind = \"redis\"\nhost = \"cache\"",
            "kind = \"s3\"\nendpoint = \"https://s3\"\nbucket = \"app-data\"\naccess_key = \"k\"\nsecret_key = \"s\"",
            "kind = \"command\"\nbackup = [\"dump\"]\nrestore = [\"load\"]",
        ]
        .iter()
        .map(|body| spec(&format!("[[components]]\nname = \"c\"\n{body}\n")))
        .collect()
    }

    proptest::proptest! {
        #![proptest_config(coffer_testkit::fuzz::config())]

        /// Any overrides object, from a caller with `restore` alone and with
        /// `restore:redirect`: refused, or only the fields the scope allows
        /// changed — never what runs, never a path outside the restore roots.
        #[test]
        fn any_overrides_change_only_what_the_scope_allows(
            pairs in proptest::collection::vec((proptest::sample::select(KEYS), any_value()), 0..5),
            redirect in proptest::prelude::any::<bool>(),
        ) {
            let roots = vec![PathBuf::from("/srv/restores")];
            let rules = Rules { restore_roots: &roots, target_allow: &[], protected: vec![] };
            let scopes: &[Scope] = if redirect {
                &[Scope::Restore, Scope::RestoreRedirect]
            } else {
                &[Scope::Restore]
            };
            let p = principal(scopes);
            let over = Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            for spec in specs() {
                let Ok(out) = overridden(&spec, &over, &p, &rules, "overrides.c") else {
                    continue;
                };
                let (plain, redirectable) = allowed(&spec.kind);
                let before = serde_json::to_value(&spec.kind).unwrap();
                let after = serde_json::to_value(&out.kind).unwrap();
                proptest::prop_assert_eq!(out.name.as_str(), spec.name.as_str());
                proptest::prop_assert_eq!(out.kind.name(), spec.kind.name());
                for (k, v) in before.as_object().unwrap() {
                    let may = plain.contains(&k.as_str())
                        || (redirect && redirectable.contains(&k.as_str()));
                    if !may {
                        proptest::prop_assert_eq!(Some(v), after.get(k), "{} changed: {}", k, over);
                    }
                }
                if let Some(path) = after.get("path").and_then(Value::as_str) {
                    let configured = before.get("path").and_then(Value::as_str);
                    let path = std::path::Path::new(path);
                    proptest::prop_assert!(
                        Some(path.to_str().unwrap_or_default()) == configured
                            || (path.starts_with("/srv/restores")
                                && !path.components().any(|c| c == std::path::Component::ParentDir)),
                        "path {} allowed: {}", path.display(), over
                    );
                }
            }
        }
    }
}
