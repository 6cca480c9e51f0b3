//! Archive primitives that sit below both the engine and the export format,
//! so the engine seals with age keys and reads untrusted tars without
//! depending on the `.coffer` export format:
//!
//! - [`keys`]: age X25519 recipients and identities, one parser for the
//!   engine, the server and the CLI;
//! - [`tar_guard`]: a reader that caps tar extension headers (PAX, GNU long
//!   names) before the `tar` crate buffers them whole.

pub mod keys;
pub mod tar_guard;

pub use keys::{AgeIdentity, AgeRecipients};
