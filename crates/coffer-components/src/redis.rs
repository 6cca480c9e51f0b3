//! `redis`: a consistent RDB snapshot through `redis-cli --rdb -` (a replica
//! sync: the server forks and writes a point-in-time image), streamed into
//! the engine.
//!
//! Restore reproduces every key — type, value and expiry — in a *running*
//! Redis, the same instance or another: the RDB is loaded into a temporary
//! `redis-server` on a private Unix socket, and each key is copied with
//! `DUMP` and `RESTORE key <expire-at> <payload> ABSTTL REPLACE`. Expiry
//! times are absolute, so a key that expired since the backup stays expired.
//!
//! An RDB may be an upload. The temporary server loads it with
//! `sanitize-dump-payload yes` (Redis ≥ 6.2): every ziplist and listpack is
//! validated deeply at load, where Redis otherwise checks only their
//! headers — and a destination that does not sanitise `RESTORE` payloads
//! would take a broken one as it is. `clean` flushes the destination only
//! once the temporary server has loaded the copy and listed its keyspace.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_model::component::RedisSpec;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use crate::error::{ComponentError, Ctx};
use crate::secret::resolve_opt;
use crate::sink::Sink;
use crate::tools::{find_program, output, staging_dir};
use crate::{RestoreContext, RestoreReport, RestoreSource};

/// Keys fetched and restored per round trip.
const BATCH: usize = 500;
/// Databases the temporary server accepts (more than any usual `databases`).
const TEMP_DATABASES: &str = "1024";
/// The longest Unix socket path the kernel accepts, minus the terminator.
const MAX_SOCKET_PATH: usize = 107;
/// The first Redis with `sanitize-dump-payload`.
const SANITIZE_SINCE: (u32, u32) = (6, 2);

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &RedisSpec,
    name: &str,
    _staging_dir: &std::path::Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let password = resolve_opt(c, spec.password.as_ref())?;
    let cli = find_program(c, spec.bin_dir.as_deref(), &["redis-cli"])?;
    let mut cmd = Command::new(cli);
    cmd.arg("-h")
        .arg(&spec.host)
        .arg("-p")
        .arg(spec.port.to_string())
        .arg("--no-auth-warning");
    if let Some(user) = &spec.user {
        cmd.arg("--user").arg(user);
    }
    // redis-cli reads the password from REDISCLI_AUTH: not visible in `ps`.
    match &password {
        Some(pw) => cmd.env("REDISCLI_AUTH", pw),
        None => cmd.env_remove("REDISCLI_AUTH"),
    };
    cmd.args(["--rdb", "-"]);
    sink.command(&mut cmd, name).map_err(|e| c.engine(e))
}

/// A `redis-server` child that is killed when dropped.
struct TempServer(Child);

impl Drop for TempServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &RedisSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let redis_err = |what: &str, e: redis::RedisError| c.tool(format!("{what}: {e}"));
    let password = resolve_opt(c, spec.password.as_ref())?;
    let staging = staging_dir(c, ctx.staging_dir)?;
    let dir = staging.path();
    let (rdb, rdb_len) = write_rdb(c, ctx, dir)?;
    let (temp, mut source) = load(c, spec, ctx, dir, &rdb, rdb_len)?;
    // The copy is known good once loaded and listed: only then may `clean`
    // flush the destination.
    let keyspace: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut source)
        .map_err(|e| redis_err("reading the backup's keyspace", e))?;

    // 3. The destination.
    let mut settings = RedisConnectionInfo::default();
    if let Some(user) = &spec.user {
        settings = settings.set_username(user);
    }
    if let Some(pw) = &password {
        settings = settings.set_password(pw);
    }
    let dest_name = format!("{}:{}", spec.host, spec.port);
    let info = ConnectionAddr::Tcp(spec.host.clone(), spec.port)
        .into_connection_info()
        .map_err(|e| redis_err(&format!("connecting to {dest_name}"), e))?
        .set_redis_settings(settings);
    let mut dest = redis::Client::open(info)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(15)))
        .map_err(|e| redis_err(&format!("connecting to {dest_name}"), e))?;

    let mut notes = Vec::new();
    if ctx.options.clean {
        redis::cmd("FLUSHALL")
            .exec(&mut dest)
            .map_err(|e| redis_err(&format!("FLUSHALL on {dest_name}"), e))?;
        notes.push(format!("flushed every database of {dest_name}"));
    }

    // 4. Every key of every database.
    let mut total = 0u64;
    for db in databases(&keyspace) {
        let copied = copy_database(&mut source, &mut dest, db)
            .map_err(|e| redis_err(&format!("copying database {db} to {dest_name}"), e))?;
        notes.push(format!("db{db}: {copied} keys restored"));
        total += copied;
    }
    notes.push(format!("{total} keys restored into {dest_name}"));
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").exec(&mut source);
    drop(temp);
    Ok(RestoreReport { notes })
}

