//! Domain newtypes: keys, money, times, statuses.
//!
//! Everything that crosses a module boundary is one of these, so that a cost cannot be
//! added to a key and a minute cannot be mistaken for a millisecond. Money is exact:
//! [`Cost`] holds integer micro-units and is parsed from the JSON text itself, never
//! through a float.

use std::fmt;

/// The key of any stored object (statement, order, proof). Rendered as a decimal
/// string on the wire (`"16153352"`), like the original market's ArangoDB keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u64);

impl Key {
    /// Parses a decimal key as it appears in a path or a JSON field.
    pub fn parse(s: &str) -> Option<Key> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(Key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// The current wall-clock time. Only the edges (API, matcher) read the clock; the
    /// book takes time as data.
    pub fn now() -> Millis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Millis(d.as_millis() as u64)
    }
}

/// A duration in whole minutes (`eval_time`, `wait_period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minutes(pub u32);

impl Minutes {
    /// The longest duration accepted: one year. Longer values are surely mistakes.
    pub const MAX: Minutes = Minutes(366 * 24 * 60);
}

/// Micro-units per unit of cost.
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// An amount of money in integer micro-units (six decimals), strictly positive and at
/// most [`Cost::MAX_UNITS`] units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost(u64);

/// Why a cost was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    /// Not a JSON number (a string, null, NaN spelled as text...).
    #[error("cost must be a JSON number")]
    NotANumber,
    /// Zero or negative.
    #[error("cost must be greater than 0")]
    NotPositive,
    /// More than six decimals.
    #[error("cost has more than 6 decimals")]
    TooPrecise,
    /// Above the maximum.
    #[error("cost must be at most 1e12")]
    TooLarge,
}

impl Cost {
    /// The largest cost, in units.
    pub const MAX_UNITS: u64 = 1_000_000_000_000;

    /// A cost from micro-units, checked.
    pub fn from_micros(micros: u64) -> Result<Cost, CostError> {
        if micros == 0 {
            return Err(CostError::NotPositive);
        }
        if micros > Self::MAX_UNITS * MICROS_PER_UNIT {
            return Err(CostError::TooLarge);
        }
        Ok(Cost(micros))
    }

    /// The amount in micro-units.
    pub fn micros(self) -> u64 {
        self.0
    }

