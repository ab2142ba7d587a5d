//! `proof-generator`: prove a statement's circuit on a public input, like the original
//! market's tool of the same name and flags.
//!
//! ```text
//! proof-generator --circuit_input STATEMENT.json --public_input INPUT.json --proof_out PROOF.bin
//! ```
//! Writes the proof as hex text (`0x…`), verifies it itself, prints
//! `Inner verification passed` and exits 0; on any failure prints why and exits 1.
//! Steps that take over a second report progress on stderr.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Parser;

use proof_market::input::outputs_to_text;
use proof_market::input::PublicInput;
use proof_market::prover::statements::StatementCircuit;

#[derive(Parser)]
#[command(
    name = "proof-generator",
    version,
    about = "Prove a Proof Market statement on a public input"
)]
struct Args {
    /// The statement JSON (its `definition.proving_key` holds the circuit as zkLLVM IR),
    /// or a bare `.ll` IR file.
    #[arg(long = "circuit_input", alias = "circuit-input")]
    circuit_input: PathBuf,
    /// The public input: `[{"field": 1}, {"field": 11}]` or `{"input": "1\n11"}`.
    #[arg(long = "public_input", alias = "public-input")]
    public_input: PathBuf,
    /// Where to write the proof (hex text).
    #[arg(long = "proof_out", alias = "proof-out")]
    proof_out: PathBuf,
}

/// Runs `f`, printing progress on stderr if it takes more than a second.
fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let watcher = {
        let done = done.clone();
        let name = name.to_owned();
        std::thread::spawn(move || {
            let mut ticks = 0u64;
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                ticks += 1;
                if ticks.is_multiple_of(10) && !done.load(Ordering::Acquire) {
                    eprintln!("{name}… {:.0} s", started.elapsed().as_secs_f64());
                }
            }
        })
    };
    let r = f();
    done.store(true, Ordering::Release);
    let _ = watcher.join();
    if started.elapsed() >= Duration::from_secs(1) {
        eprintln!("{name}: done in {:.1} s", started.elapsed().as_secs_f64());
    }
    r
}

fn read_ir(path: &PathBuf) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        v["definition"]["proving_key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{} has no `definition.proving_key` string", path.display()))
    } else {
        Ok(text)
    }
}

fn run(a: Args) -> anyhow::Result<()> {
    let ir = read_ir(&a.circuit_input)?;
    let text = std::fs::read_to_string(&a.public_input)
        .with_context(|| format!("cannot read {}", a.public_input.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", a.public_input.display()))?;
    let input =
        PublicInput::from_json(&json).map_err(|e| anyhow!("{}: {e}", a.public_input.display()))?;
    let circuit = step("compiling the circuit", || StatementCircuit::compile(&ir))
        .map_err(|e| anyhow!("{e}"))?;
    circuit.evaluate_input(&input).map_err(|e| anyhow!("{e}"))?;
    step("making the keys", || circuit.keys()).map_err(|e| anyhow!("keygen: {e}"))?;
    let (output, proof) =
        step("proving", || circuit.prove(&input.values)).map_err(|e| anyhow!("proving: {e}"))?;
    step("verifying", || circuit.verify(&input.values, &proof))
        .map_err(|e| anyhow!("inner verification failed: {e}"))?;
    std::fs::write(&a.proof_out, format!("0x{}\n", hex::encode(&proof)))
        .with_context(|| format!("cannot write {}", a.proof_out.display()))?;
    eprintln!(
        "output {} ; proof {} bytes written to {}",
        outputs_to_text(&output),
        proof.len(),
        a.proof_out.display()
    );
    println!("Inner verification passed");
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