/// The backup as a file a temporary server can load: its path and size.
fn write_rdb(
    c: &Ctx,
    ctx: &RestoreContext,
    dir: &Path,
) -> Result<(std::path::PathBuf, u64), ComponentError> {
    let rdb = dir.join("dump.rdb");
    let mut file = std::fs::File::create(&rdb).map_err(|e| c.io("creating the staging RDB", e))?;
    ctx.stream_into(c, &mut file)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((rdb, len))
}

/// The RDB in `dir` loaded into a temporary `redis-server` (no TCP port,
/// no persistence, a private socket; killed when dropped), with payloads
/// sanitized where the server can; a connection to it.
fn load(
    c: &Ctx,
    spec: &RedisSpec,
    ctx: &RestoreContext,
    dir: &Path,
    rdb: &Path,
    rdb_len: u64,
) -> Result<(TempServer, redis::Connection), ComponentError> {
    let server_bin = find_program(c, spec.bin_dir.as_deref(), &["redis-server"])?;
    let version = server_version(c, &server_bin)?;
    let sanitize = version >= SANITIZE_SINCE;
    if !sanitize {
        let shown = format!("{}.{}", version.0, version.1);
        if matches!(ctx.source, RestoreSource::File(_)) {
            return Err(c.invalid(format!(
                "{} is Redis {shown}, which cannot sanitize an uploaded RDB \
                 (sanitize-dump-payload needs 6.2): set bin_dir to a newer redis-server",
                server_bin.display()
            )));
        }
        log::warn!(
            "component {:?}: {} is Redis {shown}: the backup's payloads are not sanitized",
            c.0,
            server_bin.display()
        );
    }
    let socket = dir.join("redis.sock");
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(c.invalid(format!(
            "staging directory {} is too deep for a Unix socket; choose a shorter staging path",
            dir.display()
        )));
    }
    let file_name = rdb.file_name().unwrap_or_default();
    // Killed with this thread if the server dies (a crash would otherwise
    // leave it running on its socket): util-linux's `setpriv --pdeathsig`,
    // when there is one, sets that up without `unsafe` here.
    let mut cmd = match find_program(c, None, &["setpriv"]) {
        Ok(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&server_bin);
            cmd
        }
        Err(_) => Command::new(&server_bin),
    };
    cmd.arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(&socket)
        .args(["--unixsocketperm", "700", "--dir"])
        .arg(dir)
        .arg("--dbfilename")
        .arg(file_name)
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--databases", TEMP_DATABASES]);
    if sanitize {
        cmd.args(["--sanitize-dump-payload", "yes"]);
    }
    cmd.arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut temp = TempServer(
        cmd.spawn()
            .map_err(|e| c.io(format!("starting {}", server_bin.display()), e))?,
    );
    // Loading runs at well over 20 MB/s; allow that plus start-up.
    let deadline = Duration::from_secs(60 + rdb_len / (20 << 20));
    let conn = wait_until_loaded(c, &mut temp, &socket, dir, deadline)?;
    Ok((temp, conn))
}

