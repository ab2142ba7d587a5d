//! Acceptance tests of [`compile`](super::compile): the real zkLLVM fixture, the other
//! dialects of the same IR, and property tests against direct field arithmetic.

use ark_ff::{Field, PrimeField};
use proptest::prelude::*;

use super::*;
use crate::circuit::program::{Fe, Instr, Program, ProgramError, Wire};
use crate::circuit::syntax::field_literal;

mod fuzz;
mod rejects;

/// The IR of the `arithmetics` example as zkLLVM emitted it (opaque pointers).
pub(super) const FIXTURE: &str = include_str!("../testdata/arithmetics.ll");

fn fe(v: u64) -> Fe {
    Fe::from(v)
}

fn fe_bytes(b: &[u8]) -> Fe {
    Fe::from_le_bytes_mod_order(b)
}

/// The fixture's formula, computed directly.
fn arithmetics(a: Fe, b: Fe) -> Option<Fe> {
    let c = (a + b) * a + b * (a + b) * (a + b);
    let k = Fe::from(0x1234_5678_9012_3456_7890u128);
    Some(c * c * c * (b - a).inverse()? + a.square() + k)
}

#[test]
fn fixture_compiles_to_the_known_value() {
    let c = compile(FIXTURE).unwrap();
    assert_eq!(
        c.function_name,
        "_Z24field_arithmetic_exampleu26__zkllvm_field_pallas_baseu26__zkllvm_field_pallas_base"
    );
    assert_eq!(c.program.num_inputs(), 2);
    let want = "f0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be";
    assert_eq!(
        c.program.eval(&[fe(1), fe(11)]).unwrap()[0],
        field_literal(want).unwrap()
    );
    assert_eq!(
        arithmetics(fe(1), fe(11)),
        Some(field_literal(want).unwrap())
    );
}

/// Newer zkLLVM versions print the field type as `field_pallasb` (and mangle it into
/// function names as `u13field_pallasb`): the same circuit, the same program.
#[test]
fn the_short_spelling_of_the_field_type_compiles_alike() {
    let short = FIXTURE
        .replace("u26__zkllvm_field_pallas_base", "u13field_pallasb")
        .replace("__zkllvm_field_pallas_base", "field_pallasb");
    assert!(!short.contains("__zkllvm_field_pallas_base"));
    let c = compile(&short).unwrap();
    assert_eq!(
        c.function_name,
        "_Z24field_arithmetic_exampleu13field_pallasbu13field_pallasb"
    );
    let long = compile(FIXTURE).unwrap();
    assert_eq!(c.program.instrs(), long.program.instrs());
    for (a, b) in [(1, 11), (5, 7), (123, 4)] {
        assert_eq!(
            c.program.eval(&[fe(a), fe(b)]).unwrap()[0],
            arithmetics(fe(a), fe(b)).unwrap()
        );
    }
    // Another field, in either spelling, is refused naming it and why.
    for other in ["field_pallass", "__zkllvm_field_vesta_base"] {
        let src = short.replace("field_pallasb", other);
        let e = compile(&src).unwrap_err().to_string();
        assert!(e.contains(other) && e.contains("Pallas base field"), "{e}");
    }
}

#[test]
fn fixture_program_is_compact() {
    let p = compile(FIXTURE).unwrap().program;
    // `a+b` is computed once, pow's dead last-iteration product is dropped, and the
    // only constant is the literal.
    let adds_ab = p
        .instrs()
        .iter()
        .filter(|i| **i == Instr::Add(Wire(0), Wire(1)))
        .count();
    assert_eq!(adds_ab, 1);
    assert_eq!(p.instrs().len(), 13);
    assert_eq!(
        p.instrs()
            .iter()
            .filter(|i| matches!(i, Instr::Const(_)))
            .count(),
        1
    );
}

#[test]
fn fixture_division_by_zero_fails_evaluation() {
    let p = compile(FIXTURE).unwrap().program;
    let err = p.eval(&[fe(5), fe(5)]).unwrap_err();
    assert!(matches!(err, ProgramError::DivisionByZero { .. }));
}

