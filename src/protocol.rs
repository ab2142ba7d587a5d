//! What the market and its clients agree on besides JSON shapes: the root path of the
//! original v1 REST dialect and the header names. Defined once, used by the server's
//! API and by the client library.

/// The market root of the original API.
pub const ROOT: &str = "/_db/market/v0_0";

/// The header naming an order placement, so that a resend does not place it twice.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The header naming one call in every log line about it: a client may send its own
/// (1 to 64 of `A-Z a-z 0-9 . _ : -`), otherwise the node that first receives the call
/// makes one; answered on every response and carried on forwarded calls.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Prefix of the headers only market nodes send each other. A call carrying any header
/// with it must be a correctly signed node call, or it is refused (401).
pub const INTERNAL_HEADER_PREFIX: &str = "x-proof-market-";

/// Header carrying how many nodes have forwarded a call (node to node only).
pub const HOPS_HEADER: &str = "x-proof-market-hops";

/// Header naming the node that forwarded a call (node to node only).
pub const NODE_HEADER: &str = "x-proof-market-node";

/// Header with the time a node signed a forwarded call, Unix milliseconds.
pub const TIME_HEADER: &str = "x-proof-market-time";

/// Header with the hex SHA-256 of a forwarded call's body.
pub const BODY_DIGEST_HEADER: &str = "x-proof-market-body-sha256";

/// Header with the hex HMAC-SHA256 of a forwarded call (see `cluster::signing`).
pub const SIGNATURE_HEADER: &str = "x-proof-market-signature";

/// The `WWW-Authenticate` scheme of a 401 refusing a node call, which tells the
/// forwarding node that the owner refused *it*, not the user's token.
pub const NODE_AUTH_SCHEME: &str = "ProofMarket-Node";
