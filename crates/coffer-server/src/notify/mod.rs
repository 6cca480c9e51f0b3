//! Notifications: telling operators when something goes wrong (and when
//! it is right again).
//!
//! * [`handle`]: the alerts the server raises and the state's inbox;
//! * [`spec`]: a destination as written (coffer.toml, the API);
//! * [`service`]: list, show, create, change, delete, test;
//! * [`dispatch`]: the thread that tells each condition once and delivers;
//! * [`outbox`]: a message's body and its delivery by destination kind;
//! * [`webhook`]: one signed, retried HTTP delivery;
//! * [`email`]: one SMTP delivery (STARTTLS or TLS), retried when transient;
//! * [`watch`]: the conditions the scheduler evaluates on its clock (a
//!   component's backups too old).

pub mod dispatch;
pub mod email;
pub mod handle;
pub mod outbox;
pub mod service;
pub mod spec;
pub mod watch;
pub mod webhook;