/// A restore drill: the RDB is read by `redis-check-rdb` (its checksum and
/// every key), then loaded into a temporary `redis-server` — never the
/// live one — and every key of every database read back with `DUMP`; the
/// key counts of the two readers must agree (keys with an expiry may have
/// expired in between).
pub(crate) fn drill(
    c: &Ctx,
    spec: &RedisSpec,
    ctx: &RestoreContext,
) -> Result<String, ComponentError> {
    let redis_err = |what: &str, e: redis::RedisError| c.tool(format!("{what}: {e}"));
    let staging = staging_dir(c, ctx.staging_dir)?;
    let dir = staging.path();
    let (rdb, rdb_len) = write_rdb(c, ctx, dir)?;
    let checked = check_rdb(c, spec, &rdb)?;
    let (temp, mut source) = load(c, spec, ctx, dir, &rdb, rdb_len)?;
    let keyspace: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut source)
        .map_err(|e| redis_err("reading the loaded keyspace", e))?;
    let dbs = databases(&keyspace);
    let mut read_back = 0u64;
    for &db in &dbs {
        read_back += dump_every_key(&mut source, db)
            .map_err(|e| c.verification(format!("reading database {db} back: {e}")))?;
    }
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").exec(&mut source);
    drop(temp);
    // Keys without an expiry must all be there; expired ones may be gone.
    let most = checked.keys.saturating_sub(checked.already_expired);
    let least = checked.keys.saturating_sub(checked.expires);
    if read_back > most || read_back < least {
        return Err(c.verification(format!(
            "redis-check-rdb read {} keys ({} with an expiry, {} already expired) but the \
             temporary redis-server holds {read_back}",
            checked.keys, checked.expires, checked.already_expired
        )));
    }
    Ok(format!(
        "RDB of {rdb_len} bytes passed redis-check-rdb ({} keys, {} with an expiry, {} already \
         expired); loaded into a temporary redis-server: {read_back} keys in {} databases, each \
         read back with DUMP",
        checked.keys,
        checked.expires,
        checked.already_expired,
        dbs.len()
    ))
}

/// What `redis-check-rdb` counted.
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    keys: u64,
    expires: u64,
    already_expired: u64,
}

/// Runs `redis-check-rdb` on `rdb`; its counts, or why it refused the file.
fn check_rdb(c: &Ctx, spec: &RedisSpec, rdb: &Path) -> Result<Checked, ComponentError> {
    let program = find_program(c, spec.bin_dir.as_deref(), &["redis-check-rdb"])?;
    let out = Command::new(&program)
        .arg(rdb)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| c.io(format!("running {}", program.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_check(&text) {
        Some(checked) if out.status.success() => Ok(checked),
        _ => {
            let lines: Vec<&str> = text.lines().collect();
            Err(c.verification(format!(
                "redis-check-rdb refused the backup ({}): {}",
                out.status,
                lines[lines.len().saturating_sub(4)..].join(" | ")
            )))
        }
    }
}

/// The counts of a `redis-check-rdb` report that ends `RDB looks OK`.
fn parse_check(text: &str) -> Option<Checked> {
    if !text.contains("RDB looks OK") {
        return None;
    }
    let count = |what: &str| {
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("[info] ")?;
            let (n, name) = rest.split_once(' ')?;
            (name == what).then(|| n.parse::<u64>().ok()).flatten()
        })
    };
    Some(Checked {
        keys: count("keys read")?,
        expires: count("expires").unwrap_or(0),
        already_expired: count("already expired").unwrap_or(0),
    })
}

/// Reads every key of database `db` with `DUMP`; how many still exist.
fn dump_every_key(source: &mut redis::Connection, db: u32) -> redis::RedisResult<u64> {
    let mut found = 0u64;
    for_each_batch(source, db, |source, keys| {
        let mut read = redis::pipe();
        for key in keys {
            read.cmd("DUMP").arg(key);
        }
        let values: Vec<Option<Vec<u8>>> = read.query(source)?;
        found += values.iter().filter(|v| v.is_some()).count() as u64;
        Ok(())
    })?;
    Ok(found)
}

