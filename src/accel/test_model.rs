//! Unit tests of the model: precision scaling laws, memory behaviour, unit consistency, and
//! property tests over random configurations (its inputs are tested in `test_inputs.rs`).

use proptest::prelude::*;

use super::test_support::*;
use super::*;

#[test]
fn bit_parallel_scales_linearly_at_batch_one_and_quadratically_with_reuse() {
    // Recurrent products dominate with per-step input; 8-bit on a 16-bit Bit Fusion-style
    // multiplier: one weight read per multiplier per cycle feeds w/p products at batch 1, and
    // (w/p)^2 once w/p vectors share each weight.
    let sets = [
        "compute.multiplier_kind=bit-parallel",
        "schedule.input_product=per-step",
        "compute.tail_latency_cycles=0",
        // Ample bandwidth: the (width-proportional) weight load does not blur the compute.
        "memory.dram_gb_per_s=1e6",
    ];
    let a = arch("epur", &sets);
    // 512 cells: the weights fit on chip at 16 bits too, so only compute changes.
    let mut w = uniform("u", 1, 512, 512, 10);
    let c16 = evaluate(&a, &w).expect("16").cycles;
    w.precision = PrecisionProfile::fixed(8, 8);
    let c8 = evaluate(&a, &w).expect("8").cycles;
    assert!(rel_close(c16 / c8, 2.0, 0.01), "batch 1: {}", c16 / c8);
    w.batch = 2;
    w.precision = PrecisionProfile::fixed(16, 16);
    let c16 = evaluate(&a, &w).expect("16").cycles;
    w.precision = PrecisionProfile::fixed(8, 8);
    let c8 = evaluate(&a, &w).expect("8").cycles;
    assert!(rel_close(c16 / c8, 4.0, 0.02), "batch 2: {}", c16 / c8);
}

#[test]
fn bit_serial_time_is_proportional_to_activation_precision() {
    let a = arch(
        "epur",
        &[
            "compute.multiplier_kind=bit-serial",
            "compute.min_precision_bits=1",
            "compute.tail_latency_cycles=0",
            "memory.dram_gb_per_s=1e6",
        ],
    );
    let mut w = uniform("u", 1, 512, 512, 10);
    w.precision = PrecisionProfile::fixed(16, 16);
    let c16 = evaluate(&a, &w).expect("16").cycles;
    w.precision = PrecisionProfile::fixed(16, 4);
    let c4 = evaluate(&a, &w).expect("4").cycles;
    assert!(rel_close(c16 / c4, 4.0, 0.02), "{}", c16 / c4);
}

#[test]
fn streamed_weights_are_shared_across_the_batch() {
    let a = arch(
        "epur",
        &[
            "memory.sram_weight_kib=256",
            "schedule.input_product=per-step",
        ],
    );
    let mut w = uniform("u", 2, 1024, 1024, 20);
    let one = evaluate(&a, &w).expect("batch 1");
    w.batch = 8;
    let eight = evaluate(&a, &w).expect("batch 8");
    // Only the activations (x_t in, h_t out, 16 bit) grow with the batch.
    let activations = 7.0 * 20.0 * (1024.0 + 1024.0) * 2.0;
    assert!(rel_close(
        eight.dram_bytes,
        one.dram_bytes + activations,
        1e-9
    ));
    assert!(
        one.dram_bound_fraction > 0.9,
        "streaming at batch 1 is DRAM-bound"
    );
    assert!(eight.throughput_seq_per_s > 2.0 * one.throughput_seq_per_s);
}

#[test]
fn energy_is_power_times_time() {
    for name in ["epur", "sharp", "multicore"] {
        let p = evaluate(&arch(name, &[]), &eesen_like()).expect("evaluates");
        assert!(rel_close(
            p.static_uj,
            p.static_power_mw * p.latency_us * 1e-3,
            1e-12
        ));
        assert!(rel_close(
            p.energy_uj,
            p.power_mw * p.latency_us * 1e-3,
            1e-12
        ));
        let sum = p.compute_uj + p.sram_uj + p.dram_uj + p.link_uj + p.tracking_uj + p.static_uj;
        assert!(rel_close(p.energy_uj, sum, 1e-12));
        let area = p.compute_area_mm2
            + p.sram_area_mm2
            + p.control_area_mm2
            + p.tracking_area_mm2
            + p.link_area_mm2;
        assert!(rel_close(p.area_mm2, area, 1e-12));
        assert!(rel_close(
            p.latency_us,
            p.cycles / arch(name, &[]).compute.clock_mhz,
            1e-12
        ));
    }
}

