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

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    iss: String,
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl_secs`.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Tokens {
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        }
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: &UserName) -> Result<String, MarketError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.as_str().to_owned(),
            iat: now,
            exp: now + self.ttl_secs,
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| MarketError::Internal(format!("signing token: {e}")))
    }

    /// The user a token was issued to, if it is genuine and unexpired.
    pub fn verify(&self, token: &str) -> Result<UserName, MarketError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
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
        UserName::parse(&data.claims.sub)
            .ok_or_else(|| MarketError::Unauthorized("token names no valid user".into()))
    }
}

/// Loads the signing secret: `PROOF_MARKET_JWT_SECRET` when set, else a random secret
/// kept in `<data_dir>/jwt-secret` (created with mode 0600 on first start), so tokens
/// survive restarts and every node sharing the directory or the variable agrees.
pub fn load_secret(
    env_secret: Option<&str>,
    data_dir: &std::path::Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(s) = env_secret.filter(|s| !s.is_empty()) {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    Ok(secret.into_bytes())
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
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
        assert_eq!(t.verify(&tok).unwrap(), alice);
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
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(
            matches!(expired.verify(&old), Err(MarketError::Unauthorized(m)) if m.contains("expired"))
        );
    }
}
