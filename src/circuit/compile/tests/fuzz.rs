//! Robustness: truncated and mutated IR must give `Ok` or `Err`, never a panic or hang.

use proptest::prelude::*;

use super::super::*;
use super::{
    calls_ir, FIXTURE, MERKLE_MEMORY, OLD_STYLE, OPAQUE_MEMORY, SHA256_TWICE, TYPED_POINTER_LOOP,
};

/// Small caps keep each mutated run fast; the paths exercised are the same.
fn quick(ir: &str) -> Result<Compiled, CompileError> {
    let limits = Limits {
        max_instrs: 1 << 12,
        max_steps: 1 << 14,
        max_depth: 16,
        max_frame_values: 1 << 14,
    };
    compile_with_limits(ir, limits)
}

#[test]
fn every_prefix_of_the_fixture() {
    for (i, _) in FIXTURE.char_indices() {
        let _ = quick(&FIXTURE[..i]);
    }
    for ir in [TYPED_POINTER_LOOP, OLD_STYLE, OPAQUE_MEMORY, MERKLE_MEMORY] {
        for (i, _) in ir.char_indices() {
            let _ = quick(&ir[..i]);
        }
    }
}

#[test]
fn every_line_dropped_or_duplicated() {
    for ir in [FIXTURE, MERKLE_MEMORY, OPAQUE_MEMORY] {
        let lines: Vec<&str> = ir.lines().collect();
        for i in 0..lines.len() {
            let mut v = lines.clone();
            v.remove(i);
            let _ = quick(&v.join("\n"));
            let mut v = lines.clone();
            v.insert(i, lines[i]);
            let _ = quick(&v.join("\n"));
        }
    }
}

/// Tokens that steer the parser into its less travelled paths.
const SPLICES: &[&str] = &[
    "%",
    "@",
    "\"",
    ";",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ",",
    "=",
    "*",
    ":",
    "\n",
    "phi",
    "br",
    "label",
    "i1",
    "i64",
    "i0",
    "i65",
    "-1",
    "f0x",
    "f0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "undef",
    "call",
    "ret",
    "void",
    "#5",
    "circuit",
    "; <label>:3:",
    "x:",
    "%2",
    "switch",
    "select",
    "é",
    "...",
    "define",
    "declare",
    "attributes",
    "alloca",
    "getelementptr",
    "load",
    "store",
    "ptr",
    "i8*",
    "null",
    "byval(",
    "sret(",
    " = type ",
    "%struct.acc",
    "i64 -1",
    "i64 4294967296",
    "llvm.memcpy.p0.p0.i64",
    "llvm.lifetime.start.p0",
    "llvm.assigner.sha2_256",
    "<2 x field_pallasb>",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Byte(usize, u8),
}

fn apply(base: &str, muts: &[Mutation]) -> String {
    let mut b = base.as_bytes().to_vec();
    for m in muts {
        match *m {
            Mutation::Delete(at, len) => {
                let at = at % (b.len() + 1);
                let end = (at + len).min(b.len());
                b.drain(at..end);
            }
            Mutation::Insert(at, which) => {
                let at = at % (b.len() + 1);
                let s = SPLICES[which % SPLICES.len()].as_bytes();
                b.splice(at..at, s.iter().copied());
            }
            Mutation::Byte(at, v) => {
                if !b.is_empty() {
                    let at = at % b.len();
                    b[at] = v;
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, w)| Mutation::Insert(a, w)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, v)| Mutation::Byte(a, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_fixture_never_panics(muts in proptest::collection::vec(mutation(), 1..8)) {
        let _ = quick(&apply(FIXTURE, &muts));
    }

    #[test]
    fn mutated_handwritten_never_panics(which in 0usize..6, muts in proptest::collection::vec(mutation(), 1..8)) {
        let calls = calls_ir();
        let base = [TYPED_POINTER_LOOP, OLD_STYLE, calls.as_str(), MERKLE_MEMORY, OPAQUE_MEMORY, SHA256_TWICE][which];
        let _ = quick(&apply(base, &muts));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = quick(&s);
        let _ = quick(&format!("define __zkllvm_field_pallas_base @f() circuit {{\n{s}\n}}"));
    }
}
