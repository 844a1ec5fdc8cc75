//! Unit tests of the model: loading and overrides, bad input, precision scaling laws, memory
//! behaviour, unit consistency, and property tests over random configurations.

use proptest::prelude::*;

use super::test_support::*;
use super::*;

fn epur_text() -> String {
    std::fs::read_to_string(repo_path("sweeps/arch/epur.toml")).expect("epur.toml readable")
}

fn err_of_set(sets: &[&str]) -> String {
    let mut spec = ArchSpec::from_toml_str(&epur_text(), "sweeps/arch/x.toml").expect("parses");
    for s in sets {
        apply_set(&mut spec, s).expect("override applies");
    }
    Arch::from_spec(&spec, "sweeps/arch/x.toml")
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn shipped_arch_files_load_and_validate() {
    for name in ["epur", "sharp", "multicore"] {
        let a = arch(name, &[]);
        assert_eq!(&*a.name, name);
        evaluate(&a, &eesen_like()).expect("evaluates");
    }
}

#[test]
fn unknown_field_is_named() {
    let text = epur_text().replace("units = 4 ", "unitz = 4 ");
    let e = ArchSpec::from_toml_str(&text, "sweeps/arch/x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("sweeps/arch/x.toml:") && e.contains("unitz"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn zero_and_negative_sizes_are_rejected() {
    assert_eq!(
        err_of_set(&["compute.units=0"]),
        "sweeps/arch/x.toml: field 'compute.units': must be >= 1, got 0"
    );
    assert!(err_of_set(&["compute.multipliers_per_unit=-3"])
        .contains("'compute.multipliers_per_unit': must be >= 1, got -3"));
    assert!(err_of_set(&["memory.dram_gb_per_s=0"]).contains("'memory.dram_gb_per_s': must be > 0"));
    assert!(err_of_set(&["memory.sram_weight_kib=-1"]).contains("'memory.sram_weight_kib'"));
    assert!(err_of_set(&["compute.clock_mhz=-500"]).contains("'compute.clock_mhz'"));
}

#[test]
fn zero_cores_are_rejected() {
    assert_eq!(
        err_of_set(&["multicore.cores=0"]),
        "sweeps/arch/x.toml: field 'multicore.cores': must be >= 1, got 0"
    );
}

#[test]
fn bit_parallel_needs_power_of_two_widths() {
    let e = err_of_set(&[
        "compute.multiplier_kind=bit-parallel",
        "compute.multiplier_bits=12",
    ]);
    assert!(e.contains("powers of two"), "{e}");
}

#[test]
fn set_overrides_by_dotted_key() {
    let mut spec = load_arch(&repo_path("sweeps/arch/epur.toml")).expect("loads");
    apply_set(&mut spec, "compute.units=8").expect("int");
    apply_set(&mut spec, "compute.clock_mhz=1000").expect("int into float");
    apply_set(&mut spec, "dispatch.policy=tiled").expect("bare enum word");
    apply_set(&mut spec, "tracking.enabled=true").expect("bool");
    assert_eq!(spec.compute.units, 8);
    assert_eq!(spec.compute.clock_mhz, 1000.0);
    assert_eq!(spec.dispatch.policy, DispatchPolicy::Tiled);
    assert!(spec.tracking.enabled);
    for (bad, needle) in [
        ("compute.unitz=8", "unknown field 'unitz'"),
        ("compute=8", "is a section"),
        ("compute.units=many", "compute.units"),
        ("dispatch.policy=round-robin", "round-robin"),
        ("compute.units", "expected key=value"),
    ] {
        let e = apply_set(&mut spec, bad).unwrap_err().to_string();
        assert!(e.contains(needle) || e.contains("invalid"), "{bad}: {e}");
        assert!(e.starts_with("--set '"), "{e}");
    }
    // Failed overrides leave the spec as it was.
    assert_eq!(spec.compute.units, 8);
}

#[test]
fn load_errors_name_the_file() {
    let e = load_arch(&repo_path("sweeps/arch/missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml: cannot read"), "{e}");
}

const POLICIES: &str = "policy,levels,frac_level_0,frac_level_1,frac_l0_level_0,frac_l0_level_1,frac_l1_level_0,frac_l1_level_1,threshold\n\
0,fx16,1.0,,,,,,0.0\n\
7,fx8|fx16,0.72,0.28,0.8,0.2,0.64,0.36,0.05\n";

#[test]
fn policy_rows_become_profiles() {
    let p = parse_policy(POLICIES, "policies.csv", 7).expect("policy 7");
    assert_eq!(p.levels.len(), 2);
    assert_eq!(
        p.levels[0],
        PrecisionLevel {
            weight_bits: 8,
            activation_bits: 8
        }
    );
    assert_eq!(p.step_fraction, vec![0.72, 0.28]);
    assert_eq!(
        p.layer_step_fraction,
        vec![vec![0.8, 0.2], vec![0.64, 0.36]]
    );
    let fixed = parse_policy(POLICIES, "policies.csv", 0).expect("policy 0");
    assert!(!fixed.is_dynamic());
}

#[test]
fn missing_policy_id_is_an_error_naming_file_and_id() {
    let e = parse_policy(POLICIES, "runs/policies.csv", 42)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "runs/policies.csv: policy 42 not found");
    let e = read_policy(&repo_path("no/such/policies.csv"), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("policies.csv: cannot read"), "{e}");
    let bad = "policy,levels,frac_level_0,frac_level_1\n3,fx8|fx16,0.5,0.7\n";
    let e = parse_policy(bad, "p.csv", 3).unwrap_err().to_string();
    assert!(e.starts_with("p.csv:2:") && e.contains("sum to 1"), "{e}");
}

#[test]
fn first_and_last_step_fractions_are_optional_and_checked() {
    // Old files (no such columns) and rows that leave them empty: unknown, empty vectors.
    let p = parse_policy(POLICIES, "policies.csv", 7).expect("policy 7");
    assert!(p.first_step_fraction.is_empty() && p.last_step_fraction.is_empty());
    let head = "policy,levels,frac_level_0,frac_level_1,frac_first_level_0,frac_first_level_1,frac_last_level_0,frac_last_level_1\n";
    let p = parse_policy(
        &format!("{head}1,fx8|fx16,0.7,0.3,0,1,0.25,0.75\n2,fx8|fx16,0.7,0.3,,,,\n"),
        "p.csv",
        1,
    )
    .expect("policy 1");
    assert_eq!(p.first_step_fraction, vec![0.0, 1.0]);
    assert_eq!(p.last_step_fraction, vec![0.25, 0.75]);
    let q = parse_policy(&format!("{head}2,fx8|fx16,0.7,0.3,,,,\n"), "p.csv", 2).expect("policy 2");
    assert!(q.first_step_fraction.is_empty() && q.last_step_fraction.is_empty());
    // Each bad row: a one-line error naming the file, the line and the columns.
    for (row, want) in [
        (
            "3,fx8|fx16,0.7,0.3,0.5,0.6,0,1",
            "'frac_first_level_<k>': fractions must sum to 1",
        ),
        (
            "3,fx8|fx16,0.7,0.3,0,1,-0.5,1.5",
            "'frac_last_level_<k>': fractions must be >= 0",
        ),
        (
            "3,fx8|fx16,0.7,0.3,0,,0,1",
            "some 'frac_first_level_<k>' values missing",
        ),
        (
            "3,fx8|fx16,0.7,0.3,0,1,0.5,0.5000001",
            "'frac_last_level_<k>': fractions must sum to 1",
        ),
        (
            "3,fx8|fx16,0.7,0.3,0,1,x,1",
            "column 'frac_last_level_0': not a number",
        ),
    ] {
        let e = parse_policy(&format!("{head}{row}\n"), "p.csv", 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.csv:2:") && e.contains(want) && !e.contains('\n'),
            "{e}"
        );
    }
    // Set in code: checked with the workload, by field name.
    let mut w = uniform("u", 1, 8, 8, 4);
    w.precision = two_level(8, 16, 0.5).with_edge_steps(vec![1.0], Vec::new());
    let e = w.validate().unwrap_err().to_string();
    assert!(
        e.contains("first_step_fraction: 1 fractions for 2 levels"),
        "{e}"
    );
    w.precision = two_level(8, 16, 0.5).with_edge_steps(Vec::new(), vec![0.5, f64::NAN]);
    let e = w.validate().unwrap_err().to_string();
    assert!(
        e.contains("last_step_fraction: fractions must be >= 0"),
        "{e}"
    );
    w.precision = two_level(8, 16, 0.5).with_edge_steps(vec![0.0, 1.0], vec![1.0, 0.0]);
    w.validate().expect("one-hot fractions are valid");
    // Edge fractions equal to the step fractions are the same arithmetic as none, to the bit.
    let a = arch(
        "epur",
        &[
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "compute.tail_latency_cycles=200",
            "compute.multiplier_kind=bit-parallel",
            "tracking.enabled=true",
        ],
    );
    let mut w = uniform("u", 1, 64, 64, 10);
    w.precision = two_level(8, 16, 0.72);
    let unknown = evaluate(&a, &w).expect("evaluates");
    w.precision = w
        .precision
        .clone()
        .with_edge_steps(vec![0.72, 0.28], vec![0.72, 0.28]);
    assert_eq!(evaluate(&a, &w).expect("evaluates"), unknown);
    // Known levels move it: starting high costs more than the mean start.
    w.precision = w
        .precision
        .clone()
        .with_edge_steps(vec![0.0, 1.0], vec![0.0, 1.0]);
    let high = evaluate(&a, &w).expect("evaluates");
    assert!(
        high.cycles > unknown.cycles,
        "{} <= {}",
        high.cycles,
        unknown.cycles
    );
}

#[test]
fn precision_narrower_than_supported_is_rejected() {
    let a = arch(
        "epur",
        &[
            "compute.multiplier_kind=bit-parallel",
            "compute.min_precision_bits=8",
            "tracking.enabled=true",
        ],
    );
    let mut w = eesen_like();
    w.precision = two_level(4, 16, 0.5);
    let e = evaluate(&a, &w).unwrap_err().to_string();
    assert!(
        e.contains("narrower than the multiplier supports (compute.min_precision_bits = 8)"),
        "{e}"
    );
    w.precision = PrecisionProfile::fixed(32, 16);
    assert!(evaluate(&a, &w)
        .unwrap_err()
        .to_string()
        .contains("wider than the multiplier"));
}

#[test]
fn dynamic_precision_needs_the_tracking_unit() {
    let mut w = eesen_like();
    w.precision = two_level(8, 16, 0.5);
    let e = evaluate(&arch("epur", &[]), &w).unwrap_err().to_string();
    assert!(e.contains("tracking.enabled=true"), "{e}");
}

#[test]
fn bad_workloads_are_rejected() {
    let a = arch("epur", &[]);
    let mut w = eesen_like();
    w.layers[1].hidden_size = 0;
    assert!(evaluate(&a, &w)
        .unwrap_err()
        .to_string()
        .contains("layer 1"));
    let mut w = eesen_like();
    w.layers[0].directions = 3;
    assert!(evaluate(&a, &w).is_err());
    let mut w = eesen_like();
    w.seq_len = 0;
    assert!(evaluate(&a, &w).is_err());
    let mut w = eesen_like();
    w.precision = PrecisionProfile::fixed(16, 16).with_dpred(0.0, 1.0);
    assert!(evaluate(&a, &w)
        .unwrap_err()
        .to_string()
        .contains("dpred_weight_ratio"));
}

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
