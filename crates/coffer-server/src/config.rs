//! The server's configuration: `[server]`, `[hooks]` and `[[components]]` of
//! `coffer.toml`.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8420"       # the default; other addresses need TLS or --insecure-bind
//! data_dir = "/var/lib/coffer"    # catalog, server key, default repository
//! parallel_components = 2
//! component_timeout_secs = 3600
//!
//! [hooks]
//! pre_backup = ["/usr/local/bin/app-quiesce"]
//! post_backup = ["/usr/local/bin/app-resume"]
//! pre_restore = ["systemctl stop app"]
//! post_restore = ["systemctl start app"]
//! timeout_secs = 300
//! post_restore_failure = "error"  # or "warn"
//!
//! [sensitive]
//! # age X25519 public keys that `sensitive = true` components are sealed to
//! recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
//!
//! [[components]]
//! name = "uploads"
//! kind = "files"
//! path = "/srv/app/uploads"
//! ```
//!
//! Relative paths in `[server]` are relative to the config file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_engine::AgeRecipients;
use coffer_model::component::{ComponentSpec, parse_components};
use coffer_model::target::{DeclaredTarget, parse_declared_targets};
use coffer_schedule::retention::Policy;
use serde::Deserialize;

use crate::notify::spec::{NotificationSpec, parse_notifications};
use crate::schedules::spec::{ScheduleSpec, parse_schedules};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid, with the field and the rule.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file (or `<defaults>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Catalog, server key, staging area and the default repository.
    pub data_dir: PathBuf,
    /// Scratch space for components that need a copy (SQLite, `{file}` commands).
    pub staging_dir: PathBuf,
    /// TLS certificate and key (PEM), when the server is exposed.
    pub tls: Option<TlsFiles>,
    /// Listening on a non-loopback address without TLS was explicitly allowed.
    pub insecure_bind: bool,
    /// Components backed up at once within one backup.
    pub parallel_components: usize,
    /// A component running longer than this is cancelled and fails.
    pub component_timeout: Duration,
    /// Largest JSON request body.
    pub max_json_bytes: usize,
    /// How long a user's login token (JWT) is valid.
    pub login_lifetime: Duration,
    /// Hooks around backups and restores.
    pub hooks: Hooks,
    /// What `sensitive = true` components are sealed to before they reach
    /// the repository (`[sensitive] recipients`); required when any is.
    pub sensitive_recipients: Option<Arc<AgeRecipients>>,
    /// How long a finished export stays downloadable
    /// (`server.export_ttl_secs`); `None`: until it is deleted (`"never"`).
    pub export_ttl: Option<Duration>,
    /// The shortest password an export may be encrypted with
    /// (`server.min_export_password_len`, default 12).
    pub min_export_password_len: usize,
    /// Preflight: the sources' size estimate is multiplied by this.
    pub preflight_factor: f64,
    /// Preflight: and this many bytes are added (a reserve).
    pub preflight_reserve: u64,
    /// The largest upload accepted (`server.max_upload_mib`, default
    /// 1 TiB): an export or a component's native backup, spooled to disk.
    pub max_upload: u64,
    /// Directories below which a restore may write when a request overrides
    /// a component's path (`server.restore_roots`); empty: only the
    /// configured path itself.
    pub restore_roots: Vec<PathBuf>,
    /// Hosts and networks targets added over the API may reach
    /// (`server.target_allow`); empty: any host but link-local and cloud
    /// metadata addresses.
    pub target_allow: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`:
    /// addresses and CIDR networks); empty: the client is the peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Time a client has to send a request's headers, from the connection's
    /// start or the end of the previous response (`server.header_read_timeout_secs`).
    pub header_read_timeout: Duration,
    /// How long a stop (SIGTERM, SIGINT) waits for running jobs before it
    /// marks them cancelled (`server.shutdown_grace_secs`, default 30).
    pub shutdown_grace: Duration,
    /// What writes backups into the repositories (`server.archiver`).
    pub archiver: coffer_engine::ArchiverKind,
    /// Longest pause while a request body arrives (`server.idle_timeout_secs`).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's queue
    /// (`server.max_connections`).
    pub max_connections: usize,
    /// Password verifications run at once (`server.login_concurrency`).
    pub login_concurrency: usize,
    /// Login attempts per minute on the whole server (`server.login_rate_per_minute`).
    pub login_rate_per_minute: u32,
    /// What a backup covers.
    pub components: Vec<ComponentSpec>,
    /// Targets declared under `[[targets]]`: added (after Validate) or
    /// checked at start, read-only over the API.
    pub targets: Vec<DeclaredTarget>,
    /// Schedules declared under `[[schedules]]` (read-only over the API).
    pub schedules: Vec<ScheduleSpec>,
    /// `[retention.labels]`: the policy of each label's backups (those a
    /// schedule with its own policy took excepted).
    pub label_retention: BTreeMap<String, Policy>,
    /// Notification destinations declared under `[[notifications]]`.
    pub notifications: Vec<NotificationSpec>,
    /// `alerts.backup_max_age_secs`: a component whose newest READY backup
    /// is older is told as `backup_stale` (a dead-man switch).
    pub backup_max_age: Option<Duration>,
    /// `alerts.probe_every_secs`: how often (on the scheduler's clock)
    /// every target is reached and free space measured.
    pub probe_every: Duration,
    /// `alerts.free_space_min_mib`, in bytes: less free space on a local
    /// target or the staging area is told as `free_space_low` (0: never).
    pub free_space_min: u64,
    /// Where the configuration came from, for messages.
    pub source: PathBuf,
}

