//! The console's pages, one file per part of the product.

pub mod access;
pub mod backups;
pub mod browse;
pub mod login;
pub mod overview;
pub mod restore;
pub mod schedules;
pub mod targets;
pub mod upload;