/// The fixture in the typed-pointer dialect with pow inlined as a loop into the
/// circuit, named values and blocks, metadata, comments and an inline `circuit`.
const TYPED_POINTER_LOOP: &str = r#"; ModuleID = 'pow.cpp'
%"class.std::ios_base::Init" = type { i8 }
@_ZStL8__ioinit = internal global %"class.std::ios_base::Init" zeroinitializer, align 1
@__dso_handle = external hidden global i8

; Function Attrs: uwtable
define internal void @__cxx_global_var_init() #1 section ".text.startup" {
entry:
  call void @_ZNSt8ios_base4InitC1Ev(%"class.std::ios_base::Init"* @_ZStL8__ioinit)
  %0 = call i32 @__cxa_atexit(void (i8*)* bitcast (void (%"class.std::ios_base::Init"*)* @_ZNSt8ios_base4InitD1Ev to void (i8*)*), i8* getelementptr inbounds (%"class.std::ios_base::Init", %"class.std::ios_base::Init"* @_ZStL8__ioinit, i32 0, i32 0), i8* @__dso_handle) #3
  ret void
}

declare void @_ZNSt8ios_base4InitC1Ev(%"class.std::ios_base::Init"*) unnamed_addr #1
declare i32 @__cxa_atexit(void (i8*)*, i8*, i8*) #3

define dso_local noundef __zkllvm_field_pallas_base @_Z4pow5u26__zkllvm_field_pallas_base(__zkllvm_field_pallas_base noundef %x) local_unnamed_addr circuit !dbg !7 {
entry:
  br label %loop, !dbg !9

loop:                                             ; preds = %loop, %entry
  %i = phi i32 [ 0, %entry ], [ %i.next, %loop ]  ; counter
  %acc = phi __zkllvm_field_pallas_base [ f0x1, %entry ], [ %acc.next, %loop ]
  %acc.next = mul __zkllvm_field_pallas_base %acc, %x, !dbg !10
  %i.next = add nuw nsw i32 %i, 1
  %done = icmp eq i32 %i.next, 5
  br i1 %done, label %"exit block", label %loop, !llvm.loop !11

"exit block":
  ret __zkllvm_field_pallas_base %acc.next
}

attributes #1 = { uwtable "frame-pointer"="none" }
attributes #3 = { nounwind }
!7 = distinct !DISubprogram(name: "pow5", line: 3)
!9 = !DILocation(line: 4, column: 3, scope: !7)
"#;

#[test]
fn typed_pointer_dialect_with_inlined_loop() {
    let c = compile(TYPED_POINTER_LOOP).unwrap();
    assert_eq!(c.function_name, "_Z4pow5u26__zkllvm_field_pallas_base");
    assert_eq!(c.program.eval(&[fe(3)]).unwrap()[0], fe(243));
    // x^2, x^3, x^4, x^5: the `f0x1 * x` of the first iteration folds away.
    assert_eq!(c.program.instrs().len(), 4);
}

/// Unlabeled entry block, old-style `; <label>:N` labels, numbered values, `select`,
/// casts, a multi-line `switch` and phis with constants.
const OLD_STYLE: &str = r#"
define __zkllvm_field_pallas_base @f(__zkllvm_field_pallas_base %0, __zkllvm_field_pallas_base %1) #0 {
  %3 = icmp sgt i8 -1, 0
  %4 = select i1 %3, __zkllvm_field_pallas_base %0, __zkllvm_field_pallas_base %1
  %5 = zext i8 200 to i32
  %6 = trunc i32 %5 to i8
  %7 = sext i8 %6 to i16
  switch i16 %7, label %8 [
    i16 -56, label %10
    i16 1, label %9
  ]

; <label>:8:                                      ; preds = %2
  unreachable

; <label>:9:                                      ; preds = %2
  br label %10

; <label>:10:                                     ; preds = %9, %2
  %11 = phi __zkllvm_field_pallas_base [ f0x1, %9 ], [ f7, %2 ]
  %12 = mul __zkllvm_field_pallas_base %4, %11
  %13 = udiv __zkllvm_field_pallas_base %12, %0
  ret __zkllvm_field_pallas_base %13
}

attributes #0 = { circuit }
"#;

#[test]
fn old_style_labels_select_casts_and_switch() {
    let c = compile(OLD_STYLE).unwrap();
    // select picks b (-1 > 0 is false signed), switch goes to %10 from %2: 7 * b / a.
    assert_eq!(c.program.eval(&[fe(2), fe(4)]).unwrap()[0], fe(14));
}

