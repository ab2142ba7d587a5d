//! Every rejection names its construct and its line.

use super::super::*;
use super::FIXTURE;

/// A circuit of two field inputs `%a`, `%b` whose body starts on line 3.
fn circuit(body: &str) -> String {
    format!(
        "; test\ndefine __zkllvm_field_pallas_base @c(__zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b) #0 {{\n{body}\n}}\nattributes #0 = {{ circuit }}\n"
    )
}

#[track_caller]
fn rejects(ir: &str, line: Option<usize>, text: &str) -> CompileError {
    let err = compile(ir).unwrap_err();
    assert_eq!(err.line(), line, "{err}");
    assert!(err.to_string().contains(text), "{err:?} lacks {text:?}");
    err
}

#[test]
fn memory_misuse_is_named() {
    let ret = "\n  ret __zkllvm_field_pallas_base %a";
    for (body, line, text) in [
        ("  store i32 1, ptr %p", 3, "undefined value `%p`"),
        (
            "  %p = alloca [2 x __zkllvm_field_pallas_base]\n  %v = load __zkllvm_field_pallas_base, ptr %p",
            4,
            "load of memory never written",
        ),
        (
            "  %p = alloca [2 x __zkllvm_field_pallas_base]\n  %q = getelementptr [2 x __zkllvm_field_pallas_base], ptr %p, i64 0, i64 2\n  store __zkllvm_field_pallas_base %a, ptr %q",
            5,
            "store of 1 element(s) at element 2 of an object of 2",
        ),
        (
            "  %p = alloca i64\n  store __zkllvm_field_pallas_base %a, ptr %p",
            4,
            "store of `__zkllvm_field_pallas_base` into memory laid out as `i64`",
        ),
        (
            "  %p = alloca i64\n  %i = ptrtoint ptr %p to i64",
            4,
            "`ptrtoint`: addresses are not values",
        ),
        ("  %p = inttoptr i64 8 to ptr", 3, "`inttoptr`"),
        (
            "  %p = alloca [2 x __zkllvm_field_pallas_base]\n  %q = getelementptr __zkllvm_field_pallas_base, ptr %p, __zkllvm_field_pallas_base %a",
            4,
            "address depending on a field value",
        ),
        (
            "  %p = alloca [2 x i8]\n  %v = load [2 x i8], ptr %p",
            4,
            "`load` of a `[2 x i8]` value",
        ),
        (
            "  %p = alloca [2 x __zkllvm_field_pallas_base]\n  call void @llvm.memset.p0.i64(ptr %p, i8 1, i64 8, i1 false)",
            4,
            "`llvm.memset` to byte 1",
        ),
        (
            "  %p = alloca [2 x __zkllvm_field_pallas_base]\n  %q = alloca [2 x __zkllvm_field_pallas_base]\n  call void @llvm.memcpy.p0.p0.i64(ptr %p, ptr %q, i64 4, i1 false)",
            5,
            "before their size in memory is known",
        ),
        ("  %v = load __zkllvm_field_pallas_base, ptr null", 3, "null pointer"),
        (
            "  %p = alloca %missing",
            3,
            "undefined type `%missing`",
        ),
        (
            "  %p = alloca __zkllvm_field_pallas_base, i64 2000000",
            3,
            "more than 1048576 elements",
        ),
        (
            "  %v = load atomic i64, ptr null seq_cst, align 8",
            3,
            "atomic `load`",
        ),
    ] {
        rejects(&circuit(&format!("{body}{ret}")), Some(line), text);
    }
    // A recursive type by value; through a pointer it is fine.
    let ir = format!(
        "%node = type {{ i64, %node }}\n%list = type {{ i64, %list* }}\n{}",
        circuit("  %l = alloca %list\n  %p = alloca %node\n  ret __zkllvm_field_pallas_base %a")
    );
    rejects(&ir, Some(1), "type `%node` contains itself");
    // A long chain of named types, each holding the next: bounded, not a deep recursion.
    let chain: String = (0..5000)
        .map(|i| format!("%t{i} = type {{ %t{} }}\n", i + 1))
        .collect();
    let ir = format!(
        "{chain}%t5000 = type {{ i64 }}\n{}",
        circuit("  %p = alloca %t0\n  ret __zkllvm_field_pallas_base %a")
    );
    rejects(&ir, Some(32), "named types nested more than 32 deep");
    // A pointer to memory of a returned call.
    let ir = format!(
        "{}\ndefine internal ptr @leak() {{\n  %p = alloca __zkllvm_field_pallas_base\n  ret ptr %p\n}}\n",
        circuit("  %p = call ptr @leak()\n  store __zkllvm_field_pallas_base %a, ptr %p\n  ret __zkllvm_field_pallas_base %a")
    );
    rejects(&ir, Some(4), "memory whose function has returned");
}