/// TLS certificate chain and private key files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// What a failing post-restore hook means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFailure {
    /// The restore is `ERROR`.
    #[default]
    Error,
    /// The restore is `READY`, with a warning in its log.
    Warn,
}

/// Commands run around jobs, each with `sh -c`, in order. A failing
/// pre-hook stops the job before it touches anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before a backup's components start (e.g. quiesce the application).
    #[serde(default)]
    pub pre_backup: Vec<String>,
    /// After every component of a backup ended, whatever the outcome.
    #[serde(default)]
    pub post_backup: Vec<String>,
    /// Before a restore (e.g. stop the application).
    #[serde(default)]
    pub pre_restore: Vec<String>,
    /// After a restore (e.g. start the application again).
    #[serde(default)]
    pub post_restore: Vec<String>,
    /// Time limit of each hook command, in seconds (default 300).
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
    /// `error` (default) or `warn`.
    #[serde(default)]
    pub post_restore_failure: HookFailure,
}

fn default_hook_timeout() -> u64 {
    300
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            pre_backup: Vec::new(),
            post_backup: Vec::new(),
            pre_restore: Vec::new(),
            post_restore: Vec::new(),
            timeout_secs: default_hook_timeout(),
            post_restore_failure: HookFailure::default(),
        }
    }
}

/// The port Coffer listens on by default.
pub const DEFAULT_PORT: u16 = 8420;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    staging_dir: Option<PathBuf>,
    tls: Option<TlsFiles>,
    parallel_components: Option<usize>,
    component_timeout_secs: Option<u64>,
    max_json_bytes: Option<usize>,
    login_lifetime_secs: Option<u64>,
    preflight_factor: Option<f64>,
    preflight_reserve_mib: Option<u64>,
    export_ttl_secs: Option<Ttl>,
    min_export_password_len: Option<u64>,
    max_upload_mib: Option<u64>,
    restore_roots: Option<Vec<PathBuf>>,
    target_allow: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    archiver: Option<coffer_engine::ArchiverKind>,
    max_connections: Option<usize>,
    login_concurrency: Option<usize>,
    login_rate_per_minute: Option<u32>,
}

/// A lifetime in seconds, or a word (`"never"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Ttl {
    Secs(u64),
    Word(String),
}