/// Calls: the fixture's pow with a computed exponent, a void call, an integer-valued
/// callee, bounded recursion, and a callee defined after its caller.
const CALLS: &str = r#"
define internal i32 @twice(i32 %n) {
  %r = shl i32 %n, 1
  ret i32 %r
}

define internal void @nothing() {
  ret void
}

define __zkllvm_field_pallas_base @main(__zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b) #0 {
entry:
  call void @nothing()
  %k = call i32 @twice(i32 3)
  %p = tail call noundef __zkllvm_field_pallas_base @_Z3powu26__zkllvm_field_pallas_basei(__zkllvm_field_pallas_base noundef %a, i32 noundef %k) #6
  %q = call fastcc __zkllvm_field_pallas_base @rpow(__zkllvm_field_pallas_base %b, i64 3)
  %s = add __zkllvm_field_pallas_base %p, %q
  ret __zkllvm_field_pallas_base %s
}

define internal fastcc __zkllvm_field_pallas_base @rpow(__zkllvm_field_pallas_base %x, i64 %n) {
  %z = icmp eq i64 %n, 0
  br i1 %z, label %base, label %rec
base:
  ret __zkllvm_field_pallas_base f0x1
rec:
  %m = sub i64 %n, 1
  %r = call fastcc __zkllvm_field_pallas_base @rpow(__zkllvm_field_pallas_base %x, i64 %m)
  %y = mul __zkllvm_field_pallas_base %r, %x
  ret __zkllvm_field_pallas_base %y
}

attributes #0 = { circuit "x"="y" }
"#;

fn calls_ir() -> String {
    // Reuse the fixture's pow verbatim.
    let start = FIXTURE
        .find("define dso_local noundef __zkllvm_field_pallas_base @_Z3pow")
        .unwrap();
    let end = start + FIXTURE[start..].find("\n}\n").unwrap() + 3;
    format!("{CALLS}\n{}", &FIXTURE[start..end])
}

#[test]
fn calls_are_inlined() {
    let c = compile(&calls_ir()).unwrap();
    // a^6 + b^3
    assert_eq!(c.program.eval(&[fe(2), fe(3)]).unwrap()[0], fe(64 + 27));
}

#[test]
fn integer_semantics_wrap_at_width() {
    let ir = r#"
define __zkllvm_field_pallas_base @f(__zkllvm_field_pallas_base %x) "circuit" {
entry:
  %a = add i8 250, 10
  %b = icmp ult i8 %a, 5
  %c = icmp slt i8 200, 0
  %d = and i1 %b, %c
  %"sel ect" = select i1 %d, i32 -1, i32 0
    #dbg_value(i32 %"sel ect", !12, !DIExpression(), !15)
  %f = lshr i32 %"sel ect", 28
  %g = icmp eq i32 %f, 15
  %h = freeze i1 %g
  br i1 %h, label %yes, label %no
yes:
  %r = mul __zkllvm_field_pallas_base %x, f2
  ret __zkllvm_field_pallas_base %r
no:
  ret __zkllvm_field_pallas_base %x
}
"#;
    let c = compile(ir).unwrap();
    assert_eq!(c.program.eval(&[fe(21)]).unwrap()[0], fe(42));
}

#[test]
fn constant_results_and_decimal_constants() {
    let ir = "define __zkllvm_field_pallas_base @k() circuit {\n  %a = sub __zkllvm_field_pallas_base f10, f0xa\n  %b = add __zkllvm_field_pallas_base %a, f5\n  ret __zkllvm_field_pallas_base %b\n}\n";
    let c = compile(ir).unwrap();
    assert_eq!(c.program.num_inputs(), 0);
    assert_eq!(c.program.eval(&[]).unwrap()[0], fe(5));
}

