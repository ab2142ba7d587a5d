//! Exact conversions between the program's field type and halo2's.
//!
//! Programs are written over [`Fe`] (`ark_pallas::Fq`, the Pallas base field), while
//! halo2_proofs works with `pasta_curves::Fp`. Both are the same prime field
//! `p = 0x40000000000000000000000000000000224698fc094cf91b992d30ed00000001` (Pallas'
//! base field, Vesta's scalar field), just two implementations of it, so an element
//! crosses over unchanged through its canonical 32-byte little-endian representation.
//! The circuit (`prover::halo2_circuit`) and the public API (`prover::halo2`) use these
//! functions at every boundary between the two libraries.

use ark_ff::{BigInteger, PrimeField as _};
use halo2_proofs::pasta::group::ff::PrimeField as _;
use halo2_proofs::pasta::Fp;

use crate::circuit::program::Fe;

/// Converts a program field element into halo2's representation of the same element.
///
/// Infallible: ark's `into_bigint` yields the canonical value (`< p`) as four
/// little-endian 64-bit limbs, and `Fp::from_raw` takes exactly that (it would reduce a
/// non-canonical value, but none can occur here).
pub fn fe_to_fp(x: Fe) -> Fp {
    Fp::from_raw(x.into_bigint().0)
}

/// Converts a halo2 field element into the program's representation of the same element.
///
/// Infallible: `to_repr` is the canonical little-endian encoding (`< p`), so reducing it
/// modulo the (identical) modulus on the ark side changes nothing.
pub fn fp_to_fe(x: Fp) -> Fe {
    Fe::from_le_bytes_mod_order(&x.to_repr())
}

/// Decodes a canonical 32-byte little-endian encoding into a program field element;
/// `None` if the bytes encode an integer `>= p` (the encoding is then not canonical).
///
/// Meant for field elements that arrive from outside (e.g. stored public inputs), where
/// silently reducing a non-canonical encoding would make two byte strings mean the
/// same element.
pub fn fe_from_canonical_le(bytes: [u8; 32]) -> Option<Fe> {
    let x = Fe::from_le_bytes_mod_order(&bytes);
    if x.into_bigint().to_bytes_le() == bytes {
        Some(x)
    } else {
        None
    }
}

/// The canonical 32-byte little-endian encoding of a program field element.
pub fn fe_to_canonical_le(x: Fe) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A 255-bit field: `to_bytes_le` gives exactly 32 bytes; zip copes with any length.
    for (o, b) in out.iter_mut().zip(x.into_bigint().to_bytes_le()) {
        *o = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field as _, One, Zero};
    use halo2_proofs::arithmetic::Field as _;
    use proptest::prelude::*;

    #[test]
    fn same_modulus() {
        // p - 1 maps to p - 1 on both sides, so the moduli coincide (together with the
        // exactness of the encodings this pins the two fields to the same prime).
        assert_eq!(Fe::MODULUS.to_bytes_le(), {
            let mut m = (-Fp::ONE).to_repr();
            m[0] += 1; // p - 1 ends in ...01 - 1 = ...00 in the low byte, no carry
            m.to_vec()
        });
        assert_eq!(
            Fp::MODULUS,
            "0x40000000000000000000000000000000224698fc094cf91b992d30ed00000001"
        );
    }

    #[test]
    fn round_trips_edge_values() {
        let minus_one = -Fe::one();
        for x in [
            Fe::zero(),
            Fe::one(),
            minus_one,
            Fe::from(2u64),
            Fe::from(u64::MAX),
        ] {
            assert_eq!(fp_to_fe(fe_to_fp(x)), x);
        }
        assert_eq!(fe_to_fp(Fe::zero()), Fp::ZERO);
        assert_eq!(fe_to_fp(Fe::one()), Fp::ONE);
        assert_eq!(fe_to_fp(minus_one), -Fp::ONE);
        assert_eq!(fp_to_fe(-Fp::ONE), minus_one);
        // Arithmetic agrees on both sides.
        let a = Fe::from(123456789u64);
        let b = Fe::from(987654321u64);
        assert_eq!(
            fe_to_fp(a * b.inverse().unwrap()),
            fe_to_fp(a) * fe_to_fp(b).invert().unwrap()
        );
    }

    #[test]
    fn canonical_decoding_rejects_p() {
        let p = Fe::MODULUS.to_bytes_le();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&p);
        assert_eq!(fe_from_canonical_le(bytes), None);
        bytes[0] -= 1; // p - 1
        assert_eq!(fe_from_canonical_le(bytes), Some(-Fe::one()));
        assert_eq!(fe_to_canonical_le(-Fe::one()), bytes);
        assert_eq!(fe_from_canonical_le([0xff; 32]), None);
    }

    proptest! {
        #[test]
        fn round_trip_random(limbs in any::<[u64; 4]>()) {
            let mut bytes = [0u8; 32];
            for (chunk, l) in bytes.chunks_mut(8).zip(limbs) {
                chunk.copy_from_slice(&l.to_le_bytes());
            }
            let x = Fe::from_le_bytes_mod_order(&bytes);
            let y = fe_to_fp(x);
            prop_assert_eq!(fp_to_fe(y), x);
            prop_assert_eq!(y.to_repr(), fe_to_canonical_le(x));
            prop_assert_eq!(fe_from_canonical_le(fe_to_canonical_le(x)), Some(x));
        }
    }
}
