//! The element-wise step of narrow-float lanes (fp16, bf16, fp8, `e<E>m<M>` of at most 16
//! bits) for all lanes of one unit in one loop: the operations of [`super::cell::float_unit`]
//! for the plan shape where every rounding is a [`FloatFormat`]'s, every activation a table and
//! there are no peepholes. Sixteen lanes at a time on AVX-512 (chosen at run time): the
//! branch-free `FloatFormat::round` and `encode` written in vector integer operations, the
//! tables read by gathers; a plain loop elsewhere. The same operations in the same order, so
//! the same bits: `tests::equals_float_unit` compares both with `float_unit` on random cells.

use super::cell::{add, mul};
use super::plan::{Act, CellPlan};
use crate::format::{FloatFormat, Resolved};

/// A table activation over the codes of a float format.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    pub input: FloatFormat,
    pub values: &'a [f32],
}

impl Table<'_> {
    /// The entry of `v`, a value of the input format. Its code is below the table's length
    /// (a power of two); the mask only keeps the read inside the table.
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        let i = self.input.encode(v) as usize & (self.values.len() - 1);
        // SAFETY: `values.len()` is a power of two (checked in `Narrow::of`), so i < len.
        unsafe { *self.values.get_unchecked(i) }
    }
}

/// The formats and tables of a cell this module can run.
#[derive(Clone, Copy)]
pub(crate) struct Narrow<'a> {
    pub pre: FloatFormat,
    pub c: FloatFormat,
    pub h: FloatFormat,
    pub sigmoid: Table<'a>,
    pub tanh_pre: Table<'a>,
    pub tanh_c: Table<'a>,
}

impl<'a> Narrow<'a> {
    /// `None` unless the pre-activation, cell and hidden formats are narrow floats, every
    /// activation is a table over a narrow float and the cell has no peepholes.
    pub fn of(p: &'a CellPlan) -> Option<Self> {
        let float = |r: Resolved| match r {
            Resolved::Float(f) => Some(f),
            _ => None,
        };
        let table = |a: &'a Act| match a {
            Act::Table { input, values } if values.len().is_power_of_two() => Some(Table {
                input: float(*input)?,
                values,
            }),
            _ => None,
        };
        if p.peep.is_some() {
            return None;
        }
        let f = &p.formats;
        Some(Narrow {
            pre: float(f.pre)?,
            c: float(f.c)?,
            h: float(f.h)?,
            sigmoid: table(&p.sigmoid)?,
            tanh_pre: table(&p.tanh_pre)?,
            tanh_c: table(&p.tanh_c)?,
        })
    }
}

/// One unit's operands: the four gate sums before the bias (`acc[g]`), the unit's biases and
/// the previous cell values, each at least as long as the lanes stepped.
pub(crate) struct Unit<'a> {
    pub acc: [&'a [f32]; 4],
    pub bias: [f32; 4],
    pub c_prev: &'a [f32],
}

/// The new h and c of lanes `0..h.len()` of one unit.
pub(crate) fn unit(nw: &Narrow, u: &Unit, h: &mut [f32], c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: `avx512()` checked the CPU.
        return unsafe { unit_avx512(nw, u, h, c) };
    }
    lanes(nw, u, h, c)
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    !crate::cpu::portable()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
}

#[cfg(target_arch = "x86_64")]
use super::narrowcell_avx512::unit_avx512;