#[test]
fn big_loops_within_limits_compile() {
    let ir = r#"
define __zkllvm_field_pallas_base @f(__zkllvm_field_pallas_base %x) circuit {
entry:
  br label %l
l:
  %i = phi i32 [ 0, %entry ], [ %j, %l ]
  %acc = phi __zkllvm_field_pallas_base [ %x, %entry ], [ %n, %l ]
  %n = add __zkllvm_field_pallas_base %acc, %x
  %j = add i32 %i, 1
  %c = icmp slt i32 %j, 10000
  br i1 %c, label %l, label %e
e:
  ret __zkllvm_field_pallas_base %n
}
"#;
    let c = compile(ir).unwrap();
    assert_eq!(c.program.instrs().len(), 10000);
    assert_eq!(c.program.eval(&[fe(3)]).unwrap()[0], fe(30003));
}

fn arb_fe() -> impl Strategy<Value = Fe> {
    prop_oneof![
        any::<[u8; 64]>().prop_map(|b| fe_bytes(&b)),
        any::<u64>().prop_map(fe),
        (0u64..4).prop_map(|v| -fe(v)),
    ]
}

proptest! {
    #[test]
    fn fixture_matches_direct_arithmetic(a in arb_fe(), b in arb_fe()) {
        let p = compile(FIXTURE).unwrap().program;
        match arithmetics(a, b) {
            Some(want) => prop_assert_eq!(p.eval(&[a, b]).unwrap()[0], want),
            None => {
                let divides_by_zero = matches!(p.eval(&[a, b]), Err(ProgramError::DivisionByZero { .. }));
                prop_assert!(divides_by_zero);
            }
        }
    }

    #[test]
    fn handwritten_circuits_match_direct_arithmetic(a in arb_fe(), b in arb_fe()) {
        let pow5 = compile(TYPED_POINTER_LOOP).unwrap().program;
        prop_assert_eq!(pow5.eval(&[a]).unwrap()[0], a.pow([5u64]));
        let old = compile(OLD_STYLE).unwrap().program;
        match a.inverse() {
            Some(inv) => prop_assert_eq!(old.eval(&[a, b]).unwrap()[0], fe(7) * b * inv),
            None => prop_assert!(old.eval(&[a, b]).is_err()),
        }
        let calls = compile(&calls_ir()).unwrap().program;
        prop_assert_eq!(calls.eval(&[a, b]).unwrap()[0], a.pow([6u64]) + b.pow([3u64]));
    }
}

/// zkLLVM's Poseidon hash of two elements as its C++ library emits it (`hash<poseidon>`:
/// the permutation of `(0, a, b)`, lane 2), and a vector circuit: vector arguments and
/// result, lane-wise arithmetic, `shufflevector`, a vector constant with undef lanes.
const POSEIDON_AND_VECTORS: &str = r#"
define dso_local <3 x __zkllvm_field_pallas_base> @_Z7circuitDv2_u26__zkllvm_field_pallas_baseu26__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base> noundef %v, __zkllvm_field_pallas_base noundef %k) local_unnamed_addr #3 {
entry:
  %a = extractelement <2 x __zkllvm_field_pallas_base> %v, i32 0
  %b = extractelement <2 x __zkllvm_field_pallas_base> %v, i64 1
  %h = call noundef __zkllvm_field_pallas_base @hash(__zkllvm_field_pallas_base noundef %a, __zkllvm_field_pallas_base noundef %b)
  %s = insertelement <2 x __zkllvm_field_pallas_base> zeroinitializer, __zkllvm_field_pallas_base %k, i32 1
  %w = mul <2 x __zkllvm_field_pallas_base> %v, %s
  %x = add <2 x __zkllvm_field_pallas_base> %w, <__zkllvm_field_pallas_base f0x5, __zkllvm_field_pallas_base f7>
  %y = shufflevector <2 x __zkllvm_field_pallas_base> %x, <2 x __zkllvm_field_pallas_base> undef, <3 x i32> <i32 1, i32 0, i32 undef>
  %r = insertelement <3 x __zkllvm_field_pallas_base> %y, __zkllvm_field_pallas_base %h, i32 2
  ret <3 x __zkllvm_field_pallas_base> %r
}

