//! What the market and its clients agree on besides JSON shapes: the root path of the
//! original v1 REST dialect and the header names. Defined once, used by the server's
//! API and by the client library.

/// The market root of the original API.
pub const ROOT: &str = "/_db/market/v0_0";

/// The header naming an order placement, so that a resend does not place it twice.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Header carrying how many nodes have forwarded a call (node to node only).
pub const HOPS_HEADER: &str = "x-proof-market-hops";
