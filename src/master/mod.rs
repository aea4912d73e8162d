//! LAYER 1: the token master. It knows nothing about workflows: it stores named tokens with
//! version-checked, all-or-nothing updates and ownership leases, and commits every change to
//! the database before it answers. `api` serves it over HTTP; `client` reaches it.

mod answers;
pub mod api;
pub mod budget;
pub mod client;
pub mod lease;
mod load;
mod local;
pub mod logs;
pub mod openapi;
pub mod options;
pub mod parking;
pub mod pattern;
pub mod probes;
pub mod read;
pub mod requests;
pub mod retention;
pub mod retry;
pub mod server;
pub mod service;
pub mod standby;
pub mod state;
mod watch;
mod writer;

pub use crate::token::MasterError;
pub use client::{HttpMasterClient, MasterClient, RENEWING_BACKOFF};
pub use local::LocalMasterClient;
pub use options::{JobLog, MasterOptions, Naming};
pub use service::Master;
