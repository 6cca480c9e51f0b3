//! Schedules: backups the server takes on its own.
//!
//! * [`spec`]: a schedule as written (coffer.toml, the API) and its checks;
//! * [`service`]: list, show, create, change, delete, run now — each
//!   checked against the caller — and the principal runs act as;
//! * [`handle`]: the scheduler's handle in the server's state;
//! * [`scheduler`]: the thread that decides every due time on the server's
//!   clock and starts the backups.

pub mod handle;
pub mod scheduler;
pub mod service;
pub mod spec;
