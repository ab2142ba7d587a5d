//! Checks that every use of a value is dominated by its definition (LLVM's SSA rule).
//!
//! The interpreter keeps the most recent value of each slot, which is only the right
//! value when definitions dominate uses. LLVM's own parser rejects IR that breaks the
//! rule, but this IR comes from anonymous users, and a stale value from an earlier loop
//! iteration would silently compile into a different circuit. So the rule is checked
//! statically, with Lengauer-Tarjan dominators (near-linear even on hostile graphs).
//! Blocks unreachable from the entry are exempt, as in LLVM: they never run.

use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::ir::{Block, BlockId, Function, InstKind, Operand, Term};

const NONE: usize = usize::MAX;

fn successors(b: &Block) -> Vec<BlockId> {
    match &b.term {
        Term::Br(t) => vec![*t],
        Term::CondBr { then, other, .. } => vec![*then, *other],
        Term::Switch { default, cases, .. } => {
            let mut v: Vec<BlockId> = cases.iter().map(|(_, b)| *b).collect();
            v.push(*default);
            v
        }
        Term::Ret(_) | Term::Unreachable => Vec::new(),
    }
}

/// Dominator-tree intervals: `a` dominates `b` iff `a`'s interval contains `b`'s.
struct Dominators {
    pre: Vec<usize>,
    post: Vec<usize>,
}

impl Dominators {
    fn reachable(&self, b: usize) -> bool {
        self.pre.get(b).is_some_and(|&p| p != NONE)
    }

    fn dominates(&self, a: usize, b: usize) -> bool {
        match (
            self.pre.get(a),
            self.post.get(a),
            self.pre.get(b),
            self.post.get(b),
        ) {
            (Some(&pa), Some(&qa), Some(&pb), Some(&qb)) => {
                pa != NONE && pb != NONE && pa <= pb && qb <= qa
            }
            _ => false,
        }
    }
}

/// Computes dominators of `succ` (a graph on `0..n`, all ids in range) from `entry`.
/// Indexing below is in range because every id is checked against `n` first.
fn dominators(n: usize, succ: &[Vec<usize>], entry: usize) -> Dominators {
    let mut dfnum = vec![NONE; n];
    let mut vertex = Vec::with_capacity(n);
    let mut parent = vec![NONE; n];
    let mut stack = vec![(entry, NONE)];
    while let Some((v, p)) = stack.pop() {
        if dfnum[v] != NONE {
            continue;
        }
        dfnum[v] = vertex.len();
        vertex.push(v);
        parent[v] = p;
        for &w in succ[v].iter().rev() {
            if dfnum[w] == NONE {
                stack.push((w, v));
            }
        }
    }
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &v in &vertex {
        for &w in &succ[v] {
            pred[w].push(v);
        }
    }
    let mut semi: Vec<usize> = dfnum.clone();
    let mut label: Vec<usize> = (0..n).collect();
    let mut ancestor = vec![NONE; n];
    let mut idom = vec![NONE; n];
    let mut bucket: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut path = Vec::new();
    for i in (1..vertex.len()).rev() {
        let w = vertex[i];
        for &v in &pred[w] {
            let u = eval(v, &mut ancestor, &mut label, &semi, &mut path);
            semi[w] = semi[w].min(semi[u]);
        }
        bucket[vertex[semi[w]]].push(w);
        let p = parent[w];
        ancestor[w] = p;
        for v in std::mem::take(&mut bucket[p]) {
            let u = eval(v, &mut ancestor, &mut label, &semi, &mut path);
            idom[v] = if semi[u] < semi[v] { u } else { p };
        }
    }
    for &w in vertex.iter().skip(1) {
        if idom[w] != vertex[semi[w]] {
            idom[w] = idom[idom[w]];
        }
    }
    // Number the dominator tree depth first to answer dominance in O(1).
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &w in vertex.iter().skip(1) {
        children[idom[w]].push(w);
    }
    let mut pre = vec![NONE; n];
    let mut post = vec![NONE; n];
    let mut clock = 0usize;
    let mut walk = vec![(entry, false)];
    while let Some((v, done)) = walk.pop() {
        clock += 1;
        if done {
            post[v] = clock;
            continue;
        }
        pre[v] = clock;
        walk.push((v, true));
        walk.extend(children[v].iter().map(|&c| (c, false)));
    }
    Dominators { pre, post }
}

/// Lengauer-Tarjan `eval` with iterative path compression.
fn eval(
    v: usize,
    ancestor: &mut [usize],
    label: &mut [usize],
    semi: &[usize],
    path: &mut Vec<usize>,
) -> usize {
    if ancestor[v] == NONE {
        return v;
    }
    let mut x = v;
    while ancestor[ancestor[x]] != NONE {
        path.push(x);
        x = ancestor[x];
    }
    while let Some(y) = path.pop() {
        let a = ancestor[y];
        if semi[label[a]] < semi[label[y]] {
            label[y] = label[a];
        }
        ancestor[y] = ancestor[a];
    }
    label[v]
}

