//! An FTP or explicit-FTPS server.
//!
//! FTP has no fsync and no atomic create: every object is uploaded under a
//! temporary name in `coffer/tmp/`, its size is checked with `SIZE`, and it
//! is renamed into place (`RNFR`/`RNTO`, a `rename(2)` on common servers),
//! so nothing truncated ever appears under a final name. Each transfer opens
//! a data connection and servers cap their passive ports, so the storage
//! keeps a small pool of logged-in control connections and never runs more
//! transfers at once than `max_connections`. Transient failures (dropped
//! connections, 421/425/426/45x) are retried; 530 (login) and TLS failures
//! are not.

mod ranges;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rand::Rng;
use rustls::pki_types::pem::PemObject;
use suppaftp::list::ListParser;
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

use crate::retry::RetryPolicy;
use crate::{
    ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult, TMP_DIR, check_key,
    check_list_prefix,
};

/// FTPS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtpTls {
    /// Plain FTP (credentials in clear text: only on trusted networks).
    None,
    /// Explicit FTPS (`AUTH TLS`), refusing a server that does not offer it.
    Explicit {
        /// Verify the server's certificate (against `ca_file`, else the web PKI roots).
        verify: bool,
        /// A PEM file of trusted CA certificates (a self-signed server's own certificate works).
        ca_file: Option<PathBuf>,
    },
}

