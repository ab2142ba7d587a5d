//! Authentication of calls between market nodes: an HMAC-SHA256, keyed with a secret
//! every node of the market shares, over what a forwarded call asserts.
//!
//! A node that forwards a call to a statement's owner signs the call's method, path and
//! query, its hop count, the time, its own node id and the SHA-256 of the body
//! ([`ClusterSecret::sign`]); the owner recomputes the HMAC and compares in constant
//! time ([`ClusterSecret::verify`]), and refuses a time more than [`MAX_CLOCK_SKEW`]
//! away from its own clock ([`check_time`]). Only a call that passes is believed about
//! its hop count. The body is bound through its digest, which travels as a header (as
//! in AWS Signature V4's `x-amz-content-sha256`), so the headers are checked before the
//! body is read and the body against the signed digest once it is.
//!
//! The message is the fields one per line after a fixed version line. No field can
//! hold a newline (HTTP forbids one in a method, a request target and a header value;
//! node ids have no whitespace, checked at start; the rest are digits and hex), so the
//! lines cannot be shifted into each other. The version line keeps the message apart
//! from anything else the same key might sign (a JWT's signing input has no newline)
//! and from later formats.
//!
//! This proves origin and integrity, not confidentiality: a forwarded call still
//! carries its user's bearer token in clear, and a captured call can be replayed within
//! the time window (README's threat model says what bounds that).
//!
//! Pure apart from [`ClusterSecret::load`], which reads the secret once at start.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::{read_secret_file, SecretFile, MIN_SECRET_BYTES};

/// Largest difference between a signed call's time and the receiving node's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// First line of every signed message: the format's name and version.
const VERSION_LINE: &str = "proof-market node call v1";

const CLUSTER_FILE: SecretFile<'static> = SecretFile {
    what: "cluster secret",
    if_exposed: "give every node a new secret",
    if_short: "write at least 32 random bytes into it, e.g. `openssl rand -hex 32`",
};

/// The key every node of one market shares to sign the calls it forwards.
///
/// Holds the HMAC already keyed, so each signature costs the message's hashing only.
#[derive(Clone)]
pub struct ClusterSecret {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// What a forwarded call asserts, exactly as it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCall<'a> {
    /// HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The request target as sent on the wire: path, and `?query` when there is one.
    pub path_and_query: &'a str,
    /// How many nodes have forwarded the call, this one included.
    pub hops: u8,
    /// When the forwarding node signed it, Unix milliseconds.
    pub time_ms: u64,
    /// The forwarding node's id.
    pub node: &'a str,
    /// SHA-256 of the body (of no bytes when there is none).
    pub body_sha256: [u8; 32],
}

/// Why a call that claims to come from a node is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// This node has no cluster secret, so it believes no node call.
    #[error("this node takes no calls from other nodes: it has no cluster secret")]
    NoSecret,
    /// The internal headers are missing, repeated, unknown or unreadable (a client
    /// sending one of them gets this: they are only for calls between nodes).
    #[error("{0} (x-proof-market-* headers are only for calls between market nodes)")]
    Malformed(String),
    /// The signed time is too far from this node's clock.
    #[error(
        "the call was signed {skew_secs} s away from this node's clock (at most {} s \
         allowed): replayed, or the nodes' clocks differ (synchronize them with NTP)",
        MAX_CLOCK_SKEW.as_secs()
    )]
    Stale {
        /// Signed time minus this node's time, in whole seconds.
        skew_secs: i64,
    },
    /// The HMAC does not match: forged, or the nodes' cluster secrets differ.
    #[error("the signature does not match: forged, or the nodes' cluster secrets differ")]
    BadSignature,
    /// The body is not the one whose digest was signed.
    #[error("the body is not the one that was signed")]
    BodyMismatch,
}