define linkonce_odr dso_local noundef __zkllvm_field_pallas_base @hash(__zkllvm_field_pallas_base noundef %1, __zkllvm_field_pallas_base noundef %2) {
  %4 = insertelement <3 x __zkllvm_field_pallas_base> <__zkllvm_field_pallas_base f0x0, __zkllvm_field_pallas_base undef, __zkllvm_field_pallas_base undef>, __zkllvm_field_pallas_base %1, i32 1
  %5 = insertelement <3 x __zkllvm_field_pallas_base> %4, __zkllvm_field_pallas_base %2, i32 2
  %6 = tail call <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base> %5)
  %7 = extractelement <3 x __zkllvm_field_pallas_base> %6, i32 2
  ret __zkllvm_field_pallas_base %7
}

declare <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base>) #1

attributes #3 = { circuit mustprogress }
"#;

#[test]
fn poseidon_and_vectors_compile_to_several_outputs() {
    let c = compile(POSEIDON_AND_VECTORS).unwrap();
    assert_eq!(c.params, vec![2, 1]);
    assert_eq!(c.program.num_inputs(), 3);
    let (a, b, k) = (fe(3), fe(4), fe(10));
    let out = c.program.eval(&[a, b, k]).unwrap();
    let h = crate::circuit::poseidon::permute([fe(0), a, b])[2];
    // x = (a * 0 + 5, b * k + 7); y = (x1, x0, undef = 0); lane 2 replaced by h.
    assert_eq!(out, vec![b * k + fe(7), fe(5), h]);
    let poseidons = c
        .program
        .instrs()
        .iter()
        .filter(|i| matches!(i, Instr::Poseidon(_)))
        .count();
    assert_eq!(poseidons, 1);
    // Another builtin is refused by name; a lane past the end is refused.
    let sha =
        POSEIDON_AND_VECTORS.replace("llvm.assigner.poseidon.v3field", "llvm.assigner.sha2_512");
    let e = compile(&sha).unwrap_err().to_string();
    assert!(
        e.contains("zkLLVM builtin `@llvm.assigner.sha2_512` (this market proves `poseidon` and `sha2_256` only)"),
        "{e}"
    );
    let past = POSEIDON_AND_VECTORS.replace("%v, i64 1", "%v, i64 2");
    let e = compile(&past).unwrap_err().to_string();
    assert!(e.contains("lane 2 of a vector of 2"), "{e}");
}

/// The memory example of `example/` (typed pointers, as the original market's zkLLVM
/// wrote them): a `byval` std::array input, an `sret` std::array result, `alloca`,
/// `getelementptr` through an `operator[]` that returns a pointer, loads and stores
/// in loops, `llvm.memcpy`, `llvm.memset` and `llvm.lifetime.start`.
const MERKLE_MEMORY: &str = include_str!("../../../example/statements/merkle-memory.ll");

#[test]
fn std_array_memory_compiles_to_a_merkle_root_and_a_sum() {
    let c = compile(MERKLE_MEMORY).unwrap();
    assert_eq!(c.params, vec![8]);
    assert_eq!(c.program.outputs().len(), 2);
    let leaves: Vec<Fe> = (0..8u64).map(|i| fe(i * i + 3)).collect();
    let out = c.program.eval(&leaves).unwrap();
    let hash = |a: Fe, b: Fe| crate::circuit::poseidon::permute([fe(0), a, b])[2];
    let mut layer = leaves.clone();
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| hash(p[0], p[1])).collect();
    }
    let sum = leaves.iter().fold(fe(0), |s, x| s + x);
    assert_eq!(out, vec![layer[0], sum]);
    // Memory costs no instructions: 7 permutations and the additions remain.
    let poseidons = c
        .program
        .instrs()
        .iter()
        .filter(|i| matches!(i, Instr::Poseidon(_)))
        .count();
    assert_eq!(poseidons, 7);
    // Without the lifetime marker the size of a field in memory comes from the whole
    // array copy; with a contradicting size, the error names both.
    let no_lifetime = MERKLE_MEMORY.replace(
        "call void @llvm.lifetime.start.p0i8(i64 32, i8* nonnull %0) #3",
        "",
    );
    assert_eq!(compile(&no_lifetime).unwrap().program, c.program);
    let clash = MERKLE_MEMORY.replace("i8 0, i64 8, i1 false", "i8 0, i64 64, i1 false");
    let e = compile(&clash).unwrap_err().to_string();
    assert!(
        e.contains("fill of 64 bytes runs outside its object of 2"),
        "{e}"
    );
    // Reading the result before it is written, or a leaf past the end.
    let early = MERKLE_MEMORY.replace("i8 0, i64 8, i1 false", "i8 0, i64 4, i1 false");
    let e = compile(&early).unwrap_err().to_string();
    assert!(
        e.contains("line 46: undefined behaviour: load of memory never written"),
        "{e}"
    );
    let past = MERKLE_MEMORY.replace(
        "%sum.done = icmp eq i64 %i.next, 8",
        "%sum.done = icmp eq i64 %i.next, 9",
    );
    let e = compile(&past).unwrap_err().to_string();
    assert!(
        e.contains("load of 1 element(s) at element 8 of an object of 8"),
        "{e}"
    );
}

