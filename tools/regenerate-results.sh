#!/usr/bin/env bash
# Regenerates every committed result under results/ (quoted in docs/VALIDATION.md and the
# README): the shipped sweeps, and the dynamic-precision and DPRed studies of the trained
# model. Deterministic: the same bytes on every run and thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# The binary cargo just built, wherever CARGO_TARGET_DIR puts it (a relative one is the
# repository's, as cargo reads it).
bin="${CARGO_TARGET_DIR:-target}/release/lstm-dse"
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
# The real trained models of models/README.md (docs/VALIDATION.md): keyword spotting on
# espeak-ng speech (uni- and bidirectional) and a character language model on fortunes.
kx=models/kws_test.x.npy
ky=models/kws_test.labels.npy
grid="0,log:0.001:10:13,inf"
for model in kws_lstm kws_bilstm; do
  for metric in max_abs rel_max_abs:0.01; do
    for timing in causal oracle; do
      "$bin" dynamic --model "models/$model.onnx" --input "$kx" --labels "$ky" --levels fx8,fx16 \
        --metric "$metric" --thresholds "$grid" --timing "$timing" \
        --out "results/dynamic/${model}_fx8_fx16_${metric%%:*}_$timing" --quiet
    done
  done
done
# The trap issue 11 describes: a causal policy that starts at the low level.
"$bin" dynamic --model models/kws_lstm.onnx --input "$kx" --labels "$ky" --levels fx8,fx16 \
  --metric max_abs --thresholds "$grid" --timing causal --start low \
  --out results/dynamic/kws_lstm_fx8_fx16_max_abs_causal_start_low --quiet
# Levels of any config (NUMERICS.md §11.1): a float pair and a fixed/float pair.
for levels in fp8e4m3,fp16 fx8,fp16; do
  "$bin" dynamic --model models/kws_lstm.onnx --input "$kx" --labels "$ky" --levels "$levels" \
    --metric rel_max_abs:0.01 --thresholds "$grid" --timing causal \
    --out "results/dynamic/kws_lstm_${levels/,/_}_rel_max_abs_causal" --quiet
done
for metric in max_abs rel_max_abs:0.01; do
  "$bin" dynamic --model models/charlm_lstm.onnx --input models/charlm_test.x.npy \
    --labels models/charlm_test.labels.npy --levels fx8,fx16 --metric "$metric" \
    --thresholds "$grid" --timing causal \
    --out "results/dynamic/charlm_lstm_fx8_fx16_${metric%%:*}_causal" --quiet
done
for base in fx16 fx8 fx16.8 fx8.4; do
  "$bin" groups --model models/kws_lstm.onnx --input "$kx" --base "$base" \
    --out "results/groups/kws_lstm_$base" --quiet
  "$bin" groups --model models/charlm_lstm.onnx --input models/charlm_test.x.npy --base "$base" \
    --out "results/groups/charlm_lstm_$base" --quiet
done
for spec in quick dynamic-precision lstm-sharp dpred multicore; do
  "$bin" sweep "sweeps/$spec.toml" --out "results/$spec" --quiet
done
