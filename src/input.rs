//! Public inputs and the text forms of field elements.
//!
//! Two shapes arrive from clients: zkLLVM's `[{"field": 5}, {"field": "0x0b"}]` and the
//! older `{"input": "1\n11"}`. Both become a vector of Pallas base field elements. A
//! circuit parameter that is a vector (`<N x field>`), or a `std::array`/struct passed
//! by pointer, takes N consecutive elements: in zkLLVM's form one item
//! `{"vector": [{"field": ..}, ...]}`, `{"array": [...]}` or `{"struct": [...]}` (arrays
//! and structs may nest; all are flattened in order and checked against the circuit's
//! parameters: see [`PublicInput::groups`]), or flattened, its elements as consecutive
//! items (or lines of the older form).
//! Values outside the field are refused, never reduced: a requester who sends p+1 made
//! a mistake the market should name.
//!
//! The canonical form (decimal, comma separated) is how an input is stored and how it
//! is identified for the "already proved" check, so `5`, `"5"` and `"0x05"` are the
//! same input; it is written by [`PublicInput::canonical`] and read back by
//! [`parse_canonical`], here and nowhere else. Outputs are shown as [`fe_to_hex`].

use ark_ff::{BigInt, BigInteger, PrimeField};

use crate::circuit::program::Fe;

/// The most elements one input may hold.
pub const MAX_ELEMENTS: usize = 1 << 16;

/// Why an input was refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input: {0}")]
pub struct InputError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, InputError> {
    Err(InputError(msg.into()))
}

/// A parsed public input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicInput {
    /// The elements, in order (vectors flattened).
    pub values: Vec<Fe>,
    /// The elements per top-level item when the input names its structure (it holds a
    /// `{"vector": ...}` item): then it must match the circuit's parameters one for
    /// one. `None` for a flat input, which only has to have the right count.
    pub groups: Option<Vec<usize>>,
}