#[test]
fn doubling_clock_halves_latency_of_compute_bound_points_only() {
    let w = eesen_like();
    // Ample bandwidth: the weight loads take no time, nothing is DRAM-bound.
    let ample = "memory.dram_gb_per_s=1e9";
    let slow = evaluate(&arch("epur", &[ample]), &w).expect("500 MHz");
    let fast = evaluate(&arch("epur", &[ample, "compute.clock_mhz=1000"]), &w).expect("1 GHz");
    assert!(slow.dram_bound_fraction < 1e-6);
    assert!(rel_close(fast.latency_us, slow.latency_us / 2.0, 1e-9));

    // Per-step input products: with nothing resident every step streams all its weights.
    let starved = [
        "memory.sram_weight_kib=0",
        "memory.dram_gb_per_s=2",
        "schedule.input_product=per-step",
    ];
    let slow = evaluate(&arch("epur", &starved), &w).expect("500 MHz");
    let mut faster = starved.to_vec();
    faster.push("compute.clock_mhz=1000");
    let fast = evaluate(&arch("epur", &faster), &w).expect("1 GHz");
    assert!(slow.dram_bound_fraction > 0.99);
    assert!(
        rel_close(fast.latency_us, slow.latency_us, 0.01),
        "{} vs {}",
        fast.latency_us,
        slow.latency_us
    );
}

#[test]
fn summary_and_csv_row_carry_the_point() {
    let a = arch("epur", &[]);
    let w = eesen_like();
    let p = evaluate(&a, &w).expect("evaluates");
    let cmp = compare(&p, &p);
    assert_eq!(
        (cmp.speedup, cmp.energy_saving, cmp.area_overhead),
        (1.0, 0.0, 0.0)
    );
    let s = format_summary(&p, &a, &w, Some(("epur", &cmp)));
    assert!(
        s.contains("latency") && s.contains("versus epur") && s.contains("GFLOPs/W"),
        "{s}"
    );
    let mut out = csv::Writer::from_writer(Vec::new());
    out.serialize(p.csv_row("epur", "eesen-like", None))
        .expect("serializes");
    let text = String::from_utf8(out.into_inner().expect("flush")).expect("utf8");
    let header = text.lines().next().expect("header");
    assert!(
        header.starts_with("arch,workload,cycles,latency_us,") && header.contains("area_mm2"),
        "{header}"
    );
}

fn arb_arch() -> impl Strategy<Value = Arch> {
    (
        1i64..12,
        1i64..64,
        prop::sample::select(vec!["fixed", "bit-parallel", "bit-serial"]),
        prop::bool::ANY,
        prop::bool::ANY,
        1i64..4,
        0u32..4096,
    )
        .prop_map(|(units, mults, kind, tiled, batched, cores, sram)| {
            let mut spec = ArchSpec::from_toml_str(&epur_text(), "p").expect("parses");
            let mode = ["multiprogramming", "multithreading", "helper"][(units % 3) as usize];
            for s in [
                format!("compute.units={units}"),
                format!("compute.multipliers_per_unit={mults}"),
                format!("compute.multiplier_kind={kind}"),
                format!(
                    "dispatch.policy={}",
                    if tiled { "tiled" } else { "gate-per-unit" }
                ),
                format!(
                    "schedule.input_product={}",
                    if batched { "batched" } else { "per-step" }
                ),
                format!("multicore.cores={cores}"),
                format!("multicore.mode={mode}"),
                format!("memory.sram_weight_kib={sram}"),
                "compute.min_precision_bits=4".to_string(),
                "tracking.enabled=true".to_string(),
            ] {
                apply_set(&mut spec, &s).expect("override applies");
            }
            Arch::from_spec(&spec, "p").expect("valid")
        })
}

fn arb_workload() -> impl Strategy<Value = Workload> {
    (
        1usize..4,
        1usize..300,
        1usize..300,
        1usize..3,
        1usize..40,
        1usize..5,
        0.0f64..1.0,
    )
        .prop_map(|(layers, input, hidden, dirs, seq_len, batch, low)| {
            let mut w = uniform("p", layers, input, hidden, seq_len);
            w.layers[0].directions = dirs;
            w.batch = batch;
            w.precision = two_level(8, 16, low);
            w
        })
}

