//! Validate: a bounded probe of a target before it is saved (as Spectro
//! Cloud Palette does), reporting each step with its outcome, message and
//! duration. At most 16 MiB of test data, a timeout per step, stops at the
//! first failure (later steps depend on earlier ones) and always removes
//! its test objects.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{
    FtpStage, FtpStorage, LocalStorage, S3Client, S3Storage, SftpStage, SftpStorage, Storage,
    StorageResult,
};

/// Test objects live here, outside the repository layout.
const PROBE_PREFIX: &str = "coffer/validate";
/// The object used for write/read/throughput.
const PROBE_BYTES: usize = 8 << 20;
/// The multipart probe: two parts (AWS wants at least 5 MiB but the last).
const MULTIPART_BYTES: usize = 6 << 20;

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// It worked.
    Ok,
    /// It failed; the target cannot be used as it is.
    Failed,
    /// Not run (an earlier step failed, or the protocol has no such thing).
    Skipped,
}

/// One step of a validation.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationStep {
    /// What was checked (`reachable`, `write`, …).
    pub name: &'static str,
    /// The outcome.
    pub status: StepStatus,
    /// What was found, or the target's answer on failure.
    pub message: String,
    /// How long the step took.
    pub duration_ms: u64,
}

/// The result of validating a target: usable only if `ok`.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The target's location.
    pub location: String,
    /// Every step, in order.
    pub steps: Vec<ValidationStep>,
    /// True when no step failed.
    pub ok: bool,
}

/// Limits of a validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidateOptions {
    /// The longest a single step may take.
    pub step_timeout: Duration,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            step_timeout: Duration::from_secs(30),
        }
    }
}

type StepFn = Box<dyn FnOnce() -> StorageResult<String> + Send>;

/// Runs steps in order with a timeout each; after a failure the rest are skipped.
struct Runner {
    steps: Vec<ValidationStep>,
    failed: bool,
    timeout: Duration,
}

impl Runner {
    fn new(opts: ValidateOptions) -> Self {
        Self {
            steps: Vec::new(),
            failed: false,
            timeout: opts.step_timeout,
        }
    }

    /// Removes what the probe left and builds the report.
    fn finish(self, storage: &dyn Storage, nonce: &str) -> ValidationReport {
        cleanup(storage, nonce);
        let ok = self.steps.iter().all(|s| s.status != StepStatus::Failed);
        ValidationReport {
            location: storage.location(),
            steps: self.steps,
            ok,
        }
    }

    fn step(&mut self, name: &'static str, f: StepFn) {
        if self.failed {
            self.steps.push(ValidationStep {
                name,
                status: StepStatus::Skipped,
                message: "not run: an earlier step failed".into(),
                duration_ms: 0,
            });
            return;
        }
        let start = Instant::now();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        let (status, message) = match rx.recv_timeout(self.timeout) {
            Ok(Ok(msg)) => (StepStatus::Ok, msg),
            Ok(Err(e)) => (StepStatus::Failed, e.to_string()),
            Err(_) => (
                StepStatus::Failed,
                format!("timed out after {} s", self.timeout.as_secs()),
            ),
        };
        self.failed |= status == StepStatus::Failed;
        self.steps.push(ValidationStep {
            name,
            status,
            message,
            duration_ms: start.elapsed().as_millis() as u64,
        });
    }

    /// Records an outcome measured outside [`Runner::step`].
    fn record(&mut self, name: &'static str, status: StepStatus, message: String, took: Duration) {
        if self.failed {
            return self.step(name, Box::new(|| Ok(String::new())));
        }
        self.failed |= status == StepStatus::Failed;
        self.steps.push(ValidationStep {
            name,
            status,
            message,
            duration_ms: took.as_millis() as u64,
        });
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.steps.push(ValidationStep {
            name,
            status: StepStatus::Skipped,
            message: why.to_owned(),
            duration_ms: 0,
        });
    }
}

fn probe_data(len: usize, seed: u8) -> Vec<u8> {
    // Incompressible enough that a compressing proxy cannot fake throughput.
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-6)
}