/// Connection settings of an FTP target, secrets already resolved.
#[derive(Clone)]
pub struct FtpSettings {
    /// Server host name or address.
    pub host: String,
    /// Control port (21).
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// The directory that holds the repository (absolute in the server's view).
    pub directory: String,
    /// Plain or explicit TLS.
    pub tls: FtpTls,
    /// Passive mode (the default; active mode needs the server to reach us).
    pub passive: bool,
    /// Control connections (and so transfers) at once.
    pub max_connections: usize,
    /// Connect and read/write timeout.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for FtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("directory", &self.directory)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl FtpSettings {
    /// Settings with Coffer's defaults: passive, 4 connections, 30 s timeout.
    pub fn new(host: &str, port: u16, user: &str, password: &str, directory: &str) -> Self {
        Self {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            directory: directory.to_owned(),
            tls: FtpTls::None,
            passive: true,
            max_connections: 4,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A storage in a directory of an FTP(S) server.
pub struct FtpStorage {
    settings: FtpSettings,
    /// `/dir` without a trailing slash (empty for the root).
    root: String,
    location: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<RustlsFtpStream>>,
    /// Connections checked out or idle.
    count: Mutex<usize>,
    freed: Condvar,
    made_dirs: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for FtpStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpStorage")
            .field("location", &self.location)
            .finish()
    }
}

/// Which stage of setting up a connection failed: validation reports them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpStage {
    /// TCP connect and greeting.
    Reachable,
    /// `AUTH TLS` and the handshake.
    Tls,
    /// `USER`/`PASS`.
    Login,
}

impl FtpStorage {
    /// A storage for `settings`; nothing is contacted yet.
    pub fn new(settings: FtpSettings) -> StorageResult<Self> {
        let scheme = if settings.tls == FtpTls::None {
            "ftp"
        } else {
            "ftps"
        };
        let dir = settings.directory.trim_end_matches('/');
        let root = if dir.is_empty() || dir.starts_with('/') {
            dir.to_owned()
        } else {
            format!("/{dir}")
        };
        let location = format!(
            "{scheme}://{}@{}:{}{root}",
            settings.user, settings.host, settings.port
        );
        let tls = match &settings.tls {
            FtpTls::None => None,
            FtpTls::Explicit { verify, ca_file } => {
                Some(Arc::new(tls_config(*verify, ca_file.as_deref()).map_err(
                    |m| StorageError::new(StorageErrorKind::Other, &location, "tls", "", m),
                )?))
            }
        };
        Ok(Self {
            root,
            location,
            tls,
            idle: Mutex::new(Vec::new()),
            count: Mutex::new(0),
            freed: Condvar::new(),
            made_dirs: Mutex::new(HashSet::new()),
            settings,
        })
    }

    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.root)
    }

    fn err(&self, op: &'static str, key: &str, e: FtpError) -> StorageError {
        let (kind, message) = classify(&e);
        StorageError::new(kind, &self.location, op, key, message)
    }

    /// Connects and logs in, reporting which stage failed.
    pub fn connect(&self) -> Result<RustlsFtpStream, (FtpStage, StorageError)> {
        let s = &self.settings;
        let reach = |m: String, kind| {
            (
                FtpStage::Reachable,
                StorageError::new(kind, &self.location, "connect", "", m),
            )
        };
        let addr: SocketAddr = (s.host.as_str(), s.port)
            .to_socket_addrs()
            .map_err(|e| {
                reach(
                    format!("cannot resolve {}: {e}", s.host),
                    StorageErrorKind::Other,
                )
            })?
            .next()
            .ok_or_else(|| {
                reach(
                    format!("{} has no address", s.host),
                    StorageErrorKind::Other,
                )
            })?;
        let tcp = TcpStream::connect_timeout(&addr, s.timeout)
            .map_err(|e| reach(e.to_string(), StorageErrorKind::Transient))?;
        let _ = tcp.set_read_timeout(Some(s.timeout));
        let _ = tcp.set_write_timeout(Some(s.timeout));
        let mut ftp = RustlsFtpStream::connect_with_stream(tcp)
            .map_err(|e| (FtpStage::Reachable, self.err("connect", "", e)))?;
        let timeout = s.timeout;
        ftp = ftp.passive_stream_builder(move |addr| {
            let data =
                TcpStream::connect_timeout(&addr, timeout).map_err(FtpError::ConnectionError)?;
            let _ = data.set_read_timeout(Some(timeout));
            let _ = data.set_write_timeout(Some(timeout));
            Ok(data)
        });
        if !s.passive {
            ftp = ftp.active_mode(s.timeout);
        }
        if let Some(cfg) = &self.tls {
            ftp = ftp
                .into_secure(RustlsConnector::from(Arc::clone(cfg)), &s.host)
                .map_err(|e| {
                    let mut err = self.err("auth-tls", "", e);
                    err.kind = StorageErrorKind::Other; // never retried: TLS is required
                    err.message = format!("TLS is required but failed: {}", err.message);
                    (FtpStage::Tls, err)
                })?;
        }
        ftp.login(s.user.as_str(), s.password.as_str())
            .map_err(|e| (FtpStage::Login, self.err("login", "", e)))?;
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| (FtpStage::Login, self.err("type", "", e)))?;
        Ok(ftp)
    }

    /// Runs `f` on a pooled connection, retried; see [`Self::give_back`]
    /// for what happens to the connection after an error.
    fn with_conn<T>(
        &self,
        op: &'static str,
        key: &str,
        mut f: impl FnMut(&mut RustlsFtpStream) -> Result<T, FtpError>,
    ) -> StorageResult<T> {
        self.settings.retry.run(|| {
            let mut conn = self.checkout()?;
            match f(&mut conn) {
                Ok(v) => {
                    self.checkin(Some(conn));
                    Ok(v)
                }
                Err(e) => {
                    self.give_back(conn, &e);
                    Err(self.err(op, key, e))
                }
            }
        })
    }

    /// Returns `conn` to the pool after it saw `e`. A refused command
    /// leaves a healthy connection; anything else may not, so it is
    /// dropped — with the idle ones, which likely share its fate (the
    /// server restarted, the link was reset): the retry starts on a new
    /// connection instead of a dead one.
    fn give_back(&self, conn: RustlsFtpStream, e: &FtpError) {
        let healthy = matches!(e, FtpError::UnexpectedResponse(_));
        if !healthy {
            self.drop_idle();
        }
        self.checkin(healthy.then_some(conn));
    }

    fn checkout(&self) -> StorageResult<RustlsFtpStream> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        {
            let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
            while *count >= self.settings.max_connections.max(1) {
                if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                    return Ok(c);
                }
                count = self.freed.wait(count).unwrap_or_else(|p| p.into_inner());
            }
            *count += 1;
        }
        self.connect().map_err(|(_, e)| {
            *self.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            self.freed.notify_one();
            e
        })
    }

    /// Closes every idle connection.
    fn drop_idle(&self) {
        let idle: Vec<_> = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        if idle.is_empty() {
            return;
        }
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) -= idle.len();
        self.freed.notify_all();
    }

    fn checkin(&self, conn: Option<RustlsFtpStream>) {
        match conn {
            Some(c) => self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c),
            None => *self.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1,
        }
        self.freed.notify_one();
    }

    /// `mkdir -p` of the directory holding `path`, remembering what exists.
    fn make_parents(&self, ftp: &mut RustlsFtpStream, path: &str) -> Result<(), FtpError> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        if parent.is_empty()
            || self
                .made_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(parent)
        {
            return Ok(());
        }
        let mut current = String::new();
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            current.push('/');
            current.push_str(part);
            if self
                .made_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&current)
            {
                continue;
            }
            // 550 "exists" is fine; a real failure shows at the upload.
            let _ = ftp.mkdir(&current);
            self.made_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(current.clone());
        }
        Ok(())
    }

    /// Lists `dir` recursively into `out` as keys relative to the root.
    fn walk(
        &self,
        ftp: &mut RustlsFtpStream,
        dir: &str,
        prefix: &str,
        out: &mut Vec<ObjectInfo>,
    ) -> Result<(), FtpError> {
        let full = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path(dir)
        };
        let lines = match ftp.list(Some(if full.is_empty() { "/" } else { &full })) {
            Ok(l) => l,
            // A directory that does not exist lists as nothing.
            Err(FtpError::UnexpectedResponse(r)) if r.status.code() == 550 => return Ok(()),
            Err(e) => return Err(e),
        };
        for line in lines {
            let Ok(file) = ListParser::parse_posix(&line) else {
                continue;
            };
            let name = file.name();
            if name == "." || name == ".." {
                continue;
            }
            let key = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            if file.is_directory() {
                if key != TMP_DIR && crate::may_hold(&key, prefix) {
                    self.walk(ftp, &key, prefix, out)?;
                }
            } else if file.is_file() {
                out.push(ObjectInfo {
                    key,
                    size: file.size() as u64,
                });
            }
        }
        Ok(())
    }

    /// Free bytes in the target directory, from the `AVBL` command
    /// (draft-peterson-streamlined-ftp-command-extensions); `None` when the
    /// server does not implement it (vsftpd, for one), so it cannot tell.
    pub fn free_space(&self) -> StorageResult<Option<u64>> {
        let dir = if self.root.is_empty() {
            "/"
        } else {
            &self.root
        };
        self.with_conn("avbl", "", |ftp| {
            match ftp.custom_command(format!("AVBL {dir}"), &[Status::File]) {
                Ok(r) => String::from_utf8_lossy(&r.body)
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(Some)
                    .ok_or(FtpError::BadResponse),
                Err(FtpError::UnexpectedResponse(r))
                    if matches!(
                        r.status,
                        Status::BadCommand
                            | Status::BadArguments
                            | Status::NotImplemented
                            | Status::NotImplementedParameter
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Creates the target directory if missing and checks it can be entered.
    pub fn ensure_directory(&self) -> StorageResult<()> {
        let probe = format!("{}/x", self.root);
        self.with_conn("mkdir", "", |ftp| {
            self.make_parents(ftp, &probe)?;
            ftp.cwd(if self.root.is_empty() {
                "/"
            } else {
                &self.root
            })?;
            ftp.cwd("/")
        })
    }
}

/// Maps an FTP failure to a kind, with the server's reply as the message.
fn classify(e: &FtpError) -> (StorageErrorKind, String) {
    match e {
        FtpError::ConnectionError(io) => (StorageErrorKind::Transient, format!("connection: {io}")),
        FtpError::UnexpectedResponse(r) => {
            let code = r.status.code();
            let text = r.as_string().unwrap_or_default().trim().to_owned();
            let kind = match code {
                421 | 425 | 426 | 450 | 451 | 452 => StorageErrorKind::Transient,
                530 | 532 | 553 => StorageErrorKind::PermissionDenied,
                550 => StorageErrorKind::NotFound,
                552 => StorageErrorKind::NoSpace,
                _ => StorageErrorKind::Other,
            };
            (kind, format!("server replied {text}"))
        }
        FtpError::SecureError(m) => (StorageErrorKind::Other, format!("TLS: {m}")),
        other => (StorageErrorKind::Other, other.to_string()),
    }
}

/// The rustls client configuration for FTPS.
fn tls_config(
    verify: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any certificate: for `verify = false` only (the operator's choice,
/// documented as man-in-the-middle-prone).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Storage for FtpStorage {
    fn parallel_reads(&self) -> usize {
        // Each read holds a pooled control connection and a data connection.
        self.settings.max_connections.max(1)
    }

    fn parallel_writes(&self) -> usize {
        // One pooled connection each, leaving one for the backup's reads.
        self.settings.max_connections.saturating_sub(1).clamp(1, 2)
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        check_key(&self.location, "put", key)?;
        let data = parts.concat();
        let final_path = self.path(key);
        self.with_conn("put", key, |ftp| {
            let tmp = self.path(&format!("{TMP_DIR}/{:016x}", rand::rng().random::<u64>()));
            self.make_parents(ftp, &tmp)?;
            self.make_parents(ftp, &final_path)?;
            let written = ftp.put_file(&tmp, &mut &data[..])?;
            // No fsync over FTP: at least make sure the server has every byte.
            let stored = ftp.size(&tmp)?;
            if written != data.len() as u64 || stored != data.len() {
                let _ = ftp.rm(&tmp);
                return Err(FtpError::ConnectionError(std::io::Error::other(format!(
                    "the server stored {stored} of {} bytes",
                    data.len()
                ))));
            }
            if let Err(e) = ftp.rename(&tmp, &final_path) {
                let _ = ftp.rm(&tmp);
                return Err(e);
            }
            Ok(())
        })
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get", key)?;
        let path = self.path(key);
        self.with_conn("get", key, |ftp| {
            ftp.retr_as_buffer(&path).map(|c| c.into_inner())
        })
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.get_ranges(key, vec![(offset, length)])
            .next()
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    fn get_ranges<'a>(
        &'a self,
        key: &str,
        ranges: Vec<(u64, u64)>,
    ) -> Box<dyn Iterator<Item = StorageResult<Vec<u8>>> + 'a> {
        if let Err(e) = check_key(&self.location, "get-range", key) {
            return Box::new(std::iter::once(Err(e)));
        }
        Box::new(ranges::RangeReader::new(self, key, ranges))
    }

    fn read_run_bytes(&self) -> u64 {
        // A new transfer costs four round trips and a data connection; a
        // run of 16 MiB spreads that over enough bytes, and still gives
        // every pooled connection work when a restore holds few packs.
        16 * 1024 * 1024
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        check_list_prefix(&self.location, prefix)?;
        let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut out = Vec::new();
        self.with_conn("list", prefix, |ftp| {
            out.clear();
            self.walk(ftp, dir, prefix, &mut out)
        })?;
        out.retain(|o| o.key.starts_with(prefix));
        Ok(out)
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        check_key(&self.location, "delete", key)?;
        let path = self.path(key);
        match self.with_conn("delete", key, |ftp| ftp.rm(&path)) {
            Err(e) if e.kind == StorageErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn ensure_prefix(&self, prefix: &str) -> StorageResult<()> {
        check_key(&self.location, "mkdir", prefix)?;
        let probe = format!("{}/x", self.path(prefix));
        self.with_conn("mkdir", prefix, |ftp| self.make_parents(ftp, &probe))
    }
}
