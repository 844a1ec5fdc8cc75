//! Throughput of the analytical model: `evaluate` over a grid of 6144 architectures (units,
//! multipliers, multiplier kind, dispatch, schedule, cores and mode, clock) times a workload,
//! in parallel with rayon. Criterion reports elements/s = design points per second.
//!
//! cargo bench --bench accel

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lstm_dse::accel::{
    apply_set, evaluate, load_arch, Arch, LayerShape, PrecisionLevel, PrecisionProfile, Workload,
};
use rayon::prelude::*;

fn grid() -> Vec<Arch> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sweeps/arch/epur.toml");
    let base = load_arch(&path).expect("epur.toml loads");
    let modes = [
        (1, "multiprogramming"),
        (2, "multithreading"),
        (2, "helper"),
    ];
    let mut archs = Vec::new();
    for units in 1..=16 {
        for mults in [4, 8, 16, 32] {
            for kind in ["fixed", "bit-parallel"] {
                for policy in ["gate-per-unit", "tiled"] {
                    for input in ["batched", "per-step"] {
                        for (cores, mode) in modes {
                            for clock in [250, 500, 1000, 2000] {
                                let mut spec = base.clone();
                                for s in [
                                    format!("compute.units={units}"),
                                    format!("compute.multipliers_per_unit={mults}"),
                                    format!("compute.multiplier_kind={kind}"),
                                    "compute.min_precision_bits=8".to_string(),
                                    format!("compute.clock_mhz={clock}"),
                                    format!("dispatch.policy={policy}"),
                                    "dispatch.tile_rows=16".to_string(),
                                    format!("schedule.input_product={input}"),
                                    format!("multicore.cores={cores}"),
                                    format!("multicore.mode={mode}"),
                                    "tracking.enabled=true".to_string(),
                                ] {
                                    apply_set(&mut spec, &s).expect("override applies");
                                }
                                archs.push(Arch::from_spec(&spec, "bench").expect("valid"));
                            }
                        }
                    }
                }
            }
        }
    }
    archs
}

/// EESEN-like: 5 bidirectional layers of 320 cells, 100 steps, 72% of steps at 8 bits.
fn eesen_dynamic() -> Workload {
    let mut layers = vec![LayerShape {
        input_size: 120,
        hidden_size: 320,
        directions: 2,
    }];
    layers.extend((1..5).map(|_| LayerShape {
        input_size: 640,
        hidden_size: 320,
        directions: 2,
    }));
    let level = |bits| PrecisionLevel {
        weight_bits: bits,
        activation_bits: bits,
    };
    Workload {
        name: "eesen-like-dynamic".into(),
        layers,
        head: Default::default(),
        seq_len: 100,
        batch: 1,
        precision: PrecisionProfile::dynamic(vec![level(8), level(16)], vec![0.72, 0.28]),
    }
}

fn two_layer_fixed() -> Workload {
    Workload {
        name: "2x512-fixed".into(),
        layers: vec![
            LayerShape {
                input_size: 512,
                hidden_size: 512,
                directions: 1
            };
            2
        ],
        head: Default::default(),
        seq_len: 50,
        batch: 1,
        precision: PrecisionProfile::fixed(16, 16),
    }
}

fn bench(c: &mut Criterion) {
    let archs = grid();
    let mut group = c.benchmark_group("evaluate_grid_rayon");
    group.throughput(Throughput::Elements(archs.len() as u64));
    for w in [two_layer_fixed(), eesen_dynamic()] {
        group.bench_function(w.name.clone(), |b| {
            b.iter(|| {
                archs
                    .par_iter()
                    .map(|a| evaluate(a, black_box(&w)).map_or(0.0, |p| p.latency_us))
                    .sum::<f64>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
