//! Memory with addresses known at compile time: what `alloca`, `load`, `store`,
//! `getelementptr` and the `llvm.mem*` intrinsics act on during symbolic execution.
//!
//! Memory is a set of objects (one per `alloca`, `byval` copy or pointer input), each
//! a row of typed cells: one per field element, integer or pointer, in the order the
//! object's type lays them out ([`MemTy::cell_kinds`]). A pointer is an object and a
//! cell offset, both known at compile time (integers never depend on circuit inputs),
//! so every load and store resolves to one cell and a circuit with memory still
//! unrolls into a straight-line program: memory costs no constraints at all.
//!
//! Byte-level operations (`llvm.memcpy`, `llvm.memset`, `getelementptr i8`) are mapped
//! onto cells only when that is unambiguous: the bytes must span whole cells of one
//! kind. An integer's size is its LLVM store size; a field element's size in memory
//! differs between zkLLVM versions (4 bytes in the IR of the original market's
//! statements), so it is learnt from the module: from an `llvm.lifetime.start` of a
//! field array (which states the whole object's size), or from a copy or fill that
//! covers a whole field array. Until then byte operations on field memory are refused,
//! never guessed.
//!
//! Everything is bounded: cells per object ([`MAX_TYPE_CELLS`]), objects per
//! compilation, and live cells (charged by the caller against its frame cap).
//! Reading a cell never written, reading with another type than the one written,
//! or touching memory outside its object or after its function returned is an error
//! naming the operation.

use crate::circuit::builder::FVal;
use crate::circuit::error::ErrorKind;
use crate::circuit::ir::{CellKind, MemTy, MAX_TYPE_CELLS};

/// Sizes a field element may take in memory; anything else is taken as evidence of a
/// partial copy, not of the size.
const FIELD_SIZES: &[u64] = &[4, 8, 16, 32];

/// An address: an object and a cell offset (which may be out of the object's bounds
/// until it is used, as LLVM allows for one-past-the-end pointers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr {
    /// The object; [`Ptr::NULL_OBJECT`] for `null`.
    pub obj: u32,
    /// Cells from the start of the object.
    pub off: i64,
}

impl Ptr {
    /// The object id of `null`.
    pub const NULL_OBJECT: u32 = u32::MAX;
    /// The `null` pointer.
    pub const NULL: Ptr = Ptr {
        obj: Ptr::NULL_OBJECT,
        off: 0,
    };
}

/// What one cell holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// A field element (a constant or a program wire).
    Field(FVal),
    /// An integer of `bits` bits.
    Int {
        /// The width.
        bits: u32,
        /// The value.
        v: u64,
    },
    /// A pointer.
    Ptr(Ptr),
}

impl Scalar {
    fn kind(&self) -> CellKind {
        match self {
            Scalar::Field(_) => CellKind::Field,
            Scalar::Int { bits, .. } => CellKind::Int(*bits),
            Scalar::Ptr(_) => CellKind::Ptr,
        }
    }

    /// The value all-zero bytes stand for in a cell of `kind`.
    fn zero(kind: CellKind) -> Scalar {
        match kind {
            CellKind::Field => Scalar::Field(FVal::Const(Default::default())),
            CellKind::Int(bits) => Scalar::Int { bits, v: 0 },
            CellKind::Ptr => Scalar::Ptr(Ptr::NULL),
        }
    }
}

fn kind_name(k: CellKind) -> String {
    match k {
        CellKind::Field => MemTy::Field.to_string(),
        CellKind::Int(b) => format!("i{b}"),
        CellKind::Ptr => "ptr".into(),
    }
}

/// LLVM's store size of an integer of `bits` bits (`i1` and `i8` take a byte, `i24`
/// four, ...).
fn int_bytes(bits: u32) -> u64 {
    u64::from(bits.div_ceil(8)).next_power_of_two()
}

#[derive(Debug)]
struct Object {
    kinds: Vec<CellKind>,
    cells: Vec<Option<Scalar>>,
    live: bool,
}

/// All objects of one compilation.
#[derive(Debug)]
pub struct Memory {
    objects: Vec<Object>,
    max_objects: usize,
    field_bytes: Option<u64>,
}