impl ClusterSecret {
    /// A secret of at least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(bytes: &[u8]) -> Result<ClusterSecret, String> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "{} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        // HMAC takes a key of any length: this cannot fail.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map_err(|e| format!("unusable key: {e}"))?;
        Ok(ClusterSecret { keyed })
    }

    /// The secret from `PROOF_MARKET_CLUSTER_SECRET` (`env`, the value itself; empty
    /// counts as unset) or from the file `--cluster-secret-file` names, trimmed;
    /// `None` when neither is given. Both at once, a value under [`MIN_SECRET_BYTES`],
    /// a missing file or one someone else may have read ([`crate::auth::exposure`])
    /// are errors, each one line naming the setting.
    pub fn load(env: Option<&str>, file: Option<&Path>) -> Result<Option<ClusterSecret>, String> {
        let env = env.filter(|s| !s.is_empty());
        match (env, file) {
            (Some(_), Some(_)) => Err(
                "set either PROOF_MARKET_CLUSTER_SECRET or --cluster-secret-file \
                 (PROOF_MARKET_CLUSTER_SECRET_FILE), not both"
                    .into(),
            ),
            (Some(s), None) => ClusterSecret::new(s.as_bytes())
                .map(Some)
                .map_err(|e| format!("PROOF_MARKET_CLUSTER_SECRET is {e}")),
            (None, Some(path)) => match read_secret_file(path, &CLUSTER_FILE)? {
                Some(bytes) => ClusterSecret::new(&bytes).map(Some),
                None => Err(format!("{}: no such file", path.display())),
            },
            (None, None) => Ok(None),
        }
    }

    fn mac(&self, call: &NodeCall<'_>) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        let digest = hex::encode(call.body_sha256);
        for (i, field) in [
            VERSION_LINE,
            call.method,
            call.path_and_query,
            &call.hops.to_string(),
            &call.time_ms.to_string(),
            call.node,
            &digest,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(field.as_bytes());
        }
        mac
    }

    /// The signature of `call`: HMAC-SHA256 over its fields, one per line, after the
    /// version line.
    pub fn sign(&self, call: &NodeCall<'_>) -> [u8; 32] {
        self.mac(call).finalize().into_bytes().into()
    }

    /// Whether `signature` is `call`'s, compared in constant time.
    pub fn verify(&self, call: &NodeCall<'_>, signature: &[u8]) -> Result<(), Refusal> {
        self.mac(call)
            .verify_slice(signature)
            .map_err(|_| Refusal::BadSignature)
    }
}