    /// Parses the text of a JSON number exactly (`2`, `0.5`, `1.25e2`, `-1`...).
    pub fn parse_json_number(text: &str) -> Result<Cost, CostError> {
        let text = text.trim();
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => {
                let e: i64 = body[i + 1..]
                    .trim_start_matches('+')
                    .parse()
                    .map_err(|_| CostError::NotANumber)?;
                (&body[..i], e)
            }
            None => (body, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CostError::NotANumber);
        }
        if neg {
            return Err(CostError::NotPositive);
        }
        // value = significand * 10^scale, exactly.
        let all = format!("{int_part}{frac_part}");
        let significand = all.trim_start_matches('0');
        if significand.is_empty() {
            return Err(CostError::NotPositive);
        }
        let trimmed = significand.trim_end_matches('0');
        // The exponent is client text and may be near i64::MIN or i64::MAX, so every step is
        // checked; an overflow can only go the exponent's way (the lengths are small).
        let out_of_range = if exp < 0 {
            CostError::TooPrecise
        } else {
            CostError::TooLarge
        };
        let frac_len = i64::try_from(frac_part.len()).map_err(|_| CostError::TooPrecise)?;
        let trailing_zeros =
            i64::try_from(significand.len() - trimmed.len()).map_err(|_| CostError::TooLarge)?;
        // In micro-units the exponent grows by 6.
        let shift = exp
            .checked_sub(frac_len)
            .and_then(|s| s.checked_add(trailing_zeros))
            .and_then(|s| s.checked_add(6))
            .ok_or(out_of_range)?;
        if shift < 0 {
            return Err(CostError::TooPrecise);
        }
        let digits = i64::try_from(trimmed.len()).map_err(|_| CostError::TooLarge)?;
        if digits.checked_add(shift).is_none_or(|n| n > 19) {
            return Err(CostError::TooLarge);
        }
        let mut micros: u64 = trimmed.parse().map_err(|_| CostError::TooLarge)?;
        for _ in 0..shift {
            micros = micros.checked_mul(10).ok_or(CostError::TooLarge)?;
        }
        Cost::from_micros(micros)
    }

    /// Parses a cost as a person types it (`--cost 2`, `0.5`, `1e3`), exactly, with the
    /// same rules as [`Cost::parse_json_number`]. A leading `+` and a bare leading `.`
    /// (`.5`) are taken too, as a float parser takes them, so command lines that worked
    /// when the client parsed costs as floats still work.
    pub fn parse_decimal(text: &str) -> Result<Cost, CostError> {
        let text = text.trim();
        let (sign, body) = match text.as_bytes().first() {
            Some(b'-') => ("-", &text[1..]),
            Some(b'+') => ("", &text[1..]),
            _ => ("", text),
        };
        if body.starts_with(['+', '-']) {
            return Err(CostError::NotANumber);
        }
        let zero = if body.starts_with('.') && body[1..].starts_with(|c: char| c.is_ascii_digit()) {
            "0"
        } else {
            ""
        };
        Cost::parse_json_number(&format!("{sign}{zero}{body}"))
    }

    /// The cost as a JSON number: an integer when whole, else the shortest decimal.
    pub fn to_json(self) -> serde_json::Value {
        if self.0.is_multiple_of(MICROS_PER_UNIT) {
            serde_json::Value::from(self.0 / MICROS_PER_UNIT)
        } else {
            let text = format!(
                "{}.{:06}",
                self.0 / MICROS_PER_UNIT,
                self.0 % MICROS_PER_UNIT
            );
            let text = text.trim_end_matches('0');
            // serde_json is built with `arbitrary_precision`, so the number keeps this exact
            // decimal text (no float on the way); the text is always a valid JSON number.
            serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// An amount of micro-units as a JSON number of units, exact (as [`Cost::to_json`],
/// for amounts beyond one cost: balances).
pub fn amount_json(micros: u128) -> serde_json::Value {
    serde_json::from_str(&amount_text(micros)).unwrap_or(serde_json::Value::Null)
}

/// An amount of micro-units as decimal units: `1.5`, `2`, `0.000001`.
pub fn amount_text(micros: u128) -> String {
    let unit = u128::from(MICROS_PER_UNIT);
    if micros.is_multiple_of(unit) {
        (micros / unit).to_string()
    } else {
        let text = format!("{}.{:06}", micros / unit, micros % unit);
        text.trim_end_matches('0').to_owned()
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// `"0.5".parse::<Cost>()`: [`Cost::parse_decimal`].
impl std::str::FromStr for Cost {
    type Err = CostError;
    fn from_str(text: &str) -> Result<Cost, CostError> {
        Cost::parse_decimal(text)
    }
}

/// The two sides of a statement's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A bid: a requester wants a proof.
    Request,
    /// An ask: a producer offers to make one.
    Proposal,
}

impl Side {
    /// The name used in `_id` and in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Proposal => "proposal",
        }
    }
}

/// An order's lifecycle state. It only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Resting in the book.
    Created,
    /// Matched; a proof is awaited.
    Processing,
    /// A verified proof is attached.
    Completed,
    /// Withdrawn by its sender (or expired) before it matched.
    Withdrawn,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::Created,
        Status::Processing,
        Status::Completed,
        Status::Withdrawn,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A client's idempotency key for placing an order (the `Idempotency-Key` header): 1 to
/// 128 visible ASCII characters. The same key from the same user for the same statement
/// and side names one order: a retry gets that order back instead of placing another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key taken.
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps a key.
    pub fn parse(s: &str) -> Result<IdempotencyKey, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "Idempotency-Key must be 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("Idempotency-Key must be visible ASCII characters, no spaces".into());
        }
        Ok(IdempotencyKey(s.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as remembered for `sender`'s orders of one side: the first 128 bits of
    /// SHA-256 over `side:sender:key` (user names have no `:`, so the parts cannot run
    /// into each other). Fixed-size, so a statement's remembered keys cost no allocation
    /// each, and a client cannot make two of them collide.
    pub fn scoped(&self, side: Side, sender: &str) -> ScopedKey {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(side.as_str().as_bytes());
        h.update(b":");
        h.update(sender.as_bytes());
        h.update(b":");
        h.update(self.0.as_bytes());
        let d = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&d[..16]);
        ScopedKey(u128::from_be_bytes(first))
    }
}