proptest! {
    /// The floating-point ceiling division against integer `div_ceil` (the oracle), over the
    /// range the model uses it in (and around exact multiples, where truncation matters).
    #[test]
    fn ceil_div_matches_integer_division(a in 0u64..1 << 40, b in 1u64..1 << 20, k in 0u64..1 << 20) {
        prop_assert_eq!(super::timing::ceil_div(a, b), a.div_ceil(b));
        prop_assert_eq!(super::timing::ceil_div(k * b, b), k);
        prop_assert_eq!(super::timing::ceil_div(k * b + 1, b), (k * b + 1).div_ceil(b));
    }

    #[test]
    fn points_are_finite_and_bounded(a in arb_arch(), w in arb_workload()) {
        let p = evaluate(&a, &w).expect("valid inputs evaluate");
        prop_assert!(p.cycles.is_finite() && p.cycles > 0.0);
        prop_assert!(p.utilization > 0.0 && p.utilization <= 1.0 + 1e-9, "utilization {}", p.utilization);
        prop_assert!(p.energy_uj > 0.0 && p.area_mm2 > 0.0);
        prop_assert!((0.0..=1.0).contains(&p.dram_bound_fraction));
    }

    #[test]
    fn area_grows_with_multipliers(a in arb_arch(), extra in 1u32..64) {
        let mut more = a.clone();
        more.compute.multipliers_per_unit += extra;
        prop_assert!(area(&more).total_mm2 > area(&a).total_mm2);
        prop_assert!(area(&more).compute_mm2 > area(&a).compute_mm2);
    }

    #[test]
    fn more_low_precision_steps_never_slow_down(a in arb_arch(), w in arb_workload(), more in 0.0f64..1.0) {
        let base = evaluate(&a, &w).expect("evaluates");
        let mut w2 = w.clone();
        let low = w.precision.step_fraction[0] + (1.0 - w.precision.step_fraction[0]) * more;
        // At the same switch rate (more switches cost cycles of their own).
        w2.precision = two_level(8, 16, low).with_switch_rate(w.precision.switch_rate);
        let faster = evaluate(&a, &w2).expect("evaluates");
        prop_assert!(faster.cycles <= base.cycles * (1.0 + 1e-9));
    }
}

#[test]
fn multithreading_counts_concurrent_dram_bound_cycles_once() {
    // Four identical unidirectional layers, one per core, weights resident: every stage
    // loads its layer at the same time on a quarter of the bandwidth, then computes. The run
    // is DRAM-bound for one load, the time one layer's load takes on a quarter of the
    // bandwidth, which multiprogramming on four cores (a quarter each) gives for one layer.
    let sets = [
        "multicore.cores=4",
        "memory.sram_weight_kib=8192",
        "memory.dram_gb_per_s=64",
        "schedule.input_product=per-step",
    ];
    let mut mt_sets = sets.to_vec();
    mt_sets.push("multicore.mode=multithreading");
    let mut mp_sets = sets.to_vec();
    mp_sets.push("multicore.mode=multiprogramming");
    let mt = evaluate(&arch("sharp", &mt_sets), &uniform("four", 4, 256, 256, 100)).expect("mt");
    let mp = evaluate(&arch("sharp", &mp_sets), &uniform("one", 1, 256, 256, 100)).expect("mp");
    let (mt_bound, mp_bound) = (
        mt.dram_bound_fraction * mt.cycles,
        mp.dram_bound_fraction * mp.cycles,
    );
    assert!(
        mp_bound > 0.0 && mt.dram_bound_fraction < 1.0,
        "{mp_bound} {}",
        mt.dram_bound_fraction
    );
    assert!(
        rel_close(mt_bound, mp_bound, 1e-9),
        "multithreading {mt_bound} DRAM-bound cycles, one layer's load {mp_bound}"
    );
}

/// A head on one vector per sequence (a classifier's `fc(y[:, -1])` or `fc(h_n[-1])`)
/// multiplies B vectors, not B*T: its multiply-accumulates counted by hand, its cycles the
/// event-level simulator's (within the class tolerance) and fewer than a head on every step.
#[test]
fn a_head_on_one_vector_per_sequence_runs_once_per_sequence() {
    let a = arch("epur", &[]);
    let (t, batch, hidden, classes) = (20usize, 3usize, 64usize, 1000usize);
    let mut w = uniform("u", 1, hidden, hidden, t);
    w.batch = batch;
    w.head.layers = vec![DenseShape {
        input_size: hidden,
        output_size: classes,
        activation: true,
    }];
    let every = evaluate(&a, &w).expect("every step");
    let every_sim = simulated(&a, &w, &vec![0; t]);
    w.head.per_sequence = true;
    let once = evaluate(&a, &w).expect("once per sequence");
    let once_sim = simulated(&a, &w, &vec![0; t]);
    let lstm = (t * batch * 4 * hidden * 2 * hidden) as f64;
    let head = (hidden * classes) as f64;
    assert_eq!(every.macs, lstm + (t * batch) as f64 * head);
    assert_eq!(once.macs, lstm + batch as f64 * head);
    assert!(once.cycles < every.cycles && once.energy_uj < every.energy_uj);
    assert!(once_sim < every_sim, "{once_sim} {every_sim}");
    for (model, sim) in [(every.cycles, every_sim), (once.cycles, once_sim)] {
        assert!(rel_close(model, sim, 0.05), "model {model} simulator {sim}");
    }
}

