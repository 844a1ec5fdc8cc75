//! Sanity checks against the four papers' headline numbers. Each check is a function that
//! returns a table row (claim, paper, model); the tests assert on the model's value and
//! `print_validation_table` (ignored; run with `--ignored --nocapture`) prints the table that
//! goes into docs/VALIDATION-accel.md.

use super::test_support::*;
use super::*;

struct Row {
    check: &'static str,
    paper: String,
    model: String,
}

fn speedup(arch_a: &Arch, wa: &Workload, arch_b: &Arch, wb: &Workload) -> Comparison {
    let a = evaluate(arch_a, wa).expect("point evaluates");
    let b = evaluate(arch_b, wb).expect("baseline evaluates");
    compare(&a, &b)
}

/// Multiprogramming, 2 cores: (ample bandwidth, starved bandwidth) speedups over one core.
fn multiprogramming() -> (f64, f64) {
    let w = eesen_like();
    let ample = speedup(&arch("multicore", &[]), &w, &arch("epur", &[]), &w).speedup;
    let starved_sets = ["memory.sram_weight_kib=64", "memory.dram_gb_per_s=4"];
    let mut two = starved_sets.to_vec();
    two.push("multicore.cores=2");
    let starved = speedup(&arch("epur", &two), &w, &arch("epur", &starved_sets), &w).speedup;
    (ample, starved)
}

/// Multithreading, L cores for L layers: (model speedup, L*T/(T+L-1)).
fn multithreading(layers: usize, seq_len: usize) -> (f64, f64) {
    let w = uniform("uniform", layers, 512, 512, seq_len);
    // Ample bandwidth: weight loads (which other cores may do in parallel) take no time, so
    // what is measured is the dependency structure alone.
    let base_sets = [
        "schedule.input_product=per-step",
        "memory.dram_gb_per_s=1e6",
    ];
    let cores = format!("multicore.cores={layers}");
    let mt = arch(
        "epur",
        &[
            "schedule.input_product=per-step",
            "memory.dram_gb_per_s=1e6",
            &cores,
            "multicore.mode=multithreading",
        ],
    );
    let s = speedup(&mt, &w, &arch("epur", &base_sets), &w).speedup;
    let (l, t) = (layers as f64, seq_len as f64);
    (s, l * t / (t + l - 1.0))
}

/// Helper-core, 2 cores: (eesen-like default link, 2x64 default link, 2x64 with 1000-cycle hops).
fn helper() -> (f64, f64, f64) {
    let base = arch("epur", &[]);
    let fast = arch("multicore", &["multicore.mode=helper"]);
    let slow = arch(
        "multicore",
        &[
            "multicore.mode=helper",
            "multicore.link_latency_cycles=1000",
        ],
    );
    let big = eesen_like();
    let small = uniform("small", 2, 64, 64, 50);
    (
        speedup(&fast, &big, &base, &big).speedup,
        speedup(&fast, &small, &base, &small).speedup,
        speedup(&slow, &small, &base, &small).speedup,
    )
}

/// Dynamic precision 8/16 bit, `low` of the steps at 8 bits, vs static 16 bit on E-PUR.
fn dynamic_precision(input_product: &str, low: f64) -> Comparison {
    let schedule = format!("schedule.input_product={input_product}");
    let base = arch("epur", &[&schedule]);
    let dynamic = arch(
        "epur",
        &[
            &schedule,
            "compute.multiplier_kind=bit-parallel",
            "compute.min_precision_bits=8",
            "tracking.enabled=true",
        ],
    );
    let w16 = eesen_like();
    let mut wdyn = eesen_like();
    wdyn.precision = two_level(8, 16, low);
    speedup(&dynamic, &wdyn, &base, &w16)
}

/// Utilization (gate-per-unit, tiled) with `units` units of 16 multipliers.
fn utilization(units: u32, hidden: usize) -> (f64, f64) {
    let w = uniform("uneven", 2, hidden, hidden, 50);
    let u = format!("compute.units={units}");
    let sets = [
        u.as_str(),
        "compute.multipliers_per_unit=16",
        "schedule.input_product=per-step",
    ];
    let mut tiled_sets = sets.to_vec();
    tiled_sets.extend(["dispatch.policy=tiled", "dispatch.tile_rows=16"]);
    let gpu = evaluate(&arch("epur", &sets), &w)
        .expect("evaluates")
        .utilization;
    let tiled = evaluate(&arch("epur", &tiled_sets), &w)
        .expect("evaluates")
        .utilization;
    (gpu, tiled)
}

