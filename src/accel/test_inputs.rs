//! The model's inputs: architecture files and `--set` overrides load and validate, policy rows
//! become precision profiles, and bad files, keys, sizes and workloads are rejected with an
//! error naming the file and the field.

use super::test_support::*;
use super::*;

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
    // Shown as an exponent, not the 301 digits `{}` prints.
    assert!(err_of_set(&["memory.dram_gb_per_s=-1e300"]).ends_with("must be > 0, got -1e300"));
    // inf is above 0: what it lacks is being finite.
    for v in ["inf", "-inf", "nan"] {
        let e = err_of_set(&[&format!("compute.clock_mhz={v}")]);
        assert!(
            e.contains("'compute.clock_mhz': must be a finite number > 0"),
            "{v}: {e}"
        );
    }
    assert!(err_of_set(&["energy.sram_access_share=1e300"]).ends_with("got 1e300"));
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

/// Values each within its own check that together leave f64 are refused naming the output,
/// never reported as inf or NaN (they were, with exit 0); huge but finite outputs stand.
#[test]
fn outputs_beyond_f64_are_refused_naming_the_output() {
    let w = uniform("u", 2, 16, 32, 10);
    for (set, output) in [
        ("technology.node_nm=1e300", "energy_uj"),
        ("energy.dram_pj_per_byte=1e308", "energy_uj"),
        ("energy.sram_size_exponent=1e300", "energy_uj"),
    ] {
        let e = evaluate(&arch("epur", &[set]), &w)
            .expect_err(set)
            .to_string();
        assert!(
            e.contains(output) && e.contains("too extreme"),
            "{set}: {e}"
        );
    }
    let p = evaluate(&arch("epur", &["memory.dram_gb_per_s=1e-300"]), &w).expect("finite");
    assert!(p.cycles.is_finite() && p.energy_uj.is_finite());
}

/// A profile whose first and last steps outnumber its level's steps at this seq_len (a policy
/// measured on longer sequences) is costed with its first and last steps unknown: it was
/// costed as it came, and the model reported more than 100% utilization.
#[test]
fn edge_steps_that_outnumber_their_level_are_taken_as_unknown() {
    let a = arch("epur", &["tracking.enabled=true"]);
    let mut w = uniform("u", 1, 8, 33, 2);
    w.precision = two_level(8, 16, 0.25);
    w.precision.first_step_fraction = vec![1.0, 0.0];
    w.precision.last_step_fraction = vec![0.0, 1.0];
    let fitted = w.with_edges_that_fit().expect("does not fit at T = 2");
    assert!(fitted.precision.first_step_fraction.is_empty());
    let mut unknown = w.clone();
    unknown.precision.first_step_fraction.clear();
    unknown.precision.last_step_fraction.clear();
    let p = evaluate(&a, &w).expect("T = 2");
    assert_eq!(p.cycles, evaluate(&a, &unknown).unwrap().cycles);
    assert!(p.utilization <= 1.0, "{}", p.utilization);
    // At T = 4 they fit (4 x 0.25 >= 1 + 0) and are kept.
    w.seq_len = 4;
    assert!(w.with_edges_that_fit().is_none());
    // At one step, first and last are the same step.
    w.seq_len = 1;
    w.precision.last_step_fraction = vec![1.0, 0.0];
    w.precision.step_fraction = vec![1.0, 0.0];
    assert!(w.with_edges_that_fit().is_none());
}

/// With every energy at 0 (a latency and area study) the efficiency is inf by definition; the
/// point stands.
#[test]
fn a_zeroed_energy_model_still_costs_points() {
    let sets: Vec<String> = [
        "energy.mult_pj_8bit",
        "energy.add_pj_32bit",
        "energy.sram_pj_per_bit_8kib",
        "energy.dram_pj_per_byte",
        "energy.tail_pj_per_element",
        "energy.static_mw_per_mm2",
        "multicore.link_pj_per_byte",
    ]
    .iter()
    .map(|k| format!("{k}=0"))
    .collect();
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let p = evaluate(&arch("epur", &refs), &uniform("u", 2, 16, 32, 10)).expect("costs");
    assert!(p.cycles > 0.0 && p.cycles.is_finite());
}

