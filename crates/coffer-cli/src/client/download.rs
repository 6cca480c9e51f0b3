//! Downloading a file the server keeps a record of (an export): into
//! `<file>.part`, resumed with a `Range` request when a previous attempt left
//! one, then checked against the record's size, SHA-256 and MD5 before it
//! takes its name. A file that does not match is removed, never kept.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use coffer_export::{DigestWriter, Digests};
use indicatif::{ProgressBar, ProgressStyle};

use super::Client;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// What the server's record says the file is.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// MD5, hex.
    pub md5: String,
}

/// A verified download.
#[derive(Debug)]
pub struct Fetched {
    /// Where a previous attempt had got to (0: from the start).
    pub resumed_at: u64,
    /// What the file is.
    pub digests: Digests,
}

/// Downloads `path` of the server into `dest` and verifies it.
pub fn fetch(
    client: &Client,
    path: &str,
    dest: &Path,
    expected: &Expected,
    out: Output,
) -> CliResult<Fetched> {
    let part = part_path(dest);
    let io_err = |what: &str, p: &Path, e: std::io::Error| {
        CliError::failure("io", format!("{what} {}: {e}", p.display()))
    };
    let mut have = match std::fs::metadata(&part) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err("reading", &part, e)),
    };
    if have > expected.size {
        have = 0;
    }
    let mut resumed_at = 0;
    if have < expected.size {
        let mut response = client.download(path, have)?;
        resumed_at = if have > 0 && response.starts_at == Some(have) {
            have
        } else {
            // A server that answered the whole file: start over.
            0
        };
        let mut file = open_part(&part, resumed_at > 0).map_err(|e| io_err("writing", &part, e))?;
        let bar = progress_bar(out, expected.size, resumed_at);
        let copied = std::io::copy(&mut response.body, &mut bar.wrap_write(&mut file));
        bar.finish_and_clear();
        copied.map_err(|e| {
            CliError::failure(
                "interrupted",
                format!(
                    "the download from {} stopped ({e}); run the same command again to resume it",
                    client.url()
                ),
            )
        })?;
        file.sync_all().map_err(|e| io_err("writing", &part, e))?;
    }
    let digests = digests_of(&part).map_err(|e| io_err("reading", &part, e))?;
    if digests.size != expected.size
        || digests.sha256 != expected.sha256
        || digests.md5 != expected.md5
    {
        let _ = std::fs::remove_file(&part);
        return Err(CliError::failure(
            "checksum_mismatch",
            format!(
                "{}: got {} bytes with SHA-256 {}, the server's record says {} bytes with SHA-256 {}; the download was removed — run the command again",
                dest.display(),
                digests.size,
                digests.sha256,
                expected.size,
                expected.sha256
            ),
        ));
    }
    put_in_place(&part, dest).map_err(|e| io_err("renaming into", dest, e))?;
    Ok(Fetched {
        resumed_at,
        digests,
    })
}

/// `name` if it is a plain file name (no directory, not hidden): a name a
/// server gives is used only then.
pub fn plain_name(name: &str) -> Option<&str> {
    let plain = Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name);
    (plain && !name.is_empty() && !name.starts_with('.')).then_some(name)
}

/// The `.part` file of a download, mode 0600 (an export, a database's
/// dump: as secret as what they hold), appended to when resuming.
pub fn open_part(part: &Path, append: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(part)
}

/// Gives a complete `.part` its name, durably (the rename synced in its directory).
pub fn put_in_place(part: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::rename(part, dest)?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where an unfinished download of `dest` is kept.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

fn digests_of(path: &Path) -> std::io::Result<Digests> {
    let mut writer = DigestWriter::new(std::io::sink());
    let mut file = File::open(path)?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut writer, &buf[..n])?;
    }
    Ok(writer.finish().1)
}

fn progress_bar(out: Output, total: u64, at: u64) -> ProgressBar {
    if out.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_position(at);
    bar.set_style(
        ProgressStyle::with_template("{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