/// Opaque pointers (newer zkLLVM): a struct with an integer and a field array on the
/// stack, byte-offset `getelementptr i8`, a pointer phi walking an array, pointer
/// comparison, a `byval` copy into a callee that changes only its own copy, `select`
/// between pointers, and `[N x field]` passed by pointer to the circuit.
const OPAQUE_MEMORY: &str = r#"
%struct.acc = type { [4 x field_pallasb], i64 }

define dso_local field_pallasb @_Z3dotPu13field_pallasbS_(ptr noundef byval([4 x field_pallasb]) %xs, ptr noundef byval([4 x field_pallasb]) align 8 %ys) #0 {
entry:
  %acc = alloca %struct.acc, align 8
  call void @llvm.lifetime.start.p0(i64 136, ptr %acc)
  call void @llvm.memset.p0.i64(ptr %acc, i8 0, i64 136, i1 false)
  %terms = getelementptr inbounds i8, ptr %acc, i64 0
  %end = getelementptr inbounds [4 x field_pallasb], ptr %ys, i64 1
  br label %loop

loop:
  %p = phi ptr [ %ys, %entry ], [ %p.next, %loop ]
  %k = phi i64 [ 0, %entry ], [ %k.next, %loop ]
  %y = load field_pallasb, ptr %p, align 8
  %xp = getelementptr inbounds field_pallasb, ptr %xs, i64 %k
  %x = load field_pallasb, ptr %xp, align 8
  %xy = mul field_pallasb %x, %y
  %tp = getelementptr inbounds [4 x field_pallasb], ptr %terms, i64 0, i64 %k
  store field_pallasb %xy, ptr %tp, align 8
  %k.next = add i64 %k, 1
  %p.next = getelementptr inbounds i8, ptr %p, i64 32
  %again = icmp ne ptr %p.next, %end
  br i1 %again, label %loop, label %sum

sum:
  %count = getelementptr inbounds %struct.acc, ptr %acc, i64 0, i32 1
  store i64 4, ptr %count, align 8
  %s = call field_pallasb @_Z3sum(ptr byval([4 x field_pallasb]) %terms)
  %t0 = load field_pallasb, ptr %terms, align 8
  %first = icmp eq i64 %k.next, 4
  %which = select i1 %first, ptr %terms, ptr %xs
  %w = load field_pallasb, ptr %which, align 8
  %r0 = add field_pallasb %s, %t0
  %r = sub field_pallasb %r0, %w
  ret field_pallasb %r
}

; Sums its own copy of the terms, zeroing it as it goes (the caller's stays intact).
define internal field_pallasb @_Z3sum(ptr noundef byval([4 x field_pallasb]) %v) {
entry:
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i.next, %loop ]
  %a = phi field_pallasb [ f0x0, %entry ], [ %a.next, %loop ]
  %q = getelementptr inbounds [4 x field_pallasb], ptr %v, i32 0, i32 %i
  %e = load field_pallasb, ptr %q, align 8
  store field_pallasb f0x0, ptr %q, align 8
  %a.next = add field_pallasb %a, %e
  %i.next = add i32 %i, 1
  %done = icmp eq i32 %i.next, 4
  br i1 %done, label %out, label %loop
out:
  ret field_pallasb %a.next
}

declare void @llvm.lifetime.start.p0(i64 immarg, ptr nocapture)
declare void @llvm.memset.p0.i64(ptr nocapture writeonly, i8, i64, i1 immarg)
attributes #0 = { circuit }
"#;