/// The steps every storage supports, through the [`Storage`] interface.
fn common_steps(r: &mut Runner, storage: Arc<dyn Storage>, nonce: &str) {
    let key = format!("{PROBE_PREFIX}/{nonce}/probe");
    let data = Arc::new(probe_data(PROBE_BYTES, 1));
    {
        let (s, key, data) = (Arc::clone(&storage), key.clone(), Arc::clone(&data));
        r.step(
            "write",
            Box::new(move || {
                let t = Instant::now();
                s.put(&key, &data)?;
                Ok(format!(
                    "wrote {} MiB: upload {:.1} MiB/s",
                    data.len() >> 20,
                    mib_per_s(data.len(), t.elapsed())
                ))
            }),
        );
    }
    {
        let (s, key, data) = (Arc::clone(&storage), key.clone(), Arc::clone(&data));
        r.step(
            "read",
            Box::new(move || {
                let t = Instant::now();
                let back = s.get(&key)?;
                let speed = mib_per_s(back.len(), t.elapsed());
                if back[..] != data[..] {
                    return Err(crate::StorageError::new(
                        crate::StorageErrorKind::Corrupt,
                        &s.location(),
                        "get",
                        &key,
                        format!(
                            "read back {} bytes that differ from the {} written",
                            back.len(),
                            data.len()
                        ),
                    ));
                }
                Ok(format!("read back and verified: download {speed:.1} MiB/s"))
            }),
        );
    }
    {
        let (s, key, data) = (Arc::clone(&storage), key.clone(), Arc::clone(&data));
        r.step(
            "ranged read",
            Box::new(move || {
                let (off, len) = (1_000_003u64, 65_536u64);
                let part = s.get_range(&key, off, len)?;
                if part[..] != data[off as usize..(off + len) as usize] {
                    return Err(crate::StorageError::new(
                        crate::StorageErrorKind::Corrupt,
                        &s.location(),
                        "get-range",
                        &key,
                        "the range read differs from the bytes written",
                    ));
                }
                Ok(format!("{len} bytes at offset {off} verified"))
            }),
        );
    }
    {
        let (s, key, nonce) = (Arc::clone(&storage), key.clone(), nonce.to_owned());
        r.step(
            "list",
            Box::new(move || {
                let listed = s.list(&format!("{PROBE_PREFIX}/{nonce}/"))?;
                match listed.iter().find(|o| o.key == key) {
                    Some(o) if o.size == PROBE_BYTES as u64 => {
                        Ok(format!("listed with its size ({} bytes)", o.size))
                    }
                    Some(o) => Err(crate::StorageError::new(
                        crate::StorageErrorKind::Corrupt,
                        &s.location(),
                        "list",
                        &key,
                        format!("listed with size {} instead of {PROBE_BYTES}", o.size),
                    )),
                    None => Err(crate::StorageError::new(
                        crate::StorageErrorKind::NotFound,
                        &s.location(),
                        "list",
                        &key,
                        "the object just written is not listed",
                    )),
                }
            }),
        );
    }
    {
        let (s, key) = (Arc::clone(&storage), key.clone());
        r.step(
            "overwrite",
            Box::new(move || {
                // The engine replaces lock objects in place and relies on a
                // reader seeing the whole new object.
                let second = probe_data(4096, 2);
                s.put(&key, &second)?;
                if s.get(&key)? != second {
                    return Err(crate::StorageError::new(
                        crate::StorageErrorKind::Corrupt,
                        &s.location(),
                        "put",
                        &key,
                        "after an overwrite the object does not hold the new bytes",
                    ));
                }
                Ok("an overwrite replaces the object".into())
            }),
        );
    }
    {
        let (s, key) = (Arc::clone(&storage), key.clone());
        r.step(
            "delete",
            Box::new(move || {
                s.delete(&key)?;
                match s.get(&key) {
                    Err(e) if e.kind == crate::StorageErrorKind::NotFound => {}
                    Ok(_) => {
                        return Err(crate::StorageError::new(
                            crate::StorageErrorKind::Other,
                            &s.location(),
                            "delete",
                            &key,
                            "the object is still readable after delete",
                        ));
                    }
                    Err(e) => return Err(e),
                }
                s.delete(&key)?; // deleting a missing object must succeed
                Ok("deleted; a repeated delete succeeds".into())
            }),
        );
    }
}

/// Removes whatever the probe left (after a failure midway).
fn cleanup(storage: &dyn Storage, nonce: &str) {
    if let Ok(left) = storage.list(&format!("{PROBE_PREFIX}/{nonce}/")) {
        for o in left {
            let _ = storage.delete(&o.key);
        }
    }
}

