//! When Coffer's schedules are due, and what a scheduler does about each
//! due time — decided on a clock the caller passes in, so the server runs
//! it on the real clock and tests walk months of schedule in milliseconds.
//!
//! * [`when`]: the forms a schedule's timing is written in (Palette's
//!   every-N-days-at-hours, cron in an IANA zone, an interval), validated
//!   with the field named, and their due times;
//! * [`due`]: which due times run, are skipped (the previous run is still
//!   going) or were missed (downtime longer than the catch-up window);
//! * [`retention`]: which backups a policy keeps, and why.

pub mod due;
pub mod retention;
pub mod when;

pub use due::{Outcome, State, decide};
pub use jiff_cron::jiff::{SignedDuration, Timestamp};
pub use when::{When, WhenError, WhenFields};

#[cfg(test)]
mod tests;