/// Where a slot is defined: `None` for parameters (which dominate everything), else
/// the block and the position in it (phis at 0, instruction `k` at `k + 1`).
fn def_sites(f: &Function) -> Vec<Option<(usize, usize)>> {
    let mut sites = vec![None; f.slot_names.len()];
    for (b, block) in f.blocks.iter().enumerate() {
        let phi_dests = block.phis.iter().map(|p| (p.dest, 0));
        let inst_dests = block
            .insts
            .iter()
            .enumerate()
            .filter_map(|(k, i)| i.dest.map(|d| (d, k + 1)));
        for (slot, pos) in phi_dests.chain(inst_dests) {
            if let Some(s) = sites.get_mut(slot as usize) {
                *s = Some((b, pos));
            }
        }
    }
    sites
}

fn operands(kind: &InstKind) -> Vec<&Operand> {
    match kind {
        InstKind::Field { a, b, .. }
        | InstKind::FieldVec { a, b, .. }
        | InstKind::Shuffle { a, b, .. }
        | InstKind::Int { a, b, .. }
        | InstKind::Icmp { a, b, .. } => vec![a, b],
        InstKind::Extract { v, idx, .. } => vec![v, idx],
        InstKind::Poseidon { state } => vec![state],
        InstKind::Sha256 { a, b } => vec![a, b],
        InstKind::Insert { v, elt, idx, .. } => vec![v, elt, idx],
        InstKind::Select { cond, a, b, .. } => vec![cond, a, b],
        InstKind::Cast { v, .. } | InstKind::Copy { v, .. } => vec![v],
        InstKind::Call { args, .. } => args.iter().map(|(_, o)| o).collect(),
        InstKind::Alloca { .. } => Vec::new(),
        InstKind::Load { ptr, .. } | InstKind::Lifetime { ptr, .. } => vec![ptr],
        InstKind::Store { v, ptr, .. } => vec![v, ptr],
        InstKind::Gep { ptr, indices, .. } => std::iter::once(ptr)
            .chain(indices.iter().map(|(_, o)| o))
            .collect(),
        InstKind::MemOp {
            dst, src, set, len, ..
        } => [Some(dst), src.as_ref(), set.as_ref(), Some(len)]
            .into_iter()
            .flatten()
            .collect(),
        InstKind::IcmpPtr { a, b, .. } | InstKind::IcmpField { a, b, .. } => vec![a, b],
    }
}

fn term_operands(t: &Term) -> Vec<&Operand> {
    match t {
        Term::CondBr { cond, .. } => vec![cond],
        Term::Switch { v, .. } => vec![v],
        Term::Ret(Some((_, v))) => vec![v],
        Term::Br(_) | Term::Ret(None) | Term::Unreachable => Vec::new(),
    }
}

/// Checks the SSA dominance rule for every use in reachable blocks of `f`.
pub fn check(f: &Function) -> Result<(), CompileError> {
    let n = f.blocks.len();
    let in_range = |b: BlockId| (b as usize) < n;
    let succ: Vec<Vec<usize>> = f
        .blocks
        .iter()
        .map(|b| {
            successors(b)
                .into_iter()
                .filter(|&s| in_range(s))
                .map(|s| s as usize)
                .collect()
        })
        .collect();
    if !in_range(f.entry) {
        return Ok(());
    }
    let dom = dominators(n, &succ, f.entry as usize);
    let sites = def_sites(f);
    let fail = |slot: u32, line: usize| {
        let name = f
            .slot_names
            .get(slot as usize)
            .map(|s| excerpt(s))
            .unwrap_or_default();
        Err(CompileError::at(line, ErrorKind::UseBeforeDefinition(name)))
    };
    // Whether the definition of `slot` is available at position `pos` of block `b`.
    let available =
        |slot: u32, b: usize, pos: usize| match sites.get(slot as usize).copied().flatten() {
            None => true,
            Some((d, dpos)) => (d == b && dpos < pos) || (d != b && dom.dominates(d, b)),
        };
    for (b, block) in f.blocks.iter().enumerate() {
        if !dom.reachable(b) {
            continue;
        }
        for phi in &block.phis {
            for (op, pred) in &phi.incoming {
                let p = *pred as usize;
                if let Operand::Slot(s) = op {
                    // A phi reads its operand at the end of the predecessor.
                    if dom.reachable(p) && !available(*s, p, usize::MAX) {
                        return fail(*s, phi.line);
                    }
                }
            }
        }
        for (k, inst) in block.insts.iter().enumerate() {
            for op in operands(&inst.kind) {
                if let Operand::Slot(s) = op {
                    if !available(*s, b, k + 1) {
                        return fail(*s, inst.line);
                    }
                }
            }
        }
        for op in term_operands(&block.term) {
            if let Operand::Slot(s) = op {
                if !available(*s, b, usize::MAX) {
                    return fail(*s, block.term_line);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominators_of_a_diamond_with_a_loop() {
        // 0 -> 1 -> {2, 3} -> 4 -> 1 ; 5 unreachable
        let succ = vec![vec![1], vec![2, 3], vec![4], vec![4], vec![1], vec![4]];
        let d = dominators(6, &succ, 0);
        assert!(d.dominates(0, 4) && d.dominates(1, 4) && d.dominates(1, 1));
        assert!(!d.dominates(2, 4) && !d.dominates(3, 4) && !d.dominates(4, 1));
        assert!(!d.reachable(5) && !d.dominates(5, 4));
    }

    #[test]
    fn long_chains_with_back_edges_are_fast() {
        let n = 200_000;
        let succ: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1, 0] } else { vec![0] })
            .collect();
        let d = dominators(n, &succ, 0);
        assert!(d.dominates(10, n - 1) && !d.dominates(n - 1, 10));
    }
}