/// SHA-256 of a body, as signed.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// Whether a call signed at `time_ms` may be taken at `now_ms`: within
/// [`MAX_CLOCK_SKEW`] either way.
pub fn check_time(time_ms: u64, now_ms: u64) -> Result<(), Refusal> {
    let skew = i128::from(time_ms) - i128::from(now_ms);
    if skew.unsigned_abs() <= MAX_CLOCK_SKEW.as_millis() {
        Ok(())
    } else {
        Err(Refusal::Stale {
            skew_secs: (skew / 1000).clamp(i64::MIN.into(), i64::MAX.into()) as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a cluster secret of 32 bytes or more";

    fn call(body: &[u8]) -> NodeCall<'static> {
        NodeCall {
            method: "POST",
            path_and_query: "/_db/market/v0_0/request",
            hops: 1,
            time_ms: 1_700_000_000_000,
            node: "node-1",
            body_sha256: body_digest(body),
        }
    }

    #[test]
    fn a_signature_verifies_and_changes_with_every_field() {
        let s = ClusterSecret::new(KEY).unwrap();
        let c = call(b"{\"cost\":5}");
        let sig = s.sign(&c);
        assert_eq!(s.verify(&c, &sig), Ok(()));
        // Deterministic: the same call signs the same.
        assert_eq!(s.sign(&c), sig);
        let changed = [
            NodeCall {
                method: "DELETE",
                ..c
            },
            NodeCall {
                path_and_query: "/_db/market/v0_0/proposal",
                ..c
            },
            NodeCall {
                path_and_query: "/_db/market/v0_0/request?x=1",
                ..c
            },
            NodeCall { hops: 2, ..c },
            NodeCall {
                time_ms: c.time_ms + 1,
                ..c
            },
            NodeCall {
                node: "node-2",
                ..c
            },
            NodeCall {
                body_sha256: body_digest(b"{\"cost\":6}"),
                ..c
            },
        ];
        for other in changed {
            assert_ne!(s.sign(&other), sig, "{other:?}");
            assert_eq!(s.verify(&other, &sig), Err(Refusal::BadSignature));
        }
    }

    #[test]
    fn the_format_is_pinned() {
        // A known answer from outside this code: the v1 message of `call(b"")` signed
        // by `printf 'proof-market node call v1\nPOST\n...' | openssl dgst -sha256
        // -hmac KEY`. Changing the format must change the version line.
        let s = ClusterSecret::new(KEY).unwrap();
        assert_eq!(
            hex::encode(s.sign(&call(b""))),
            "f111924b071ccfb262e37b60b98c24f29608b70f26fd9a5d543858efccdb0c9c"
        );
    }

    #[test]
    fn another_secret_or_a_mangled_signature_is_refused() {
        let s = ClusterSecret::new(KEY).unwrap();
        let other = ClusterSecret::new(b"another cluster secret of 32 bytes+").unwrap();
        let c = call(b"body");
        let sig = s.sign(&c);
        assert_eq!(other.verify(&c, &sig), Err(Refusal::BadSignature));
        let mut flipped = sig;
        flipped[31] ^= 1;
        assert_eq!(s.verify(&c, &flipped), Err(Refusal::BadSignature));
        assert_eq!(s.verify(&c, &sig[..31]), Err(Refusal::BadSignature));
        assert_eq!(s.verify(&c, &[]), Err(Refusal::BadSignature));
    }

    #[test]
    fn times_beyond_the_window_are_refused_either_way() {
        let now = 1_700_000_000_000;
        let w = MAX_CLOCK_SKEW.as_millis() as u64;
        assert_eq!(check_time(now, now), Ok(()));
        assert_eq!(check_time(now - w, now), Ok(()));
        assert_eq!(check_time(now + w, now), Ok(()));
        assert_eq!(
            check_time(now - w - 1, now),
            Err(Refusal::Stale { skew_secs: -30 })
        );
        assert_eq!(
            check_time(now + 45_000, now),
            Err(Refusal::Stale { skew_secs: 45 })
        );
        assert!(check_time(0, now).is_err());
        assert!(check_time(u64::MAX, now).is_err());
        assert!(check_time(u64::MAX, 0).is_err());
    }

    #[test]
    fn short_or_doubled_secrets_are_refused_with_one_line() {
        let e = ClusterSecret::load(Some("short"), None).unwrap_err();
        assert!(
            e.contains("PROOF_MARKET_CLUSTER_SECRET is 5 bytes") && e.contains("at least 32"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(ClusterSecret::load(None, None).unwrap().is_none());
        assert!(ClusterSecret::load(Some(""), None).unwrap().is_none());
        let ok = "k".repeat(32);
        assert!(ClusterSecret::load(Some(&ok), None).unwrap().is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster-secret");
        let e = ClusterSecret::load(Some(&ok), Some(&path)).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = ClusterSecret::load(None, Some(&path)).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster-secret");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        // A trailing newline (echo, a Kubernetes Secret from a file) is not the key.
        write(&format!("{}\n", "s".repeat(40)), 0o600);
        let from_file = ClusterSecret::load(None, Some(&path)).unwrap().unwrap();
        let from_env = ClusterSecret::load(Some(&"s".repeat(40)), None)
            .unwrap()
            .unwrap();
        let c = call(b"");
        assert_eq!(from_file.sign(&c), from_env.sign(&c));
        write(&"s".repeat(40), 0o644);
        let e = ClusterSecret::load(None, Some(&path)).unwrap_err();
        assert!(
            e.contains("0644") && e.contains("cluster secret") && e.contains("chmod 600"),
            "{e}"
        );
        write("0123456789", 0o400);
        let e = ClusterSecret::load(None, Some(&path)).unwrap_err();
        assert!(e.contains("10 bytes") && e.contains("at least 32"), "{e}");
    }
}
