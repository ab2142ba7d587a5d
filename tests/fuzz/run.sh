#!/usr/bin/env bash
# Fuzzes the parsers and the verifier with cargo-fuzz (libFuzzer), one target at a time.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 210); TARGETs default to all of: circuit_compile,
# public_input, cost, bodies, proof_verify. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Each run: one core, -rss_limit_mb=2048, -timeout=20.
#
# The corpora (tests/fuzz/corpus/<target>, not committed) are seeded from the
# repository's fixtures and examples on every run; proof_verify's corpus gets a real
# proof of the example statement, written by the target itself. The build goes to
# FUZZ_TARGET_DIR (default: fuzz-target beside the repository, never inside it).
# Crashes land in tests/fuzz/artifacts/<target>/ (not committed), the libFuzzer log of
# each run in tests/fuzz/logs/<target>.log; the script exits non-zero if any target
# found something. Reproduce one input:
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none -a <target> <artifact-file>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
secs="${1:-210}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(circuit_compile public_input cost bodies proof_verify)
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$(dirname "$repo")/fuzz-target}"
# No sanitizer: the crate is safe Rust, and ASan would slow halo2 tenfold. Debug
# assertions (-a) turn on overflow checks, so arithmetic overflow is a finding too.
fuzz=(cargo +nightly fuzz)
opts=(--fuzz-dir "$here" -s none -a)

seed() { # seed TARGET FILE...: copy files into the target's corpus
    local t="$1"
    shift
    mkdir -p "$here/corpus/$t"
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "$here/corpus/$t/seed-$(basename "$f")"
    done
    return 0
}
seed_text() { # seed_text TARGET NAME TEXT
    mkdir -p "$here/corpus/$1"
    printf '%s' "$3" >"$here/corpus/$1/seed-$2"
}

cd "$repo"
shopt -s nullglob
# The compiler: every IR file, and the IR inside every statement fixture.
seed circuit_compile src/circuit/testdata/*.ll example/statements/*.ll
for f in tests/fixtures/*.json example/statements/*.json; do
    if ir="$(jq -er '.definition.proving_key' "$f" 2>/dev/null)"; then
        seed_text circuit_compile "ir-$(basename "$f" .json).ll" "$ir"
    fi
done
# Public inputs: the example inputs, both shapes, and canonical texts.
seed public_input example/input/*/*.json
seed_text public_input canonical "5,7"
seed_text public_input hex '[{"field": "0x12345678901234567890"}, {"field": -1}]'
# Costs: the shapes a JSON number or a command line takes.
i=0
for c in 2 0.5 1.25e2 -1 1e-6 .5 +3 0 1000000 1e9 0.0000001 123456789.123456 1E+2 2.50e-1; do
    seed_text cost "$i" "$c"
    i=$((i + 1))
done
# Bodies: the statement fixtures and one body of each call.
seed bodies tests/fixtures/*.json example/statements/*.json
seed_text bodies request '{"statement_key": "32326", "cost": 2.5, "input": [{"field": 5}, {"field": 7}], "eval_time": 5, "wait_period": 10}'
seed_text bodies proposal '{"statement_key": 32326, "cost": 1e0}'
seed_text bodies proof '{"proof": "0xdeadbeef", "proposal_key": "1", "request_key": 2}'
seed_text bodies user '{"user": "alice", "passwd": "secret", "email": "a@example.org"}'
seed_text bodies profile '{"description": "d", "url": "u", "logo": null, "eth_address": "0x0"}'
seed_text bodies auth '{"username": "alice", "password": "secret"}'
# Proofs: a few junk byte strings; the real proof comes from the target below.
seed_text proof_verify empty ""
head -c 1024 /dev/zero >"$here/corpus/proof_verify/seed-zeros"

for t in "${targets[@]}"; do "${fuzz[@]}" build "${opts[@]}" "$t"; done
if [[ " ${targets[*]} " == *" proof_verify "* ]]; then
    FUZZ_WRITE_PROOF_SEED="$here/corpus/proof_verify" \
        "${fuzz[@]}" run "${opts[@]}" proof_verify "$here/corpus/proof_verify" -- -runs=0
fi

mkdir -p "$here/logs"
status=0
for t in "${targets[@]}"; do
    extra=()
    [ "$t" = circuit_compile ] && extra=(-dict="$here/ir.dict")
    echo "== $t: ${secs}s"
    if ! "${fuzz[@]}" run "${opts[@]}" "$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        "${extra[@]}" >"$here/logs/$t.log" 2>&1; then
        echo "!! $t found something: see tests/fuzz/logs/$t.log and tests/fuzz/artifacts/$t/"
        status=1
    fi
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$here/logs/$t.log" || true
done
exit $status