/// A head of two dense layers (`fc2(relu(fc1(..)))`) runs them one after the other: its
/// multiply-accumulates are both layers' (counted by hand), its cycles the simulator's, and
/// what the second layer adds the simulator's too.
#[test]
fn a_head_of_two_dense_layers_costs_both() {
    let a = arch("epur", &[]);
    let (t, batch, hidden, mid, classes) = (12usize, 2usize, 48usize, 300usize, 40usize);
    let mut w = uniform("u", 1, hidden, hidden, t);
    w.batch = batch;
    let dense = |input_size, output_size| DenseShape {
        input_size,
        output_size,
        activation: true,
    };
    w.head.layers = vec![dense(hidden, mid)];
    let one = evaluate(&a, &w).expect("one layer");
    let one_sim = simulated(&a, &w, &vec![0; t]);
    w.head.layers.push(dense(mid, classes));
    let two = evaluate(&a, &w).expect("two layers");
    let two_sim = simulated(&a, &w, &vec![0; t]);
    let vectors = (t * batch) as f64;
    let lstm = (t * batch * 4 * hidden * 2 * hidden) as f64;
    assert_eq!(one.macs, lstm + vectors * (hidden * mid) as f64);
    assert_eq!(
        two.macs,
        lstm + vectors * (hidden * mid + mid * classes) as f64
    );
    assert!(two.cycles > one.cycles && two.energy_uj > one.energy_uj);
    // What the second layer adds, in the closed form and in the simulator.
    let (added, added_sim) = (two.cycles - one.cycles, two_sim - one_sim);
    assert!(
        added_sim > 0.0 && rel_close(added, added_sim, 0.05),
        "{added} {added_sim}"
    );
    for (model, sim) in [(one.cycles, one_sim), (two.cycles, two_sim)] {
        assert!(rel_close(model, sim, 0.05), "model {model} simulator {sim}");
    }
    // The first layer's activation: its elements' energy (and tail cycles), nothing else.
    w.head.layers[0].activation = false;
    let plain = evaluate(&a, &w).expect("no activation between");
    let elements = vectors * mid as f64;
    let pj = a.energy.softmax_pj_per_element;
    assert!(
        rel_close(
            two.compute_uj - plain.compute_uj,
            elements * pj * 1e-6,
            1e-9
        ),
        "{} {} {elements} {pj}",
        two.compute_uj,
        plain.compute_uj
    );
    assert!(plain.cycles < two.cycles);
    // fc1's outputs stay on chip: only fc2's reach DRAM, in the closed form and the simulator.
    assert_eq!(
        two.dram_bytes - one.dram_bytes,
        2.0 * ((mid * classes) as f64 + vectors * (classes as f64 - mid as f64)),
        "16-bit weights and activations: fc2's weights and outputs in, fc1's outputs out"
    );
    w.head.layers[0].activation = true;
    // An inconsistent head is refused, naming the layer: a chain that does not join, a first
    // layer that does not read the last layer's width, vectors that differ, a product beyond
    // the cost model's range.
    let refused = |edit: &dyn Fn(&mut Workload), want: &str| {
        let mut bad = w.clone();
        edit(&mut bad);
        let err = evaluate(&a, &bad).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    };
    refused(
        &|w| w.head.layers[1].input_size = mid + 1,
        "head layer 1: input_size 301",
    );
    refused(
        &|w| w.head.layers[0].input_size = 999,
        "head layer 0: input_size 999 is not the last layer's output 48",
    );
    refused(
        &|w| {
            w.head.layers[0].output_size = 1 << 50;
            w.head.layers[1].input_size = 1 << 50;
        },
        "head layer 0: 1125899906842624 x 48 over 24 vectors is too large",
    );
}