/// An [`IdempotencyKey`] scoped to a side and a sender ([`IdempotencyKey::scoped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopedKey(pub u128);

impl ScopedKey {
    /// 32 lower-case hex digits, as stored in Redis.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Reads [`ScopedKey::to_hex`].
    pub fn from_hex(s: &str) -> Option<ScopedKey> {
        (s.len() == 32)
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(ScopedKey)
    }
}

/// A user name: 1 to 64 characters of `[A-Za-z0-9_.@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// Checks and wraps a user name.
    pub fn parse(s: &str) -> Option<UserName> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
        ok.then(|| UserName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii_and_bounded() {
        for good in ["a", "0f3e-11aa", &"k".repeat(128), "~!@#$%^&*()_+{}|:<>?"] {
            assert_eq!(IdempotencyKey::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            " ",
            "a b",
            "tab\there",
            "new\nline",
            "é",
            &"k".repeat(129),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        let k = IdempotencyKey::parse("x:y").unwrap();
        let s = k.scoped(Side::Request, "alice");
        // Pinned: the digests are stored, so every build must compute the same one
        // (SHA-256 of "request:alice:x:y", first 16 bytes).
        assert_eq!(s.to_hex(), "18c7d15219ced132dab935eec0ba7d7e");
        assert_eq!(ScopedKey::from_hex(&s.to_hex()), Some(s));
        assert_ne!(s, k.scoped(Side::Proposal, "alice"));
        assert_ne!(s, k.scoped(Side::Request, "alice2"));
        let other = IdempotencyKey::parse("y").unwrap();
        assert_ne!(
            IdempotencyKey::parse("x")
                .unwrap()
                .scoped(Side::Request, "alice"),
            other.scoped(Side::Request, "alice")
        );
        for bad in ["", "xyz", &"g".repeat(32), &"0".repeat(33)] {
            assert_eq!(ScopedKey::from_hex(bad), None, "{bad:?}");
        }
    }

    fn c(s: &str) -> Result<u64, CostError> {
        Cost::parse_json_number(s).map(Cost::micros)
    }

    #[test]
    fn costs_parse_exactly() {
        assert_eq!(c("2"), Ok(2_000_000));
        assert_eq!(c("0.5"), Ok(500_000));
        assert_eq!(c("0.000001"), Ok(1));
        assert_eq!(c("1.250000"), Ok(1_250_000));
        assert_eq!(c("1.25e2"), Ok(125_000_000));
        assert_eq!(c("125E-2"), Ok(1_250_000));
        assert_eq!(c("1e12"), Ok(1_000_000_000_000_000_000));
        assert_eq!(c("000.1"), Ok(100_000));
        assert_eq!(c("0.05"), Ok(50_000));
        assert_eq!(c("10"), Ok(10_000_000));
        assert_eq!(c("0.000"), Err(CostError::NotPositive));
        assert_eq!(c("0"), Err(CostError::NotPositive));
        assert_eq!(c("-1"), Err(CostError::NotPositive));
        assert_eq!(c("0.0000001"), Err(CostError::TooPrecise));
        assert_eq!(c("1.0000001"), Err(CostError::TooPrecise));
        assert_eq!(c("1e13"), Err(CostError::TooLarge));
        assert_eq!(c("1000000000001"), Err(CostError::TooLarge));
        assert_eq!(c("1e400"), Err(CostError::TooLarge));
        assert_eq!(c("1e-400"), Err(CostError::TooPrecise));
        assert_eq!(c("NaN"), Err(CostError::NotANumber));
        assert_eq!(c("\"2\""), Err(CostError::NotANumber));
        assert_eq!(c(""), Err(CostError::NotANumber));
        assert_eq!(c(".5"), Err(CostError::NotANumber));
        assert_eq!(c("1e99999999999999999999"), Err(CostError::NotANumber));
    }

    #[test]
    fn huge_exponents_are_refused_without_overflow() {
        assert_eq!(c("1.5e-9223372036854775808"), Err(CostError::TooPrecise));
        assert_eq!(c("1e-9223372036854775808"), Err(CostError::TooPrecise));
        assert_eq!(c("1e9223372036854775807"), Err(CostError::TooLarge));
        assert_eq!(c("1000e9223372036854775807"), Err(CostError::TooLarge));
        assert_eq!(c("1.5e9223372036854775807"), Err(CostError::TooLarge));
        assert_eq!(c("0e9223372036854775807"), Err(CostError::NotPositive));
        assert_eq!(c("1e-9223372036854775809"), Err(CostError::NotANumber));
    }

    #[test]
    fn typed_costs_parse_like_json_ones() {
        let d = |s: &str| Cost::parse_decimal(s).map(Cost::micros);
        assert_eq!(d("2"), Ok(2_000_000));
        assert_eq!(d(" 0.5 "), Ok(500_000));
        assert_eq!(d("1e3"), Ok(1_000_000_000));
        assert_eq!(d("+2"), Ok(2_000_000));
        assert_eq!(d(".5"), Ok(500_000));
        assert_eq!(d("5."), Ok(5_000_000));
        assert_eq!("1.25".parse::<Cost>().map(Cost::micros), Ok(1_250_000));
        // Exact where a float is not: 2^53 micro-units and more.
        assert_eq!(d("123456789012.123457"), Ok(123_456_789_012_123_457));
        assert_eq!(d("-.5"), Err(CostError::NotPositive));
        assert_eq!(d("-0"), Err(CostError::NotPositive));
        assert_eq!(d("1.5e-9223372036854775808"), Err(CostError::TooPrecise));
        for bad in [
            "", ".", "+", "-", "+-1", "--1", "++1", "abc", "NaN", "inf", "0x10", "1e",
        ] {
            assert_eq!(d(bad), Err(CostError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn costs_render_as_numbers() {
        assert_eq!(
            Cost::from_micros(2_000_000).unwrap().to_json().to_string(),
            "2"
        );
        assert_eq!(
            Cost::from_micros(2_500_000).unwrap().to_json().to_string(),
            "2.5"
        );
        assert_eq!(
            Cost::from_micros(1).unwrap().to_json().as_f64(),
            Some(0.000001)
        );
        assert_eq!(
            Cost::from_micros(100_123_456)
                .unwrap()
                .to_json()
                .to_string(),
            "100.123456"
        );
        // Beyond a double's 53 bits: still the exact decimal.
        assert_eq!(
            Cost::from_micros(123_456_789_012_123_457)
                .unwrap()
                .to_json()
                .to_string(),
            "123456789012.123457"
        );
    }

    #[test]
    fn keys_and_names() {
        assert_eq!(Key::parse("16153352"), Some(Key(16153352)));
        assert_eq!(Key::parse("-1"), None);
        assert_eq!(Key::parse("99999999999999999999"), None);
        assert_eq!(Key::parse(""), None);
        assert!(UserName::parse("alice_1").is_some());
        assert!(UserName::parse("a b").is_none());
        assert!(UserName::parse("").is_none());
        assert_eq!(Status::parse("processing"), Some(Status::Processing));
    }
}
