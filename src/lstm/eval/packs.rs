//! Weights packed for the batched kernels, once per plan: the first run of a plan packs W and
//! R ([`Packed`] for float lanes, [`ExactProduct`] for integer lanes) and every later run of
//! the same plan (benchmark repetitions, chunked runs, policy lanes) reuses them. A packing is
//! a pure function of the plan's weights, which never change after the plan is built, so a
//! cached packing is the packing a fresh run would make.

use super::exact::ExactProduct;
use super::fused;
use super::gemm::Packed;
use super::pairs::PackedPairs;
use std::sync::OnceLock;

/// A value computed on first use. Cloning gives an empty cache (the clone packs again when
/// used), so plans stay cheap to clone and print.
pub(crate) struct Lazy<T>(OnceLock<T>);

impl<T> Lazy<T> {
    /// The value, made by `make` if no one has made it yet. `make` runs outside the cell's
    /// lock: packing runs rayon tasks, and a thread waiting on them steals other tasks, which
    /// may be blocks of lanes of the same plan asking for the same packing. Inside
    /// `OnceLock::get_or_init` that thread would wait on a lock its own stack holds (a
    /// deadlock seen in the debug test build). Two threads may both pack; the packing is a
    /// pure function of the weights, so either result is the same, and one is kept.
    pub fn get_or(&self, make: impl FnOnce() -> T) -> &T {
        if let Some(v) = self.0.get() {
            return v;
        }
        let _ = self.0.set(make());
        self.0.get().expect("set above or by another thread")
    }
}

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Lazy(OnceLock::new())
    }
}

impl<T> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Lazy::default()
    }
}

impl<T> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.get().is_some() {
            "packed"
        } else {
            "not packed"
        };
        write!(f, "Lazy({state})")
    }
}

impl Lazy<Packed<f32>> {
    /// `v` (`rows x k`, row-major) packed for the float kernels, on first use.
    pub fn packed(&self, v: &[f32], rows: usize) -> &Packed<f32> {
        self.get_or(|| Packed::new(v, rows, v.len() / rows.max(1)))
    }
}

impl Lazy<Option<PackedPairs>> {
    /// `v` (`rows x k`, row-major) packed as bf16 pairs, on first use; `None` where the pair
    /// kernel cannot run it ([`PackedPairs::new`]).
    pub fn packed(&self, v: &[f32], rows: usize) -> Option<&PackedPairs> {
        self.get_or(|| {
            let k = v.len() / rows.max(1);
            super::pairs::available()
                .then(|| PackedPairs::new(v, rows, k, &fused::span(v)))
                .flatten()
        })
        .as_ref()
    }
}

impl Lazy<ExactProduct> {
    /// `codes` (`rows x k`, row-major) packed for exact products with operands of at most
    /// `b_max` in magnitude, on first use.
    pub fn packed(&self, codes: &[i32], rows: usize, b_max: f64) -> &ExactProduct {
        self.get_or(|| ExactProduct::new(codes, rows, codes.len() / rows.max(1), b_max))
    }
}

/// The packed W (`4H x input`) and R (`4H x H`) of a float cell: for the f32 kernels, and as
/// bf16 pairs where every weight fits bf16 ([`super::pairs`]; each packed only when used).
#[derive(Debug, Clone, Default)]
pub(crate) struct FloatPacks {
    pub w: Lazy<Packed<f32>>,
    pub r: Lazy<Packed<f32>>,
    pub w_pairs: Lazy<Option<PackedPairs>>,
    pub r_pairs: Lazy<Option<PackedPairs>>,
}

/// The packed W and R codes of an integer cell.
#[derive(Debug, Clone, Default)]
pub(crate) struct IntPacks {
    pub w: Lazy<ExactProduct>,
    pub r: Lazy<ExactProduct>,
}