/// DPRed: DRAM traffic ratio with weight/activation footprint 0.35 when weights stream, with
/// `sram_kib` of weight memory (0: everything streams; more: compression also buys residency).
fn dpred_traffic(sram_kib: u32) -> f64 {
    let mut w = uniform("streamed", 2, 1024, 1024, 50);
    let sram = format!("memory.sram_weight_kib={sram_kib}");
    let a = arch("epur", &[&sram]);
    let plain = evaluate(&a, &w).expect("evaluates").dram_bytes;
    w.precision = PrecisionProfile::fixed(16, 16).with_dpred(0.35, 0.35);
    evaluate(&a, &w).expect("evaluates").dram_bytes / plain
}

fn rows() -> Vec<Row> {
    let (mp_ample, mp_starved) = multiprogramming();
    let (mt4, bound4) = multithreading(4, 20);
    let (mt2, bound2) = multithreading(2, 100);
    let (help_big, help_small, help_slow) = helper();
    let dyn_step = dynamic_precision("per-step", 0.72);
    let dyn_batched = dynamic_precision("batched", 0.72);
    let (g6, t6) = utilization(6, 256);
    let (g3, t3) = utilization(3, 256);
    let (g4, t4) = utilization(4, 256);
    let dp0 = dpred_traffic(0);
    let dp1 = dpred_traffic(1024);
    let epur = arch("epur", &[]);
    let sharp = arch("sharp", &[]);
    let sharp_vs = |w: &Workload| speedup(&sharp, w, &epur, w).speedup;
    let sharp_eff = evaluate(&sharp, &eesen_like())
        .expect("evaluates")
        .gflops_per_w;
    vec![
        Row {
            check: "multiprogramming, 2 cores, ample DRAM bandwidth (eesen-like)",
            paper: "up to 1.98x".into(),
            model: format!("{mp_ample:.3}x"),
        },
        Row {
            check: "multiprogramming, 2 cores, weights streamed at 4 GB/s",
            paper: "stops scaling".into(),
            model: format!("{mp_starved:.3}x"),
        },
        Row {
            check: "multithreading, 4 layers on 4 cores, T=20",
            paper: format!("bound L*T/(T+L-1) = {bound4:.3}x"),
            model: format!("{mt4:.3}x"),
        },
        Row {
            check: "multithreading, 2 layers on 2 cores, T=100",
            paper: format!("up to 1.91x; bound {bound2:.3}x"),
            model: format!("{mt2:.3}x"),
        },
        Row {
            check: "helper-core, 2 cores, default link (10-cycle hops, 16 GB/s), eesen-like",
            paper: "up to 1.88x, below multiprogramming".into(),
            model: format!("{help_big:.3}x (multiprogramming {mp_ample:.3}x)"),
        },
        Row {
            check: "helper-core, 2 cores, default link, small layers (2x64)",
            paper: "exchange weighs more on small layers".into(),
            model: format!("{help_small:.3}x"),
        },
        Row {
            check: "helper-core, 2 cores, 1000-cycle hops, small layers (2x64)",
            paper: "exchange cost dominates".into(),
            model: format!("{help_slow:.3}x"),
        },
        Row {
            check: "dynamic precision 8/16, 72% low, per-step input product: speedup",
            paper: "1.56x (1/(0.72/2+0.28) = 1.5625)".into(),
            model: format!("{:.3}x", dyn_step.speedup),
        },
        Row {
            check: "  same: energy saving",
            paper: "23%".into(),
            model: format!("{:.1}%", 100.0 * dyn_step.energy_saving),
        },
        Row {
            check: "  same: area overhead (scalable multipliers + tracking unit)",
            paper: "8.8%".into(),
            model: format!("{:.2}%", 100.0 * dyn_step.area_overhead),
        },
        Row {
            check: "dynamic precision 8/16, 72% low, E-PUR batched input product: speedup",
            paper: "1.56x".into(),
            model: format!(
                "{:.3}x (energy saving {:.1}%)",
                dyn_batched.speedup,
                100.0 * dyn_batched.energy_saving
            ),
        },
        Row {
            check: "utilization, 6 units (4 gates do not map evenly), H=256",
            paper: "tiled > one-gate-per-unit".into(),
            model: format!("gate-per-unit {:.1}%, tiled {:.1}%", 100.0 * g6, 100.0 * t6),
        },
        Row {
            check: "utilization, 3 units, H=256",
            paper: "tiled > one-gate-per-unit".into(),
            model: format!("gate-per-unit {:.1}%, tiled {:.1}%", 100.0 * g3, 100.0 * t3),
        },
        Row {
            check: "utilization, 4 units (even mapping), H=256",
            paper: "about equal".into(),
            model: format!("gate-per-unit {:.1}%, tiled {:.1}%", 100.0 * g4, 100.0 * t4),
        },
        Row {
            check: "DPRed footprint 0.35, no weight SRAM (all weights stream): DRAM traffic",
            paper: "~35% (16-bit models)".into(),
            model: format!("{:.1}%", 100.0 * dp0),
        },
        Row {
            check: "DPRed footprint 0.35, 1 MiB weight SRAM: DRAM traffic",
            paper: "~35% (16-bit models)".into(),
            model: format!("{:.1}% (more of each layer now stays on chip)", 100.0 * dp1),
        },
        Row {
            check: "sharp.toml over epur.toml, eesen-like / 2x128 / 2x100 (uneven)",
            paper: "1.5x over ASIC (average)".into(),
            model: format!(
                "{:.3}x / {:.3}x / {:.3}x",
                sharp_vs(&eesen_like()),
                sharp_vs(&uniform("s", 2, 128, 128, 50)),
                sharp_vs(&uniform("u", 2, 100, 100, 50))
            ),
        },
        Row {
            check: "sharp.toml efficiency, eesen-like",
            paper: "383 GFLOPs/W".into(),
            model: format!("{sharp_eff:.1} GFLOPs/W"),
        },
    ]
}

