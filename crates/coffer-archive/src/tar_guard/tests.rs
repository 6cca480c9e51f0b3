use super::*;

/// One raw header block (GNU magic), with whatever size and type.
fn block(kind: u8, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
    v
}

fn pax_record(key: &str, value: &str) -> String {
    // The length counts its own digits.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

fn end() -> Vec<u8> {
    vec![0; 2 * BLOCK]
}

/// `head`, then zeros without end — failing once `limit` zeros were
/// read, so a reader that buffers a declared 8 GiB fails the test
/// instead of the machine.
struct Endless {
    head: Vec<u8>,
    pos: usize,
    zeros: u64,
    limit: u64,
}

impl Endless {
    fn new(head: Vec<u8>, limit: u64) -> Self {
        Self {
            head,
            pos: 0,
            zeros: 0,
            limit,
        }
    }
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        if self.zeros >= self.limit {
            return Err(io::Error::other("read past the guard"));
        }
        let n = buf.len().min((self.limit - self.zeros) as usize);
        buf[..n].fill(0);
        self.zeros += n as u64;
        Ok(n)
    }
}

/// At most `step` bytes per read: odd chunkings must not matter.
struct Trickle<R>(R, usize);

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

type Listed = Vec<(Vec<u8>, tar::EntryType, Vec<u8>)>;

fn list<R: Read>(r: R) -> io::Result<Listed> {
    let mut archive = tar::Archive::new(r);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        let kind = entry.header().entry_type();
        out.push((entry.path_bytes().into_owned(), kind, data));
    }
    Ok(out)
}

fn refusal(e: &io::Error) -> &HeaderLimitExceeded {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    limit_exceeded(e).unwrap_or_else(|| panic!("not the guard's refusal: {e}"))
}

#[test]
fn a_pax_header_declaring_8_gib_fails_fast() {
    let mut src = Endless::new(block(b'x', "PaxHeaders/f", 8 << 30), 64 << 20);
    let e = list(HeaderGuard::new(&mut src)).unwrap_err();
    let r = refusal(&e);
    assert_eq!(
        (r.kind, r.entry_type, r.declared),
        (LimitKind::Header, b'x', 8 << 30)
    );
    let text = e.to_string();
    assert!(
        text.contains("'x'") && text.contains("8589934592"),
        "{text}"
    );
    assert_eq!(src.zeros, 0, "nothing after the header was read");
}

#[test]
fn every_extension_type_is_capped() {
    for kind in [b'g', b'L', b'K', b'V', b'N', b'X'] {
        let mut src = Endless::new(block(kind, "meta", 2 << 20), 8 << 20);
        let e = list(HeaderGuard::new(&mut src)).unwrap_err();
        assert_eq!(refusal(&e).entry_type, kind, "{e}");
        assert_eq!(src.zeros, 0);
    }
    // Within the cap, a long name passes.
    let name = "n".repeat(600_000);
    let mut tar = block(b'L', "././@LongLink", name.len() as u64);
    tar.extend(padded(name.as_bytes()));
    tar.extend(block(b'0', "short", 3));
    tar.extend(padded(b"abc"));
    tar.extend(end());
    let listed = list(HeaderGuard::new(tar.as_slice())).unwrap();
    assert_eq!(listed[0].0, name.as_bytes());
}

#[test]
fn the_budget_counts_every_extension_header() {
    let limits = HeaderLimits {
        max_header: 1 << 20,
        max_total: 2 << 20,
    };
    let mut tar = Vec::new();
    for i in 0..3 {
        let name = format!("{i}").repeat(900_000);
        tar.extend(block(b'L', "././@LongLink", name.len() as u64));
        tar.extend(padded(name.as_bytes()));
        tar.extend(block(b'0', "f", 0));
    }
    tar.extend(end());
    let guard = HeaderGuard::with_limits(tar.as_slice(), limits);
    let counter = guard.counter();
    let e = list(guard).unwrap_err();
    let r = refusal(&e);
    assert_eq!(
        (r.kind, r.declared, r.limit),
        (LimitKind::Total, 2_700_000, 2 << 20)
    );
    assert!(e.to_string().contains("in all"), "{e}");
    assert_eq!(counter.metadata_bytes(), 2_700_000);
    // The default budget takes all three.
    assert_eq!(list(HeaderGuard::new(tar.as_slice())).unwrap().len(), 3);
}