/// Calls `f` with each batch of the keys of database `db` (selected on
/// `source`). Nothing writes to a temporary server, so one SCAN sees each
/// key once; batches bound memory and round trips.
fn for_each_batch(
    source: &mut redis::Connection,
    db: u32,
    mut f: impl FnMut(&mut redis::Connection, &[Vec<u8>]) -> redis::RedisResult<()>,
) -> redis::RedisResult<()> {
    redis::cmd("SELECT").arg(db).exec(source)?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(BATCH)
            .query(source)?;
        if !keys.is_empty() {
            f(source, &keys)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `(major, minor)` of `redis-server --version`.
fn server_version(c: &Ctx, program: &Path) -> Result<(u32, u32), ComponentError> {
    let text = output(c, Command::new(program).arg("--version"), b"")?;
    parse_version(&text).ok_or_else(|| {
        c.tool(format!(
            "cannot read the version of {}: {:?}",
            program.display(),
            text.trim()
        ))
    })
}

/// `Redis server v=7.0.15 sha=…` → `(7, 0)`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Connects to the temporary server once it has loaded the RDB.
fn wait_until_loaded(
    c: &Ctx,
    temp: &mut TempServer,
    socket: &Path,
    dir: &Path,
    limit: Duration,
) -> Result<redis::Connection, ComponentError> {
    let start = Instant::now();
    let log_tail = || {
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    };
    let mut last_error = String::new();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = temp.0.try_wait() {
            return Err(c.tool(format!(
                "the temporary redis-server could not load the backup ({status}): {}",
                log_tail()
            )));
        }
        let attempt = redis::Client::open(ConnectionAddr::Unix(socket.to_path_buf()))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .and_then(|mut conn| redis::cmd("PING").exec(&mut conn).map(|()| conn));
        match attempt {
            Ok(conn) => return Ok(conn),
            // Not listening yet, or still LOADING the data set.
            Err(e) => last_error = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(c.tool(format!(
        "the temporary redis-server did not finish loading the backup within {} s ({last_error}): {}",
        limit.as_secs(),
        log_tail()
    )))
}

/// The database numbers in `INFO keyspace` (`db3:keys=1,expires=0,…`).
fn databases(keyspace: &str) -> Vec<u32> {
    keyspace
        .lines()
        .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect()
}

/// Copies every key of database `db`, keeping absolute expiry times.
fn copy_database(
    source: &mut redis::Connection,
    dest: &mut redis::Connection,
    db: u32,
) -> redis::RedisResult<u64> {
    redis::cmd("SELECT").arg(db).exec(dest)?;
    let mut copied = 0u64;
    for_each_batch(source, db, |source, keys| {
        let mut read = redis::pipe();
        for key in keys {
            read.cmd("DUMP").arg(key).cmd("PEXPIRETIME").arg(key);
        }
        let values: Vec<(Option<Vec<u8>>, i64)> = read.query(source)?;
        let mut write = redis::pipe();
        for (key, (payload, expire_at)) in keys.iter().zip(values) {
            let Some(payload) = payload else { continue };
            let cmd = write.cmd("RESTORE").arg(key);
            if expire_at > 0 {
                cmd.arg(expire_at).arg(payload).arg("REPLACE").arg("ABSTTL");
            } else {
                cmd.arg(0).arg(payload).arg("REPLACE");
            }
            cmd.ignore();
            copied += 1;
        }
        write.exec(dest)?;
        coffer_model::crash::crash_point("restore.redis.copying");
        Ok(())
    })?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_the_sanitize_threshold() {
        let v = |t: &str| parse_version(t);
        assert_eq!(
            v("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"),
            Some((7, 0))
        );
        assert!(v("Redis server v=6.2.0 sha=0").unwrap() >= SANITIZE_SINCE);
        assert!(v("Redis server v=6.0.16 sha=0").unwrap() < SANITIZE_SINCE);
        assert_eq!(v("Valkey 8"), None);
    }

    #[test]
    fn redis_check_rdb_reports() {
        let ok = "[offset 216] \\o/ RDB looks OK! \\o/\n[info] 3 keys read\n[info] 2 expires\n\
                  [info] 1 already expired\n";
        assert_eq!(
            parse_check(ok),
            Some(Checked {
                keys: 3,
                expires: 2,
                already_expired: 1
            })
        );
        let empty = "\\o/ RDB looks OK! \\o/\n[info] 0 keys read\n[info] 0 expires\n\
                     [info] 0 already expired\n";
        assert_eq!(parse_check(empty).map(|c| c.keys), Some(0));
        assert_eq!(
            parse_check("--- RDB ERROR DETECTED ---\n[info] 2 keys read\n"),
            None
        );
    }
}