/// `[sensitive]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SensitiveSection {
    #[serde(default)]
    recipients: Vec<String>,
}

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsSection {
    backup_max_age_secs: Option<u64>,
    probe_every_secs: Option<u64>,
    free_space_min_mib: Option<u64>,
}

/// `alerts.probe_every_secs` when not given: five minutes.
const DEFAULT_PROBE_EVERY_SECS: u64 = 300;
/// `alerts.free_space_min_mib` when not given: 1 GiB.
const DEFAULT_FREE_SPACE_MIN_MIB: u64 = 1024;

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    #[serde(default)]
    labels: BTreeMap<String, Policy>,
}

/// The file's top level: an unknown section is refused with its name
/// (a misspelt `[[target]]` must not be silently ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    sensitive: SensitiveSection,
    #[serde(default)]
    retention: RetentionSection,
    #[serde(default)]
    alerts: AlertsSection,
    // Parsed separately, with per-destination messages.
    #[serde(default)]
    notifications: Option<toml::Value>,
    // Parsed separately, with per-schedule messages.
    #[serde(default)]
    schedules: Option<toml::Value>,
    // Parsed separately, with per-component messages.
    #[serde(default)]
    #[allow(dead_code)]
    components: Option<toml::Value>,
    // Parsed separately, with per-target messages.
    #[serde(default)]
    #[allow(dead_code)]
    targets: Option<toml::Value>,
}

