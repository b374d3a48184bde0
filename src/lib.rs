//! Rolekeeper: organization roles, role assignments and workspace memberships
//! over gRPC.
//!
//! A tour of the modules, outside in:
//! - [`api`]: one file per gRPC service. Authenticates, authorizes, converts
//!   protobuf to domain values, calls [`domain`], converts back. Nothing else.
//! - [`domain`]: business rules and transactions, free of protobuf types.
//! - [`operations`]: the durable operation queue: workers that claim pending
//!   operations, run them through [`domain`], and wake `WaitOperation` callers.
//! - [`store`]: SeaORM entities, migrations and queries; the only module that
//!   knows which database it talks to.
//! - [`auth`], [`error`], [`config`]: bearer tokens, the one error type (and
//!   its single conversion to `tonic::Status`), and the command line.
//!
//! [`server::run`] serves everything on an already-bound listener until a
//! shutdown future resolves, which is how the tests start real servers on
//! port 0.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod health;
pub mod limits;
pub mod monitor;
pub mod operations;
pub mod pb;
pub mod server;
pub mod store;

pub use error::Error;
pub use server::{ServerSettings, TlsSettings, run};
