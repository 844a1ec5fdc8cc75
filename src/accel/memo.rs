//! A per-thread memo of the matrix-vector product costs ([`timing::matvec`]), shared by
//! consecutive design points.
//!
//! A sweep costs points in order, its last keys fastest, and its fastest keys are often the
//! clock and the DRAM bandwidth: every product of a layer (cycles, ideal cycles, SRAM bits)
//! is then the same for many points in a row, as none of them depends on the clock or the
//! bandwidth, while the schedule built on them (streams, loads, the DRAM bound) does. The
//! layer schedule (`layer.rs`) asks this memo instead of `timing::matvec`; everything after
//! the products is computed for each point as before, so changes to the schedule flow
//! through untouched.
//!
//! An entry is keyed on every input `timing::matvec` reads, compared field by field (floats
//! by their bits): the whole `Compute` and `Dispatch` of the architecture, the lane rate and
//! the product's shape. The comparisons name every field of those structs, so a field added
//! to them does not compile until it is part of the key; a change that makes `matvec` read
//! another part of the architecture must add it to [`Key`] (the tests compare memoised and
//! plain evaluation over random architecture sequences, `tests` below).

use std::cell::RefCell;

use super::arch::{Arch, Compute, Dispatch};
use super::timing::{self, LaneRate, MatVec};

/// Entries per thread (direct-mapped by a hash of the key): a point asks for a few products
/// per layer and level.
const SLOTS: usize = 64;

/// Every input of one `timing::matvec` call.
#[derive(Debug, Clone)]
struct Key {
    compute: Compute,
    dispatch: Dispatch,
    rate: LaneRate,
    gate_blocks: u64,
    cells: u64,
    cols: u64,
    vectors: u64,
}

fn same_compute(a: &Compute, b: &Compute) -> bool {
    let Compute {
        units,
        multipliers_per_unit,
        multiplier_bits,
        multiplier_kind,
        min_precision_bits,
        clock_mhz,
        tail_lanes,
        tail_latency_cycles,
    } = a;
    *units == b.units
        && *multipliers_per_unit == b.multipliers_per_unit
        && *multiplier_bits == b.multiplier_bits
        && *multiplier_kind == b.multiplier_kind
        && *min_precision_bits == b.min_precision_bits
        && clock_mhz.to_bits() == b.clock_mhz.to_bits()
        && *tail_lanes == b.tail_lanes
        && *tail_latency_cycles == b.tail_latency_cycles
}

fn same_dispatch(a: &Dispatch, b: &Dispatch) -> bool {
    let Dispatch { policy, tile_rows } = a;
    *policy == b.policy && *tile_rows == b.tile_rows
}

fn same_rate(a: &LaneRate, b: &LaneRate) -> bool {
    let LaneRate {
        weight_par,
        activation_par,
        serial_cycles,
        weight_bits,
        activation_bits,
    } = a;
    *weight_par == b.weight_par
        && *activation_par == b.activation_par
        && serial_cycles.to_bits() == b.serial_cycles.to_bits()
        && *weight_bits == b.weight_bits
        && *activation_bits == b.activation_bits
}

impl Key {
    /// Whether `self` is the key of `arch`, `rate` and this shape.
    #[inline]
    fn matches(&self, arch: &Arch, rate: &LaneRate, shape: [u64; 4]) -> bool {
        [self.gate_blocks, self.cells, self.cols, self.vectors] == shape
            && same_rate(&self.rate, rate)
            && same_compute(&self.compute, &arch.compute)
            && same_dispatch(&self.dispatch, &arch.dispatch)
    }
}

/// The slot of a key: a multiplicative hash of the fields that vary most between calls.
#[inline]
fn slot(arch: &Arch, rate: &LaneRate, shape: [u64; 4]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let c = &arch.compute;
    let mut h = u64::from(c.units) ^ (u64::from(c.multipliers_per_unit) << 20);
    for x in shape {
        h = (h ^ x).wrapping_mul(K);
    }
    h ^= rate.weight_par ^ (rate.activation_par << 8) ^ (u64::from(rate.weight_bits) << 16);
    (h.wrapping_mul(K) >> (64 - SLOTS.trailing_zeros())) as usize
}

