//! Speed of `lstm_dse::pareto::front` on seeded random tables (generation is not timed):
//! 10 million rows x 4 objectives, uniform and correlated; 1 million x 2 and x 5 uniform; and
//! 1 million x 4 anti-correlated, where nearly every row is on the front (the hard case for
//! 3+ objectives). Target (issue 6): 10M x 4 in under 10 s.
//!
//! cargo bench --bench pareto

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use lstm_dse::pareto::front;

/// splitmix64: a fixed seed gives the same table on every machine.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn uniform(rows: usize, dims: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..rows * dims).map(|_| rng.next_f64()).collect()
}

/// Objectives that rise together (bigger designs cost more of everything), with noise.
fn correlated(rows: usize, dims: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut v = Vec::with_capacity(rows * dims);
    for _ in 0..rows {
        let t = rng.next_f64();
        for _ in 0..dims {
            v.push(t + 0.1 * rng.next_f64());
        }
    }
    v
}

/// Objectives that trade off: rows near the plane where they sum to 1.
fn anti_correlated(rows: usize, dims: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut v = Vec::with_capacity(rows * dims);
    let mut row = vec![0.0; dims];
    for _ in 0..rows {
        for x in row.iter_mut() {
            *x = -rng.next_f64().max(f64::MIN_POSITIVE).ln();
        }
        let sum: f64 = row.iter().sum();
        let scale = (1.0 + 0.01 * (rng.next_f64() - 0.5)) / sum;
        v.extend(row.iter().map(|x| x * scale));
    }
    v
}

/// A seeded table generator: (rows, dims, seed) -> row-major values.
type Generator = fn(usize, usize, u64) -> Vec<f64>;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pareto_front");
    // Each iteration of the large cases takes about a second or more.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    let cases: [(&str, usize, usize, Generator); 5] = [
        ("uniform", 10_000_000, 4, uniform),
        ("correlated", 10_000_000, 4, correlated),
        ("uniform", 1_000_000, 2, uniform),
        ("uniform", 1_000_000, 5, uniform),
        ("anti-correlated", 1_000_000, 4, anti_correlated),
    ];
    for (name, rows, dims, make) in cases {
        let points = make(rows, dims, 42);
        let on_front = front(&points, dims).len();
        eprintln!("{name} {rows} x {dims}: {on_front} rows on the front");
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_with_input(
            BenchmarkId::new(name, format!("{rows}x{dims}")),
            &points,
            |b, p| b.iter(|| front(black_box(p), dims)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