#[test]
fn memory_is_bounded() {
    // An `alloca` in a loop makes a new object each time: the count is capped.
    let body = "  br label %l\nl:\n  %i = phi i64 [ 0, %0 ], [ %j, %l ]\n  %p = alloca __zkllvm_field_pallas_base\n  %j = add i64 %i, 1\n  %c = icmp eq i64 %j, 100000\n  br i1 %c, label %e, label %l\ne:\n  ret __zkllvm_field_pallas_base %a";
    rejects(&circuit(body), Some(6), "more than 65536 memory objects");
    // Big objects kept alive count against the frame-values cap.
    let body = body.replace(
        "alloca __zkllvm_field_pallas_base",
        "alloca [100000 x __zkllvm_field_pallas_base]",
    );
    let e = rejects(&circuit(&body), Some(6), "");
    assert!(matches!(e.kind(), ErrorKind::FrameTooLarge(_)), "{e}");
    // Objects freed on return make room again: a callee with a big `alloca`, called
    // many times, compiles.
    let ir = format!(
        "{}\ndefine internal void @g() {{\n  %p = alloca [600000 x __zkllvm_field_pallas_base]\n  ret void\n}}\n",
        circuit("  call void @g()\n  call void @g()\n  call void @g()\n  ret __zkllvm_field_pallas_base %a")
    );
    assert!(compile(&ir).is_ok());
}

#[test]
fn float_and_other_instructions() {
    rejects(
        &circuit("  %f = fadd double 1.0, 2.0"),
        Some(3),
        "unsupported instruction `fadd`",
    );
    let e = rejects(
        &circuit("  %f = select i1 true, double 1.0, double 2.0"),
        Some(3),
        "",
    );
    assert_eq!(e.to_string(), "line 3: unsupported type `double`");
    rejects(
        &circuit("  %f = add i8* %a, %b"),
        Some(3),
        "`add` on pointers",
    );
    rejects(
        &circuit("  %f = add i128 1, 2"),
        Some(3),
        "unsupported type `i128`",
    );
    rejects(
        &circuit("  %f = invoke i32 @g() to label %x unwind label %y"),
        Some(3),
        "`invoke`",
    );
}

#[test]
fn unsupported_code_is_rejected_even_on_paths_not_taken() {
    let ir = circuit("  br i1 true, label %ok, label %dead\nok:\n  ret __zkllvm_field_pallas_base %a\ndead:\n  %i = ptrtoint ptr null to i64\n  unreachable");
    rejects(&ir, Some(7), "`ptrtoint`");
}

#[test]
fn unsupported_types_in_callees() {
    let ir = format!(
        "{}\n\ndefine internal double @g(double %x) {{\n  ret double %x\n}}\n",
        circuit("  %r = call double @g(double 1.0)\n  ret __zkllvm_field_pallas_base %a")
    );
    rejects(&ir, Some(3), "unsupported type `double`");
    let ir = format!(
        "{}\ndefine internal double @g(i32 %x) {{\n  ret double 1.0\n}}\n",
        circuit("  %r = call i32 @g(i32 1)\n  ret __zkllvm_field_pallas_base %a")
    );
    rejects(&ir, Some(8), "unsupported type `double`");
}