impl PublicInput {
    /// Parses either accepted JSON shape.
    pub fn from_json(v: &serde_json::Value) -> Result<PublicInput, InputError> {
        let values = match v {
            serde_json::Value::Array(items) => {
                if items.len() > MAX_ELEMENTS {
                    return err(format!("more than {MAX_ELEMENTS} elements"));
                }
                let mut values = Vec::with_capacity(items.len());
                let mut groups = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let before = values.len();
                    flatten(&format!("element {i}"), item, &mut values, 0)?;
                    groups.push(values.len() - before);
                }
                let structured = groups.len() != values.len();
                return Ok(PublicInput {
                    values,
                    groups: structured.then_some(groups),
                });
            }
            serde_json::Value::Object(map) => match (map.get("input"), map.len()) {
                (Some(serde_json::Value::String(text)), 1) => {
                    let parts: Vec<&str> = text.split_whitespace().collect();
                    if parts.len() > MAX_ELEMENTS {
                        return err(format!("more than {MAX_ELEMENTS} elements"));
                    }
                    parts
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            parse_field(s).map_err(|e| InputError(format!("line {}: {e}", i + 1)))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                }
                _ => {
                    return err(
                        "an object input must be {\"input\": \"<values separated by newlines>\"}",
                    )
                }
            },
            _ => {
                return err(
                    "expected [{\"field\": <value>}, ...] or {\"input\": \"<values separated by newlines>\"}",
                )
            }
        };
        Ok(PublicInput {
            values,
            groups: None,
        })
    }

    /// Checks the input's structure against a circuit whose parameters take `params`
    /// elements each (1 for a field element, N for `<N x field>`): a structured input
    /// must have one item per parameter, each of its size.
    pub fn check_groups(&self, params: &[usize]) -> Result<(), InputError> {
        let Some(groups) = &self.groups else {
            return Ok(());
        };
        if groups.as_slice() == params {
            return Ok(());
        }
        let show = |g: &[usize]| {
            g.iter()
                .map(|&n| {
                    if n == 1 {
                        "field".to_string()
                    } else {
                        format!("{n} elements")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        err(format!(
            "the circuit takes ({}), the input gives ({})",
            show(params),
            show(groups)
        ))
    }

    /// The canonical text: decimal values separated by commas.
    pub fn canonical(&self) -> String {
        let parts: Vec<String> = self
            .values
            .iter()
            .map(|v| v.into_bigint().to_string())
            .collect();
        parts.join(",")
    }
}

/// Parses a canonical input ([`PublicInput::canonical`]) back into its elements.
pub fn parse_canonical(canon: &str) -> Result<Vec<Fe>, String> {
    if canon.is_empty() {
        return Ok(Vec::new());
    }
    canon.split(',').map(parse_field).collect()
}

/// A field element as `0x` and 64 hex digits (big-endian), as outputs are shown;
/// [`parse_field`] reads it back.
pub fn fe_to_hex(x: Fe) -> String {
    format!("0x{}", hex::encode(x.into_bigint().to_bytes_be()))
}

/// A circuit's outputs as stored and shown: each as [`fe_to_hex`], in order, separated
/// by commas (a single output is just its hex form).
pub fn outputs_to_text(outputs: &[Fe]) -> String {
    outputs
        .iter()
        .map(|&x| fe_to_hex(x))
        .collect::<Vec<_>>()
        .join(",")
}

/// How deeply `array`/`struct` items may nest.
const MAX_NESTING: usize = 8;

/// Appends the elements of one item to `out`: a `{"field": v}`, or a group
/// (`{"vector": [...]}` of fields, `{"array": [...]}` or `{"struct": [...]}` of items,
/// as zkLLVM's input JSON writes `<N x field>`, `std::array` and structs), flattened in
/// order.
fn flatten(
    at: &str,
    item: &serde_json::Value,
    out: &mut Vec<Fe>,
    depth: usize,
) -> Result<(), InputError> {
    let group = item.as_object().filter(|o| o.len() == 1).and_then(|o| {
        ["vector", "array", "struct"]
            .into_iter()
            .find_map(|k| o.get(k).map(|v| (k, v)))
    });
    let Some((kind, members)) = group else {
        if out.len() >= MAX_ELEMENTS {
            return err(format!("more than {MAX_ELEMENTS} elements in all"));
        }
        out.push(element(at, item)?);
        return Ok(());
    };
    let members = match members.as_array() {
        Some(m) if !m.is_empty() => m,
        _ => {
            return err(format!(
                "{at}: {{\"{kind}\": [...]}} holds a non-empty list of elements"
            ))
        }
    };
    if depth >= MAX_NESTING {
        return err(format!("{at}: groups nested more than {MAX_NESTING} deep"));
    }
    for (j, m) in members.iter().enumerate() {
        let at = format!("{at}, member {j}");
        if kind == "vector" {
            // The lanes of a vector are field elements, never groups.
            if out.len() >= MAX_ELEMENTS {
                return err(format!("more than {MAX_ELEMENTS} elements in all"));
            }
            out.push(element(&at, m)?);
        } else {
            flatten(&at, m, out, depth + 1)?;
        }
    }
    Ok(())
}

fn element(i: &str, item: &serde_json::Value) -> Result<Fe, InputError> {
    let obj = match item.as_object() {
        Some(o) if o.len() == 1 => o,
        _ => return err(format!("{i}: expected {{\"field\": <value>}}")),
    };
    let (kind, value) = match obj.iter().next() {
        Some(kv) => kv,
        None => return err(format!("{i}: empty object")),
    };
    if kind != "field" {
        return err(format!(
            "{i}: unsupported element type `{}`: only `field` (Pallas base field), and `vector`, `array` and `struct` of them, are accepted",
            clip(kind)
        ));
    }
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => {
            return err(format!(
                "{i}: a field value is an integer or a decimal/0x-hex string"
            ))
        }
    };
    parse_field(&text).map_err(|e| InputError(format!("{i}: {e}")))
}

/// Parses a decimal or `0x` hexadecimal field element, refusing values ≥ the modulus.
pub fn parse_field(text: &str) -> Result<Fe, String> {
    let t = text.trim();
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => (h, 16u64),
        None => (t, 10u64),
    };
    if digits.is_empty() || digits.len() > 100 {
        return Err(format!("`{}` is not a field element", clip(t)));
    }
    let mut limbs = [0u64; 4];
    for ch in digits.chars() {
        let d = ch
            .to_digit(radix as u32)
            .ok_or_else(|| format!("`{}` is not a field element (bad digit `{ch}`)", clip(t)))?;
        if !mul_add(&mut limbs, radix, u64::from(d)) {
            return Err(format!(
                "`{}` is not below the Pallas base field modulus",
                clip(t)
            ));
        }
    }
    Fe::from_bigint(BigInt(limbs))
        .ok_or_else(|| format!("`{}` is not below the Pallas base field modulus", clip(t)))
}

/// `limbs = limbs * m + a` on 256 bits; false on overflow.
fn mul_add(limbs: &mut [u64; 4], m: u64, a: u64) -> bool {
    let mut carry = u128::from(a);
    for l in limbs.iter_mut() {
        let v = u128::from(*l) * u128::from(m) + carry;
        *l = v as u64;
        carry = v >> 64;
    }
    carry == 0
}

fn clip(s: &str) -> String {
    if s.len() > 40 {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "28948022309329048855892746252171976963363056481941560715954676764349967630337";

    #[test]
    fn both_shapes_and_all_spellings_agree() {
        let a = PublicInput::from_json(&json!([{"field": 1}, {"field": 11}])).unwrap();
        let b = PublicInput::from_json(&json!({"input": "1\n11"})).unwrap();
        let c = PublicInput::from_json(&json!([{"field": "1"}, {"field": "0x0B"}])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.canonical(), "1,11");
    }

    #[test]
    fn modulus_is_refused_and_p_minus_one_accepted() {
        assert!(parse_field(P).is_err());
        let pm1 = P.replace("337", "336");
        assert_eq!(parse_field(&pm1).unwrap(), -Fe::from(1u64));
        let big: serde_json::Value =
            serde_json::from_str(&format!("[{{\"field\": {pm1}}}]")).unwrap();
        assert_eq!(
            PublicInput::from_json(&big).unwrap().values[0],
            -Fe::from(1u64)
        );
        assert!(parse_field(&format!("{P}0")).is_err());
        assert!(
            parse_field("0x10000000000000000000000000000000000000000000000000000000000000000")
                .is_err()
        );
    }

    #[test]
    fn canonical_text_round_trips() {
        let pm1 = parse_field(&P.replace("337", "336")).unwrap();
        for values in [
            vec![],
            vec![Fe::from(0u64)],
            vec![Fe::from(1u64), Fe::from(11u64)],
            vec![pm1, Fe::from(u64::MAX), Fe::from(0u64)],
        ] {
            let text = PublicInput {
                values: values.clone(),
                groups: None,
            }
            .canonical();
            assert_eq!(parse_canonical(&text).unwrap(), values, "{text}");
        }
        assert_eq!(
            parse_canonical("1,11").unwrap(),
            PublicInput::from_json(&json!({"input": "1\n11"}))
                .unwrap()
                .values
        );
        assert!(parse_canonical("1,,2").is_err());
        assert!(parse_canonical(P).is_err());
    }

    #[test]
    fn hex_text_round_trips() {
        let x = parse_field(&P.replace("337", "336")).unwrap();
        let h = fe_to_hex(x);
        assert_eq!(
            h,
            "0x40000000000000000000000000000000224698fc094cf91b992d30ed00000000"
        );
        assert_eq!(parse_field(&h).unwrap(), x);
        assert_eq!(fe_to_hex(Fe::from(11u64)).len(), 66);
    }

    proptest::proptest! {
        #[test]
        fn random_inputs_round_trip(
            raw in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..5)
        ) {
            let values: Vec<Fe> = raw.iter().map(|b| Fe::from_le_bytes_mod_order(b)).collect();
            let text = PublicInput { values: values.clone(), groups: None }.canonical();
            proptest::prop_assert_eq!(parse_canonical(&text).unwrap(), values.clone());
            for v in values {
                proptest::prop_assert_eq!(parse_field(&fe_to_hex(v)).unwrap(), v);
            }
        }
    }

    #[test]
    fn vectors_are_flattened_and_their_shape_checked() {
        let v = PublicInput::from_json(&json!([
            {"vector": [{"field": 1}, {"field": "0x02"}]},
            {"field": 3}
        ]))
        .unwrap();
        let flat =
            PublicInput::from_json(&json!([{"field": 1}, {"field": 2}, {"field": 3}])).unwrap();
        assert_eq!(v.values, flat.values);
        assert_eq!(v.canonical(), "1,2,3");
        assert_eq!(v.groups, Some(vec![2, 1]));
        assert_eq!(flat.groups, None);
        v.check_groups(&[2, 1]).unwrap();
        flat.check_groups(&[1, 2]).unwrap();
        assert_eq!(
            v.check_groups(&[1, 2]).unwrap_err().to_string(),
            "input: the circuit takes (field, 2 elements), the input gives (2 elements, field)"
        );
        for bad in [
            json!([{"vector": []}]),
            json!([{"vector": {"field": 1}}]),
            json!([{"vector": [1, 2]}]),
            json!([{"vector": [{"vector": [{"field": 1}]}]}]),
            json!([{"vector": [{"field": 1}], "field": 2}]),
        ] {
            assert!(PublicInput::from_json(&bad).is_err(), "{bad} accepted");
        }
        let huge: Vec<_> = (0..=MAX_ELEMENTS).map(|i| json!({"field": i})).collect();
        assert!(PublicInput::from_json(&json!([{"vector": huge}])).is_err());
        // std::array and structs (zkLLVM's `array` and `struct` items), nested.
        let a = PublicInput::from_json(&json!([
            {"array": [{"field": 1}, {"struct": [{"field": 2}, {"vector": [{"field": 3}, {"field": 4}]}]}]},
            {"field": 5}
        ]))
        .unwrap();
        assert_eq!(a.canonical(), "1,2,3,4,5");
        assert_eq!(a.groups, Some(vec![4, 1]));
        let mut deep = json!({"field": 1});
        for _ in 0..=MAX_NESTING {
            deep = json!({ "array": [deep] });
        }
        assert!(PublicInput::from_json(&json!([deep])).is_err());
        let mut wide = json!({"field": 1});
        for _ in 0..MAX_NESTING {
            wide = json!({ "array": [wide.clone(), wide.clone(), wide.clone(), wide] });
        }
        // 4^8 = 65,536 elements: at the cap; one more is refused.
        assert_eq!(
            PublicInput::from_json(&json!([wide.clone()]))
                .unwrap()
                .values
                .len(),
            MAX_ELEMENTS
        );
        assert!(PublicInput::from_json(&json!([wide, {"field": 1}])).is_err());
    }

    #[test]
    fn wrong_shapes_are_named() {
        for bad in [
            json!(5),
            json!("1 2"),
            json!([1, 2]),
            json!([{"int": 5}]),
            json!([{"field": 1.5}]),
            json!([{"field": -1}]),
            json!([{"field": null}]),
            json!([{"field": "abc"}]),
            json!({"input": 5}),
            json!({"input": "1\nx"}),
            json!({"other": "1"}),
        ] {
            assert!(PublicInput::from_json(&bad).is_err(), "{bad} accepted");
        }
    }
}
