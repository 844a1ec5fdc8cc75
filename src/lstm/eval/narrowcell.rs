//! The element-wise step of narrow-float lanes (fp16, bf16, fp8, `e<E>m<M>` of at most 16
//! bits) for all lanes of one unit in one loop: the operations of [`super::cell::float_unit`]
//! for the plan shape where every rounding is a [`FloatFormat`]'s, every activation a table and
//! there are no peepholes. Sixteen lanes at a time on AVX-512, eight on AVX2 (chosen at run
//! time): the branch-free `FloatFormat::round` and `encode` written in vector integer
//! operations, the tables read by gathers; a plain loop elsewhere. The same operations in the
//! same order, so the same bits: `tests::equals_float_unit` compares every path the machine
//! has with `float_unit` on random cells.

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
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2() {
        // SAFETY: `cpu::avx2()` checked the CPU.
        return unsafe { unit_avx2(nw, u, h, c) };
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
use super::narrowcell_avx2::unit_avx2;
#[cfg(target_arch = "x86_64")]
use super::narrowcell_avx512::unit_avx512;

/// [`super::cell::float_unit`] for every lane, specialised to [`Narrow`] cells (also the
/// tail of [`unit_avx2`]).
#[inline(always)]
pub(super) fn lanes(nw: &Narrow, u: &Unit, h: &mut [f32], c: &mut [f32]) {
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
            fixed: Default::default(),
            embedding: None,
        };
        let config: PrecisionConfig = config.parse().expect("a config");
        let p = crate::lstm::eval::Plan::new(&model, config, None).expect("a plan");
        p.layers[0][0].clone()
    }

    type UnitFn = fn(&Narrow, &Unit, &mut [f32], &mut [f32]);

    /// Every implementation this machine runs: the dispatched `unit`, each vector path the
    /// CPU has (whichever `unit` picks) and the plain loop.
    fn paths() -> Vec<(&'static str, UnitFn)> {
        let mut v: Vec<(&'static str, UnitFn)> = vec![("unit", unit), ("lanes", lanes)];
        #[cfg(target_arch = "x86_64")]
        {
            if avx512() {
                // SAFETY: `avx512()` checked the CPU.
                v.push(("avx512", |nw, u, h, c| unsafe { unit_avx512(nw, u, h, c) }));
            }
            if crate::cpu::avx2() {
                // SAFETY: `cpu::avx2()` checked the CPU.
                v.push(("avx2", |nw, u, h, c| unsafe { unit_avx2(nw, u, h, c) }));
            }
        }
        v
    }

    /// A random operand: mostly `normal() * scale`, else one of the awkward values of format
    /// `f` (ties of its rounding, normal and subnormal, values at and beyond its largest
    /// finite value), f32 subnormals and values near the smallest normal, zeros, infinities
    /// and NaN.
    fn value(rng: &mut SplitMix64, f: FloatFormat, scale: f32) -> f32 {
        let r = rng.next_u64();
        let sign = if r >> 63 == 1 { -1.0f32 } else { 1.0 };
        let m = f.man_bits;
        match r % 64 {
            // Half-way between two neighbours at or above the format's smallest normal.
            0..=7 => {
                let bits = (rng.normal() * scale).to_bits();
                let drop = 23 - m;
                f32::from_bits((bits & !((1 << drop) - 1)) | ((1 << drop) >> 1))
            }
            // Half-way between two subnormals of the format.
            8..=11 => {
                let k = (rng.next_u64() % (1 << m.min(10))) as f64 + 0.5;
                sign * (k * 2f64.powi(f.emin() - m as i32)) as f32
            }
            // At, just below and beyond the largest finite value.
            12..=15 => {
                let max = f.max_f32();
                let half_ulp = 1u32 << (22 - m);
                let near = [
                    max,
                    f32::from_bits(max.to_bits() - 1),
                    f32::from_bits(max.to_bits() + half_ulp - 1),
                    f32::from_bits(max.to_bits() + half_ulp),
                    f32::from_bits(max.to_bits() + 2 * half_ulp),
                    max * 2.0,
                    f32::MAX,
                ];
                sign * near[(rng.next_u64() % near.len() as u64) as usize]
            }
            // f32 subnormals and normals near the smallest, the smallest itself.
            16..=18 => sign * f32::from_bits((rng.next_u64() % 0x0100_0000) as u32),
            19 => sign * f32::from_bits(0x0080_0000 + (rng.next_u64() % 3) as u32 - 1),
            20 | 21 => sign * 0.0,
            22 => sign * f32::INFINITY,
            23 => f32::NAN.copysign(sign),
            _ => rng.normal() * scale,
        }
    }

    /// Whether `x` lies exactly half-way between two neighbours of format `f`.
    fn tie(f: FloatFormat, x: f32) -> bool {
        let a = x.abs();
        if !a.is_finite() || a < f32::MIN_POSITIVE {
            return false;
        }
        let e = ((a.to_bits() >> 23) as i32 - 127).max(f.emin());
        (a as f64 / 2f64.powi(e - f.man_bits as i32)).fract() == 0.5
    }

    /// Counts what a unit's sums meet at `pre`: ties, subnormal sums, finite sums beyond the
    /// largest value, infinite or NaN sums.
    fn tally(seen: &mut [usize; 5], f: FloatFormat, raw: [f32; 4]) {
        for s in raw {
            seen[0] += tie(f, s) as usize;
            seen[1] += (s != 0.0 && s.abs() < f32::MIN_POSITIVE) as usize;
            seen[2] += (s.is_finite() && s.abs() > f.max_f32()) as usize;
            seen[3] += !s.is_finite() as usize;
        }
    }

    /// Runs every path on unit `j` with operands `u` and checks each lane. Where `float_unit`
    /// is defined, the bits must be its own. Where a table input is NaN (a NaN sum or cell
    /// value) it is not (its tables are unmasked: the index is out of bounds, and NUMERICS.md
    /// has no NaN); there the plain loop is the reference, up to the bits of NaN: Rust leaves
    /// a NaN's sign and payload open (LLVM may swap the operands of `a * b`, and x86 returns
    /// the first operand's NaN), so two inlinings of `lanes` may disagree on them. Those lanes
    /// are counted in `seen[4]`.
    fn check(p: &CellPlan, j: usize, u: &Unit, count: usize, seen: &mut [usize; 5], at: &str) {
        let nw = Narrow::of(p).expect("a narrow-float plan");
        let (mut plain_h, mut plain_c) = (vec![0.0; count], vec![0.0; count]);
        lanes(&nw, u, &mut plain_h, &mut plain_c);
        let want: Vec<(f32, f32, bool)> = (0..count)
            .map(|n| {
                tally(seen, nw.pre, [0, 1, 2, 3].map(|g| u.acc[g][n] + u.bias[g]));
                let sums = [0, 1, 2, 3].map(|g| add(u.acc[g][n], u.bias[g]));
                if sums.iter().any(|s| s.is_nan()) || plain_c[n].is_nan() {
                    seen[4] += 1;
                    return (plain_h[n], plain_c[n], false);
                }
                let (h, c, _) = super::super::cell::float_unit(p, j, sums, u.c_prev[n]);
                (h, c, true)
            })
            .collect();
        for (name, path) in paths() {
            let (mut h, mut c) = (vec![0.0f32; count], vec![0.0f32; count]);
            path(&nw, u, &mut h, &mut c);
            for (n, &(hn, cn, defined)) in want.iter().enumerate() {
                let same = |a: f32, b: f32| {
                    a.to_bits() == b.to_bits() || !defined && a.is_nan() && b.is_nan()
                };
                assert!(same(h[n], hn), "h of {at}, {name}, lane {n}: {} {hn}", h[n]);
                assert!(same(c[n], cn), "c of {at}, {name}, lane {n}: {} {cn}", c[n]);
            }
        }
    }

    #[test]
    fn equals_float_unit() {
        let mut rng = SplitMix64::new(11);
        eprintln!(
            "paths: {:?}",
            paths().iter().map(|p| p.0).collect::<Vec<_>>()
        );
        let tiny = f32::MIN_POSITIVE;
        for config in ["fp16", "bf16", "fp8e4m3", "fp8e5m2", "e5m6"] {
            let p = plan(config, &mut rng);
            let nw = Narrow::of(&p).expect("a narrow-float plan");
            let hsz = p.h0.len();
            let mut seen = [0usize; 5];
            for scale in [0.01f32, 1.0, 30.0, 1e4] {
                for count in [1, 7, 8, 9, 16, 17, 33, 37] {
                    let mut values =
                        |f| -> Vec<f32> { (0..count).map(|_| value(&mut rng, f, scale)).collect() };
                    let acc: Vec<Vec<f32>> = (0..4).map(|_| values(nw.pre)).collect();
                    let c_prev = values(nw.c);
                    for j in 0..hsz {
                        // The unit's biases; none, so that the operands reach `pre` as they
                        // are; tiny ones, so that sums come out subnormal.
                        let biases = [
                            [0, 1, 2, 3].map(|g| p.b[g * hsz + j]),
                            [0.0; 4],
                            [tiny, -tiny, 1.5 * tiny, -0.0],
                        ];
                        for bias in biases {
                            let u = Unit {
                                acc: [0, 1, 2, 3].map(|g| &acc[g][..]),
                                bias,
                                c_prev: &c_prev,
                            };
                            let at = format!("{config} unit {j}, {count} lanes, scale {scale}");
                            check(&p, j, &u, count, &mut seen, &at);
                        }
                    }
                }
            }
            eprintln!("{config}: ties, subnormal, beyond max, inf/NaN sums; NaN lanes {seen:?}");
            assert!(seen.iter().all(|&k| k > 0), "{config}: {seen:?}");
        }
    }

    /// Lanes whose input and cell gates are shut and forget gate open (`ig = 0`, `fg = 1`,
    /// `gg = 0`): the new cell value is the old one through the products, their flushes and
    /// the cell rounding, so the awkward values reach them as they are (the smallest normal
    /// and its neighbours, ties of the cell format, values beyond its largest).
    #[test]
    fn equals_float_unit_on_passed_through_cell_values() {
        let mut rng = SplitMix64::new(12);
        for config in ["fp16", "bf16", "fp8e4m3", "fp8e5m2", "e5m6"] {
            let p = plan(config, &mut rng);
            let nw = Narrow::of(&p).expect("a narrow-float plan");
            let big = nw.pre.max_f32();
            let gate = |t: Table, x: f32| t.apply(nw.pre.round(x));
            assert_eq!((gate(nw.sigmoid, -big), gate(nw.sigmoid, big)), (0.0, 1.0));
            assert_eq!(gate(nw.tanh_pre, 0.0), 0.0);
            let mut seen = [0usize; 5];
            for count in [1, 7, 9, 17, 33, 64] {
                let c_prev: Vec<f32> = (0..count)
                    .map(|n| value(&mut rng, nw.c, if n % 2 == 0 { 1.0 } else { 30.0 }))
                    .collect();
                let acc = [-big, big, 0.0, big].map(|a| vec![a; count]);
                let u = Unit {
                    acc: [0, 1, 2, 3].map(|g| &acc[g][..]),
                    bias: [0.0; 4],
                    c_prev: &c_prev,
                };
                check(
                    &p,
                    0,
                    &u,
                    count,
                    &mut seen,
                    &format!("{config}, {count} lanes"),
                );
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