fn ub(msg: String) -> ErrorKind {
    ErrorKind::UndefinedBehaviour(msg)
}

impl Memory {
    /// Empty memory that will hold at most `max_objects` objects over its life.
    pub fn new(max_objects: usize) -> Self {
        Memory {
            objects: Vec::new(),
            max_objects,
            field_bytes: None,
        }
    }

    /// A new object with cells of `kinds`, uninitialised, or `init` if given (which
    /// must have the same length and kinds).
    pub fn alloc(
        &mut self,
        kinds: Vec<CellKind>,
        init: Option<Vec<Scalar>>,
    ) -> Result<Ptr, ErrorKind> {
        if self.objects.len() >= self.max_objects {
            let msg = format!("more than {} memory objects", self.max_objects);
            return Err(ErrorKind::Unsupported(msg));
        }
        if kinds.len() as u64 > MAX_TYPE_CELLS {
            let msg = format!("a memory object of more than {MAX_TYPE_CELLS} elements");
            return Err(ErrorKind::Unsupported(msg));
        }
        let cells = match init {
            Some(v) if v.len() == kinds.len() => v.into_iter().map(Some).collect(),
            Some(_) => return Err(ErrorKind::TypeMismatch("object initialiser".into())),
            None => vec![None; kinds.len()],
        };
        let obj = self.objects.len() as u32;
        self.objects.push(Object {
            kinds,
            cells,
            live: true,
        });
        Ok(Ptr { obj, off: 0 })
    }

    /// Frees an object (its function returned); returns how many cells it held.
    pub fn free(&mut self, obj: u32) -> usize {
        match self.objects.get_mut(obj as usize) {
            Some(o) if o.live => {
                o.live = false;
                let n = o.cells.len();
                o.cells = Vec::new();
                o.kinds = Vec::new();
                n
            }
            _ => 0,
        }
    }

    fn object(&self, p: Ptr, what: &str) -> Result<&Object, ErrorKind> {
        if p.obj == Ptr::NULL_OBJECT {
            return Err(ub(format!("{what} through a null pointer")));
        }
        match self.objects.get(p.obj as usize) {
            Some(o) if o.live => Ok(o),
            Some(_) => Err(ub(format!("{what} of memory whose function has returned"))),
            None => Err(ub(format!("{what} through an invalid pointer"))),
        }
    }

    /// The cell range `[p.off, p.off + n)` of `p`'s object, checked.
    fn range(&self, p: Ptr, n: u64, what: &str) -> Result<std::ops::Range<usize>, ErrorKind> {
        let o = self.object(p, what)?;
        let len = o.cells.len() as u64;
        match u64::try_from(p.off) {
            Ok(start) if start.checked_add(n).is_some_and(|end| end <= len) => {
                Ok(start as usize..(start + n) as usize)
            }
            _ => Err(ub(format!(
                "{what} of {n} element(s) at element {} of an object of {len}",
                p.off
            ))),
        }
    }