thread_local! {
    static MEMO: RefCell<[Option<(Key, MatVec)>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

#[cfg(test)]
thread_local! {
    static BYPASS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the memo bypassed on this thread (every product computed afresh): the
/// tests' independent route.
#[cfg(test)]
pub(crate) fn bypassed<R>(f: impl FnOnce() -> R) -> R {
    BYPASS.with(|b| b.set(true));
    let r = f();
    BYPASS.with(|b| b.set(false));
    r
}

/// [`timing::matvec`], from this thread's memo when the same inputs were asked for recently.
#[inline]
pub(crate) fn matvec(
    arch: &Arch,
    rate: &LaneRate,
    gate_blocks: u64,
    cells: u64,
    cols: u64,
    vectors: u64,
) -> MatVec {
    #[cfg(test)]
    if BYPASS.with(|b| b.get()) {
        return timing::matvec(arch, rate, gate_blocks, cells, cols, vectors);
    }
    let shape = [gate_blocks, cells, cols, vectors];
    let fresh = || timing::matvec(arch, rate, gate_blocks, cells, cols, vectors);
    MEMO.try_with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return fresh();
        };
        let entry = &mut memo[slot(arch, rate, shape)];
        if let Some((key, mv)) = entry {
            if key.matches(arch, rate, shape) {
                return *mv;
            }
        }
        let mv = fresh();
        *entry = Some((
            Key {
                compute: arch.compute.clone(),
                dispatch: arch.dispatch.clone(),
                rate: *rate,
                gate_blocks,
                cells,
                cols,
                vectors,
            },
            mv,
        ));
        mv
    })
    .unwrap_or_else(|_| fresh())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;
    use proptest::prelude::*;

    /// An architecture with awkward values among the ordinary ones.
    fn awkward_arch(picks: &[usize]) -> Arch {
        let pick = |i: usize, options: &[&'static str]| options[picks[i] % options.len()];
        let sets = [
            format!(
                "compute.units={}",
                pick(0, &["1", "2", "3", "4", "7", "100"])
            ),
            format!(
                "compute.multipliers_per_unit={}",
                pick(1, &["1", "3", "16", "17", "64", "100"])
            ),
            format!(
                "compute.multiplier_kind={}",
                pick(2, &["fixed", "bit-parallel", "bit-serial"])
            ),
            format!(
                "compute.clock_mhz={}",
                pick(3, &["100", "123.456", "1e-3", "2000", "5e6"])
            ),
            format!(
                "memory.dram_gb_per_s={}",
                pick(4, &["1", "1.6681005372", "1e-6", "25.6", "1e9"])
            ),
            format!("dispatch.policy={}", pick(5, &["gate-per-unit", "tiled"])),
            format!("dispatch.tile_rows={}", pick(6, &["1", "3", "16", "1000"])),
            format!(
                "schedule.input_product={}",
                pick(7, &["batched", "per-step"])
            ),
            format!("schedule.overlap_tail={}", pick(8, &["false", "true"])),
            format!(
                "memory.sram_weight_kib={}",
                pick(9, &["0", "1", "64", "8192"])
            ),
            format!("multicore.cores={}", pick(10, &["1", "2", "5"])),
            format!(
                "multicore.mode={}",
                pick(11, &["multiprogramming", "multithreading", "helper"])
            ),
            format!("compute.tail_lanes={}", pick(12, &["1", "4", "1000"])),
            "tracking.enabled=true".to_string(),
            "compute.min_precision_bits=4".to_string(),
        ];
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        arch("epur", &refs)
    }

    fn awkward_workload(picks: &[usize]) -> Workload {
        let pick = |i: usize, options: &[usize]| options[picks[i] % options.len()];
        let mut w = uniform(
            "memo",
            pick(0, &[1, 2, 3]),
            pick(1, &[1, 16, 300]),
            pick(2, &[1, 32, 257]),
            pick(3, &[1, 2, 20]),
        );
        w.layers[0].directions = pick(4, &[1, 2]);
        w.batch = pick(5, &[1, 3]);
        if !picks[6].is_multiple_of(2) {
            w.precision = two_level(8, 16, [0.0, 0.3, 1.0][picks[7] % 3]);
        }
        if !picks[8].is_multiple_of(2) {
            let width = w.layers.last().map_or(1, |l| l.hidden_size * l.directions);
            w.head = Some(HeadShape {
                input_size: width,
                output_size: pick(9, &[1, 10, 1000]),
                activation: picks[10].is_multiple_of(2),
            });
        }
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Memoised evaluation against plain evaluation (every product computed afresh, the
        /// oracle), bit for bit, over a walk through random architectures in which most steps
        /// change only the clock and the DRAM bandwidth (the memo's hits) and others change
        /// anything, including awkward values; workloads change too.
        #[test]
        fn memoised_points_equal_plain_evaluation(
            start in proptest::collection::vec(0usize..1000, 13),
            steps in proptest::collection::vec((0usize..13, 0usize..1000, proptest::bool::weighted(0.8)), 1..40),
            work in proptest::collection::vec(0usize..1000, 11),
            work_change in 0usize..40,
        ) {
            let mut picks = start;
            let mut w = awkward_workload(&work);
            for (n, (key, value, fast)) in steps.into_iter().enumerate() {
                // Fast steps move the clock or the bandwidth only.
                let key = if fast { 3 + key % 2 } else { key };
                picks[key] = value;
                if n == work_change {
                    let shifted: Vec<usize> = work.iter().map(|x| x + n).collect();
                    w = awkward_workload(&shifted);
                }
                let a = awkward_arch(&picks);
                let memo = evaluate(&a, &w);
                let plain = bypassed(|| evaluate(&a, &w));
                match (memo, plain) {
                    (Ok(m), Ok(p)) => {
                        for ((name, x), (_, y)) in m.sweep_columns().into_iter().zip(p.sweep_columns()) {
                            prop_assert_eq!(x.to_bits(), y.to_bits(), "{} at {:?}", name, picks);
                        }
                        prop_assert_eq!(m, p);
                    }
                    (Err(m), Err(p)) => prop_assert_eq!(m.to_string(), p.to_string()),
                    (m, p) => prop_assert!(false, "memo {:?} plain {:?}", m, p),
                }
            }
        }

        /// The memo's products against `timing::matvec` (the oracle), for random rates and
        /// shapes, asked again and again so that most answers come from the memo.
        #[test]
        fn memoised_products_equal_matvec(
            arch_picks in proptest::collection::vec(0usize..1000, 13),
            calls in proptest::collection::vec((0u64..9, 0u64..300, 0u64..300, 1u64..50, 1u64..17, 1u64..5, 1u32..17), 1..60),
        ) {
            let a = awkward_arch(&arch_picks);
            for (blocks, cells, cols, vectors, wpar, apar, bits) in calls {
                let rate = LaneRate {
                    weight_par: wpar,
                    activation_par: apar,
                    serial_cycles: f64::from(bits) * 0.75 + 1.0,
                    weight_bits: bits,
                    activation_bits: 17 - bits,
                };
                let got = matvec(&a, &rate, blocks, cells, cols, vectors);
                let want = timing::matvec(&a, &rate, blocks, cells, cols, vectors);
                prop_assert_eq!(got.cycles.to_bits(), want.cycles.to_bits());
                prop_assert_eq!(got.ideal_cycles.to_bits(), want.ideal_cycles.to_bits());
                prop_assert_eq!(got.weight_sram_bits.to_bits(), want.weight_sram_bits.to_bits());
                prop_assert_eq!(got.activation_sram_bits.to_bits(), want.activation_sram_bits.to_bits());
            }
        }
    }
}
