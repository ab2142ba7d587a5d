//! The market client library: everything needed to talk to a market over HTTP in the
//! original =nil; Proof Market v1 REST dialect, and nothing about command lines, files or
//! printing.
//!
//! Two programs are built on it, side by side: the command line ([`crate::cli`]) and the
//! producer daemon ([`crate::producer`]). Keeping it out of `cli` means the daemon does not
//! depend on the command line's arguments, and the calls, retries and token handling exist
//! once.
//!
//! # Layout
//! - [`calls`]: [`MarketClient`], one method per market call (paths, bodies, keys), with
//!   requests and proposals handled as one [`Side`](crate::domain::Side) parameter.
//! - [`transport`]: how a call travels: timeouts, resends after 503/429 with `Retry-After`,
//!   and, for placements under an `Idempotency-Key`, after a lost connection.
//! - [`owners`]: which node owns which statement (`GET /cluster`), so that orders go to
//!   their statement's owner directly, not through a hop.
//! - [`events`]: [`EventSource`](events::EventSource), the live stream (`GET /events`).
//! - [`error`]: [`ClientError`], each variant one printable line.
//! - [`auth_file`]: [`AuthFile`], the file keeping the login token and the market it is for.

pub mod auth_file;
pub mod calls;
pub mod error;
pub mod events;
pub mod owners;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_server;

pub use auth_file::AuthFile;
pub use calls::{ListFilter, MarketClient};
pub use error::ClientError;