    /// Reads `kinds.len()` cells at `p`, which must have been written with these kinds.
    pub fn load(&self, p: Ptr, kinds: &[CellKind]) -> Result<Vec<Scalar>, ErrorKind> {
        let r = self.range(p, kinds.len() as u64, "load")?;
        let o = self.object(p, "load")?;
        let mut out = Vec::with_capacity(kinds.len());
        for (i, &want) in r.zip(kinds) {
            let have = o.kinds.get(i).copied();
            if have != Some(want) {
                return Err(ErrorKind::TypeMismatch(format!(
                    "load of `{}` from memory laid out as `{}`",
                    kind_name(want),
                    have.map_or("?".into(), kind_name)
                )));
            }
            match o.cells.get(i).copied().flatten() {
                Some(v) => out.push(v),
                None => {
                    return Err(ub(format!(
                        "load of memory never written (element {i} of its object)"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Writes `vals` at `p`; each must match the cell's kind.
    pub fn store(&mut self, p: Ptr, vals: &[Scalar]) -> Result<(), ErrorKind> {
        let r = self.range(p, vals.len() as u64, "store")?;
        let o = self
            .objects
            .get_mut(p.obj as usize)
            .ok_or_else(|| ub("store through an invalid pointer".into()))?;
        for (i, v) in r.zip(vals) {
            let have = o.kinds.get(i).copied();
            if have != Some(v.kind()) {
                return Err(ErrorKind::TypeMismatch(format!(
                    "store of `{}` into memory laid out as `{}`",
                    kind_name(v.kind()),
                    have.map_or("?".into(), kind_name)
                )));
            }
            if let Some(c) = o.cells.get_mut(i) {
                *c = Some(*v);
            }
        }
        Ok(())
    }

    /// `p` moved by `cells` cells (`getelementptr` over a typed layout).
    pub fn offset(p: Ptr, cells: i64) -> Result<Ptr, ErrorKind> {
        let off = p
            .off
            .checked_add(cells)
            .filter(|o| o.unsigned_abs() <= MAX_TYPE_CELLS * 2)
            .ok_or_else(|| ub("address arithmetic far outside any object".into()))?;
        Ok(Ptr { obj: p.obj, off })
    }

    fn cell_bytes(&self, k: CellKind) -> Option<u64> {
        match k {
            CellKind::Field => self.field_bytes,
            CellKind::Int(b) => Some(int_bytes(b)),
            CellKind::Ptr => Some(8),
        }
    }

    /// The number of cells `bytes` bytes span from `p` (backwards when negative). The
    /// bytes must cover whole cells, each at a byte offset that is a multiple of its
    /// size (so no padding can be hiding between them).
    fn cells_for_bytes(&self, p: Ptr, bytes: i64, what: &str) -> Result<i64, ErrorKind> {
        if bytes == 0 {
            return Ok(0);
        }
        let o = self.object(p, what)?;
        let n = bytes.unsigned_abs();
        let step: i64 = if bytes > 0 { 1 } else { -1 };
        let mut i = if bytes > 0 { p.off } else { p.off - 1 };
        let (mut acc, mut cells) = (0u64, 0i64);
        while acc < n {
            let kind = usize::try_from(i)
                .ok()
                .and_then(|i| o.kinds.get(i).copied())
                .ok_or_else(|| {
                    ub(format!(
                        "{what} of {n} bytes runs outside its object of {} elements",
                        o.kinds.len()
                    ))
                })?;
            let size = self.cell_bytes(kind).ok_or_else(|| {
                ErrorKind::Unsupported(format!(
                    "{what} in bytes over field elements before their size in memory is \
                     known (it is learnt from `llvm.lifetime.start` or a copy of a whole \
                     field array)"
                ))
            })?;
            if acc % size != 0 {
                return Err(ErrorKind::Unsupported(format!(
                    "{what} of {n} bytes over memory whose layout may hold padding (a `{}` at byte {acc})",
                    kind_name(kind)
                )));
            }
            acc += size;
            cells += 1;
            i += step;
        }
        if acc != n {
            return Err(ErrorKind::Unsupported(format!(
                "{what} of {n} bytes ends inside an element"
            )));
        }
        Ok(cells * step)
    }

    /// `getelementptr i8, ptr p, iN bytes`: a byte offset, in cells; also returns how
    /// many cells it walked over (for the caller's step count).
    pub fn byte_offset(&self, p: Ptr, bytes: i64) -> Result<(Ptr, usize), ErrorKind> {
        let cells = self.cells_for_bytes(p, bytes, "byte offset")?;
        Ok((Memory::offset(p, cells)?, cells.unsigned_abs() as usize))
    }

    /// Learns the size of a field element from `bytes` covering the whole object at
    /// `p`, checking it against what is known: the bytes its other cells take are
    /// known, the rest is shared by its field elements.
    fn learn_field_size(&mut self, p: Ptr, bytes: u64) -> Result<(), ErrorKind> {
        let Ok(o) = self.object(p, "size") else {
            return Ok(());
        };
        if p.off != 0 {
            return Ok(());
        }
        let fields = o.kinds.iter().filter(|&&k| k == CellKind::Field).count() as u64;
        let other: u64 = o
            .kinds
            .iter()
            .filter_map(|&k| match k {
                CellKind::Field => None,
                k => self.cell_bytes(k),
            })
            .sum();
        let Some(rest) = bytes.checked_sub(other) else {
            return Ok(());
        };
        if fields == 0 || rest % fields != 0 || !FIELD_SIZES.contains(&(rest / fields)) {
            return Ok(());
        }
        let size = rest / fields;
        match self.field_bytes {
            None => {
                self.field_bytes = Some(size);
                Ok(())
            }
            Some(s) if s == size => Ok(()),
            Some(s) => Err(ErrorKind::Unsupported(format!(
                "field elements take {s} bytes in memory elsewhere in this module, {size} here"
            ))),
        }
    }

    /// `llvm.lifetime.start(size, p)`: the object at `p` takes `size` bytes.
    pub fn lifetime(&mut self, p: Ptr, size: u64) -> Result<(), ErrorKind> {
        if size == u64::MAX {
            return Ok(()); // "unknown size"
        }
        self.learn_field_size(p, size)
    }

    /// The field size learnt so far, in bytes.
    pub fn field_bytes(&self) -> Option<u64> {
        self.field_bytes
    }

    /// Learns the field size from a byte operation covering whole field arrays: the
    /// destination (and the source of a copy) must be whole objects of the same
    /// number of field elements.
    fn learn_from_whole(&mut self, dst: Ptr, src: Option<Ptr>, len: u64) -> Result<(), ErrorKind> {
        if self.field_bytes.is_some() {
            return Ok(());
        }
        let cells = |p: Ptr| self.object(p, "copy").map(|o| o.cells.len()).ok();
        let same = match src {
            Some(s) => s.off == 0 && cells(s) == cells(dst),
            None => true,
        };
        if same {
            self.learn_field_size(dst, len)?;
        }
        Ok(())
    }

    /// `llvm.memcpy` / `llvm.memmove` of `len` bytes from `src` to `dst` (returns the
    /// cells copied, for the caller's step count).
    pub fn copy(&mut self, dst: Ptr, src: Ptr, len: u64) -> Result<usize, ErrorKind> {
        if len == 0 {
            return Ok(0);
        }
        self.learn_from_whole(dst, Some(src), len)?;
        let bytes = i64::try_from(len).map_err(|_| ub("copy of more than 2^63 bytes".into()))?;
        let n = self.cells_for_bytes(dst, bytes, "copy")? as u64;
        let n_src = self.cells_for_bytes(src, bytes, "copy")? as u64;
        let r_src = self.range(src, n_src, "copy")?;
        let r_dst = self.range(dst, n, "copy")?;
        let s = self.object(src, "copy")?;
        let kinds_src = s.kinds.get(r_src.clone()).unwrap_or_default().to_vec();
        let vals: Vec<Option<Scalar>> = s.cells.get(r_src).unwrap_or_default().to_vec();
        let d = self.object(dst, "copy")?;
        if d.kinds.get(r_dst.clone()) != Some(kinds_src.as_slice()) {
            return Err(ErrorKind::TypeMismatch(
                "copy between memory of different layouts".into(),
            ));
        }
        let d = self
            .objects
            .get_mut(dst.obj as usize)
            .ok_or_else(|| ub("copy through an invalid pointer".into()))?;
        if let Some(cells) = d.cells.get_mut(r_dst) {
            cells.copy_from_slice(&vals);
        }
        Ok(vals.len())
    }

    /// `llvm.memset` of `len` bytes at `dst` to `byte`, which must be zero (the bytes
    /// of a field element have no meaning here); returns the cells set.
    pub fn fill(&mut self, dst: Ptr, byte: u64, len: u64) -> Result<usize, ErrorKind> {
        if len == 0 {
            return Ok(0);
        }
        if byte != 0 {
            let msg = format!("`llvm.memset` to byte {byte} (only zero is meaningful for field elements and integers here)");
            return Err(ErrorKind::Unsupported(msg));
        }
        self.learn_from_whole(dst, None, len)?;
        let bytes = i64::try_from(len).map_err(|_| ub("fill of more than 2^63 bytes".into()))?;
        let n = self.cells_for_bytes(dst, bytes, "fill")? as u64;
        let r = self.range(dst, n, "fill")?;
        let d = self
            .objects
            .get_mut(dst.obj as usize)
            .ok_or_else(|| ub("fill through an invalid pointer".into()))?;
        for i in r {
            if let (Some(c), Some(&k)) = (d.cells.get_mut(i), d.kinds.get(i)) {
                *c = Some(Scalar::zero(k));
            }
        }
        Ok(n as usize)
    }

    /// The kinds of the `n` cells at `p` (for copying a `byval` argument).
    pub fn kinds(&self, p: Ptr, n: u64) -> Result<Vec<CellKind>, ErrorKind> {
        let r = self.range(p, n, "copy")?;
        let o = self.object(p, "copy")?;
        Ok(o.kinds.get(r).unwrap_or_default().to_vec())
    }

    /// The `n` cells at `p` as they are (`None` for unwritten ones).
    pub fn raw(&self, p: Ptr, n: u64) -> Result<Vec<Option<Scalar>>, ErrorKind> {
        let r = self.range(p, n, "copy")?;
        let o = self.object(p, "copy")?;
        Ok(o.cells.get(r).unwrap_or_default().to_vec())
    }

    /// A new object holding a copy of the `n` cells at `p` (a `byval` argument).
    pub fn duplicate(&mut self, p: Ptr, n: u64) -> Result<Ptr, ErrorKind> {
        let kinds = self.kinds(p, n)?;
        let cells = self.raw(p, n)?;
        let q = self.alloc(kinds, None)?;
        if let Some(o) = self.objects.get_mut(q.obj as usize) {
            o.cells = cells;
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::program::{Fe, Wire};

    fn field(i: u64) -> Scalar {
        Scalar::Field(FVal::Const(Fe::from(i)))
    }

    fn fields(n: usize) -> Vec<CellKind> {
        vec![CellKind::Field; n]
    }

    #[test]
    fn loads_see_stores_and_refuse_everything_else() {
        let mut m = Memory::new(16);
        let p = m.alloc(fields(4), None).unwrap();
        let e = m.load(p, &[CellKind::Field]).unwrap_err();
        assert!(e.to_string().contains("never written"), "{e}");
        let w = Scalar::Field(FVal::Wire(Wire(3)));
        m.store(Memory::offset(p, 2).unwrap(), &[w]).unwrap();
        assert_eq!(
            m.load(Memory::offset(p, 2).unwrap(), &[CellKind::Field]),
            Ok(vec![w])
        );
        let e = m
            .load(Memory::offset(p, 4).unwrap(), &[CellKind::Field])
            .unwrap_err();
        assert!(
            e.to_string().contains("at element 4 of an object of 4"),
            "{e}"
        );
        let e = m
            .load(Memory::offset(p, -1).unwrap(), &[CellKind::Field])
            .unwrap_err();
        assert!(matches!(e, ErrorKind::UndefinedBehaviour(_)));
        let e = m.store(p, &[Scalar::Int { bits: 32, v: 1 }]).unwrap_err();
        assert!(
            e.to_string()
                .contains("store of `i32` into memory laid out as"),
            "{e}"
        );
        assert!(m.load(Ptr::NULL, &[CellKind::Field]).is_err());
        assert_eq!(m.free(p.obj), 4);
        let e = m
            .load(Memory::offset(p, 2).unwrap(), &[CellKind::Field])
            .unwrap_err();
        assert!(e.to_string().contains("function has returned"), "{e}");
        let mut small = Memory::new(1);
        small.alloc(fields(1), None).unwrap();
        assert!(small.alloc(fields(1), None).is_err());
        assert!(Memory::offset(p, i64::MAX).is_err());
    }

    #[test]
    fn byte_operations_wait_for_the_field_size_and_then_map_to_cells() {
        let mut m = Memory::new(16);
        let a = m
            .alloc(fields(4), Some((1..=4).map(field).collect()))
            .unwrap();
        let b = m.alloc(fields(4), None).unwrap();
        // A partial copy cannot tell the size of a field element: refused.
        assert!(m.copy(b, a, 8).is_err());
        assert_eq!(m.field_bytes(), None);
        // The lifetime of a whole 4-element array that takes 128 bytes: 32 each.
        m.lifetime(b, 128).unwrap();
        assert_eq!(m.field_bytes(), Some(32));
        assert_eq!(m.copy(b, a, 64), Ok(2));
        assert_eq!(m.load(b, &fields(2)), Ok(vec![field(1), field(2)]));
        assert!(m.load(Memory::offset(b, 2).unwrap(), &fields(1)).is_err());
        let (q, walked) = m.byte_offset(a, 96).unwrap();
        assert_eq!((q.off, walked), (3, 3));
        assert_eq!(m.byte_offset(q, -64).unwrap().0.off, 1);
        assert!(m.byte_offset(a, 40).is_err());
        assert_eq!(m.fill(a, 0, 128), Ok(4));
        assert_eq!(m.load(a, &fields(1)), Ok(vec![field(0)]));
        assert!(m.fill(a, 1, 32).is_err());
        assert!(m.copy(b, a, 160).is_err());
        // Another size stated later is a contradiction, named.
        let c = m.alloc(fields(2), None).unwrap();
        let e = m.lifetime(c, 8).unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
    }

    #[test]
    fn a_whole_array_copy_tells_the_field_size() {
        let mut m = Memory::new(16);
        let a = m
            .alloc(fields(49), Some((0..49).map(field).collect()))
            .unwrap();
        let b = m.alloc(fields(49), None).unwrap();
        assert_eq!(m.copy(b, a, 196), Ok(49));
        assert_eq!(m.field_bytes(), Some(4));
        assert_eq!(
            m.load(Memory::offset(b, 48).unwrap(), &fields(1)),
            Ok(vec![field(48)])
        );
        // Integers have their own sizes and need nothing learnt.
        let mut m = Memory::new(4);
        let i = m.alloc(vec![CellKind::Int(32); 4], None).unwrap();
        assert_eq!(m.fill(i, 0, 16), Ok(4));
        assert_eq!(m.byte_offset(i, 8).unwrap().0.off, 2);
        assert_eq!(
            m.load(Memory::offset(i, 3).unwrap(), &[CellKind::Int(32)]),
            Ok(vec![Scalar::Int { bits: 32, v: 0 }])
        );
        // A struct of an integer and fields: its size tells the fields' share; a
        // field right after the integer could follow padding, so byte walks refuse it.
        let mut m = Memory::new(4);
        let s = m
            .alloc(
                vec![CellKind::Int(64), CellKind::Field, CellKind::Field],
                None,
            )
            .unwrap();
        m.lifetime(s, 72).unwrap();
        assert_eq!(m.field_bytes(), Some(32));
        let e = m.fill(s, 0, 72).unwrap_err();
        assert!(e.to_string().contains("may hold padding"), "{e}");
        let t = m
            .alloc(
                vec![CellKind::Field, CellKind::Field, CellKind::Int(64)],
                None,
            )
            .unwrap();
        assert_eq!(m.fill(t, 0, 72), Ok(3));
        assert!(m
            .fill(t, 0, 80)
            .unwrap_err()
            .to_string()
            .contains("runs outside"));
    }

    #[test]
    fn layouts_flatten_in_order() {
        let arr = MemTy::array(3, MemTy::FieldVec(2)).unwrap();
        let s = MemTy::structure(vec![MemTy::Int(64), arr.clone(), MemTy::Ptr]).unwrap();
        assert_eq!(s.cells(), 8);
        let mut kinds = Vec::new();
        s.cell_kinds(&mut kinds);
        assert_eq!(kinds.len(), 8);
        assert_eq!(kinds[0], CellKind::Int(64));
        assert!(kinds[1..7].iter().all(|&k| k == CellKind::Field));
        assert_eq!(kinds[7], CellKind::Ptr);
        assert!(arr.all_field() && !s.all_field());
        assert!(MemTy::array(1 << 20, MemTy::FieldVec(2)).is_none());
        assert_eq!(int_bytes(1), 1);
        assert_eq!(int_bytes(24), 4);
        assert_eq!(int_bytes(64), 8);
    }
}
