"""An outside check of `lstm-dse dynamic`, written from docs/NUMERICS.md §1-7, §11, §11.1, §14,
§15 and docs/OUTPUTS.md only (not from src/dynamic/).

Usage:  python3 tools/dynamic_oracle.py [--bin target/release/lstm-dse] [--cases 60] [--seed 0]
                                        [--device cpu|gpu] [--mutate NAME]

Each case writes a random safetensors LSTM (1-2 layers, some bidirectional, H from 1 to 33 and
I from 1 to 19, mostly not powers of two, half with a dense head: none, sigmoid or softmax with
labels, some of two dense layers with relu, tanh, none or sigmoid between, on every step, the
last step or the final states; a quarter with an nn.Embedding, the input then int64 or int32
token ids), a random input (some just off a coarse grid's midpoints), and runs `dynamic` once per
policy (each run traces one, `--trace-policy K`) with a random level set (nested fixed point:
`fx8,fx16`, `fx4,fx8,fx12`, role configs, `fx2,fx16.0`, a shared `cal=p99`; any other set:
float formats, mixed configs, fp32, explicit fraction bits at a lower level, per-channel
weights, per-level calibration rules), metric, timing, starting level and thresholds with 0,
+inf and ties (thresholds equal to metric values the run reaches). The oracle simulates every
policy itself:

* formats resolved as §3 and §3.1-3.2 from a float64 reference (§14) computed here;
* the integer step of §7 on codes (nested levels and integer levels of any set), the float step
  of §6 with every f32 operation flushed (§5), activation units of §4 (f64 libm `exp`/`tanh`
  for inputs of at most 16 bits, the reproducible f32 functions otherwise), rounding of §1;
* nested sets: lower formats `fx<b>.<F - (B - b)>`, weights the highest codes rounded down,
  state in the highest formats, metric compared on integers; other sets: every level its own
  config, state as f32 values, metric in f32 (§11.1);
* causal / oracle timing, the starting level, levels per layer and direction, closed loop;
* the head of §8 / §15 in f32 on the last layer's h (every step, the last step or the final
  states; one or two dense layers), task accuracy and bits from the labels.

Levels, level fractions, switches and the trace's levels and metrics are compared exactly;
the error columns (against a float64 reference whose summation order the docs leave open)
within 1e-6 relative, the head's within 4e-7 of its outputs' magnitude. `--mutate` runs a
deliberately wrong copy (`lt`: a threshold is reached when the metric is > rather than >=;
`prevstep`: the metric is taken from the step before) to show that the check can fail;
`--only TEXT` keeps the level sets whose spelling contains TEXT. Needs numpy only. Exit status
1 if any case disagrees.

Where the docs were open, the binary's choice (now written in NUMERICS.md §11 and OUTPUTS.md):
layer 0's input at a lower nested level is the f32 input rounded once, directly to that level's
x format; under `oracle` timing the trace's `delta_c_metric` is the metric of the run that
produced the state (the redo at the lower level); `frac_last_level` is the last step in the
direction's own order; `switches_per_1000_steps` = level changes between consecutive steps of
one (sequence, layer, direction), over all steps, times 1000; θ·2^f·H is taken in f64.

Modules:
  metric    the four metrics on one step's change of c, on codes or on f32 values (§11, §11.1)
  policy    one policy run, closed loop (timing, starting level, thresholds; --mutate)
  head      the dense head of §8 / §15 in f32 and f64
  expected  the policies.csv columns and trace rows the oracle computes, and the tolerances
  draw      the random models, level sets and metrics a case draws from
  cases     one case: write the model and input, run the binary, compare
  cli       the command line (tools/dynamic_oracle.py)
  models    random safetensors and ONNX models and inputs for tools/numerics_fuzz.py
"""
