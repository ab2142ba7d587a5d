//! Accounts and tokens: argon2 password hashes and signed, expiring JWTs.
//!
//! Passwords are stored only as argon2id PHC strings. Tokens are HS256 JWTs signed with
//! a server secret and verified with that one algorithm fixed, so a token that names
//! another algorithm (`none`, RS256 with the secret as a public key...) is refused.
//! Hashing is deliberately slow, so callers run it on the blocking pool, never on an
//! async worker.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::domain::UserName;
use crate::error::MarketError;

const ISSUER: &str = "proof-market";

/// Hashes a password with argon2id and a fresh salt (slow: call off the async workers).
pub fn hash_password(password: &str) -> Result<String, MarketError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| MarketError::Internal(format!("hashing password: {e}")))
}

/// Checks a password against a stored hash (slow: call off the async workers).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fixed argon2id hash (same parameters as real ones) of a password nobody knows:
/// a login for an unknown user is verified against it, so it costs what a known user's
/// does and its timing does not tell which names exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::from_b64("cHJvb2YtbWFya2V0LWR1bW15").expect("valid salt");
        Argon2::default()
            .hash_password(b"no user has this password: it only costs time", &salt)
            .map(|h| h.to_string())
            .expect("hashing a constant")
    })
}

/// Spends the time of one password check against [`dummy_hash`]; always `false`.
pub fn verify_dummy(password: &str) -> bool {
    let _ = verify_password(password, dummy_hash());
    false
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    iss: String,
    /// When the user last gave a password (seconds): carried unchanged across
    /// `user/renew`, so a chain of renewals ends `max_age` after the login. Tokens from
    /// before this claim existed count from their `iat`.
    #[serde(default)]
    auth_time: u64,
    /// Issue time in milliseconds, compared with the user's revocation time.
    #[serde(default)]
    iat_ms: u64,
}

/// What a genuine, unexpired token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user it was issued to.
    pub user: UserName,
    /// When it was issued, in Unix milliseconds.
    pub issued_ms: u64,
    /// When its chain of renewals started (the login), in Unix seconds.
    pub auth_time: u64,
}

impl Verified {
    /// The name revocations and login throttles are kept under (lowercase).
    pub fn account(&self) -> String {
        account_key(self.user.as_str())
    }
}

/// The case-insensitive identity of a user name: names differing only in case are one
/// account.
pub fn account_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Account and token settings (one per node; every node should use the same).
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Longest time from a login through any chain of renewals, in seconds.
    pub max_age_secs: u64,
    /// How long a node trusts what it read of a user's revocation time: a logout on
    /// one node reaches tokens used on another node within this delay.
    pub revocation_cache: std::time::Duration,
    /// Failed logins per user name (case-insensitive) in a window before 429.
    pub login_failures_per_name: u64,
    /// Failed logins per client IP in a window before 429.
    pub login_failures_per_ip: u64,
    /// The failure-counting window, in seconds (from the first failure).
    pub login_window_secs: u64,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            max_age_secs: 30 * 24 * 3600,
            revocation_cache: std::time::Duration::from_millis(1000),
            login_failures_per_name: 10,
            login_failures_per_ip: 50,
            login_window_secs: 300,
        }
    }
}

/// Per-node cache of users' revocation times ("tokens issued before T are invalid",
/// Unix ms; 0 = none), each entry trusted for [`AuthPolicy::revocation_cache`].
#[derive(Debug, Default)]
pub struct RevocationCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
}

/// Entries kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 100_000;

impl RevocationCache {
    /// The revocation time of `account` if read less than `ttl` ago.
    pub fn get(&self, account: &str, ttl: std::time::Duration) -> Option<u64> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(account)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(t, _)| *t)
    }

    /// Remembers `account`'s revocation time as of now.
    pub fn put(&self, account: &str, revoked_before_ms: u64, ttl: std::time::Duration) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_SWEEP_AT {
            map.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        map.insert(
            account.to_owned(),
            (revoked_before_ms, std::time::Instant::now()),
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Most tokens [`VerifiedCache`] holds; it starts over when full.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Seconds a token is still accepted past its `exp` (clock skew).
const LEEWAY_SECS: u64 = 5;

/// Tokens this node verified lately, with their claims: a client sends the same token
/// on every call, and checking its signature and claims again costs more than the rest
/// of a small call's authentication. Only genuine tokens get in (each one cost a login),
/// keyed by the whole token; expiry and maximum age are checked again on every hit, and
/// revocations are checked by the caller as for any token.
#[derive(Default)]
struct VerifiedCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Verified, u64)>>,
}