#[test]
#[ignore]
fn print_validation_table() {
    println!("| check | paper | model |\n| --- | --- | --- |");
    for r in rows() {
        println!("| {} | {} | {} |", r.check, r.paper, r.model);
    }
}

#[test]
fn multiprogramming_scales_until_bandwidth_bound() {
    let (ample, starved) = multiprogramming();
    assert!(ample > 1.9 && ample <= 2.0, "ample bandwidth: {ample}");
    assert!(starved < 1.1, "bandwidth-bound: {starved}");
}

#[test]
fn multithreading_follows_wavefront_bound() {
    for (layers, t) in [(4, 20), (2, 100), (3, 7)] {
        let (model, bound) = multithreading(layers, t);
        assert!(
            model <= bound * 1.0001,
            "{layers} layers T={t}: {model} > bound {bound}"
        );
        assert!(
            rel_close(model, bound, 0.03),
            "{layers} layers T={t}: {model} vs {bound}"
        );
    }
}

#[test]
fn helper_pays_for_the_exchange() {
    let (mp, _) = multiprogramming();
    let (big, small, slow) = helper();
    assert!(
        big > 1.5 && big < mp,
        "helper {big} vs multiprogramming {mp}"
    );
    assert!(
        small < big,
        "exchange should weigh more on small layers: {small} vs {big}"
    );
    assert!(
        slow < 1.0,
        "1000-cycle hops every step should lose to one core: {slow}"
    );
}

#[test]
fn dynamic_precision_speedup_near_paper() {
    let c = dynamic_precision("per-step", 0.72);
    assert!(rel_close(c.speedup, 1.5625, 0.03), "speedup {}", c.speedup);
    assert!(c.energy_saving > 0.0 && c.area_overhead > 0.0);
    // No step at low precision: no speedup, only the tracking unit's cost.
    let none = dynamic_precision("per-step", 0.0);
    assert!(none.speedup <= 1.0 + 1e-9 && none.energy_saving < 0.0);
}

#[test]
fn tiled_dispatch_beats_gate_per_unit_when_uneven() {
    for units in [3, 5, 6, 7] {
        let (gpu, tiled) = utilization(units, 256);
        assert!(
            tiled > gpu + 0.1,
            "{units} units: gate-per-unit {gpu}, tiled {tiled}"
        );
    }
    let (gpu, tiled) = utilization(4, 256);
    assert!(
        rel_close(gpu, tiled, 0.05),
        "even mapping: {gpu} vs {tiled}"
    );
}

#[test]
fn dpred_shrinks_traffic_by_its_ratio() {
    let r = dpred_traffic(0);
    assert!(rel_close(r, 0.35, 0.01), "traffic ratio {r}");
    assert!(
        dpred_traffic(1024) < r,
        "compression should also buy residency"
    );
}