/// [`super::cell::float_unit`] for every lane, specialised to [`Narrow`] cells.
#[inline(always)]
fn lanes(nw: &Narrow, u: &Unit, h: &mut [f32], c: &mut [f32]) {
    let n = h.len().min(c.len());
    let acc = u.acc.map(|a| &a[..n]);
    let c_prev = &u.c_prev[..n];
    let (h, c) = (&mut h[..n], &mut c[..n]);
    for i in 0..n {
        let [ai, af, ag, ao] = [0, 1, 2, 3].map(|g| add(acc[g][i], u.bias[g]));
        let ig = nw.sigmoid.apply(nw.pre.round(ai));
        let fg = nw.sigmoid.apply(nw.pre.round(af));
        let gg = nw.tanh_pre.apply(nw.pre.round(ag));
        let c_new = nw.c.round(add(mul(fg, c_prev[i]), mul(ig, gg)));
        let og = nw.sigmoid.apply(nw.pre.round(ao));
        let h_new = nw.h.round(mul(og, nw.tanh_c.apply(c_new)));
        h[i] = h_new;
        c[i] = c_new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PrecisionConfig;
    use crate::lstm::builtin::SplitMix64;
    use crate::lstm::{Cell, Direction, Layer, Model};

    /// A one-unit model's plan at `config`, with random weights.
    fn plan(config: &str, rng: &mut SplitMix64) -> CellPlan {
        let (i, hsz) = (3, 5);
        let cell = Cell {
            w: rng.fill(4 * hsz * i, 1.0),
            r: rng.fill(4 * hsz * hsz, 1.0),
            b_ih: rng.fill(4 * hsz, 1.0),
            b_hh: rng.fill(4 * hsz, 1.0),
            peephole: None,
            h0: None,
            c0: None,
        };
        let model = Model {
            name: "t".into(),
            layers: vec![Layer {
                input_size: i,
                hidden_size: hsz,
                direction: Direction::Forward,
                cells: vec![cell],
            }],
            head: None,
        };
        let config: PrecisionConfig = config.parse().expect("a config");
        let p = crate::lstm::eval::Plan::new(&model, config, None).expect("a plan");
        p.layers[0][0].clone()
    }

    type UnitFn = fn(&Narrow, &Unit, &mut [f32], &mut [f32]);

    #[test]
    fn equals_float_unit() {
        let mut rng = SplitMix64::new(11);
        for config in ["fp16", "bf16", "fp8e4m3", "fp8e5m2", "e5m6"] {
            let p = plan(config, &mut rng);
            let nw = Narrow::of(&p).expect("a narrow-float plan");
            let hsz = p.h0.len();
            for scale in [0.01f32, 1.0, 30.0, 1e4] {
                let count = 37;
                let acc: Vec<Vec<f32>> = (0..4)
                    .map(|_| (0..count).map(|_| rng.normal() * scale).collect())
                    .collect();
                let c_prev: Vec<f32> = (0..count).map(|_| rng.normal() * scale).collect();
                for j in 0..hsz {
                    let bias = [0, 1, 2, 3].map(|g| p.b[g * hsz + j]);
                    let u = Unit {
                        acc: [0, 1, 2, 3].map(|g| &acc[g][..]),
                        bias,
                        c_prev: &c_prev,
                    };
                    // The dispatched unit (AVX-512 where the CPU has it) and the plain loop.
                    let paths: [UnitFn; 2] = [unit, lanes];
                    for path in paths {
                        let (mut h, mut c) = (vec![0.0f32; count], vec![0.0f32; count]);
                        path(&nw, &u, &mut h, &mut c);
                        for n in 0..count {
                            let sums = [0, 1, 2, 3].map(|g| add(acc[g][n], bias[g]));
                            let (hn, cn, _) =
                                super::super::cell::float_unit(&p, j, sums, c_prev[n]);
                            assert_eq!(h[n].to_bits(), hn.to_bits(), "{config} h lane {n}");
                            assert_eq!(c[n].to_bits(), cn.to_bits(), "{config} c lane {n}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fixed_point_computed_activations_and_peepholes_are_left_to_float_unit() {
        let mut rng = SplitMix64::new(5);
        assert!(Narrow::of(&plan("fp32", &mut rng)).is_none());
        assert!(Narrow::of(&plan("w=fp16,a=fp16,p=fp32,c=fp16", &mut rng)).is_none());
        let mut p = plan("fp16", &mut rng);
        p.peep = Some(vec![0.5; 15]);
        assert!(Narrow::of(&p).is_none());
    }
}
