//! The ranged reader against the real OpenSSH server of scripts/services.sh,
//! including a server that answers less than asked: OpenSSH caps a read at
//! 255 KiB, so asking it for more is how that is made to happen.

use std::sync::atomic::Ordering;

use coffer_testkit::service_setting;

use crate::sftp::{SftpAuth, SftpSettings, SftpStorage};
use crate::{Storage, StorageErrorKind};

fn storage() -> Option<SftpStorage> {
    let host_key =
        std::fs::read_to_string(service_setting("COFFER_TEST_SFTP_HOST_KEY_PUB")?).ok()?;
    let settings = SftpSettings::new(
        &service_setting("COFFER_TEST_SFTP_HOST")?,
        service_setting("COFFER_TEST_SFTP_PORT")?.parse().ok()?,
        &service_setting("COFFER_TEST_SFTP_USER")?,
        SftpAuth::Password(service_setting("COFFER_TEST_SFTP_PASSWORD")?),
        host_key.trim(),
        &format!("ranges-unit-{}", std::process::id()),
    );
    Some(SftpStorage::new(settings).expect("settings are valid"))
}

#[test]
fn ranges_come_back_exact_even_when_the_server_answers_less_than_asked() {
    let Some(storage) = storage() else { return };
    storage.ensure_directory().unwrap();
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let key = "data/ab/object";
    storage.put(key, &data).unwrap();
    let len = data.len() as u64;
    let cases = [
        (0, 1),
        (0, len),
        (1000, 300_000),
        (261_119, 2),
        (2 * 1024 * 1024, len - 2 * 1024 * 1024),
        (len - 1, 1),
        (5, 0),
    ];
    for (offset, length) in cases {
        let got = storage.get_range(key, offset, length).unwrap();
        assert!(
            got == data[offset as usize..(offset + length) as usize],
            "{length} bytes at {offset}"
        );
    }
    let past_the_end = storage.get_range(key, len - 10, 20).unwrap_err();
    assert_eq!(
        past_the_end.kind,
        StorageErrorKind::Corrupt,
        "{past_the_end}"
    );
    let missing = storage.get_range("data/ab/missing", 0, 10).unwrap_err();
    assert_eq!(missing.kind, StorageErrorKind::NotFound, "{missing}");

    let session = storage.session_or_connect().map_err(|(_, e)| e).unwrap();
    let reader = session.reader.get().expect("the reads above opened it");
    reader.chunk.store(1024 * 1024, Ordering::Relaxed);
    let (offset, length) = (100, 3 * 1024 * 1024);
    let got = storage.get_range(key, offset, length).unwrap();
    assert!(
        got == data[100..100 + length as usize],
        "1 MiB asks, 255 KiB answers"
    );
    let learned = reader.chunk.load(Ordering::Relaxed);
    assert_eq!(
        learned,
        255 * 1024,
        "the reader asks for what the server answers"
    );
    let got = storage.get_range(key, offset, length).unwrap();
    assert!(
        got == data[100..100 + length as usize],
        "with the learned size"
    );
    storage.delete(key).unwrap();
}
