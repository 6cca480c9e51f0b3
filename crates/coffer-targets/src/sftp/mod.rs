//! An SFTP server (OpenSSH's `internal-sftp` and others), through `russh`
//! and `russh-sftp` on a private tokio runtime behind the blocking
//! [`Storage`] interface.
//!
//! The server's host key is pinned: a key that does not match the
//! configured fingerprint is refused before any credential is sent. Writes
//! go to `coffer/tmp/<random>`, are flushed with `fsync@openssh.com` where the
//! server offers it, size-checked, and renamed into place. SFTP v3's rename
//! refuses an existing target, so replacing an object removes the old one
//! first: a reader can see it missing for an instant (the engine only
//! replaces its own lock objects).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::retry::RetryPolicy;
use crate::{
    ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult, TMP_DIR, check_key,
    check_list_prefix,
};

mod ranges;

/// The largest write request sent (OpenSSH takes up to 256 KiB).
const WRITE_PACKET: usize = 192 * 1024;

/// How an SFTP target authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum SftpAuth {
    /// A password.
    Password(String),
    /// A private key file (OpenSSH, PKCS#8, PKCS#1 or PuTTY), with its passphrase if encrypted.
    Key {
        /// The key file.
        path: PathBuf,
        /// Its passphrase.
        passphrase: Option<String>,
    },
}

/// Connection settings of an SFTP target, secrets already resolved.
#[derive(Clone)]
pub struct SftpSettings {
    /// Server host name or address.
    pub host: String,
    /// SSH port (22).
    pub port: u16,
    /// User.
    pub user: String,
    /// Password or key.
    pub auth: SftpAuth,
    /// The server's host key: an OpenSSH fingerprint (`SHA256:…`) or a
    /// public key line (`ssh-ed25519 AAAA…`). Required: connections to an
    /// unpinned server are refused.
    pub host_key: String,
    /// The directory holding the repository (absolute, or relative to the login directory).
    pub directory: String,
    /// Connect timeout and request timeout.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for SftpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_key", &self.host_key)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl SftpSettings {
    /// Settings with Coffer's defaults (30 s timeout, 5 attempts).
    pub fn new(
        host: &str,
        port: u16,
        user: &str,
        auth: SftpAuth,
        host_key: &str,
        directory: &str,
    ) -> Self {
        Self {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            auth,
            host_key: host_key.to_owned(),
            directory: directory.to_owned(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Which stage of setting up a session failed: validation reports them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SftpStage {
    /// TCP connect and SSH handshake.
    Reachable,
    /// The server's host key against the pinned one.
    HostKey,
    /// Password or key authentication.
    Login,
    /// Starting the `sftp` subsystem.
    Subsystem,
}

/// Checks the server's key against the pinned fingerprint.
struct Pinned {
    expected: String,
    offered: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(fingerprint.clone());
        Ok(fingerprint == self.expected)
    }
}

struct Session {
    ssh: russh::client::Handle<Pinned>,
    sftp: Arc<SftpSession>,
    /// The channel for ranged reads, opened by the first one.
    reader: tokio::sync::OnceCell<ranges::RangeReader>,
}

/// A storage in a directory of an SFTP server.
pub struct SftpStorage {
    settings: SftpSettings,
    /// The pinned fingerprint (`SHA256:…`).
    expected: String,
    root: String,
    location: String,
    runtime: tokio::runtime::Runtime,
    session: Mutex<Option<Arc<Session>>>,
}

impl std::fmt::Debug for SftpStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpStorage")
            .field("location", &self.location)
            .finish()
    }
}

impl SftpStorage {
    /// A storage for `settings`; nothing is contacted yet.
    pub fn new(settings: SftpSettings) -> StorageResult<Self> {
        let root = settings.directory.trim_end_matches('/').to_owned();
        let location = format!(
            "sftp://{}@{}:{}/{}",
            settings.user,
            settings.host,
            settings.port,
            root.trim_start_matches('/')
        );
        let invalid =
            |m: String| StorageError::new(StorageErrorKind::Other, &location, "open", "", m);
        let pin = settings.host_key.trim();
        let expected = if pin.starts_with("SHA256:") {
            pin.to_owned()
        } else {
            russh::keys::PublicKey::from_openssh(pin)
                .map_err(|e| {
                    invalid(format!(
                        "host_key is neither a SHA256: fingerprint nor a public key line: {e}"
                    ))
                })?
                .fingerprint(HashAlg::Sha256)
                .to_string()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("coffer-sftp")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("starting the SFTP runtime: {e}")))?;
        Ok(Self {
            settings,
            expected,
            root,
            location,
            runtime,
            session: Mutex::new(None),
        })
    }