impl ServerConfig {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, base, path)
    }

    /// The built-in configuration: no components, data in `./coffer-data`.
    pub fn defaults() -> Self {
        let text = "";
        Self::parse(text, Path::new("."), Path::new("<defaults>"))
            .unwrap_or_else(|e| unreachable!("the empty configuration is valid: {e}"))
    }

    /// Parses a configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path, source: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: source.to_path_buf(),
            message,
        };
        let shape: FileShape = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let components = parse_components(text).map_err(|e| invalid(e.to_string()))?;
        let targets = parse_declared_targets(text).map_err(|e| invalid(e.to_string()))?;
        let schedules = parse_schedules(shape.schedules.as_ref()).map_err(invalid)?;
        let notifications = parse_notifications(shape.notifications.as_ref()).map_err(invalid)?;
        if shape.alerts.backup_max_age_secs == Some(0) {
            return Err(invalid(
                "alerts.backup_max_age_secs must be at least 1".into(),
            ));
        }
        let probe_every = shape
            .alerts
            .probe_every_secs
            .unwrap_or(DEFAULT_PROBE_EVERY_SECS);
        if !(10..=86_400).contains(&probe_every) {
            return Err(invalid(format!(
                "alerts.probe_every_secs must be between 10 and 86400, not {probe_every}"
            )));
        }
        let free_space_min = shape
            .alerts
            .free_space_min_mib
            .unwrap_or(DEFAULT_FREE_SPACE_MIN_MIB)
            .checked_mul(1 << 20)
            .ok_or_else(|| invalid("alerts.free_space_min_mib is too large".into()))?;
        for (label, policy) in &shape.retention.labels {
            coffer_model::Label::new(label)
                .map_err(|e| invalid(format!("retention.labels.{label}: {e}")))?;
            policy
                .validate()
                .map_err(|e| invalid(format!("retention.labels.{label}: {e}")))?;
        }
        let s = shape.server;
        let listen = match s.listen.as_deref() {
            None => SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            Some(l) => l.parse().map_err(|_| {
                invalid(format!(
                    "server.listen: {l:?} is not an address and port such as \"127.0.0.1:{DEFAULT_PORT}\""
                ))
            })?,
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let data_dir = resolve(s.data_dir.unwrap_or_else(|| PathBuf::from("coffer-data")));
        let staging_dir = s
            .staging_dir
            .map(resolve)
            .unwrap_or_else(|| data_dir.join("staging"));
        let tls = s.tls.map(|t| TlsFiles {
            cert: resolve(t.cert),
            key: resolve(t.key),
        });
        let parallel_components = s.parallel_components.unwrap_or(2);
        if parallel_components == 0 {
            return Err(invalid(
                "server.parallel_components must be at least 1".into(),
            ));
        }
        let timeout = s.component_timeout_secs.unwrap_or(6 * 3600);
        if timeout == 0 {
            return Err(invalid(
                "server.component_timeout_secs must be at least 1".into(),
            ));
        }
        if shape.hooks.timeout_secs == 0 {
            return Err(invalid("hooks.timeout_secs must be at least 1".into()));
        }
        let export_ttl = match s.export_ttl_secs.unwrap_or(Ttl::Secs(24 * 3600)) {
            Ttl::Secs(0) => {
                return Err(invalid(
                    "server.export_ttl_secs must be at least 1, or \"never\"".into(),
                ));
            }
            Ttl::Secs(n) => Some(Duration::from_secs(n)),
            Ttl::Word(w) if w == "never" => None,
            Ttl::Word(w) => {
                return Err(invalid(format!(
                    "server.export_ttl_secs: {w:?} is neither a number of seconds nor \"never\""
                )));
            }
        };
        let min_export_password_len =
            usize::try_from(s.min_export_password_len.unwrap_or(12)).unwrap_or(usize::MAX);
        if min_export_password_len == 0 {
            return Err(invalid(
                "server.min_export_password_len must be at least 1".into(),
            ));
        }
        let max_upload_mib = s.max_upload_mib.unwrap_or(1 << 20);
        if max_upload_mib == 0 {
            return Err(invalid("server.max_upload_mib must be at least 1".into()));
        }
        let preflight_factor = s.preflight_factor.unwrap_or(2.0);
        if !(1.0..=100.0).contains(&preflight_factor) {
            return Err(invalid(
                "server.preflight_factor must be between 1 and 100 (default 2: a backup may need \
                 twice the size of its sources)"
                    .into(),
            ));
        }
        let restore_roots = s.restore_roots.unwrap_or_default();
        if let Some(r) = restore_roots.iter().find(|r| !r.is_absolute()) {
            return Err(invalid(format!(
                "server.restore_roots: {} must be an absolute path",
                r.display()
            )));
        }
        let target_allow = s.target_allow.unwrap_or_default();
        if let Some(bad) = target_allow.iter().find(|a| {
            a.trim().is_empty() || a.contains(['/', ' ']) && a.parse::<ipnet::IpNet>().is_err()
        }) {
            return Err(invalid(format!(
                "server.target_allow: {bad:?} is neither a host name, an address nor a CIDR network \
                 such as \"10.0.0.0/8\""
            )));
        }
        let trusted_proxies = s
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|a| {
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(format!(
                            "server.trusted_proxies: {a:?} is neither an IP address nor a CIDR \
                             network such as \"10.0.0.0/8\""
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let positive = |name: &str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(invalid(format!("server.{name} must be at least 1"))),
            v => Ok(v.unwrap_or(default)),
        };
        let header_read_timeout =
            positive("header_read_timeout_secs", s.header_read_timeout_secs, 30)?;
        let idle_timeout = positive("idle_timeout_secs", s.idle_timeout_secs, 60)?;
        let shutdown_grace = positive("shutdown_grace_secs", s.shutdown_grace_secs, 30)?;
        let max_connections =
            positive("max_connections", s.max_connections.map(|n| n as u64), 256)? as usize;
        let login_concurrency = positive(
            "login_concurrency",
            s.login_concurrency.map(|n| n as u64),
            2,
        )? as usize;
        let login_rate_per_minute = positive(
            "login_rate_per_minute",
            s.login_rate_per_minute.map(u64::from),
            60,
        )?
        .min(u64::from(u32::MAX)) as u32;
        let sensitive_recipients = if shape.sensitive.recipients.is_empty() {
            None
        } else {
            let r = AgeRecipients::parse(&shape.sensitive.recipients)
                .map_err(|e| invalid(format!("sensitive.recipients: {e}")))?;
            Some(Arc::new(r))
        };
        // Sensitive components without recipients are allowed: only
        // password-only sensitive exports can read them then (repository
        // backups leave them out, and refuse them by name; see
        // `sealing_for`).
        Ok(Self {
            listen,
            data_dir,
            staging_dir,
            tls,
            insecure_bind: false,
            parallel_components,
            component_timeout: Duration::from_secs(timeout),
            max_json_bytes: s.max_json_bytes.unwrap_or(64 * 1024),
            login_lifetime: Duration::from_secs(s.login_lifetime_secs.unwrap_or(3600)),
            hooks: shape.hooks,
            sensitive_recipients,
            export_ttl,
            min_export_password_len,
            preflight_factor,
            preflight_reserve: s.preflight_reserve_mib.unwrap_or(64) << 20,
            max_upload: max_upload_mib.saturating_mul(1 << 20),
            restore_roots,
            target_allow,
            trusted_proxies,
            header_read_timeout: Duration::from_secs(header_read_timeout),
            idle_timeout: Duration::from_secs(idle_timeout),
            shutdown_grace: Duration::from_secs(shutdown_grace),
            archiver: s.archiver.unwrap_or_default(),
            max_connections,
            login_concurrency,
            login_rate_per_minute,
            components,
            targets,
            schedules,
            label_retention: shape.retention.labels,
            notifications,
            backup_max_age: shape.alerts.backup_max_age_secs.map(Duration::from_secs),
            probe_every: Duration::from_secs(probe_every),
            free_space_min,
            source: source.to_path_buf(),
        })
    }

    /// Why `spec` cannot go into a repository, if it cannot: a sensitive
    /// component is sealed to `[sensitive] recipients` first, and without
    /// them only a sensitive backup with a password alone may read it.
    pub fn unsealable(&self, spec: &ComponentSpec) -> Option<String> {
        (spec.sensitive && self.sensitive_recipients.is_none()).then(|| {
            format!(
                "component {} is sensitive = true and [sensitive] recipients is empty: it can \
                 only be backed up with {{\"sensitive\": true, \"password\": …}} (an export, \
                 never a repository), or add [sensitive] recipients = [\"age1…\"] to seal it \
                 into repositories (age-keygen -o coffer-sensitive.key; keep that file offline)",
                spec.name
            )
        })
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.name.as_str() == name)
    }

    /// Refuses to expose an unencrypted API: a non-loopback address needs TLS
    /// or the explicit `insecure_bind`.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() || self.tls.is_some() || self.insecure_bind {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            path: self.source.clone(),
            message: format!(
                "refusing to listen on {} without TLS: tokens and repository passwords would cross \
                 the network in clear text. Set [server.tls] cert and key, listen on 127.0.0.1 \
                 behind a TLS proxy, or pass --insecure-bind",
                self.listen
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_with_a_local_data_dir() {
        let c = ServerConfig::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8420");
        assert_eq!(c.data_dir, Path::new("./coffer-data"));
        assert_eq!(c.staging_dir, Path::new("./coffer-data/staging"));
        assert!(c.components.is_empty());
        c.check_exposure().unwrap();
    }

    #[test]
    fn relative_paths_follow_the_config_file_and_components_parse() {
        let text = r#"
[server]
listen = "127.0.0.1:9000"
data_dir = "state"
parallel_components = 3

[hooks]
pre_backup = ["true"]
post_restore_failure = "warn"

[[components]]
name = "files"
kind = "files"
path = "/srv/files"
"#;
        let c = ServerConfig::parse(text, Path::new("/etc/coffer"), Path::new("x.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/coffer/state"));
        assert_eq!(c.parallel_components, 3);
        assert_eq!(c.hooks.pre_backup, ["true"]);
        assert_eq!(c.hooks.post_restore_failure, HookFailure::Warn);
        assert_eq!(c.components.len(), 1);
        assert!(c.component("files").is_some());
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/coffer.toml");
        let c = ServerConfig::load(&path).unwrap();
        assert_eq!(c.components.len(), 2);
        assert_eq!(c.hooks.timeout_secs, 300);
        assert!(c.data_dir.ends_with("examples/data"), "{:?}", c.data_dir);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = ServerConfig::parse(
            "[server]\nlisten = \"everywhere\"",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e = ServerConfig::parse("[server]\nport = 1", Path::new("."), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
        let e = ServerConfig::parse(
            "[server]\nparallel_components = 0",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("parallel_components"), "{e}");
    }

    #[test]
    fn exports_may_be_kept_until_deleted() {
        let parse = |t: &str| ServerConfig::parse(t, Path::new("."), Path::new("c.toml"));
        let ttl = |t: &str| parse(t).unwrap().export_ttl;
        assert_eq!(ttl(""), Some(Duration::from_secs(86400)));
        assert_eq!(
            ttl("[server]\nexport_ttl_secs = 60"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(ttl("[server]\nexport_ttl_secs = \"never\""), None);
        for bad in ["export_ttl_secs = 0", "export_ttl_secs = \"forever\""] {
            let e = parse(&format!("[server]\n{bad}")).unwrap_err().to_string();
            assert!(e.contains("server.export_ttl_secs"), "{e}");
        }
    }

    #[test]
    fn targets_are_read_and_unknown_sections_refused() {
        let c = ServerConfig::parse(
            "[[targets]]\nname = \"palette\"\nkind = \"ftp\"\nurl = \"ftps://ftp.lan:21/b\"\n\
             user = \"u\"\npassword = { env = \"FTP_PW\" }\ndefault = true\n",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.targets.len(), 1);
        assert!(c.targets[0].default);
        for (text, name) in [
            ("[[target]]\nname = \"x\"\n", "target"),
            ("[schedule]\nevery = \"1h\"\n", "schedule"),
            ("[retention.label]\nx = 1\n", "label"),
        ] {
            let e = ServerConfig::parse(text, Path::new("."), Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("unknown field `{name}`")), "{e}");
        }
    }

    #[test]
    fn sensitive_components_without_recipients_stay_out_of_repositories() {
        let comp =
            "[[components]]\nname = \"keys\"\nkind = \"files\"\npath = \"/k\"\nsensitive = true\n";
        let c = ServerConfig::parse(comp, Path::new("."), Path::new("c.toml")).unwrap();
        let e = c.unsealable(&c.components[0]).expect("refused");
        assert!(
            e.contains("[sensitive] recipients") && e.contains("keys") && e.contains("password"),
            "{e}"
        );
        let e = ServerConfig::parse(
            "[sensitive]\nrecipients = [\"age1bad\"]\n",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sensitive.recipients") && e.contains("age1bad"),
            "{e}"
        );
        let key = coffer_engine::AgeIdentity::generate().recipient();
        let text = format!("[sensitive]\nrecipients = [\"{key}\"]\n{comp}");
        let c = ServerConfig::parse(&text, Path::new("."), Path::new("c.toml")).unwrap();
        assert_eq!(c.sensitive_recipients.unwrap().to_string(), key);
        let e = ServerConfig::parse(
            "[server]\npreflight_factor = 0.5",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("preflight_factor"), "{e}");
    }

    #[test]
    fn exposing_the_api_needs_tls_or_an_explicit_flag() {
        let mut c = ServerConfig::parse(
            "[server]\nlisten = \"0.0.0.0:8420\"",
            Path::new("."),
            Path::new("c.toml"),
        )
        .unwrap();
        let e = c.check_exposure().unwrap_err().to_string();
        assert!(e.contains("without TLS"), "{e}");
        c.insecure_bind = true;
        c.check_exposure().unwrap();
    }
}