#[test]
fn opaque_pointer_memory_compiles() {
    let c = match compile(OPAQUE_MEMORY) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.params, vec![4, 4]);
    let xs: Vec<Fe> = (1..=4).map(fe).collect();
    let ys: Vec<Fe> = (10..=13).map(fe).collect();
    let input: Vec<Fe> = xs.iter().chain(&ys).copied().collect();
    let terms: Vec<Fe> = xs.iter().zip(&ys).map(|(x, y)| *x * y).collect();
    let dot = terms.iter().fold(fe(0), |s, t| s + t);
    // sum(terms) + terms[0] - terms[0]: the callee's zeroing did not reach the caller.
    assert_eq!(c.program.eval(&input).unwrap(), vec![dot]);
    // With the other `select` arm the subtraction takes x0 instead.
    let other = OPAQUE_MEMORY.replace(
        "%k.next, 4
",
        "%k.next, 5
",
    );
    let c2 = compile(&other).unwrap();
    assert_eq!(
        c2.program.eval(&input).unwrap(),
        vec![dot + terms[0] - xs[0]]
    );
    // An opaque `ptr` parameter without `byval` says nothing of what it points to.
    let bare = OPAQUE_MEMORY.replace(
        "ptr noundef byval([4 x field_pallasb]) %xs",
        "ptr noundef %xs",
    );
    let e = compile(&bare).unwrap_err().to_string();
    assert!(e.contains("a pointer whose pointee is not stated"), "{e}");
    // A byte offset that splits a field element is refused.
    let split = OPAQUE_MEMORY.replace("i8, ptr %p, i64 32", "i8, ptr %p, i64 16");
    let e = compile(&split).unwrap_err().to_string();
    assert!(e.contains("16 bytes ends inside an element"), "{e}");
}

/// The SHA-256 example of `example/`: zkLLVM's `sha2_256` builtin, chained.
const SHA256_TWICE: &str = include_str!("../../../example/statements/sha256-twice.ll");

#[test]
fn sha256_builtin_compiles_as_zkllvm_defines_it() {
    use sha2::Digest;
    let c = compile(SHA256_TWICE).unwrap();
    assert_eq!(c.params, vec![2, 2]);
    let calls = c
        .program
        .instrs()
        .iter()
        .filter(|i| matches!(i, Instr::Sha256(_)))
        .count();
    assert_eq!(calls, 2);
    // The reference: the `sha2` crate over the 64 bytes the blueprint hashes.
    let be16 = |x: u128| x.to_be_bytes();
    let sha = |lanes: [u128; 4]| -> [u128; 2] {
        let mut h = sha2::Sha256::new();
        for l in lanes {
            h.update(be16(l));
        }
        let d = h.finalize();
        let hi = u128::from_be_bytes(d[..16].try_into().unwrap());
        let lo = u128::from_be_bytes(d[16..].try_into().unwrap());
        [hi, lo]
    };
    let x = [3u128 << 100, 7, u128::MAX, 1 << 64];
    let h = sha(x);
    let want = sha([h[0], h[1], x[2], x[3]]);
    let input: Vec<Fe> = x.iter().map(|&v| Fe::from(v)).collect();
    assert_eq!(
        c.program.eval(&input).unwrap(),
        vec![Fe::from(want[0]), Fe::from(want[1])]
    );
    // A lane of 2^128 has no SHA-256 meaning here: evaluation refuses it.
    let mut big = input.clone();
    big[1] = Fe::from(u128::MAX) + fe(1);
    assert!(c.program.eval(&big).is_err());
    // A call of the wrong shape is named.
    let bad = SHA256_TWICE.replace(
        "@llvm.assigner.sha2_256.v2__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base> %0, <2 x __zkllvm_field_pallas_base> %1)",
        "@llvm.assigner.sha2_256.v2__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base> %0)",
    );
    let e = compile(&bad).unwrap_err().to_string();
    assert!(
        e.contains("takes two `<2 x __zkllvm_field_pallas_base>` blocks"),
        "{e}"
    );
}

