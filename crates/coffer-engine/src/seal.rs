//! Sealed components: data encrypted to age X25519 recipients before the
//! repository sees it.
//!
//! The repository already encrypts everything with its own key, which the
//! server holds. Keys and secrets deserve more: sealed with only *public*
//! keys, they can be backed up by a server that could not read them back.
//! Restoring needs the matching identity, supplied by whoever restores.
//!
//! What is stored, so that plain `restic` and the `age` CLI can recover it:
//!
//! * a sealed **stream** is the age file of the stream, named `<name>.age`
//!   (e.g. `vault.pgdump.age`);
//! * a sealed **tree** is the age file of a GNU tar of the tree, named
//!   `<component>.tar.age`: `restic dump latest /keys.tar.age | age -d -i key.txt | tar x`.
//!
//! Each snapshot carries the tag `coffer-sealed=age`. Encryption uses a fresh
//! file key each time, so sealed components do not deduplicate between
//! backups; they are meant to be small.
//!
//! The tar itself — its layout, and the rules by which any tree's tar is
//! unpacked — is the engine's `tree_tar` module's; [`verify_tree_tar`] and
//! [`TarOrigin`] are re-exported here, where callers have always found them.

use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use rustic_core::Excludes;

pub use coffer_archive::{AgeIdentity, AgeRecipients};
use coffer_targets::pipe::{PipeReader, spawn_producer};

use crate::cancel::CancelToken;
pub use crate::tree_tar::{TarOrigin, verify_tree_tar};

/// The suffix of a sealed snapshot's file name.
pub const SEALED_SUFFIX: &str = ".age";

// ---------------------------------------------------------------------- writing

/// `source` encrypted to `recipients`, produced on a worker thread.
pub(crate) fn seal_stream(
    mut source: Box<dyn Read + Send>,
    recipients: Arc<AgeRecipients>,
) -> io::Result<PipeReader> {
    spawn_producer("seal", move |out| {
        let mut sealed = recipients.encryptor()?.wrap_output(out)?;
        io::copy(&mut source, &mut sealed)?;
        sealed.finish()?;
        Ok(())
    })
}

/// A GNU tar of the tree at `root` (walked like an unsealed backup, with the
/// same excludes), encrypted to `recipients`.
pub(crate) fn seal_tree(
    root: PathBuf,
    excludes: Excludes,
    recipients: Arc<AgeRecipients>,
    cancel: Option<CancelToken>,
) -> io::Result<PipeReader> {
    spawn_producer("seal-tree", move |out| {
        let sealed = recipients.encryptor()?.wrap_output(out)?;
        let mut tar = tar::Builder::new(sealed);
        crate::tree_tar::write_tree(&mut tar, &root, &excludes, cancel.as_ref())?;
        tar.into_inner()?.finish()?;
        Ok(())
    })
}

// ---------------------------------------------------------------------- reading

/// Decrypts the age file read from `sealed` with `identity`. The error says
/// plainly when the identity is not one the data was sealed to.
pub fn open_sealed<R: Read>(sealed: R, identity: &AgeIdentity) -> io::Result<impl Read + use<R>> {
    let decryptor = age::Decryptor::new_buffered(BufReader::new(sealed))
        .map_err(|e| io::Error::other(format!("not a valid age file: {e}")))?;
    decryptor
        .decrypt(std::iter::once(identity.as_age() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the age identity (public key {}) is not one this component was sealed to",
                    identity.recipient()
                ),
            ),
            other => io::Error::other(format!("cannot decrypt the sealed data: {other}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_stream_round_trip_and_wrong_identity() {
        let id = AgeIdentity::generate();
        let recipients = Arc::new(AgeRecipients::parse(&[id.recipient()]).unwrap());
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        seal_stream(Box::new(io::Cursor::new(data.clone())), recipients)
            .unwrap()
            .read_to_end(&mut sealed)
            .unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        let mut plain = Vec::new();
        open_sealed(&mut sealed.as_slice(), &id)
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);

        let other = AgeIdentity::generate();
        let e = open_sealed(&mut sealed.as_slice(), &other).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains(&other.recipient()), "{e}");
    }

    #[test]
    fn a_failing_source_fails_the_sealed_stream() {
        struct Broken(u8);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[0] = 1;
                Ok(1)
            }
        }
        let id = AgeIdentity::generate();
        let recipients = Arc::new(AgeRecipients::parse(&[id.recipient()]).unwrap());
        let mut out = Vec::new();
        let e = seal_stream(Box::new(Broken(3)), recipients)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }

    #[test]
    fn identities_and_recipients_parse_with_clear_errors() {
        let id = AgeIdentity::generate();
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.recipient(),
            id.secret()
        );
        let parsed: AgeIdentity = file.parse().unwrap();
        assert_eq!(parsed.recipient(), id.recipient());
        assert!(!format!("{parsed:?}").contains("AGE-SECRET-KEY"));
        assert!("".parse::<AgeIdentity>().unwrap_err().contains("empty"));
        assert!(
            "AGE-SECRET-KEY-1XYZ"
                .parse::<AgeIdentity>()
                .unwrap_err()
                .contains("X25519")
        );
        assert!(
            AgeRecipients::parse::<&str>(&[])
                .unwrap_err()
                .contains("no age recipient")
        );
        assert!(
            AgeRecipients::parse(&["age1nope"])
                .unwrap_err()
                .contains("age1nope")
        );
    }
}
