//! The zkLLVM IR compiler's entry point: IR text in, straight-line [`Program`] out.
//!
//! The pipeline is: scan the module for functions ([`crate::circuit::module`]), pick the
//! one with the `circuit` attribute, parse it and every function statically reachable
//! from it ([`crate::circuit::parse`]), then unroll it by symbolic execution
//! ([`crate::circuit::exec`]). Only reachable functions are parsed, so the rest of the
//! module (runtime initialisers, library helpers with memory operations) may contain
//! anything. Within reachable functions, every instruction must be in the subset even
//! on paths not taken, so what compiles does not hinge on which path happened to run.
//!
//! The input is untrusted: every stage returns errors instead of panicking, and the
//! text size, the program size, the interpretation steps and the inlining depth are
//! capped ([`Limits`], [`MAX_IR_BYTES`]).

use std::collections::{HashMap, VecDeque};

use crate::circuit::error::excerpt;
pub use crate::circuit::error::{CompileError, ErrorKind};
pub use crate::circuit::exec::Limits;
use crate::circuit::ir::Function;
use crate::circuit::module::ModuleIndex;
use crate::circuit::parse::{check_circuit_signature, parse_function};
use crate::circuit::program::Program;

/// Largest IR text accepted, in bytes.
pub const MAX_IR_BYTES: usize = 16 << 20;

/// A compiled circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The straight-line program; its inputs are the circuit's parameters, in order.
    pub program: Program,
    /// The circuit function's (mangled) name, without `@`.
    pub function_name: String,
    /// Field elements each circuit parameter takes, in order (1 for a field element, N
    /// for `<N x field>`, the elements of a field array passed by pointer); they sum
    /// to the program's inputs.
    pub params: Vec<usize>,
}

/// Compiles zkLLVM IR text into a program, using the function with the `circuit`
/// attribute and the default [`Limits`].
pub fn compile(ir_text: &str) -> Result<Compiled, CompileError> {
    compile_with_limits(ir_text, Limits::default())
}

/// [`compile`] with explicit resource caps.
pub fn compile_with_limits(ir_text: &str, limits: Limits) -> Result<Compiled, CompileError> {
    if ir_text.len() > MAX_IR_BYTES {
        return Err(CompileError::global(ErrorKind::InputTooLarge(MAX_IR_BYTES)));
    }
    let index = ModuleIndex::scan(ir_text)?;
    let circuit_def = index.circuit()?;
    check_circuit_signature(ir_text, circuit_def, &index.types)?;
    let funcs = parse_reachable(ir_text, &index, circuit_def.name)?;
    let circuit = funcs.get(circuit_def.name).ok_or_else(|| {
        CompileError::at(
            circuit_def.line,
            ErrorKind::UndefinedFunction(excerpt(circuit_def.name)),
        )
    })?;
    let program = crate::circuit::exec::run(&funcs, circuit, limits)?;
    let params = circuit.input_lanes();
    Ok(Compiled {
        program,
        function_name: circuit_def.name.to_string(),
        params,
    })
}

/// Parses `root` and every function its calls can reach, breadth first. A call to a
/// function without a body is an error even on a path that might not run: it would
/// otherwise depend on which branches execution happened to take.
fn parse_reachable(
    src: &str,
    index: &ModuleIndex<'_>,
    root: &str,
) -> Result<HashMap<String, Function>, CompileError> {
    let mut funcs: HashMap<String, Function> = HashMap::new();
    let mut queue: VecDeque<&str> = VecDeque::from([root]);
    while let Some(name) = queue.pop_front() {
        if funcs.contains_key(name) {
            continue;
        }
        let Some(def) = index.defined.get(name) else {
            continue;
        };
        let f = parse_function(src, def, &index.types)?;
        for (callee, line) in &f.calls {
            match index.defined.get_key_value(callee.as_str()) {
                Some((&key, _)) => queue.push_back(key),
                None if index.declared.contains(callee.as_str()) => {
                    return Err(CompileError::at(
                        *line,
                        ErrorKind::DeclaredOnly(excerpt(callee)),
                    ));
                }
                None => {
                    return Err(CompileError::at(
                        *line,
                        ErrorKind::UndefinedFunction(excerpt(callee)),
                    ));
                }
            }
        }
        funcs.insert(name.to_string(), f);
    }
    Ok(funcs)
}

#[cfg(test)]
mod tests;