#[test]
fn calls_to_declared_or_unknown_functions() {
    let ir = format!(
        "declare i32 @ext(i32)\n{}",
        circuit("  %r = call i32 @ext(i32 1)\n  ret __zkllvm_field_pallas_base %a")
    );
    let e = rejects(&ir, Some(4), "`@ext`, which is only declared");
    assert!(matches!(e.kind(), ErrorKind::DeclaredOnly(n) if n == "ext"));
    let ir = circuit("  call void @llvm.trap()\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(3), "unsupported LLVM intrinsic `@llvm.trap`");
    let ir = circuit("  call void @llvm.assume(i1 true)\n  ret __zkllvm_field_pallas_base %a");
    assert!(compile(&ir).is_ok());
    let ir = circuit("  %r = call i32 %fp(i32 1)\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(3), "indirect call");
    let ir = circuit(
        "  %r = call i32 (ptr, ...) @printf(ptr null)\n  ret __zkllvm_field_pallas_base %a",
    );
    rejects(&ir, Some(3), "variadic");
}

#[test]
fn debug_intrinsics_are_ignored() {
    let ir = circuit("  call void @llvm.dbg.value(metadata __zkllvm_field_pallas_base %a, metadata !12, metadata !DIExpression()), !dbg !15\n  ret __zkllvm_field_pallas_base %a");
    assert!(compile(&ir).is_ok());
}

#[test]
fn control_flow_on_field_values() {
    // An equality of field values is a bit known only when proving: it may choose
    // values (`select`, tested in compile tests) but not decide a branch.
    let ir = circuit("  %c = icmp eq __zkllvm_field_pallas_base %a, %b\n  br i1 %c, label %x, label %y\nx:\n  ret __zkllvm_field_pallas_base %a\ny:\n  ret __zkllvm_field_pallas_base %b");
    let e = rejects(&ir, Some(4), "a comparison of field values");
    assert!(matches!(e.kind(), ErrorKind::NonConstantControl(_)), "{e}");
    // Nor become an integer, be stored, choose integers or pointers, or do integer
    // arithmetic other than `and`/`or`/`xor`.
    let eq = "  %c = icmp ne __zkllvm_field_pallas_base %a, %b\n";
    let ret = "\n  ret __zkllvm_field_pallas_base %a";
    for (body, line, text) in [
        (
            "  %z = zext i1 %c to i32",
            4,
            "not decide a branch, become an integer",
        ),
        ("  %p = alloca i1\n  store i1 %c, ptr %p", 5, "be stored"),
        (
            "  %i = select i1 %c, i32 1, i32 2",
            4,
            "a `select` of `i32` values on a comparison of field values",
        ),
        (
            "  %p = alloca i32\n  %q = select i1 %c, ptr %p, ptr null",
            5,
            "a `select` of `ptr` values",
        ),
        ("  %s = add i1 %c, true", 4, "not decide a branch"),
        (
            "  %d = icmp eq i1 %c, false\n  br i1 %d, label %x, label %x\nx:",
            4,
            "not decide a branch",
        ),
        ("  switch i1 %c, label %x [ ]\nx:", 4, "not decide a branch"),
    ] {
        rejects(&circuit(&format!("{eq}{body}{ret}")), Some(line), text);
    }
    // Orderings of field values, and comparisons of whole vectors, are refused by name
    // (`field_pallasb` alike).
    for (ty, pred) in [
        ("__zkllvm_field_pallas_base", "ult"),
        ("field_pallasb", "sgt"),
        ("__zkllvm_field_pallas_base", "uge"),
    ] {
        let ir = circuit(&format!("  %c = icmp {pred} {ty} %a, %b\n  %s = select i1 %c, __zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b\n  ret __zkllvm_field_pallas_base %s"));
        let text = format!("`icmp {pred}` on `__zkllvm_field_pallas_base` values");
        let e = rejects(&ir, Some(3), &text);
        assert!(e.to_string().contains("only `eq` and `ne` are"), "{e}");
    }
    let ir = circuit("  %v = insertelement <2 x __zkllvm_field_pallas_base> zeroinitializer, __zkllvm_field_pallas_base %a, i32 0\n  %c = icmp eq <2 x __zkllvm_field_pallas_base> %v, %v\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(4), "a vector of comparison bits");
    let ir = circuit("  br i1 %a, label %x, label %x\nx:\n  ret __zkllvm_field_pallas_base %b");
    let e = rejects(&ir, Some(3), "control flow must be known at compile time");
    assert!(matches!(e.kind(), ErrorKind::NonConstantControl(_)));
    let ir = circuit("  %s = select i1 %b, __zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b\n  ret __zkllvm_field_pallas_base %s");
    rejects(&ir, Some(3), "control flow must be known");
    let ir = circuit("  br __zkllvm_field_pallas_base %a, label %x, label %x\nx:\n  ret __zkllvm_field_pallas_base %b");
    rejects(&ir, Some(3), "control flow must be known");
    let ir = circuit("  switch __zkllvm_field_pallas_base %a, label %x [ ]\nx:\n  ret __zkllvm_field_pallas_base %b");
    rejects(&ir, Some(3), "`switch` on a field value");
}

#[test]
fn circuit_signature() {
    let ir = "define __zkllvm_field_pallas_base @c(__zkllvm_field_pallas_base %a,\n i32 %n) circuit {\n  ret __zkllvm_field_pallas_base %a\n}";
    let e = rejects(ir, Some(2), "circuit parameter of unsupported type `i32`");
    assert!(matches!(e.kind(), ErrorKind::CircuitParameter(t) if t == "i32"));
    let ir = "\ndefine __zkllvm_field_pallas_base @c(ptr noundef %p) circuit {\n  ret __zkllvm_field_pallas_base f1\n}";
    rejects(ir, Some(2), "a pointer whose pointee is not stated");
    let ir = "define __zkllvm_field_pallas_base @c(ptr byval([2 x i64]) %p) circuit {\n  ret __zkllvm_field_pallas_base f1\n}";
    rejects(ir, Some(1), "unsupported type `ptr byval([2 x i64]) %p`");
    let ir = "define __zkllvm_field_pallas_base @c(ptr sret([2 x __zkllvm_field_pallas_base]) %p) circuit {\n  ret __zkllvm_field_pallas_base f1\n}";
    rejects(
        ir,
        Some(1),
        "circuit function returns `__zkllvm_field_pallas_base`",
    );
    let ir = "define void @c(ptr sret([2 x field_pallasb]) %o, field_pallasb %a) circuit {\n  store field_pallasb %a, ptr %o\n  ret void\n}";
    rejects(ir, Some(1), "`sret` result not fully written");
    let ir = "define i32 @c() circuit {\n  ret i32 1\n}";
    rejects(ir, Some(1), "circuit function returns `i32`");
    let ir = "define void @c() circuit {\n  ret void\n}";
    rejects(ir, Some(1), "returns `void`");
    let ir = "define __zkllvm_field_curve25519_base @c() circuit {\n  ret void\n}";
    rejects(ir, Some(1), "returns `__zkllvm_field_curve25519_base`");
}

#[test]
fn missing_or_duplicate_circuit() {
    let none = FIXTURE.replace("attributes #5 = { circuit ", "attributes #5 = { ");
    let e = rejects(&none, None, "no function with the `circuit` attribute");
    assert_eq!(e.kind(), &ErrorKind::NoCircuit);
    let two = FIXTURE.replace("attributes #4 = { ", "attributes #4 = { circuit ");
    let e = rejects(&two, Some(69), "more than one circuit function");
    assert!(matches!(e.kind(), ErrorKind::MultipleCircuits(..)));
    rejects("", None, "no function with the `circuit` attribute");
}

#[test]
fn bad_constants_and_names() {
    let p = "f0x40000000000000000000000000000000224698fc094cf91b992d30ed00000001";
    let ir = circuit(&format!(
        "  %x = add __zkllvm_field_pallas_base %a, {p}\n  ret __zkllvm_field_pallas_base %x"
    ));
    let e = rejects(&ir, Some(3), "is not below the Pallas base field modulus");
    assert!(matches!(e.kind(), ErrorKind::FieldConstantOutOfRange(_)));
    let ir = circuit(
        "  %x = add __zkllvm_field_pallas_base %a, undef\n  ret __zkllvm_field_pallas_base %x",
    );
    rejects(&ir, Some(3), "constant `undef`");
    let ir = circuit("  %x = add i8 300, 1\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(3), "`300` does not fit in `i8`");
    let ir = circuit("  br label %x\nx:\n  %y = add __zkllvm_field_pallas_base %a, %nope\n  ret __zkllvm_field_pallas_base %y");
    rejects(&ir, Some(5), "undefined value `%nope`");
    let ir = circuit("  br label %nowhere");
    rejects(&ir, Some(3), "undefined block `%nowhere`");
    let ir =
        circuit("  %x = add i32 1, 2\n  %x = add i32 1, 2\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(4), "defined twice");
    let ir = circuit("  %x = add i32 %a, 1\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(3), "type mismatch");
    let ir = circuit(
        "  %x = and __zkllvm_field_pallas_base %a, %b\n  ret __zkllvm_field_pallas_base %x",
    );
    rejects(&ir, Some(3), "`and` on `__zkllvm_field_pallas_base` values");
    let ir = circuit("  %x = add __zkllvm_field_pallas_base %a, %b\n  ret i32 0");
    rejects(
        &ir,
        Some(4),
        "returns `__zkllvm_field_pallas_base` but `ret` gives `i32`",
    );
}

#[test]
fn runtime_faults() {
    let ir = circuit("  br label %x\ny:\n  %v = add __zkllvm_field_pallas_base %a, %b\n  br label %x\nx:\n  %w = add __zkllvm_field_pallas_base %v, %b\n  ret __zkllvm_field_pallas_base %w");
    rejects(&ir, Some(8), "value `%v` used before it is defined");
    // Valid only if `%v` dominated `%x`; a stale value would leak across iterations.
    let stale = "  br label %l\nl:\n  %i = phi i32 [ 0, %0 ], [ %j, %x ]\n  %j = add i32 %i, 1\n  %c = icmp eq i32 %i, 0\n  br i1 %c, label %d, label %x\nd:\n  %v = add __zkllvm_field_pallas_base %a, %b\n  br label %x\nx:\n  %w = mul __zkllvm_field_pallas_base %v, %v\n  %e = icmp eq i32 %j, 3\n  br i1 %e, label %out, label %l\nout:\n  ret __zkllvm_field_pallas_base %w";
    rejects(
        &circuit(stale),
        Some(13),
        "value `%v` used before it is defined",
    );
    let ir = circuit("  %q = udiv i32 1, 0\n  ret __zkllvm_field_pallas_base %a");
    rejects(&ir, Some(3), "integer division by zero");
    let ir = circuit("  unreachable");
    rejects(&ir, Some(3), "reached `unreachable`");
    let ir = circuit("  br label %x\nx:\n  %p = phi i32 [ 0, %y ]\n  ret __zkllvm_field_pallas_base %a\ny:\n  br label %x");
    rejects(&ir, Some(5), "`phi` has no value for predecessor");
    let ir = circuit("  %x = add __zkllvm_field_pallas_base %a, %b");
    rejects(&ir, Some(3), "does not end with a terminator");
}

const LOOP_FOREVER: &str =
    "  br label %l\nl:\n  %i = phi i32 [ 0, %0 ], [ %j, %l ]\n  %j = add i32 %i, 1\n  br label %l";

#[test]
fn infinite_loop_hits_the_step_cap() {
    let ir = circuit(LOOP_FOREVER);
    let limits = Limits {
        max_steps: 10_000,
        ..Limits::default()
    };
    let e = compile_with_limits(&ir, limits).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::StepLimit(10_000));
    assert!(matches!(e.line(), Some(5..=7)), "{e}");
    assert!(e
        .to_string()
        .contains("loop did not terminate within 10000 steps"));
    let e = compile(&ir).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::StepLimit(1 << 24));
}

#[test]
fn huge_loop_hits_the_size_cap() {
    let body = "  br label %l\nl:\n  %i = phi i32 [ 0, %0 ], [ %j, %l ]\n  %acc = phi __zkllvm_field_pallas_base [ %a, %0 ], [ %n, %l ]\n  %n = mul __zkllvm_field_pallas_base %acc, %b\n  %j = add i32 %i, 1\n  %c = icmp ult i32 %j, 4000000\n  br i1 %c, label %l, label %e\ne:\n  ret __zkllvm_field_pallas_base %n";
    let e = compile(&circuit(body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 7: program too large (over 1048576 instructions)"
    );
}

#[test]
fn unbounded_recursion_hits_the_depth_cap() {
    let ir = format!(
        "{}\ndefine internal __zkllvm_field_pallas_base @r(__zkllvm_field_pallas_base %x) {{\n  %y = call __zkllvm_field_pallas_base @r(__zkllvm_field_pallas_base %x)\n  ret __zkllvm_field_pallas_base %y\n}}\n",
        circuit("  %r = call __zkllvm_field_pallas_base @r(__zkllvm_field_pallas_base %a)\n  ret __zkllvm_field_pallas_base %r")
    );
    let e = rejects(&ir, Some(9), "calls nested deeper than 64");
    assert_eq!(e.kind(), &ErrorKind::CallDepth(64));
}

#[test]
fn oversized_input() {
    let big = " ".repeat(MAX_IR_BYTES + 1);
    rejects(&big, None, "IR text too large");
}
