//! [`Cost`]: an order's price as the client checks and sends it.
//!
//! The market keeps money exact in integer micro-units and checks every cost itself; the
//! client checks the same rules first (finite, > 0, at most 6 decimals, at most 1e12) so a
//! typo fails at once with a clear message instead of a round trip. On the wire a cost is a
//! JSON number, sent as an integer when it is whole (`2`, as the original clients did).

use std::fmt;
use std::str::FromStr;

use crate::cli::error::ClientError;

/// Largest cost the market accepts.
pub const MAX_COST: f64 = 1e12;
/// Most decimals a cost may carry (the market counts in micro-units).
pub const MAX_DECIMALS: usize = 6;

/// A validated order cost: finite, greater than zero, at most [`MAX_COST`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cost(f64);

impl Cost {
    /// Checks a numeric cost.
    pub fn new(value: f64) -> Result<Self, ClientError> {
        if !value.is_finite() {
            return Err(invalid(&value.to_string(), "it must be a finite number"));
        }
        if value <= 0.0 {
            return Err(invalid(&value.to_string(), "it must be greater than zero"));
        }
        if value > MAX_COST {
            return Err(invalid(&value.to_string(), "it must be at most 1e12"));
        }
        Ok(Cost(value))
    }

    /// Parses decimal text such as `2`, `0.5` or `1e3`, as given to `--cost`.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let trimmed = text.trim();
        let value: f64 = trimmed
            .parse()
            .map_err(|_| invalid(trimmed, "it must be a decimal number such as 2 or 0.5"))?;
        // Only plain decimal text can be counted digit by digit; exponent forms are left to
        // the market's own check.
        if !trimmed.contains(['e', 'E']) {
            if let Some((_, frac)) = trimmed.split_once('.') {
                if frac.trim_end_matches('0').len() > MAX_DECIMALS {
                    return Err(invalid(trimmed, "it may have at most 6 decimals"));
                }
            }
        }
        if !value.is_finite() {
            return Err(invalid(trimmed, "it must be a finite number"));
        }
        Cost::new(value)
    }

    /// The cost as a float.
    pub fn value(self) -> f64 {
        self.0
    }

    /// The cost as the JSON number sent to the market: an integer when whole.
    pub fn to_json(self) -> serde_json::Value {
        // Whole values below 2^53 convert to u64 exactly.
        if self.0.fract() == 0.0 && self.0 < 9_007_199_254_740_992.0 {
            serde_json::Value::from(self.0 as u64)
        } else {
            serde_json::Value::from(self.0)
        }
    }
}

impl FromStr for Cost {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cost::parse(s)
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// clap value parser for `--cost`: the message becomes clap's "invalid value" explanation.
pub fn parse_cost_arg(text: &str) -> Result<Cost, String> {
    Cost::parse(text).map_err(|e| e.to_string())
}

fn invalid(text: &str, why: &str) -> ClientError {
    ClientError::Invalid(format!("invalid cost '{text}': {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_costs() {
        assert_eq!(Cost::parse("2").map(Cost::value).ok(), Some(2.0));
        assert_eq!(Cost::parse(" 0.5 ").map(Cost::value).ok(), Some(0.5));
        assert_eq!(Cost::parse("0.000001").map(Cost::value).ok(), Some(1e-6));
        assert_eq!(Cost::parse("1.500000000").map(Cost::value).ok(), Some(1.5));
        assert_eq!(Cost::parse("1e3").map(Cost::value).ok(), Some(1000.0));
        assert_eq!(
            Cost::parse("1000000000000").map(Cost::value).ok(),
            Some(1e12)
        );
    }

    #[test]
    fn rejects_nonsense_with_a_clear_message() {
        for (text, why) in [
            ("0", "greater than zero"),
            ("-1", "greater than zero"),
            ("-0.0", "greater than zero"),
            ("NaN", "finite"),
            ("inf", "finite"),
            ("-infinity", "finite"),
            ("1e400", "finite"),
            ("abc", "decimal number"),
            ("", "decimal number"),
            ("1.0000001", "6 decimals"),
            ("1000000000000.5", "at most 1e12"),
        ] {
            let err = match Cost::parse(text) {
                Ok(c) => panic!("{text} accepted as {c}"),
                Err(e) => e.to_string(),
            };
            assert!(err.starts_with("invalid cost"), "{err}");
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn numeric_constructor_checks_too() {
        assert!(Cost::new(f64::NAN).is_err());
        assert!(Cost::new(0.0).is_err());
        assert!(Cost::new(-3.0).is_err());
        assert!(Cost::new(2.5).is_ok());
    }

    #[test]
    fn whole_costs_go_out_as_integers() {
        let json = |t: &str| Cost::parse(t).map(|c| c.to_json().to_string()).ok();
        assert_eq!(json("2").as_deref(), Some("2"));
        assert_eq!(json("2.0").as_deref(), Some("2"));
        assert_eq!(json("0.1").as_deref(), Some("0.1"));
        assert_eq!(json("12.345678").as_deref(), Some("12.345678"));
    }
}
