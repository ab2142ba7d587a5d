//! zkLLVM's `sha2_256` builtin (`hash<sha2<256>>(block_a, block_b)` in C++,
//! `assigner_sha2_256` in Rust) as a plain function, the reference for the circuit
//! gadget (`prover::sha256_chip`).
//!
//! As in NilFoundation's zkllvm-blueprint component (`components/hashes/sha2/plonk`),
//! the builtin takes four field elements `x0, x1, x2, x3` (two `<2 x field>` blocks),
//! each of which must be below `2^128`. The message is the 64 bytes
//! `BE16(x0) || BE16(x1) || BE16(x2) || BE16(x3)` (each value as 16 big-endian bytes,
//! so message word 0 is bits 96..127 of `x0`), and the result is the standard SHA-256
//! digest of that message: the compression of the block from the standard initial
//! state, then of the constant padding block `0x80000000, 0, ..., 0, 512`. The digest
//! comes back as two field elements, its bytes `0..16` and `16..32` each read as a
//! big-endian 128-bit integer.
//!
//! Besides [`sha256_blocks`], written over the `sha2` crate, the module has the
//! compression's pieces written out ([`schedule`], [`compress_trace`]), which the
//! gadget's witness generation follows word by word; the tests check them against
//! `sha2`.

use ark_ff::PrimeField as _;
use sha2::{Digest as _, Sha256};

use crate::circuit::program::Fe;

/// SHA-256's round constants `K_0..K_63`.
pub const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256's initial state `H_0..H_7`.
pub const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The second block the builtin compresses: the padding of a 64-byte message (a `1`
/// bit, zeros, and the length 512 in bits).
pub const PADDING_BLOCK: [u32; 16] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512];

/// Why the builtin has no value on some inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Sha256Error {
    /// An input lane is `2^128` or more (zkLLVM range-checks each lane to 128 bits).
    #[error("SHA-256 input lane {0} is not below 2^128")]
    LaneTooLarge(usize),
}

/// The value of a lane if it is below `2^128`.
pub fn lane_u128(x: Fe) -> Option<u128> {
    let limbs = x.into_bigint().0;
    if limbs[2] != 0 || limbs[3] != 0 {
        return None;
    }
    Some((u128::from(limbs[1]) << 64) | u128::from(limbs[0]))
}

/// The first message block of the builtin: lane `j`'s four 32-bit words, most
/// significant first, are words `4j..4j + 4`. Errors if a lane is `2^128` or more.
pub fn message_block(x: [Fe; 4]) -> Result<[u32; 16], Sha256Error> {
    let mut words = [0u32; 16];
    for (j, &lane) in x.iter().enumerate() {
        let v = lane_u128(lane).ok_or(Sha256Error::LaneTooLarge(j))?;
        for k in 0..4 {
            words[4 * j + k] = (v >> (32 * (3 - k))) as u32;
        }
    }
    Ok(words)
}

/// The builtin's two output field elements from the eight digest words: words `0..4`
/// and `4..8`, each group as a big-endian 128-bit integer.
pub fn digest_fields(h: [u32; 8]) -> [Fe; 2] {
    let pack = |ws: &[u32]| ws.iter().fold(0u128, |acc, &w| (acc << 32) | u128::from(w));
    [Fe::from(pack(&h[..4])), Fe::from(pack(&h[4..]))]
}

/// zkLLVM's `sha2_256` builtin on lanes `x` (see the module docs), computed with the
/// `sha2` crate. Errors if a lane is `2^128` or more.
pub fn sha256_blocks(x: [Fe; 4]) -> Result<[Fe; 2], Sha256Error> {
    let mut message = [0u8; 64];
    for (j, &lane) in x.iter().enumerate() {
        let v = lane_u128(lane).ok_or(Sha256Error::LaneTooLarge(j))?;
        message[16 * j..16 * j + 16].copy_from_slice(&v.to_be_bytes());
    }
    let digest = Sha256::digest(message);
    let half = |bytes: &[u8]| {
        bytes
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
    };
    Ok([Fe::from(half(&digest[..16])), Fe::from(half(&digest[16..]))])
}

/// `Σ0(x) = ROTR2 ⊕ ROTR13 ⊕ ROTR22`.
pub fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

/// `Σ1(x) = ROTR6 ⊕ ROTR11 ⊕ ROTR25`.
pub fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

/// `σ0(x) = ROTR7 ⊕ ROTR18 ⊕ SHR3`.
pub fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

/// `σ1(x) = ROTR17 ⊕ ROTR19 ⊕ SHR10`.
pub fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// `Ch(e, f, g)`: `f` where `e` is set, `g` elsewhere.
pub fn ch(e: u32, f: u32, g: u32) -> u32 {
    (e & f) ^ (!e & g)
}