/// A policy's levels run lowest first, each a step up from the one before (as `dynamic`
/// orders them): a row out of order or with a level twice is refused, naming the file, line and pair.
#[test]
fn policy_levels_out_of_order_or_repeated_are_refused() {
    let head = "policy,levels,frac_level_0,frac_level_1\n";
    for (levels, pair) in [
        ("fx16|fx8", "'fx16' cannot come before 'fx8'"),
        ("fx8|fx8", "'fx8' cannot come before 'fx8'"),
        (
            "w=fx8,a=fx16|fx12",
            "'w=fx8,a=fx16' cannot come before 'fx12'",
        ),
        ("int8|int4", "'int8' cannot come before 'int4'"),
    ] {
        let e = parse_policy(&format!("{head}3,\"{levels}\",0.5,0.5\n"), "p.csv", 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.csv:2:") && e.contains(pair),
            "{levels}: {e}"
        );
    }
    // What `dynamic` writes for levels that differ in the cell's roles only passes too.
    for levels in [
        "fx8|fx16",
        "w=fx8,a=fx8|w=fx8,a=fx16",
        "fp8e4m3|fp16",
        "w=fx8,a=fx8,p=fx12,c=fx12|w=fx8,a=fx8,p=fx16,c=fx16",
        "int4|int8",
    ] {
        parse_policy(&format!("{head}3,\"{levels}\",0.5,0.5\n"), "p.csv", 3)
            .unwrap_or_else(|e| panic!("{levels}: {e}"));
    }
}

/// A huge value in policies.csv is shown as an exponent in the error, not as the hundreds of
/// digits `{}` prints for 1e300.
#[test]
fn huge_values_are_shown_compactly_in_errors() {
    let head = "policy,levels,frac_level_0,frac_level_1,switches_per_1000_steps,frac_first_level_0,frac_first_level_1\n";
    for (row, want) in [
        (
            "3,fx8|fx16,0.5,0.5,1e300,,",
            "must be in [0, 1000], got 1e300",
        ),
        ("3,fx8|fx16,0.5,0.5,-1e-300,,", "got -1e-300"),
        (
            "3,fx8|fx16,1e300,0.5,,,",
            "fractions must sum to 1, got 1e300",
        ),
        ("3,fx8|fx16,0.5,0.5,,2e200,0", "(within 1e-9), got 2e200"),
        (
            "3,fx8|fx16,0.5,0.5,,-1e300,1",
            "fractions must be >= 0, got [-1e300, 1]",
        ),
    ] {
        let e = parse_policy(&format!("{head}{row}\n"), "p.csv", 3)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.csv:2:") && e.contains(want), "{row}: {e}");
        assert!(e.len() < 200, "{row}: {e}");
    }
    use super::error::compact;
    assert_eq!(compact(1000.0), "1000");
    assert_eq!(compact(0.25), "0.25");
    assert_eq!(compact(f64::INFINITY), "inf");
}

/// `groups.csv`'s width fractions are shares of the groups: a row whose shares do not sum to 1
/// is refused (it was rescaled and costed), while the rounding of written digits passes.
#[test]
fn group_width_fractions_must_sum_to_one() {
    let dir = std::env::temp_dir().join(format!("lstm-dse-widths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("groups.csv");
    let head =
        "tensor,group_size,base_bits,frac_groups_width_1,frac_groups_width_2,frac_groups_width_3\n";
    for (row, ok) in [
        ("activations,4,3,0.2,0.3,0.5", true),
        ("activations,4,3,0.1,0.2,0.7000000000000001", true),
        ("activations,4,3,0.2,0.3,5", false),
        ("activations,4,3,0.1,0.1,0.1", false),
    ] {
        std::fs::write(&file, format!("{head}{row}\n")).unwrap();
        let got = read_group_widths(&file, 4);
        match (got, ok) {
            (Ok(w), true) => assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{row}"),
            (Err(e), false) => {
                let e = e.to_string();
                assert!(
                    e.contains("groups.csv:2:") && e.contains("not 1"),
                    "{row}: {e}"
                );
            }
            (got, _) => panic!("{row}: {got:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
