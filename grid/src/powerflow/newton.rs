//! Newton–Raphson in polar form for any topology, with faer's sparse LU.
//!
//! Unknowns: θ at PV and PQ buses, ΔV/V at PQ buses (column-scaled polar Newton, as MATPOWER).
//! The Jacobian's sparsity pattern is fixed by the network, so the CSC structure, the position of
//! every entry and the symbolic LU (COLAMD ordering) are computed once in [`SparseNewton::new`];
//! each iteration only refills values and refactorises numerically into preallocated storage.

use super::{Injection, NrCore, PowerFlowError, Solution, SolveInfo};
use crate::network::BusKind;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::sparse::linalg::lu::{factorize_symbolic_lu, NumericLu, SymbolicLu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMat};
use faer::{Conj, MatMut, Par};

const NONE: usize = usize::MAX;

pub(super) struct SparseNewton {
    core: NrCore,
    /// Unknown index of θ_i (NONE at the slack) and of ΔV_i/V_i (NONE unless PQ).
    ang: Vec<usize>,
    mag: Vec<usize>,
    nvar: usize,
    symbolic: SymbolicSparseColMat<usize>,
    values: Vec<f64>,
    /// Positions in `values` of each bus's diagonal block entries (row-major 2×2; NONE if absent).
    pos_diag: Vec<[usize; 4]>,
    /// Positions of the (from, to) and (to, from) blocks of each edge.
    pos_ft: Vec<[usize; 4]>,
    pos_tf: Vec<[usize; 4]>,
    lu_symbolic: SymbolicLu<usize>,
    lu_numeric: NumericLu<usize, f64>,
    mem: MemBuffer,
    rhs: Vec<f64>,
}

impl std::fmt::Debug for SparseNewton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseNewton").field("unknowns", &self.nvar).field("nnz", &self.values.len()).finish()
    }
}

impl Clone for SparseNewton {
    fn clone(&self) -> Self {
        let req = self.mem_req();
        SparseNewton {
            core: self.core.clone(),
            ang: self.ang.clone(),
            mag: self.mag.clone(),
            nvar: self.nvar,
            symbolic: self.symbolic.clone(),
            values: self.values.clone(),
            pos_diag: self.pos_diag.clone(),
            pos_ft: self.pos_ft.clone(),
            pos_tf: self.pos_tf.clone(),
            lu_symbolic: self.lu_symbolic.clone(),
            lu_numeric: NumericLu::new(),
            mem: MemBuffer::new(req),
            rhs: self.rhs.clone(),
        }
    }
}

impl SparseNewton {
    fn mem_req(&self) -> StackReq {
        StackReq::any_of(&[
            self.lu_symbolic.factorize_numeric_lu_scratch::<f64>(Par::Seq, Default::default()),
            self.lu_symbolic.solve_in_place_scratch::<f64>(1, Par::Seq),
        ])
    }