/// Entries of every kind the `tar` crate writes: GNU long names and
/// long links, PAX records with extended attributes, empty and
/// unaligned files, directories, symlinks.
fn ordinary_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "d", io::empty()).unwrap();
    let long = format!("d/{}", "n".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_size(513);
    h.set_mode(0o600);
    b.append_data(&mut h, &long, &[7u8; 513][..]).unwrap();
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", b"hello".as_slice()),
        ("mtime", b"1600000000.5".as_slice()),
    ])
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o600);
    b.append_data(&mut h, "empty", io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "link", "t".repeat(200)).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1024);
    h.set_mode(0o644);
    b.append_data(&mut h, "ustar", &[9u8; 1024][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn ordinary_archives_pass_unchanged() {
    let tar = ordinary_tar();
    for step in [1, 7, 511, 512, 513, 1 << 20] {
        let mut out = Vec::new();
        io::copy(
            &mut HeaderGuard::new(Trickle(tar.as_slice(), step)),
            &mut out,
        )
        .unwrap();
        assert!(out == tar, "chunks of {step}");
        let guard = HeaderGuard::new(Trickle(tar.as_slice(), step));
        let counter = guard.counter();
        assert_eq!(list(guard).unwrap(), list(tar.as_slice()).unwrap());
        // d, L + file, x + empty, K + link, ustar.
        assert_eq!(counter.entries(), 8, "chunks of {step}");
        assert!(
            counter.metadata_bytes() > 350,
            "{}",
            counter.metadata_bytes()
        );
    }
}

#[test]
fn gnu_tar_archives_pass_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let deep = src.join("a".repeat(90)).join("b".repeat(90));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("c".repeat(120)), vec![5u8; 3000]).unwrap();
    std::os::unix::fs::symlink("t".repeat(180), src.join("link")).unwrap();
    // A sparse file with more data regions than a GNU header holds (4),
    // so GNU tar writes sparse extension blocks.
    let sparse = std::fs::File::create(src.join("sparse")).unwrap();
    for i in 0..40u64 {
        use std::os::unix::fs::FileExt;
        sparse.write_all_at(&[1u8; 4096], i * (1 << 20)).unwrap();
    }
    sparse.set_len(41 << 20).unwrap();
    for format in ["gnu", "posix", "oldgnu"] {
        let archive = tmp.path().join(format!("{format}.tar"));
        let status = std::process::Command::new("tar")
            .args(["--sparse", &format!("--format={format}"), "-cf"])
            .arg(&archive)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status();
        let Ok(status) = status else {
            eprintln!("GNU tar is not installed: skipped");
            return;
        };
        assert!(status.success(), "{format}");
        let tar = std::fs::read(&archive).unwrap();
        let mut out = Vec::new();
        io::copy(&mut HeaderGuard::new(tar.as_slice()), &mut out)
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(out == tar, "{format}");
        let direct = list(tar.as_slice()).map_err(|e| e.to_string());
        let guarded = list(HeaderGuard::new(tar.as_slice())).map_err(|e| e.to_string());
        assert_eq!(direct, guarded, "{format}");
    }
}

#[test]
fn base_256_sizes_are_followed() {
    // A file whose size (1000) is written in base-256, then a PAX header
    // over the cap where the tar crate expects the next header.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..1].copy_from_slice(b"f");
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let mut size = [0u8; 12];
    size[0] = 0x80;
    size[10..].copy_from_slice(&1000u16.to_be_bytes());
    h.as_old_mut().size = size;
    h.set_cksum();
    assert_eq!(h.size().unwrap(), 1000);
    let mut head = h.as_bytes().to_vec();
    head.extend(padded(&[1u8; 1000]));
    head.extend(block(b'x', "PaxHeaders/g", 2 << 20));
    let mut src = Endless::new(head, 8 << 20);
    let e = list(HeaderGuard::new(&mut src)).unwrap_err();
    assert_eq!(refusal(&e).offset, 1536, "{e}");
    // The 8 GiB of the first test are base-256 too (over 8^11 - 1).
    assert_eq!(block(b'x', "p", 8 << 30)[124], 0x80);
}