/// `Maj(a, b, c)`: the bitwise majority.
pub fn maj(a: u32, b: u32, c: u32) -> u32 {
    (a & b) ^ (a & c) ^ (b & c)
}

/// The message schedule `W_0..W_63` of one block.
pub fn schedule(block: &[u32; 16]) -> [u32; 64] {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for t in 16..64 {
        w[t] = small_sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(small_sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
    w
}

/// One round's new `a` and `e` words from the state `(a, ..., h)` before it and
/// `K_t + W_t` (mod 2^32).
pub fn round(s: [u32; 8], kw: u32) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = s;
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add(ch(e, f, g))
        .wrapping_add(kw);
    let t2 = big_sigma0(a).wrapping_add(maj(a, b, c));
    (t1.wrapping_add(t2), d.wrapping_add(t1))
}

/// The words `A_t` and `E_t` (`t = 0..63`) one compression of `state` with schedule `w`
/// computes: round `t`'s new `a` and `e`. The state before round `t` is
/// `(A_{t-1}, A_{t-2}, A_{t-3}, A_{t-4}, E_{t-1}, ..., E_{t-4})`, where
/// `A_{-1-i} = state[i]` and `E_{-1-i} = state[4 + i]`.
pub fn compress_trace(state: [u32; 8], w: &[u32; 64]) -> ([u32; 64], [u32; 64]) {
    let mut a = [0u32; 64];
    let mut e = [0u32; 64];
    let mut s = state;
    for t in 0..64 {
        let (na, ne) = round(s, K[t].wrapping_add(w[t]));
        a[t] = na;
        e[t] = ne;
        s = [na, s[0], s[1], s[2], ne, s[4], s[5], s[6]];
    }
    (a, e)
}

/// The state after compressing one block with schedule `w` into `state` (the rounds of
/// [`compress_trace`], then the feed-forward addition).
pub fn compress(state: [u32; 8], w: &[u32; 64]) -> [u32; 8] {
    let (a, e) = compress_trace(state, w);
    let last = [a[63], a[62], a[61], a[60], e[63], e[62], e[61], e[60]];
    let mut out = state;
    for (o, l) in out.iter_mut().zip(last) {
        *o = o.wrapping_add(l);
    }
    out
}

/// The builtin computed from the pieces above (what the gadget does); equal to
/// [`sha256_blocks`].
pub fn sha256_blocks_by_rounds(x: [Fe; 4]) -> Result<[Fe; 2], Sha256Error> {
    let block = message_block(x)?;
    let h1 = compress(IV, &schedule(&block));
    let h2 = compress(h1, &schedule(&PADDING_BLOCK));
    Ok(digest_fields(h2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    fn fe(v: u128) -> Fe {
        Fe::from(v)
    }

    /// The test vectors of zkllvm-blueprint's `test/hashes/plonk/sha256.cpp`.
    fn blueprint_vectors() -> Vec<([Fe; 4], [u128; 2])> {
        let s = 1u128 << 126;
        vec![
            (
                [fe(s), fe(s + 1), fe(s + 2), fe(s + 3)],
                [
                    0xf5790a69d0a3f69cb85d0b5a233405fb,
                    0xa47050b703fce590fd6585dd02b175f8,
                ],
            ),
            (
                [
                    fe(0xf5a5fd42d16a20302798ef6ed309979b),
                    fe(0x43003d2320d9f0e8ea9831a92759fb4b),
                    fe(0xdb56114e00fdd4c1f85c892bf35ac9a8),
                    fe(0x9289aaecb1ebd0a96cde606a748b5d71),
                ],
                [
                    0x42b052541dce45557d83d34634a45a56,
                    0xd216d4375e5a9584f6445ce4e63324af,
                ],
            ),
            (
                [
                    fe(0xc78009fdf07fc56a11f122370658a353),
                    fe(0xaaa542ed63e44c4bc15ff4cd105ab33c),
                    fe(0x536d98837f2dd165a55d5eeae9148595),
                    fe(0x4472d56f246df256bf3cae19352a123c),
                ],
                [
                    0x69113382140943e8205d01244f562096,
                    0x4d5b92a1cb78bf9fe35ab0bbd2f1f8c2,
                ],
            ),
            (
                [
                    fe(0x9efde052aa15429fae05bad4d0b1d7c6),
                    fe(0x4da64d03d7a1854a588c2cb8430c0d30),
                    fe(0xd88ddfeed400a8755596b21942c1497e),
                    fe(0x114c302e6118290f91e6772976041fa1),
                ],
                [
                    0x60a7f836b0b42a41d74143c1ae465c25,
                    0xed04376190677ef7d589bd69bc4d79c8,
                ],
            ),
            (
                [
                    fe(0x87eb0ddba57e35f6d286673802a4af59),
                    fe(0x75e22506c7cf4c64bb6be5ee11527f2c),
                    fe(0x26846476fd5fc54a5d43385167c95144),
                    fe(0xf2643f533cc85bb9d16b782f8d7db193),
                ],
                [
                    0x841510f2de07868d707940400d618c9e,
                    0xeeb91d1bd77177f196a238e272cb9bc3,
                ],
            ),
            (
                [
                    fe(0x506d86582d252405b840018792cad2bf),
                    fe(0x1259f1ef5aa5f887e13cb2f0094f51e1),
                    fe(0xffff0ad7e659772f9534c195c815efc4),
                    fe(0x14ef1e1daed4404c06385d11192e92b),
                ],
                [
                    0x88b8aa87277a142cbe3d58e7a85ced04,
                    0x4fec5eb57f1828caf06b5fae9c8c67fd,
                ],
            ),
            (
                [fe(u64::MAX.into()); 4],
                [
                    0xf58ac0f0665e3f1886f2eae35542987b,
                    0x9d61cc98e5d3ed2a5a9d8e3b9b7d9f2f,
                ],
            ),
            (
                [fe(1); 4],
                [
                    0x8e1caeb2418a07d7d88f710dccd882d5,
                    0xb5772c88ae5ca4442ccc46c4518a3d3b,
                ],
            ),
        ]
    }

    #[test]
    fn blueprint_vectors_hold() {
        for (x, [o0, o1]) in blueprint_vectors() {
            assert_eq!(sha256_blocks(x), Ok([fe(o0), fe(o1)]));
            assert_eq!(sha256_blocks_by_rounds(x), Ok([fe(o0), fe(o1)]));
        }
    }

    #[test]
    fn the_rounds_agree_with_sha2() {
        let mut rng = rand::thread_rng();
        for i in 0..200 {
            let x: [Fe; 4] = std::array::from_fn(|_| match i % 3 {
                0 => fe(rng.gen()),
                1 => fe(rng.gen::<u64>().into()),
                _ => fe(u128::MAX - rng.gen_range(0..4u128)),
            });
            let r = sha256_blocks(x).unwrap();
            assert_eq!(sha256_blocks_by_rounds(x).unwrap(), r);
        }
        // Compressions from states other than the IV: 128-byte messages (two blocks and
        // their padding block) against sha2.
        for _ in 0..50 {
            let blocks: [[u32; 16]; 2] = [rng.gen(), rng.gen()];
            let mut bytes = Vec::with_capacity(128);
            for w in blocks.iter().flatten() {
                bytes.extend_from_slice(&w.to_be_bytes());
            }
            let mut pad = [0u32; 16];
            pad[0] = 0x8000_0000;
            pad[15] = 1024;
            let mut h = IV;
            for b in [blocks[0], blocks[1], pad] {
                h = compress(h, &schedule(&b));
            }
            let digest: Vec<u8> = h.iter().flat_map(|w| w.to_be_bytes()).collect();
            assert_eq!(digest, Sha256::digest(&bytes).to_vec());
        }
    }

    #[test]
    fn a_lane_of_2_128_or_more_is_refused() {
        let big = fe(u128::MAX) + Fe::from(1u64);
        for j in 0..4 {
            let mut x = [fe(5); 4];
            x[j] = big;
            assert_eq!(sha256_blocks(x), Err(Sha256Error::LaneTooLarge(j)));
            assert_eq!(
                sha256_blocks_by_rounds(x),
                Err(Sha256Error::LaneTooLarge(j))
            );
            x[j] = -Fe::from(1u64);
            assert_eq!(sha256_blocks(x), Err(Sha256Error::LaneTooLarge(j)));
        }
        assert!(sha256_blocks([fe(u128::MAX); 4]).is_ok());
        assert_eq!(lane_u128(big), None);
        assert_eq!(lane_u128(fe(u128::MAX)), Some(u128::MAX));
    }

    #[test]
    fn the_message_is_the_lanes_big_endian() {
        let x = [
            fe(0x000102030405060708090a0b0c0d0e0f),
            fe(0),
            fe(1),
            fe(u128::MAX),
        ];
        let block = message_block(x).unwrap();
        assert_eq!(
            &block[..4],
            &[0x00010203, 0x04050607, 0x08090a0b, 0x0c0d0e0f]
        );
        assert_eq!(&block[8..12], &[0, 0, 0, 1]);
        assert_eq!(&block[12..], &[u32::MAX; 4]);
    }
}