    pub(super) fn new(core: NrCore) -> Result<SparseNewton, PowerFlowError> {
        let n = core.n;
        let mut ang = vec![NONE; n];
        let mut mag = vec![NONE; n];
        let mut nvar = 0;
        for i in 0..n {
            if i != core.slack {
                ang[i] = nvar;
                nvar += 1;
            }
        }
        for i in 0..n {
            if i != core.slack && core.kind[i] == BusKind::Pq {
                mag[i] = nvar;
                nvar += 1;
            }
        }
        // Triplets (col, row, slot); slot = index into a flat list of block entries.
        let mut trip: Vec<(usize, usize, usize)> = Vec::new();
        let mut slot = 0usize;
        let mut block = |i: usize, k: usize, trip: &mut Vec<(usize, usize, usize)>| -> [usize; 4] {
            let rows = [ang[i], mag[i]];
            let cols = [ang[k], mag[k]];
            let mut out = [NONE; 4];
            for (a, &r) in rows.iter().enumerate() {
                for (b, &c) in cols.iter().enumerate() {
                    if r != NONE && c != NONE {
                        trip.push((c, r, slot));
                        out[2 * a + b] = slot;
                        slot += 1;
                    }
                }
            }
            out
        };
        let slot_diag: Vec<[usize; 4]> = (0..n).map(|i| block(i, i, &mut trip)).collect();
        let mut slot_ft = Vec::with_capacity(core.edges.len());
        let mut slot_tf = Vec::with_capacity(core.edges.len());
        for e in &core.edges {
            slot_ft.push(block(e.from, e.to, &mut trip));
            slot_tf.push(block(e.to, e.from, &mut trip));
        }
        trip.sort_unstable();
        let nnz = trip.len();
        let mut col_ptr = vec![0usize; nvar + 1];
        let mut row_idx = Vec::with_capacity(nnz);
        let mut slot_pos = vec![0usize; nnz];
        for (p, &(c, r, s)) in trip.iter().enumerate() {
            col_ptr[c + 1] += 1;
            row_idx.push(r);
            slot_pos[s] = p;
        }
        for c in 0..nvar {
            col_ptr[c + 1] += col_ptr[c];
        }
        let map = |b: &[usize; 4]| b.map(|s| if s == NONE { NONE } else { slot_pos[s] });
        let pos_diag = slot_diag.iter().map(map).collect();
        let pos_ft = slot_ft.iter().map(map).collect();
        let pos_tf = slot_tf.iter().map(map).collect();
        let symbolic = SymbolicSparseColMat::new_checked(nvar, nvar, col_ptr, None, row_idx);
        let lu_symbolic = factorize_symbolic_lu(symbolic.as_ref(), Default::default())
            .map_err(|e| PowerFlowError::Singular(format!("symbolic LU: {e:?}")))?;
        let mut s = SparseNewton {
            core,
            ang,
            mag,
            nvar,
            symbolic,
            values: vec![0.0; nnz],
            pos_diag,
            pos_ft,
            pos_tf,
            lu_symbolic,
            lu_numeric: NumericLu::new(),
            mem: MemBuffer::new(StackReq::EMPTY),
            rhs: vec![0.0; nvar],
        };
        s.mem = MemBuffer::new(s.mem_req());
        Ok(s)
    }

    fn put(values: &mut [f64], pos: &[usize; 4], blk: [f64; 4]) {
        for k in 0..4 {
            if pos[k] != NONE {
                values[pos[k]] = blk[k];
            }
        }
    }

    pub(super) fn solve(&mut self, inj: &Injection, sol: &mut Solution) -> Result<SolveInfo, PowerFlowError> {
        self.core.check(inj)?;
        let _warm = self.core.start(sol);
        let mut it = 0u32;
        loop {
            let worst = self.core.mismatch(inj);
            if worst <= self.core.tol_pu {
                return Ok(self.core.info(it, worst));
            }
            if it >= self.core.max_iter || !worst.is_finite() || worst > 1e10 {
                return Err(PowerFlowError::Diverged { iterations: it, max_mismatch_pu: worst });
            }
            let core = &self.core;
            for i in 0..core.n {
                if i == core.slack {
                    continue;
                }
                Self::put(&mut self.values, &self.pos_diag[i], core.diag_block_of(i));
                if self.ang[i] != NONE {
                    self.rhs[self.ang[i]] = core.mis[i].re;
                }
                if self.mag[i] != NONE {
                    self.rhs[self.mag[i]] = core.mis[i].im;
                }
            }
            for (k, e) in core.edges.iter().enumerate() {
                let (f, t) = (e.from, e.to);
                Self::put(&mut self.values, &self.pos_ft[k], NrCore::off_block(core.v[f] * (e.y_ft * core.v[t]).conj()));
                Self::put(&mut self.values, &self.pos_tf[k], NrCore::off_block(core.v[t] * (e.y_tf * core.v[f]).conj()));
            }
            let stack = MemStack::new(&mut self.mem);
            let a = SparseColMatRef::new(self.symbolic.as_ref(), &self.values);
            let lu = self
                .lu_symbolic
                .factorize_numeric_lu(&mut self.lu_numeric, a, Par::Seq, stack, Default::default())
                .map_err(|e| PowerFlowError::Singular(format!("Jacobian LU: {e:?}")))?;
            let rhs = MatMut::from_column_major_slice_mut(&mut self.rhs, self.nvar, 1);
            lu.solve_in_place_with_conj(Conj::No, rhs, Par::Seq, MemStack::new(&mut self.mem));
            for i in 0..self.core.n {
                let dtheta = if self.ang[i] != NONE { self.rhs[self.ang[i]] } else { 0.0 };
                let dlnv = if self.mag[i] != NONE { self.rhs[self.mag[i]] } else { 0.0 };
                if self.ang[i] != NONE {
                    self.core.step(sol, i, dtheta, dlnv);
                }
            }
            it += 1;
        }
    }
}