fn nonce() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Validates an S3 target.
pub fn validate_s3(storage: Arc<S3Storage>, opts: ValidateOptions) -> ValidationReport {
    let mut r = Runner::new(opts);
    let nonce = nonce();
    {
        let s = Arc::clone(&storage);
        r.step(
            "reachable, authenticated, bucket exists",
            Box::new(move || {
                s.head_bucket()?;
                Ok("the bucket answers to these credentials".into())
            }),
        );
    }
    {
        // A small write first: a server that refuses a large upload may
        // close the connection before the client has sent it, and the
        // refusal then reads as a broken pipe instead of naming itself.
        let (s, nonce) = (Arc::clone(&storage), nonce.clone());
        r.step(
            "may write",
            Box::new(move || {
                s.put(&format!("{PROBE_PREFIX}/{nonce}/small"), b"coffer")?;
                Ok("a small object was written".into())
            }),
        );
    }
    common_steps(&mut r, Arc::clone(&storage) as Arc<dyn Storage>, &nonce);
    {
        let (s, nonce) = (Arc::clone(&storage), nonce.clone());
        r.step(
            "multipart upload",
            Box::new(move || {
                let key = format!("{PROBE_PREFIX}/{nonce}/multipart");
                let data = probe_data(MULTIPART_BYTES, 3);
                s.put_multipart_for_test(&key, &data)?;
                let ok = s.get(&key)? == data;
                s.delete(&key)?;
                if !ok {
                    return Err(crate::StorageError::new(
                        crate::StorageErrorKind::Corrupt,
                        &s.location(),
                        "multipart",
                        &key,
                        "the completed multipart object differs from its parts",
                    ));
                }
                Ok(format!(
                    "{} MiB in two parts, completed and verified",
                    MULTIPART_BYTES >> 20
                ))
            }),
        );
    }
    r.skip("free space", "S3 does not report free space");
    {
        let s = Arc::clone(&storage);
        r.step("clock skew", Box::new(move || {
            let skew = s.clock_skew_secs()?;
            // Signatures are refused beyond 15 minutes; warn well before.
            if skew.abs() > 300 {
                return Err(crate::StorageError::new(
                    crate::StorageErrorKind::Other, &s.location(), "clock", "",
                    format!("the server's clock is {skew} s off ours: fix NTP (signed requests fail beyond 900 s)")));
            }
            Ok(format!("server clock within {} s of ours", skew.abs().max(0)))
        }));
    }
    let mut report = r.finish(storage.as_ref(), &nonce);
    name_s3_permissions(&mut report, storage.client());
    report
}

/// The S3 permission each Validate step exercises, and on what.
fn s3_permission(step: &str) -> Option<(&'static str, bool)> {
    // (actions, on the bucket itself rather than its objects)
    Some(match step {
        "reachable, authenticated, bucket exists" | "list" => ("s3:ListBucket", true),
        "may write" | "write" | "overwrite" => ("s3:PutObject", false),
        "read" | "ranged read" => ("s3:GetObject", false),
        "delete" => ("s3:DeleteObject", false),
        "multipart upload" => ("s3:PutObject and s3:AbortMultipartUpload", false),
        _ => return None,
    })
}

/// Adds to a step refused with 401/403 the permission it needs, on which
/// resource (docs/targets.md lists them all), so an operator can fix the
/// key's policy without guessing.
fn name_s3_permissions(report: &mut ValidationReport, client: &S3Client) {
    let bucket = client.bucket_name();
    for step in &mut report.steps {
        let denied = step.status == StepStatus::Failed
            && (step.message.contains("HTTP 403") || step.message.contains("HTTP 401"));
        let Some((actions, on_bucket)) = s3_permission(step.name).filter(|_| denied) else {
            continue;
        };
        let resource = if on_bucket {
            format!("arn:aws:s3:::{bucket}")
        } else {
            format!("arn:aws:s3:::{bucket}/{}*", client.prefix())
        };
        let credentials = if on_bucket && !step.name.starts_with("list") {
            "valid credentials and "
        } else {
            ""
        };
        step.message = format!(
            "{} — this step needs {credentials}{actions} on {resource} (docs/targets.md lists \
             every permission Coffer uses)",
            step.message
        );
    }
}

/// Validates a local-disk target.
pub fn validate_local(storage: Arc<LocalStorage>, opts: ValidateOptions) -> ValidationReport {
    let mut r = Runner::new(opts);
    let nonce = nonce();
    {
        let s = Arc::clone(&storage);
        r.step(
            "directory exists or can be created",
            Box::new(move || {
                s.ensure_root()?;
                Ok(format!("{} is a directory", s.root().display()))
            }),
        );
    }
    common_steps(&mut r, Arc::clone(&storage) as Arc<dyn Storage>, &nonce);
    {
        let s = Arc::clone(&storage);
        r.step(
            "free space",
            Box::new(move || {
                let free = s.free_space()?;
                Ok(format!("{} MiB free", free >> 20))
            }),
        );
    }
    r.finish(storage.as_ref(), &nonce)
}