impl VerifiedCache {
    fn get(&self, token: &str) -> Option<(Verified, u64)> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token).cloned()
    }

    fn put(&self, token: &str, v: &Verified, exp: u64) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_CACHE_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), (v.clone(), exp));
    }
}

/// Issues and verifies tokens, and holds the account policy and revocation cache.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
    policy: std::sync::Arc<AuthPolicy>,
    revocations: std::sync::Arc<RevocationCache>,
    verified: std::sync::Arc<VerifiedCache>,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl_secs`, under the default policy.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Tokens {
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
            policy: Default::default(),
            revocations: Default::default(),
            verified: Default::default(),
        }
    }

    /// The same tokens under `policy`.
    pub fn with_policy(mut self, policy: AuthPolicy) -> Tokens {
        self.policy = std::sync::Arc::new(policy);
        self
    }

    /// The account policy.
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// This node's cache of revocation times.
    pub fn revocations(&self) -> &RevocationCache {
        &self.revocations
    }

    /// A fresh token for `user`, who just gave a password.
    pub fn issue(&self, user: &UserName) -> Result<String, MarketError> {
        self.sign(user, jsonwebtoken::get_current_timestamp())
    }

    /// A new token continuing `v`'s chain: same `auth_time`, refused once the chain is
    /// older than the maximum age.
    pub fn renew(&self, v: &Verified) -> Result<String, MarketError> {
        let now = jsonwebtoken::get_current_timestamp();
        if now >= v.auth_time.saturating_add(self.policy.max_age_secs) {
            return Err(too_old());
        }
        self.sign(&v.user, v.auth_time)
    }

    fn sign(&self, user: &UserName, auth_time: u64) -> Result<String, MarketError> {
        let now_ms = now_ms();
        let now = now_ms / 1000;
        let claims = Claims {
            sub: user.as_str().to_owned(),
            iat: now,
            exp: (now + self.ttl_secs).min(auth_time.saturating_add(self.policy.max_age_secs)),
            iss: ISSUER.into(),
            auth_time,
            iat_ms: now_ms,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| MarketError::Internal(format!("signing token: {e}")))
    }

    /// What a token says, if it is genuine, unexpired and within the maximum age (not
    /// yet checked against revocations: see [`Tokens::check_revocation`]).
    pub fn verify(&self, token: &str) -> Result<Verified, MarketError> {
        if let Some((v, exp)) = self.verified.get(token) {
            let now = jsonwebtoken::get_current_timestamp();
            if now > exp.saturating_add(LEEWAY_SECS) {
                return Err(MarketError::Unauthorized(
                    "token expired; log in again".into(),
                ));
            }
            if now >= v.auth_time.saturating_add(self.policy.max_age_secs) {
                return Err(too_old());
            }
            return Ok(v);
        }
        let (v, exp) = self.verify_signed(token)?;
        self.verified.put(token, &v, exp);
        Ok(v)
    }

    /// [`Tokens::verify`] without the cache: the claims and `exp`.
    fn verify_signed(&self, token: &str) -> Result<(Verified, u64), MarketError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired; log in again",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "token signature is invalid",
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "token algorithm is not HS256",
                _ => "token is malformed or invalid",
            };
            MarketError::Unauthorized(why.into())
        })?;
        let c = data.claims;
        let user = UserName::parse(&c.sub)
            .ok_or_else(|| MarketError::Unauthorized("token names no valid user".into()))?;
        let auth_time = if c.auth_time == 0 { c.iat } else { c.auth_time };
        if jsonwebtoken::get_current_timestamp()
            >= auth_time.saturating_add(self.policy.max_age_secs)
        {
            return Err(too_old());
        }
        let v = Verified {
            user,
            issued_ms: if c.iat_ms == 0 {
                c.iat * 1000
            } else {
                c.iat_ms
            },
            auth_time,
        };
        Ok((v, c.exp))
    }

    /// Refuses `v` if it was issued before its user's revocation time.
    pub fn check_revocation(v: &Verified, revoked_before_ms: u64) -> Result<(), MarketError> {
        if v.issued_ms < revoked_before_ms {
            return Err(MarketError::Unauthorized(
                "token revoked (logout or password change); log in again".into(),
            ));
        }
        Ok(())
    }

    /// `v`'s user if the cached revocation time allows it; `None` when the cache has
    /// no fresh entry and the store must be read.
    pub fn check_cached(&self, v: &Verified) -> Option<Result<(), MarketError>> {
        let t = self
            .revocations
            .get(&v.account(), self.policy.revocation_cache)?;
        Some(Self::check_revocation(v, t))
    }

    /// The current time in Unix milliseconds (a revocation time).
    pub fn now_ms() -> u64 {
        now_ms()
    }
}

fn too_old() -> MarketError {
    MarketError::Unauthorized("login too old (maximum token age reached); log in again".into())
}

/// The shortest signing secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Loads the signing secret: `PROOF_MARKET_JWT_SECRET` when set (at least
/// [`MIN_SECRET_BYTES`] bytes), else a random secret kept in `<data_dir>/jwt-secret`, so
/// tokens survive restarts and every node sharing the directory or the variable agrees.
///
/// The file is created atomically with mode 0600: written to a temporary file (0600) in
/// the same directory, then hard-linked into place, which fails rather than replaces if
/// another node created it first (that node's secret is then read). An existing file
/// that other users could read (see [`exposure`]) or that is shorter than the minimum
/// is refused, not repaired: the secret may have leaked, and silently replacing it
/// would log every user out.
pub fn load_secret(
    env_secret: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<Vec<u8>, String> {
    if let Some(s) = env_secret.filter(|s| !s.is_empty()) {
        if s.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "PROOF_MARKET_JWT_SECRET is {} bytes; it must be at least {MIN_SECRET_BYTES} \
                 (e.g. `openssl rand -hex 32`)",
                s.len()
            ));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    for _ in 0..2 {
        match read_secret_file(&path, &JWT_FILE)? {
            Some(s) => return Ok(s),
            None => {
                if create_secret_file(data_dir, &path)? {
                    tracing::info!(path = %path.display(), "generated a new JWT secret");
                }
            }
        }
    }
    Err(format!("{}: cannot create the JWT secret", path.display()))
}

/// How a secret kept in a file is named in errors, and what to do when it is refused.
pub(crate) struct SecretFile<'a> {
    /// What the file holds ("JWT secret").
    pub what: &'a str,
    /// What to do with a file others may have read, besides `chmod 600`.
    pub if_exposed: &'a str,
    /// What to do with a file too short.
    pub if_short: &'a str,
}

const JWT_FILE: SecretFile<'static> = SecretFile {
    what: "JWT secret",
    if_exposed: "delete it (a new secret is generated; every token is then invalid)",
    if_short: "delete the file to generate a new one",
};

/// Why a secret file with permission bits `mode`, owned by user `uid`, may have been
/// read by someone else than the node, or `None` if it is private.
///
/// Private is 0600 or less, or, for a file root owns, also group-read (0640 or less):
/// root then chose who may read it, as in a Kubernetes Secret volume mounted for a
/// non-root pod (0440, group = the pod's `fsGroup`) or an `/etc` file for a service's
/// group. PostgreSQL applies the same rule to its TLS key file. Group write and any
/// access by others are refused whoever owns the file.
pub(crate) fn exposure(mode: u32, uid: u32) -> Option<&'static str> {
    let group = mode & 0o070;
    if mode & 0o007 != 0 {
        Some("other users may read it")
    } else if group != 0 && (uid != 0 || group != 0o040) {
        Some("its group may read or write it")
    } else {
        None
    }
}

/// The secret in `path`, trimmed, `None` if there is no file. A file that someone else
/// may have read (see [`exposure`]) or shorter than [`MIN_SECRET_BYTES`] is refused.
pub(crate) fn read_secret_file(
    path: &std::path::Path,
    kind: &SecretFile<'_>,
) -> Result<Option<Vec<u8>>, String> {
    let show = path.display();
    let what = kind.what;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{show}: {e}")),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if let Some(why) = exposure(mode, meta.uid()) {
            return Err(format!(
                "{show} has mode {mode:04o} ({why}): other users may have read the {what}; \
                 `chmod 600` it if they cannot have, else {}",
                kind.if_exposed
            ));
        }
    }
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{show}: {e}"))?;
    let s = text.trim();
    if s.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{show} holds {} bytes; a {what} must be at least {MIN_SECRET_BYTES}: {}",
            s.len(),
            kind.if_short
        ));
    }
    Ok(Some(s.as_bytes().to_vec()))
}

/// Writes a fresh secret to `path` unless it exists; `true` if this call created it.
fn create_secret_file(dir: &std::path::Path, path: &std::path::Path) -> Result<bool, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes);
    let secret = hex::encode(bytes);
    let tmp = dir.join(format!(
        ".jwt-secret.tmp-{}-{}",
        std::process::id(),
        hex::encode(&bytes[..4])
    ));
    let result = write_private(&tmp, &secret).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// Creates `path` (which must not exist) with mode 0600 and `text`, synced to disk.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let t = Tokens::new(b"0123456789abcdef0123456789abcdef", 60);
        let alice = UserName::parse("alice").unwrap();
        let tok = t.issue(&alice).unwrap();
        assert_eq!(t.verify(&tok).unwrap().user, alice);
        let other = Tokens::new(b"another secret another secret ..", 60);
        assert!(other.verify(&tok).is_err());
        assert!(t.verify("garbage").is_err());
        // alg=none with the same claims
        let parts: Vec<&str> = tok.split('.').collect();
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        assert!(t.verify(&format!("{none_header}.{}.", parts[1])).is_err());
        // expired
        let expired = Tokens::new(b"0123456789abcdef0123456789abcdef", 0);
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                iat: 1,
                exp: 2,
                iss: ISSUER.into(),
                auth_time: 0,
                iat_ms: 0,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(
            matches!(expired.verify(&old), Err(MarketError::Unauthorized(m)) if m.contains("expired"))
        );
    }

    #[test]
    fn cached_tokens_still_expire_and_only_genuine_ones_are_cached() {
        let t = Tokens::new(b"0123456789abcdef0123456789abcdef", 60);
        let alice = UserName::parse("alice").unwrap();
        let tok = t.issue(&alice).unwrap();
        let v = t.verify(&tok).unwrap();
        assert_eq!(
            t.verified.get(&tok).map(|(v, _)| v.user),
            Some(alice.clone())
        );
        // Another secret's tokens share nothing with this one's cache.
        let other = Tokens::new(b"another secret another secret ..", 60);
        assert!(other.verify(&tok).is_err());
        assert!(other.verified.get(&tok).is_none());
        // A refused token is not remembered.
        let forged = format!("{tok}x");
        assert!(t.verify(&forged).is_err());
        assert!(t.verified.get(&forged).is_none());
        // A cached token past its expiry (and leeway) is refused as expired.
        let now = jsonwebtoken::get_current_timestamp();
        t.verified.put(&tok, &v, now - LEEWAY_SECS - 1);
        assert!(
            matches!(t.verify(&tok), Err(MarketError::Unauthorized(m)) if m.contains("expired"))
        );
        // ... and one whose login is older than the maximum age, as too old.
        let stale = Verified {
            auth_time: now - t.policy.max_age_secs,
            ..v
        };
        t.verified.put(&tok, &stale, now + 60);
        assert!(
            matches!(t.verify(&tok), Err(MarketError::Unauthorized(m)) if m.contains("maximum token age"))
        );
    }

    fn claims_of(tok: &str) -> Claims {
        use base64_payload::decode;
        serde_json::from_slice(&decode(tok.split('.').nth(1).unwrap())).unwrap()
    }

    /// Just enough base64url to read a payload in a test.
    mod base64_payload {
        pub fn decode(s: &str) -> Vec<u8> {
            let val = |c: u8| match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                _ => 63,
            } as u32;
            let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
            for c in s.bytes() {
                acc = (acc << 6) | val(c);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push((acc >> bits) as u8);
                }
            }
            out
        }
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signed(c: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(KEY),
        )
        .unwrap()
    }

    #[test]
    fn renewals_keep_the_login_time_and_stop_at_the_maximum_age() {
        let policy = AuthPolicy {
            max_age_secs: 1000,
            ..AuthPolicy::default()
        };
        let t = Tokens::new(KEY, 3600).with_policy(policy);
        let alice = UserName::parse("alice").unwrap();
        let first = t.verify(&t.issue(&alice).unwrap()).unwrap();
        let renewed = t.renew(&first).unwrap();
        let c = claims_of(&renewed);
        assert_eq!(c.auth_time, first.auth_time);
        // The token never outlives the chain's maximum age, whatever its ttl.
        assert_eq!(c.exp, first.auth_time + 1000);
        // A chain that started longer ago than the maximum age is over.
        let now = jsonwebtoken::get_current_timestamp();
        let old = Verified {
            auth_time: now - 1001,
            ..first.clone()
        };
        assert!(
            matches!(t.renew(&old), Err(MarketError::Unauthorized(m)) if m.contains("too old"))
        );
        // And a token carrying such an auth_time is refused outright.
        let stale = signed(&Claims {
            sub: "alice".into(),
            iat: now - 10,
            exp: now + 100,
            iss: ISSUER.into(),
            auth_time: now - 1001,
            iat_ms: (now - 10) * 1000,
        });
        assert!(
            matches!(t.verify(&stale), Err(MarketError::Unauthorized(m)) if m.contains("too old"))
        );
        // Tokens from before the claims existed count from their iat.
        let legacy = signed(&Claims {
            sub: "alice".into(),
            iat: now - 5,
            exp: now + 100,
            iss: ISSUER.into(),
            auth_time: 0,
            iat_ms: 0,
        });
        let v = t.verify(&legacy).unwrap();
        assert_eq!((v.auth_time, v.issued_ms), (now - 5, (now - 5) * 1000));
    }

    #[test]
    fn revocation_voids_tokens_issued_before_it_only() {
        let t = Tokens::new(KEY, 3600);
        let v = t
            .verify(&t.issue(&UserName::parse("Alice").unwrap()).unwrap())
            .unwrap();
        assert_eq!(v.account(), "alice");
        assert!(Tokens::check_revocation(&v, 0).is_ok());
        assert!(Tokens::check_revocation(&v, v.issued_ms).is_ok());
        assert!(Tokens::check_revocation(&v, v.issued_ms + 1).is_err());
        // The cache answers only while fresh.
        assert!(t.check_cached(&v).is_none());
        t.revocations()
            .put("alice", v.issued_ms + 1, t.policy().revocation_cache);
        assert!(matches!(t.check_cached(&v), Some(Err(_))));
        assert!(t
            .revocations()
            .get("alice", std::time::Duration::ZERO)
            .is_none());
    }

    #[test]
    fn unknown_users_cost_a_real_verification() {
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(PasswordHash::new(dummy_hash()).is_ok());
        assert!(!verify_dummy("anything"));
    }

    #[cfg(unix)]
    fn mode(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn short_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_secret(Some("short"), dir.path()).unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
        let ok = "x".repeat(32);
        assert_eq!(load_secret(Some(&ok), dir.path()).unwrap(), ok.as_bytes());
        // A secret file too short is refused, not replaced.
        let path = dir.path().join("jwt-secret");
        write_private(&path, "tooshort").unwrap();
        let e = load_secret(None, dir.path()).unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tooshort");
    }

    #[cfg(unix)]
    #[test]
    fn the_generated_secret_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_secret(None, &data).unwrap();
        assert_eq!(first.len(), 64);
        let path = data.join("jwt-secret");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("jwt-secret")]);
        assert_eq!(load_secret(None, &data).unwrap(), first);
        assert_eq!(load_secret(Some(""), &data).unwrap(), first);
        // A file others may read is refused, and left alone.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_secret(None, &data).unwrap_err();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        assert_eq!(mode(&path), 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_secret(None, &data).unwrap(), first);
    }

    #[test]
    fn secret_files_are_private_to_the_node_or_to_roots_choice_of_group() {
        for (mode, uid) in [
            (0o600, 1000),
            (0o400, 1000),
            (0o600, 0),
            (0o440, 0),
            (0o640, 0),
        ] {
            assert_eq!(exposure(mode, uid), None, "{mode:04o} uid {uid}");
        }
        for (mode, uid) in [
            (0o640, 1000),
            (0o440, 1000),
            (0o604, 0),
            (0o644, 0),
            (0o660, 0),
            (0o610, 0),
            (0o601, 1000),
        ] {
            assert!(exposure(mode, uid).is_some(), "{mode:04o} uid {uid}");
        }
    }

    #[test]
    fn creating_the_secret_never_replaces_one_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        let theirs = "t".repeat(64);
        write_private(&path, &theirs).unwrap();
        // Another node won the race: this one's file is not linked over it.
        assert!(!create_secret_file(dir.path(), &path).unwrap());
        assert_eq!(load_secret(None, dir.path()).unwrap(), theirs.as_bytes());
    }
}