#[test]
fn a_field_array_passed_by_typed_pointer_is_an_input() {
    // `field sum(field (*xs)[3])` in the typed-pointer dialect: the pointee's three
    // elements are inputs; a pointer to integers is refused for the circuit.
    let ir = "define __zkllvm_field_pallas_base @s([3 x __zkllvm_field_pallas_base]* %xs, __zkllvm_field_pallas_base %k) circuit {
  %p0 = getelementptr [3 x __zkllvm_field_pallas_base], [3 x __zkllvm_field_pallas_base]* %xs, i64 0, i64 0
  %p2 = getelementptr [3 x __zkllvm_field_pallas_base], [3 x __zkllvm_field_pallas_base]* %xs, i64 0, i64 2
  %a = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %p0
  %b = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %p2
  %ab = add __zkllvm_field_pallas_base %a, %b
  %r = mul __zkllvm_field_pallas_base %ab, %k
  ret __zkllvm_field_pallas_base %r
}";
    let c = compile(ir).unwrap();
    assert_eq!(c.params, vec![3, 1]);
    let out = c.program.eval(&[fe(2), fe(100), fe(5), fe(3)]).unwrap();
    assert_eq!(out, vec![fe(21)]);
    let ints = ir.replace("([3 x __zkllvm_field_pallas_base]* %xs", "([3 x i64]* %xs");
    let e = compile(&ints).unwrap_err().to_string();
    assert!(
        e.contains("circuit parameter of unsupported type `[3 x i64]* %xs`"),
        "{e}"
    );
}

#[test]
fn field_equality_chooses_values_with_constrained_bits() {
    // `eq`/`ne` on field values give bits known only when proving; `select` chooses
    // fields, vectors and bits with them, and `and`/`or`/`xor` combine them; a bit
    // passes through a call's return.
    let f = "__zkllvm_field_pallas_base";
    let ir = format!(
        "define i1 @same({f} %x, {f} %y) {{
  %e = icmp eq {f} %x, %y
  ret i1 %e
}}

define {f} @c({f} %a, {f} %b, <2 x {f}> %v, <2 x {f}> %w) circuit {{
  %e = call i1 @same({f} %a, {f} %b)
  %n = icmp ne {f} %a, f0x5
  %x = xor i1 %e, %n
  %o = or i1 %e, %n
  %an = and i1 %e, %n
  %not = xor i1 %e, true
  %both = select i1 %e, i1 %n, i1 false
  %vs = select i1 %x, <2 x {f}> %v, <2 x {f}> %w
  %s0 = extractelement <2 x {f}> %vs, i32 0
  %s1 = extractelement <2 x {f}> %vs, i32 1
  %k1 = select i1 %o, {f} f0x10, {f} f0x0
  %k2 = select i1 %an, {f} f0x100, {f} f0x0
  %k3 = select i1 %not, {f} f0x1000, {f} f0x0
  %k4 = select i1 %both, {f} f0x10000, {f} f0x0
  %t0 = add {f} %s0, %s1
  %t1 = add {f} %t0, %k1
  %t2 = add {f} %t1, %k2
  %t3 = add {f} %t2, %k3
  %t4 = add {f} %t3, %k4
  ret {f} %t4
}}"
    );
    let c = compile(&ir).unwrap();
    let eqs = |p: &Program| {
        p.instrs()
            .iter()
            .filter(|i| matches!(i, Instr::Eq(..)))
            .count()
    };
    assert_eq!(eqs(&c.program), 2);
    for a in 0..7u64 {
        for b in [0u64, 3, 5] {
            let (e, n) = (a == b, a != 5);
            let x = e ^ n;
            let (v, w) = ([1u64, 2], [30u64, 40]);
            let s = if x { v } else { w };
            let want = s[0]
                + s[1]
                + 0x10 * u64::from(e || n)
                + 0x100 * u64::from(e && n)
                + 0x1000 * u64::from(!e)
                + 0x10000 * u64::from(e && n);
            let inputs = [a, b, v[0], v[1], w[0], w[1]].map(fe);
            assert_eq!(
                c.program.eval(&inputs).unwrap(),
                vec![fe(want)],
                "a={a} b={b}"
            );
        }
    }
    // An equality of constants folds: the call's comparison emits no `eq`.
    let folded = ir.replace(
        &format!("@same({f} %a, {f} %b)"),
        &format!("@same({f} f0x3, {f} f0x3)"),
    );
    assert_eq!(eqs(&compile(&folded).unwrap().program), 1);
}