    fn path(&self, key: &str) -> String {
        if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        }
    }

    fn error(&self, op: &'static str, key: &str, e: &SftpError) -> StorageError {
        let kind = match e {
            SftpError::Status(s) => match s.status_code {
                StatusCode::NoSuchFile => StorageErrorKind::NotFound,
                StatusCode::PermissionDenied => StorageErrorKind::PermissionDenied,
                StatusCode::NoConnection | StatusCode::ConnectionLost => {
                    StorageErrorKind::Transient
                }
                _ => StorageErrorKind::Other,
            },
            SftpError::IO(_) | SftpError::Timeout => StorageErrorKind::Transient,
            // The session's channel went away under the request (the
            // connection was reset): a new session may well succeed.
            // A channel closed under the request ("session closed": the
            // server ended it) is the same, short of the whole connection.
            SftpError::UnexpectedBehavior(m) if m == "sender dropped" || m == "session closed" => {
                StorageErrorKind::Transient
            }
            _ => StorageErrorKind::Other,
        };
        StorageError::new(kind, &self.location, op, key, e.to_string())
    }

    fn io_error(&self, op: &'static str, key: &str, e: &std::io::Error) -> StorageError {
        let mut err = StorageError::io(&self.location, op, key, e);
        // russh-sftp reports server failures on file handles as "other";
        // a dropped session shows up the same way and is worth a retry.
        if err.kind == StorageErrorKind::Other {
            err.kind = StorageErrorKind::Transient;
        }
        err
    }

    /// Connects, checks the host key, logs in and starts SFTP.
    pub fn connect_stage(&self) -> Result<(), (SftpStage, StorageError)> {
        self.session_or_connect().map(|_| ())
    }

    fn session_or_connect(&self) -> Result<Arc<Session>, (SftpStage, StorageError)> {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && !s.ssh.is_closed()
        {
            return Ok(Arc::clone(s));
        }
        let session = Arc::new(self.runtime.block_on(self.connect())?);
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&session));
        Ok(session)
    }

    async fn connect(&self) -> Result<Session, (SftpStage, StorageError)> {
        let s = &self.settings;
        let fail = |stage, kind, op: &'static str, m: String| {
            (stage, StorageError::new(kind, &self.location, op, "", m))
        };
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            keepalive_interval: Some(Duration::from_secs(30)),
            // Pipelined SFTP requests are small: with Nagle's algorithm each
            // waits for the previous one's ACK, a round trip apiece.
            nodelay: true,
            // What the server may send before we acknowledge: the library's
            // 2 MiB caps one session at 2 MiB per round trip (≈ 65 MiB/s
            // at 30 ms) for all the restore's reads together.
            window_size: 16 << 20,
            ..Default::default()
        });
        let offered = Arc::new(Mutex::new(None));
        let handler = Pinned {
            expected: self.expected.clone(),
            offered: Arc::clone(&offered),
        };
        let connecting = russh::client::connect(config, (s.host.as_str(), s.port), handler);
        let mut ssh = match tokio::time::timeout(s.timeout, connecting).await {
            Err(_) => {
                return Err(fail(
                    SftpStage::Reachable,
                    StorageErrorKind::Transient,
                    "connect",
                    format!("no SSH handshake within {} s", s.timeout.as_secs()),
                ));
            }
            Ok(Err(russh::Error::UnknownKey)) => {
                let got = offered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default();
                return Err(fail(
                    SftpStage::HostKey,
                    StorageErrorKind::Other,
                    "host-key",
                    format!(
                        "host key mismatch: the server offered {got}, the target pins {}; refusing to connect (a changed server or a man in the middle)",
                        self.expected
                    ),
                ));
            }
            Ok(Err(e)) => {
                let kind = if matches!(
                    e,
                    russh::Error::IO(_)
                        | russh::Error::ConnectionTimeout
                        | russh::Error::Disconnect
                        | russh::Error::HUP
                ) {
                    StorageErrorKind::Transient
                } else {
                    StorageErrorKind::Other
                };
                return Err(fail(SftpStage::Reachable, kind, "connect", e.to_string()));
            }
            Ok(Ok(h)) => h,
        };
        let auth = match &s.auth {
            SftpAuth::Password(pw) => ssh.authenticate_password(s.user.clone(), pw.clone()).await,
            SftpAuth::Key { path, passphrase } => {
                let key =
                    russh::keys::load_secret_key(path, passphrase.as_deref()).map_err(|e| {
                        fail(
                            SftpStage::Login,
                            StorageErrorKind::Other,
                            "login",
                            format!("private key {}: {e}", path.display()),
                        )
                    })?;
                let hash = ssh.best_supported_rsa_hash().await.ok().flatten().flatten();
                ssh.authenticate_publickey(
                    s.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
            }
        };
        match auth {
            Ok(r) if r.success() => {}
            Ok(_) => {
                return Err(fail(
                    SftpStage::Login,
                    StorageErrorKind::PermissionDenied,
                    "login",
                    format!(
                        "authentication of {:?} failed (wrong password or key not authorized)",
                        s.user
                    ),
                ));
            }
            Err(e) => {
                return Err(fail(
                    SftpStage::Login,
                    StorageErrorKind::Transient,
                    "login",
                    e.to_string(),
                ));
            }
        }
        let sub = async {
            let channel = sftp_channel(&ssh).await?;
            // Larger write packets than the library's 32 KiB: OpenSSH takes
            // up to 256 KiB, and fewer packets mean fewer round trips. Reads
            // on this channel are whole small objects (config, keys, index,
            // snapshots; ranged reads have their own channel, `ranges`):
            // 4 deep is plenty. Writes go 64 deep (12 MiB in flight per file): at 16, a
            // backup of 270 MiB of packs through a 30 ms link capped at
            // 25 MiB/s took 23.5 s, at 64 18.4 s.
            let config = russh_sftp::client::Config {
                max_write_packet_len: WRITE_PACKET as u32,
                max_concurrent_reads: 4,
                max_concurrent_writes: 64,
                request_timeout_secs: s.timeout.as_secs().max(1),
                ..Default::default()
            };
            let sftp = SftpSession::new_with_config(channel, config)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(sftp)
        };
        let sftp = sub
            .await
            .map_err(|m| fail(SftpStage::Subsystem, StorageErrorKind::Transient, "sftp", m))?;
        Ok(Session {
            ssh,
            sftp: Arc::new(sftp),
            reader: tokio::sync::OnceCell::new(),
        })
    }

    /// Runs `f` with the SFTP session, reconnecting and retrying transient failures.
    fn run<T>(&self, f: impl AsyncFn(&SftpSession) -> StorageResult<T>) -> StorageResult<T> {
        self.run_session(async |s| f(&s.sftp).await)
    }

    /// [`Self::run`] with the whole session (its reader channel too).
    fn run_session<T>(&self, f: impl AsyncFn(&Session) -> StorageResult<T>) -> StorageResult<T> {
        self.settings.retry.run(|| {
            let session = self.session_or_connect().map_err(|(_, e)| e)?;
            let mut result = self.runtime.block_on(f(&session));
            if let Err(e) = &mut result
                && session.ssh.is_closed()
            {
                // Whatever the request saw, its connection is gone: worth
                // a retry on a new one.
                e.kind = StorageErrorKind::Transient;
            }
            if let Err(e) = &result
                && e.kind == StorageErrorKind::Transient
            {
                // Start over with a fresh session on the next attempt.
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            result
        })
    }

    /// `mkdir -p` of the directory holding `path`. Returns the first refusal
    /// (permission denied), which explains a later "no such file" better.
    async fn make_parents(&self, sftp: &SftpSession, path: &str) -> Option<(String, SftpError)> {
        let (parent, _) = path.rsplit_once('/')?;
        let mut refused = None;
        let mut current = String::new();
        for part in parent.split('/') {
            if !current.is_empty() || path.starts_with('/') {
                current.push('/');
            }
            current.push_str(part);
            if part.is_empty() {
                continue;
            }
            // Existing directories fail here too ("failure"); only a
            // permission refusal is worth reporting.
            if let Err(e) = sftp.create_dir(current.clone()).await
                && matches!(&e, SftpError::Status(st) if st.status_code == StatusCode::PermissionDenied)
                && refused.is_none()
            {
                refused = Some((current.clone(), e));
            }
        }
        refused
    }

    /// Renames the written `tmp` to `path`. A failure is an object being
    /// replaced (SFTP v3 refuses to rename over an existing file: it is
    /// removed first) or a missing directory (made, then tried again).
    async fn rename_into_place(
        &self,
        sftp: &SftpSession,
        tmp: &str,
        path: &str,
    ) -> Result<(), SftpError> {
        let Err(e) = sftp.rename(tmp.to_owned(), path.to_owned()).await else {
            return Ok(());
        };
        // Servers do not all say "no such file" for a missing directory.
        if !is_missing(&e) {
            let _ = sftp.remove_file(path.to_owned()).await;
            if sftp.rename(tmp.to_owned(), path.to_owned()).await.is_ok() {
                return Ok(());
            }
        }
        self.make_parents(sftp, path).await;
        sftp.rename(tmp.to_owned(), path.to_owned()).await
    }

    /// Creates the target directory if missing.
    pub fn ensure_directory(&self) -> StorageResult<()> {
        let probe = self.path("x");
        self.run(async |sftp| {
            let _ = self.make_parents(sftp, &probe).await;
            let dir = if self.root.is_empty() {
                ".".to_owned()
            } else {
                self.root.clone()
            };
            match sftp.metadata(dir).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(StorageError::new(
                    StorageErrorKind::Other,
                    &self.location,
                    "mkdir",
                    "",
                    "not a directory",
                )),
                Err(e) => Err(self.error("mkdir", "", &e)),
            }
        })
    }

    /// Free space where the server reports it (`statvfs@openssh.com`).
    pub fn free_space(&self) -> StorageResult<Option<u64>> {
        self.run(async |sftp| {
            let dir = if self.root.is_empty() {
                ".".to_owned()
            } else {
                self.root.clone()
            };
            match sftp.fs_info(dir).await {
                Ok(Some(st)) => Ok(Some(
                    st.blocks_avail.saturating_mul(st.fragment_size.max(1)),
                )),
                Ok(None) => Ok(None),
                Err(e) => Err(self.error("statvfs", "", &e)),
            }
        })
    }

    async fn walk(
        &self,
        sftp: &SftpSession,
        dir: &str,
        prefix: &str,
        out: &mut Vec<ObjectInfo>,
    ) -> StorageResult<()> {
        let full = if dir.is_empty() {
            if self.root.is_empty() {
                ".".to_owned()
            } else {
                self.root.clone()
            }
        } else {
            self.path(dir)
        };
        let entries = match sftp.read_dir(full).await {
            Ok(e) => e,
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => return Ok(()),
            Err(e) => return Err(self.error("list", dir, &e)),
        };
        for entry in entries {
            let name = entry.file_name();
            let key = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let meta = entry.metadata();
            if meta.is_dir() {
                if key != TMP_DIR && crate::may_hold(&key, prefix) {
                    Box::pin(self.walk(sftp, &key, prefix, out)).await?;
                }
            } else if meta.is_regular() {
                out.push(ObjectInfo {
                    key,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }
}

/// A new channel of `ssh` with the `sftp` subsystem started on it.
async fn sftp_channel<H: russh::client::Handler>(
    ssh: &russh::client::Handle<H>,
) -> Result<russh::ChannelStream<russh::client::Msg>, String> {
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| e.to_string())?;
    Ok(channel.into_stream())
}

/// Whether the server said a path (or a directory on it) does not exist.
fn is_missing(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

impl Drop for SftpStorage {
    fn drop(&mut self) {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ =
                self.runtime
                    .block_on(s.ssh.disconnect(russh::Disconnect::ByApplication, "", "en"));
        }
    }
}

impl Storage for SftpStorage {
    fn parallel_reads(&self) -> usize {
        // Requests are pipelined over the one session: 8 hide a 30 ms round
        // trip without crowding OpenSSH's per-channel window.
        8
    }

    fn parallel_writes(&self) -> usize {
        // Several files open on the one session; each write is pipelined.
        2
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        check_key(&self.location, "put", key)?;
        let final_path = self.path(key);
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.run(async |sftp| {
            let tmp = self.path(&format!("{TMP_DIR}/{:016x}", rand::rng().random::<u64>()));
            // The directories almost always exist: making sure first cost a
            // round trip per path component on every object (a third of a
            // second per pack at 30 ms), so they are made only when a
            // create or rename says they are missing.
            let file = match sftp.create(tmp.clone()).await {
                Ok(f) => f,
                Err(_) => {
                    let refused = self.make_parents(sftp, &tmp).await;
                    match sftp.create(tmp.clone()).await {
                        Ok(f) => f,
                        Err(e) => {
                            return Err(match refused {
                                Some((dir, why)) => {
                                    let mut err = self.error("put", key, &why);
                                    err.message =
                                        format!("creating directory {dir}: {}", err.message);
                                    err
                                }
                                None => self.error("put", key, &e),
                            });
                        }
                    }
                }
            };
            // A pack's parts are its blobs, often a few hundred bytes each:
            // written one request per part, a pack of small files' blobs
            // took thousands of requests, 64 per round trip. Gathered into
            // whole write packets, it takes one per 192 KiB.
            let mut writer = tokio::io::BufWriter::with_capacity(WRITE_PACKET, file);
            for part in parts {
                writer
                    .write_all(part)
                    .await
                    .map_err(|e| self.io_error("put", key, &e))?;
            }
            // flush waits for every write's acknowledgement, then sends
            // fsync@openssh.com where the server offers it.
            writer
                .flush()
                .await
                .map_err(|e| self.io_error("put", key, &e))?;
            let file = writer.into_inner();
            let stored = file
                .metadata()
                .await
                .map_err(|e| self.error("put", key, &e))?
                .len();
            drop(file);
            if stored != len as u64 {
                let _ = sftp.remove_file(tmp.clone()).await;
                return Err(StorageError::new(
                    StorageErrorKind::Transient,
                    &self.location,
                    "put",
                    key,
                    format!("the server stored {stored} of {len} bytes"),
                ));
            }
            if let Err(e) = self.rename_into_place(sftp, &tmp, &final_path).await {
                let _ = sftp.remove_file(tmp.clone()).await;
                return Err(self.error("put", key, &e));
            }
            Ok(())
        })
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get", key)?;
        let path = self.path(key);
        self.run(async |sftp| {
            let mut file = sftp
                .open(path.clone())
                .await
                .map_err(|e| self.error("get", key, &e))?;
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)
                .await
                .map_err(|e| self.io_error("get", key, &e))?;
            Ok(buf)
        })
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get-range", key)?;
        let path = self.path(key);
        let data = self.run_session(async |session| {
            let reader = session
                .reader
                .get_or_try_init(|| {
                    ranges::RangeReader::open(&session.ssh, self.settings.timeout.as_secs().max(1))
                })
                .await
                .map_err(|m| {
                    StorageError::new(
                        StorageErrorKind::Transient,
                        &self.location,
                        "get-range",
                        key,
                        format!("opening the reading channel: {m}"),
                    )
                })?;
            reader
                .read(&path, offset, length)
                .await
                .map_err(|e| self.error("get-range", key, &e))
        })?;
        crate::exact_range(&self.location, key, offset, length, data)
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        check_list_prefix(&self.location, prefix)?;
        let dir = prefix
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or("")
            .to_owned();
        let mut out = self.run(async |sftp| {
            let mut out = Vec::new();
            self.walk(sftp, &dir, prefix, &mut out).await?;
            Ok(out)
        })?;
        out.retain(|o| o.key.starts_with(prefix));
        Ok(out)
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        check_key(&self.location, "delete", key)?;
        let path = self.path(key);
        self.run(async |sftp| match sftp.remove_file(path.clone()).await {
            Ok(()) => Ok(()),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
            Err(e) => Err(self.error("delete", key, &e)),
        })
    }

    fn ensure_prefix(&self, prefix: &str) -> StorageResult<()> {
        check_key(&self.location, "mkdir", prefix)?;
        let probe = self.path(&format!("{prefix}/x"));
        self.run(async |sftp| match self.make_parents(sftp, &probe).await {
            Some((dir, e)) => {
                let mut err = self.error("mkdir", prefix, &e);
                err.message = format!("creating directory {dir}: {}", err.message);
                Err(err)
            }
            None => Ok(()),
        })
    }
}
