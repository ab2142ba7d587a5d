//! The scripts' money arithmetic (`src/store/dec.lua`, decimal strings, never Lua
//! floats) run by a real Redis and checked against u128 arithmetic, for amounts from one
//! digit to 38: below, at and past 2^53 and 2^63, and across every chunk boundary.

mod common;

use common::{redis_query, Backend};
use rand::{Rng, SeedableRng};

const DEC: &str = include_str!("../src/store/dec.lua");

/// For each pair (a, b): a + b, a - b (or "nil"), the comparison, and a moved by -b
/// through `dapply`/`dneg` as an account movement is.
const CHECK: &str = r#"
local out = {}
for i = 1, #ARGV, 2 do
  local a, b = ARGV[i], ARGV[i + 1]
  out[#out + 1] = dadd(a, b)
  out[#out + 1] = dsub(a, b) or 'nil'
  out[#out + 1] = tostring(dcmp(a, b))
  out[#out + 1] = dapply(a, dneg(b)) or 'nil'
end
return out
"#;

fn amount(rng: &mut impl Rng) -> u128 {
    let digits = [1u32, 2, 9, 14, 15, 16, 17, 18, 19, 20, 29, 30, 31, 38][rng.gen_range(0..14)];
    let top = 10u128.pow(digits);
    match rng.gen_range(0..10) {
        0 => top - 1,
        1 => top.min(10u128.pow(37)),
        _ => rng.gen_range(0..top),
    }
}

#[test]
fn money_arithmetic_in_the_scripts_is_exact() {
    let b = Backend::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261202);
    let mut pairs: Vec<(u128, u128)> = (0..2000)
        .map(|_| {
            let a = amount(&mut rng);
            // A third of the pairs subtract less than they have (the usual movement).
            let b = if rng.gen_range(0..3) == 0 {
                rng.gen_range(0..=a)
            } else {
                amount(&mut rng)
            };
            (a, b)
        })
        .collect();
    // Carries and borrows across each 15-digit chunk, and zeros.
    for k in [15u32, 30] {
        let p = 10u128.pow(k);
        pairs.extend([
            (p - 1, 1),
            (p, 1),
            (p + 5, 7),
            (2 * p, p + 1),
            (0, 0),
            (p, 0),
        ]);
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(format!("{DEC}\n{CHECK}")).arg(0);
    for (a, b) in &pairs {
        cmd.arg(a.to_string()).arg(b.to_string());
    }
    let got: Vec<String> = redis_query(&b.url, &cmd);
    assert_eq!(got.len(), 4 * pairs.len());
    for (i, (a, b)) in pairs.iter().enumerate() {
        let diff = a
            .checked_sub(*b)
            .map_or("nil".to_owned(), |d| d.to_string());
        let want = [
            (a + b).to_string(),
            diff.clone(),
            (a.cmp(b) as i8).to_string(),
            diff,
        ];
        assert_eq!(got[4 * i..4 * i + 4], want, "a = {a}, b = {b}");
    }
}