#[test]
fn a_pax_size_record_moves_the_next_header_as_tar_reads_it() {
    // `size=0` on a header declaring 1 GiB: the tar crate reads the very
    // next block as a header, so a bomb hidden there must be seen.
    let rec = pax_record("size", "0");
    let mut head = block(b'x', "PaxHeaders/f", rec.len() as u64);
    head.extend(padded(rec.as_bytes()));
    head.extend(block(b'0', "f", 1 << 30));
    head.extend(block(b'x', "PaxHeaders/bomb", 8 << 30));
    let mut src = Endless::new(head, 8 << 20);
    let e = list(HeaderGuard::new(&mut src)).unwrap_err();
    assert_eq!(refusal(&e).declared, 8 << 30, "{e}");

    // `size=1024` on a header declaring 0: those bytes are data, even
    // when they look like a bomb's header.
    for (records, data_len) in [
        (pax_record("size", "1024"), 1024),
        (pax_record("size", "+0001024"), 1024),
        // Another record first, then the size.
        (
            pax_record("mtime", "1.5") + &pax_record("size", "1024"),
            1024,
        ),
        // The tar crate stops at a malformed record: no size.
        (format!("99 a=b\n{}", pax_record("size", "1024")), 0),
        // An unparsable size is no size.
        (pax_record("size", "10x"), 0),
    ] {
        let mut tar = block(b'x', "PaxHeaders/f", records.len() as u64);
        tar.extend(padded(records.as_bytes()));
        tar.extend(block(b'0', "f", 0));
        if data_len > 0 {
            tar.extend(block(b'x', "looks like a bomb", 8 << 30));
            tar.extend([0u8; 512]);
        }
        tar.extend(end());
        let listed =
            list(HeaderGuard::new(tar.as_slice())).unwrap_or_else(|e| panic!("{records:?}: {e}"));
        assert_eq!(listed[0].2.len(), data_len, "{records:?}");
        assert_eq!(listed, list(tar.as_slice()).unwrap(), "{records:?}");
    }
}

#[test]
fn truncated_input_passes_through_to_the_tar_reader() {
    let tar = ordinary_tar();
    for cut in [0, 1, 300, 512, 700, 1536, 2100, tar.len() - 1] {
        let mut out = Vec::new();
        io::copy(&mut HeaderGuard::new(&tar[..cut]), &mut out).unwrap();
        assert!(out == tar[..cut], "cut at {cut}");
        let direct = list(&tar[..cut]).map_err(|e| e.kind());
        let guarded = list(HeaderGuard::new(&tar[..cut])).map_err(|e| e.kind());
        assert_eq!(direct, guarded, "cut at {cut}");
    }
}

#[test]
fn garbage_is_refused_before_the_end_and_ignored_after_it() {
    let e = list(HeaderGuard::new(&[7u8; 1024][..])).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    let mut tar = ordinary_tar();
    tar.extend([7u8; 4096]);
    let mut out = Vec::new();
    io::copy(&mut HeaderGuard::new(tar.as_slice()), &mut out).unwrap();
    assert!(out == tar);
}

#[test]
fn header_bytes_are_everything_but_file_content() {
    let mut tar = block(b'0', "f", 1000);
    tar.extend(padded(&[1u8; 1000]));
    tar.extend(end());
    let mut guard = HeaderGuard::new(tar.as_slice());
    let counter = guard.counter();
    io::copy(&mut guard, &mut io::sink()).unwrap();
    assert_eq!(counter.header_bytes(), tar.len() as u64 - 1000);
    assert_eq!(counter.metadata_bytes(), 0);
    assert_eq!(counter.entries(), 1);
}