/// Records a staged connection attempt (reachable → TLS/host key → login →
/// …) as one step per stage: the stages before the failing one passed, the
/// failing one carries the error, later ones are skipped. `skip` names the
/// stages that do not apply to this target, with the reason.
fn record_stages<S: PartialEq + Send + 'static>(
    r: &mut Runner,
    stages: &[(S, &'static str)],
    skip: &[(&'static str, &'static str)],
    timeout: Duration,
    connect: impl FnOnce() -> Result<(), (S, crate::StorageError)> + Send + 'static,
) {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(connect());
    });
    let attempt = rx.recv_timeout(timeout);
    let took = start.elapsed();
    for (stage, name) in stages {
        if let Some((_, why)) = skip.iter().find(|(n, _)| n == name) {
            r.skip(name, why);
            continue;
        }
        match &attempt {
            Ok(Ok(())) => r.record(name, StepStatus::Ok, "ok".into(), took),
            Ok(Err((failed, e))) if failed == stage => {
                r.record(name, StepStatus::Failed, e.to_string(), took)
            }
            Ok(Err(_)) => r.record(name, StepStatus::Ok, "ok".into(), Duration::ZERO),
            Err(_) => r.record(
                name,
                StepStatus::Failed,
                format!("timed out after {} s", timeout.as_secs()),
                took,
            ),
        }
    }
}

/// Validates an FTP or FTPS target.
pub fn validate_ftp(storage: Arc<FtpStorage>, opts: ValidateOptions) -> ValidationReport {
    let mut r = Runner::new(opts);
    let nonce = nonce();
    let tls_skip: &[(&str, &str)] = if storage.location().starts_with("ftps:") {
        &[]
    } else {
        &[("TLS (explicit FTPS)", "plain FTP: no TLS configured")]
    };
    let s = Arc::clone(&storage);
    record_stages(
        &mut r,
        &[
            (FtpStage::Reachable, "reachable"),
            (FtpStage::Tls, "TLS (explicit FTPS)"),
            (FtpStage::Login, "authenticated"),
        ],
        tls_skip,
        opts.step_timeout,
        move || {
            s.connect().map(|mut c| {
                let _ = c.quit();
            })
        },
    );
    {
        let s = Arc::clone(&storage);
        r.step(
            "directory exists or can be created",
            Box::new(move || {
                s.ensure_directory()?;
                Ok("the directory can be entered".into())
            }),
        );
    }
    common_steps(&mut r, Arc::clone(&storage) as Arc<dyn Storage>, &nonce);
    {
        let s = Arc::clone(&storage);
        r.step(
            "free space",
            Box::new(move || {
                Ok(match s.free_space()? {
                    Some(free) => format!("{} MiB free (AVBL)", free >> 20),
                    None => "the server cannot tell: it does not implement AVBL (vsftpd does \
                             not); check the space on the server itself"
                        .into(),
                })
            }),
        );
    }
    r.finish(storage.as_ref(), &nonce)
}

/// Validates an SFTP target.
pub fn validate_sftp(storage: Arc<SftpStorage>, opts: ValidateOptions) -> ValidationReport {
    let mut r = Runner::new(opts);
    let nonce = nonce();
    let s = Arc::clone(&storage);
    record_stages(
        &mut r,
        &[
            (SftpStage::Reachable, "reachable"),
            (SftpStage::HostKey, "host key matches the pinned one"),
            (SftpStage::Login, "authenticated"),
            (SftpStage::Subsystem, "sftp subsystem"),
        ],
        &[],
        opts.step_timeout,
        move || s.connect_stage(),
    );
    {
        let s = Arc::clone(&storage);
        r.step(
            "directory exists or can be created",
            Box::new(move || {
                s.ensure_directory()?;
                Ok("the directory exists".into())
            }),
        );
    }
    common_steps(&mut r, Arc::clone(&storage) as Arc<dyn Storage>, &nonce);
    {
        let s = Arc::clone(&storage);
        r.step(
            "free space",
            Box::new(move || {
                Ok(match s.free_space()? {
                    Some(free) => format!("{} MiB free", free >> 20),
                    None => "the server does not report free space (no statvfs@openssh.com)".into(),
                })
            }),
        );
    }
    r.finish(storage.as_ref(), &nonce)
}
