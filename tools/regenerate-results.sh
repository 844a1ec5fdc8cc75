#!/usr/bin/env bash
# Regenerates every committed result under results/ (quoted in docs/VALIDATION.md and the
# README): the shipped sweeps, and the dynamic-precision and DPRed studies of the trained
# model. Deterministic: the same bytes on every run and thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/lstm-dse
m=models/digits_lstm.onnx
x=models/digits_test.x.npy
y=models/digits_test.labels.npy
rm -rf results/dynamic results/groups
for levels in fx6,fx16 fx8,fx16; do
  for timing in causal oracle; do
    "$bin" dynamic --model "$m" --input "$x" --labels "$y" --levels "$levels" \
      --thresholds "0,0.05:0.5:10,0.75,1,2,inf" --timing "$timing" \
      --out "results/dynamic/digits_${levels/,/_}_$timing" --quiet
  done
done
for base in fx16 fx8 fx16.8 fx8.4; do
  "$bin" groups --model "$m" --input "$x" --base "$base" --out "results/groups/digits_$base" --quiet
done
for spec in quick dynamic-precision lstm-sharp dpred multicore; do
  "$bin" sweep "sweeps/$spec.toml" --out "results/$spec" --quiet
done
