//! Is an uploaded file what its component restores? Checked before
//! anything is touched: with `clean`, a restore drops or flushes the
//! destination first, so a wrong file (an RDB uploaded as a SQL dump, a
//! text file as a SQLite database) must be refused before that — not
//! discovered by the tool after the data is gone.
//!
//! The checks read the file's first bytes (decrypted, for a sealed file);
//! a PostgreSQL dump is also listed with `pg_restore --list`, which reads
//! its whole table of contents.

use std::io::Read;
use std::process::Command;

use coffer_model::component::{ComponentKind, ComponentSpec};

use crate::PortableFile;
use crate::error::{ComponentError, Ctx};
use crate::tools::{find_program, pipe_into};

/// How much of the file is looked at.
const HEAD: usize = 64 * 1024;
/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
/// The first bytes of a `pg_dump --format=custom` archive.
const PGDUMP_MAGIC: &[u8] = b"PGDMP";

/// Refuses `file` unless it looks like what a restore of `spec` expects.
pub(crate) fn check(
    c: &Ctx,
    spec: &ComponentSpec,
    file: &PortableFile,
) -> Result<(), ComponentError> {
    let expected = match &spec.kind {
        // A tree's tar is verified whole by the restore; a command takes
        // whatever its program takes.
        ComponentKind::Files(_) | ComponentKind::Command(_) => return Ok(()),
        ComponentKind::Sqlite(_) => "a SQLite database (a file starting with \"SQLite format 3\")",
        ComponentKind::Postgres(_) => "a PostgreSQL archive from pg_dump --format=custom",
        ComponentKind::Mysql(_) => "an SQL dump from mariadb-dump or mysqldump (UTF-8 text)",
        ComponentKind::Redis(_) => "a Redis RDB file (starting with \"REDIS\" and a version)",
        ComponentKind::S3(_) => "a tar of S3 objects as Coffer writes it",
    };
    let head = read_head(c, file)?;
    let problem = match &spec.kind {
        ComponentKind::Sqlite(_) => (!head.starts_with(SQLITE_MAGIC))
            .then(|| "it does not start with the SQLite header".to_owned()),
        ComponentKind::Postgres(_) => {
            (!head.starts_with(PGDUMP_MAGIC)).then(|| "it does not start with PGDMP".to_owned())
        }
        ComponentKind::Mysql(_) => sql_text_problem(&head, head.len() == HEAD),
        ComponentKind::Redis(_) => (!is_rdb_header(&head))
            .then(|| "it does not start with REDIS and a four-digit version".to_owned()),
        ComponentKind::S3(_) => tar_header_problem(&head),
        ComponentKind::Files(_) | ComponentKind::Command(_) => None,
    };
    let refuse = |why: String| {
        c.invalid(format!(
            "{} is not {expected}: {why}; nothing was restored",
            file.file_name
        ))
    };
    if let Some(why) = problem {
        return Err(refuse(why));
    }
    // The magic is five bytes; pg_restore reading the table of contents is
    // what says the rest is an archive. A sealed file would need decrypting
    // to a temporary copy first: its magic has to do.
    if let ComponentKind::Postgres(p) = &spec.kind
        && !file.sealed
    {
        let program = find_program(c, p.bin_dir.as_deref(), &["pg_restore"])?;
        let mut cmd = Command::new(program);
        cmd.arg("--list").arg(&file.path);
        pipe_into(c, &mut cmd, |_| Ok(())).map_err(|e| match e {
            ComponentError::Tool { message, .. } => {
                refuse(format!("pg_restore --list cannot read it ({message})"))
            }
            other => other,
        })?;
    }
    Ok(())
}

/// Up to [`HEAD`] bytes from the start of the file's content.
fn read_head(c: &Ctx, file: &PortableFile) -> Result<Vec<u8>, ComponentError> {
    let mut head = Vec::with_capacity(HEAD);
    file.open(c)?
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| c.io(format!("reading {}", file.file_name), e))?;
    Ok(head)
}

/// A dump is text: no NUL byte, valid UTF-8 (a character cut at the end of
/// a full `head` is fine), and not empty (restoring nothing with `clean`
/// would only drop the database).
fn sql_text_problem(head: &[u8], truncated: bool) -> Option<String> {
    if head.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Some(format!("it has a NUL byte at offset {at} (binary data)"));
    }
    match std::str::from_utf8(head) {
        Ok(_) => None,
        Err(e) if truncated && e.error_len().is_none() => None,
        Err(e) => Some(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )),
    }
}

/// `REDIS0011`: the magic and a four-digit RDB version.
fn is_rdb_header(head: &[u8]) -> bool {
    head.len() >= 9 && head.starts_with(b"REDIS") && head[5..9].iter().all(u8::is_ascii_digit)
}

/// The first 512-byte block must be a tar header with a valid checksum and
/// the ustar magic, or all zeros (the end of an empty archive).
fn tar_header_problem(head: &[u8]) -> Option<String> {
    let Some(block) = head.get(..512) else {
        return Some(format!(
            "it is {} bytes, shorter than one tar block",
            head.len()
        ));
    };
    if block.iter().all(|&b| b == 0) {
        return None;
    }
    if &block[257..262] != b"ustar" {
        return Some("its first block has no ustar magic".into());
    }
    // The checksum field (148..156) is an octal number; it sums every byte
    // of the block with the field itself counted as spaces.
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let actual: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    match stored {
        Some(s) if s == actual => None,
        _ => Some("its first block's checksum does not match".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_text() {
        assert_eq!(sql_text_problem(b"SELECT 1;\n", false), None);
        assert!(sql_text_problem(b"", false).is_some());
        assert!(sql_text_problem(b"a\0b", false).is_some());
        assert!(sql_text_problem(b"\xff", false).is_some());
        // A multi-byte character cut by the 64 KiB window.
        let cut = &"é".as_bytes()[..1];
        assert_eq!(sql_text_problem(cut, true), None);
        assert!(sql_text_problem(cut, false).is_some());
    }

    #[test]
    fn rdb_and_tar_headers() {
        assert!(is_rdb_header(b"REDIS0011\xfa"));
        assert!(!is_rdb_header(b"REDIS"));
        assert!(!is_rdb_header(b"REDISxxxx"));
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        tar.append_data(&mut h, "x", &b"y"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        assert_eq!(tar_header_problem(&bytes), None);
        assert_eq!(tar_header_problem(&[0u8; 1024]), None);
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(tar_header_problem(&bad).is_some());
        assert!(tar_header_problem(b"short").is_some());
    }
}
