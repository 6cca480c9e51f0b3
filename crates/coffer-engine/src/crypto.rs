//! Opening (and, for lock files, writing) restic's encrypted files and blobs
//! with the repository's master key. rustic_core keeps its own decryption private, and Coffer reads some
//! files itself: plain restic's locks, and packs fetched in whole ranges for
//! fast restores (see [`crate::fetch`]).

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::{Aead, AeadInPlace, generic_array::GenericArray};
use rustic_core::repofile::MasterKey;

/// Why an encrypted object did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// Shorter than an IV and a MAC.
    TooShort,
    /// The MAC does not match: damaged, or written with another key.
    BadMac,
}

impl std::fmt::Display for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TooShort => "too short to be encrypted data",
            Self::BadMac => "MAC check failed",
        })
    }
}

/// The cipher for `key`: AES-256 in counter mode, authenticated with
/// Poly1305-AES, as restic uses it.
pub(crate) fn cipher(key: &MasterKey) -> Aes256CtrPoly1305Aes {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&key.encrypt);
    k[32..48].copy_from_slice(&key.mac.k);
    k[48..].copy_from_slice(&key.mac.r);
    Aes256CtrPoly1305Aes::new(GenericArray::from_slice(&k))
}

/// What encryption adds to an object: the IV and the MAC (16 bytes each).
pub(crate) const OVERHEAD: u32 = 32;

/// Opens one encrypted object: IV (16 bytes), ciphertext, MAC (16 bytes).
pub(crate) fn decrypt(cipher: &Aes256CtrPoly1305Aes, data: &[u8]) -> Result<Vec<u8>, Unsealed> {
    if data.len() < 32 {
        return Err(Unsealed::TooShort);
    }
    cipher
        .decrypt(GenericArray::from_slice(&data[..16]), &data[16..])
        .map_err(|_| Unsealed::BadMac)
}

/// Encrypts one object as restic does: a random IV (16 bytes), the
/// ciphertext, the MAC (16 bytes).
pub(crate) fn encrypt(cipher: &Aes256CtrPoly1305Aes, plain: &[u8]) -> Vec<u8> {
    let iv: [u8; 16] = rand::random();
    let mut out = iv.to_vec();
    // Encryption of a slice in memory cannot fail for this cipher.
    match cipher.encrypt(GenericArray::from_slice(&iv), plain) {
        Ok(sealed) => out.extend_from_slice(&sealed),
        Err(_) => out.clear(),
    }
    out
}

/// Appends `plain` to `out` encrypted as [`encrypt`] does, without a
/// buffer of its own (the archiver's packs are written this way).
pub(crate) fn encrypt_into(cipher: &Aes256CtrPoly1305Aes, plain: &[u8], out: &mut Vec<u8>) {
    let iv: [u8; 16] = rand::random();
    out.extend_from_slice(&iv);
    let start = out.len();
    out.extend_from_slice(plain);
    // Encryption of a slice in memory cannot fail for this cipher.
    match cipher.encrypt_in_place_detached(GenericArray::from_slice(&iv), b"", &mut out[start..]) {
        Ok(tag) => out.extend_from_slice(&tag),
        Err(_) => out.truncate(start - iv.len()),
    }
}
