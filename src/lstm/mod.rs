//! LSTM models: the in-memory description every stage works on, loading it from ONNX,
//! safetensors or the built-in benchmark shapes, the `.npy` input sequences (or token ids
//! for a model with an [`embedding`] front end), the CPU
//! reference evaluator that every GPU kernel is held against, and the [`driver`] that walks
//! a model's layers on any backend (CPU or wgpu).
//!
//! Internally a cell's gates are stored in PyTorch order **i, f, g, o** (input, forget, cell
//! candidate, output), rows `[4H, ...]`; importers reorder from their file's convention.

pub mod builtin;
pub mod driver;
pub mod embedding;
pub mod eval;
mod head;
mod load_options;
pub mod npy;
pub mod onnx;
mod onnx_proto;
pub mod safetensors;

pub use embedding::{Embedding, NegativeIds};
pub use head::{Dense, Head, HeadActivation, HeadInput};
pub use load_options::{LoadOptions, LoadSetting};
use std::path::Path;

/// Why a model or an input could not be used. `Display` is one line naming the file (or
/// model) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
    /// The I/O error is part of the message, not a chained source, so `{:#}` prints it once.
    #[error("{file}: {cause}")]
    Io { file: String, cause: std::io::Error },
}

impl ModelError {
    pub(crate) fn invalid(file: impl Into<String>, problem: impl Into<String>) -> Self {
        ModelError::Invalid {
            file: file.into(),
            problem: problem.into(),
        }
    }
}

/// A dense float tensor as read from a file: (shape, row-major data).
pub(crate) type Tensor = (Vec<usize>, Vec<f32>);

/// float64 values (a file's weights) rounded to the nearest float32; a finite value beyond
/// float32's range is refused, naming its index (it would become an infinity, reported as a
/// non-finite value the file does not hold).
pub(crate) fn narrow_f64(values: impl Iterator<Item = f64>) -> Result<Vec<f32>, String> {
    values
        .enumerate()
        .map(|(at, v)| match v as f32 {
            n if v.is_finite() && !n.is_finite() => Err(format!(
                "{v:e} at index {at} is beyond float32's range (float64 weights are rounded to float32)"
            )),
            n => Ok(n),
        })
        .collect()
}

/// Which way a layer runs over the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    /// Number of cells (1, or 2 for bidirectional).
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }

    /// Whether cell `k` of a layer with this direction walks the sequence backwards.
    pub fn is_reversed(self, k: usize) -> bool {
        match self {
            Direction::Forward => false,
            Direction::Reverse => true,
            Direction::Bidirectional => k == 1,
        }
    }

    /// The time index of the `s`-th step direction `k` takes over `steps` steps (reversed
    /// directions walk the sequence backwards).
    pub fn time(self, k: usize, s: usize, steps: usize) -> usize {
        if self.is_reversed(k) {
            steps - 1 - s
        } else {
            s
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
}

/// The weights of one direction of one layer (gate order i, f, g, o).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Input weights `[4H, I]`, row-major.
    pub w: Vec<f32>,
    /// Recurrent weights `[4H, H]`, row-major.
    pub r: Vec<f32>,
    /// Input bias `[4H]`.
    pub b_ih: Vec<f32>,
    /// Recurrent bias `[4H]`.
    pub b_hh: Vec<f32>,
    /// Peephole weights `[3H]` in order i, f, o (ONNX `P`), if any.
    pub peephole: Option<Vec<f32>>,
    /// Initial hidden state `[H]` (zeros if absent).
    pub h0: Option<Vec<f32>>,
    /// Initial cell state `[H]` (zeros if absent).
    pub c0: Option<Vec<f32>>,
}

/// One LSTM layer: one cell per direction (forward first).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub input_size: usize,
    pub hidden_size: usize,
    pub direction: Direction,
    pub cells: Vec<Cell>,
}

impl Layer {
    /// Width of this layer's output: hidden size times directions.
    pub fn output_size(&self) -> usize {
        self.hidden_size * self.direction.count()
    }
}

/// A stack of LSTM layers with an optional embedding before it and an optional dense head.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Where it came from: a file name or `builtin:NAME`.
    pub name: String,
    /// Token ids looked up into the first layer's float inputs, if the model takes ids.
    pub embedding: Option<Embedding>,
    pub layers: Vec<Layer>,
    pub head: Option<Head>,
    /// The input sizes an exported graph was built for, if it fixes any.
    pub fixed: FixedSizes,
}

/// The steps and batch size a graph fixes with literal sizes (a static export: a graph input
/// declared `[6, 3, 40]`, a Reshape to `[6, 3, -1]`, an initial state of `[1, 3, H]`). The evaluation itself is the same for any
/// size, but the graph is not: onnxruntime refuses such a model on other sizes, or regroups
/// its rows differently, so inputs must match. Each is `(size, what fixes it)`, a node or the
/// graph input as errors name it (`node 'merge'`, `graph input 'x'`); `None` where the graph
/// takes any size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FixedSizes {
    pub steps: Option<(usize, String)>,
    pub batch: Option<(usize, String)>,
}

impl Model {
    /// Width of the model's input.
    pub fn input_size(&self) -> usize {
        self.layers.first().map_or(0, |l| l.input_size)
    }

    /// The weights of the LSTM layers, W and R of every layer direction: 4H·(I + H) each, I
    /// the width of what the layer reads (the plans of each config hold them, and a policy
    /// simulation the model's own; `eval::plan_bytes`, `dynamic::policy_run_bytes`). `None` past u128.
    pub fn lstm_weights(&self) -> Option<u128> {
        let mut input = self.input_size() as u128;
        let mut sum = 0u128;
        for l in &self.layers {
            let h = l.hidden_size as u128;
            let cell = input.checked_add(h)?.checked_mul(4 * h)?;
            sum = sum.checked_add(cell.checked_mul(l.direction.count() as u128)?)?;
            input = l.output_size() as u128;
        }
        Some(sum)
    }

    /// Width of the last layer's hidden output (hidden size times directions).
    pub fn hidden_output_size(&self) -> usize {
        self.layers.last().map_or(0, Layer::output_size)
    }

    /// Rows of head output per sequence of `steps` steps (`steps` without a head).
    pub fn head_rows(&self, steps: usize) -> usize {
        self.head.as_ref().map_or(steps, |h| h.rows(steps))
    }

    /// Multiply-accumulates of the LSTM layers for one time step of one sequence: one per
    /// weight ([`Model::lstm_weights`]; `u64::MAX` past it).
    pub fn macs_per_step(&self) -> u64 {
        self.lstm_weights()
            .map_or(u64::MAX, |w| u64::try_from(w).unwrap_or(u64::MAX))
    }

    /// Checks every shape against the sizes it must agree with, and that all weights are
    /// finite. Importers call this; the message names the layer and tensor.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |p: String| Err(ModelError::invalid(&self.name, p));
        if self.layers.is_empty() {
            return bad("model has no LSTM layer".into());
        }
        let mut expected_input = self.layers[0].input_size;
        for (l, layer) in self.layers.iter().enumerate() {
            let (i, h) = (layer.input_size, layer.hidden_size);
            if i == 0 || h == 0 {
                return bad(format!(
                    "layer {l}: input size {i} and hidden size {h} must be > 0"
                ));
            }
            if i != expected_input {
                return bad(format!(
                    "layer {l}: input size {i} does not match the previous layer's output {expected_input}"
                ));
            }
            if let Some(e) = self.embedding.as_ref().filter(|_| l == 0) {
                e.validate(i).or_else(bad)?;
            }
            if layer.cells.len() != layer.direction.count() {
                return bad(format!(
                    "layer {l}: {} direction needs {} cell(s), found {}",
                    layer.direction.name(),
                    layer.direction.count(),
                    layer.cells.len()
                ));
            }
            for (k, c) in layer.cells.iter().enumerate() {
                let shapes: [(&str, usize, Option<usize>); 7] = [
                    ("W", 4 * h * i, Some(c.w.len())),
                    ("R", 4 * h * h, Some(c.r.len())),
                    ("input bias", 4 * h, Some(c.b_ih.len())),
                    ("recurrent bias", 4 * h, Some(c.b_hh.len())),
                    ("peephole", 3 * h, c.peephole.as_ref().map(Vec::len)),
                    ("initial h", h, c.h0.as_ref().map(Vec::len)),
                    ("initial c", h, c.c0.as_ref().map(Vec::len)),
                ];
                for (what, want, got) in shapes {
                    if let Some(got) = got {
                        if got != want {
                            return bad(format!(
                                "layer {l} direction {k}: {what} has {got} values, expected {want}"
                            ));
                        }
                    }
                }
                let tensors = [
                    ("W", Some(&c.w)),
                    ("R", Some(&c.r)),
                    ("input bias", Some(&c.b_ih)),
                    ("recurrent bias", Some(&c.b_hh)),
                    ("peephole", c.peephole.as_ref()),
                    ("initial h", c.h0.as_ref()),
                    ("initial c", c.c0.as_ref()),
                ];
                for (what, t) in tensors {
                    if let Some(pos) = t.and_then(|t| t.iter().position(|v| !v.is_finite())) {
                        return bad(format!(
                            "layer {l} direction {k}: {what} has a non-finite value (NaN or Inf) at index {pos}"
                        ));
                    }
                }
            }
            expected_input = layer.output_size();
        }
        if let Some(head) = &self.head {
            head.validate(expected_input)
                .map_err(|e| ModelError::invalid(&self.name, e))?;
        }
        Ok(())
    }

    /// One line per layer, for `--help`-style listings and logs.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.embedding {
            s += &format!(
                "  embedding: {} token ids -> {} (token-id inputs, int64 or int32 .npy)\n",
                e.vocab, e.dim
            );
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let peep = if layer.cells.iter().any(|c| c.peephole.is_some()) {
                ", peepholes"
            } else {
                ""
            };
            s += &format!(
                "  layer {l}: LSTM {} -> {} ({}{peep})\n",
                layer.input_size,
                layer.hidden_size,
                layer.direction.name()
            );
        }
        if let Some(h) = &self.head {
            let on = match h.input {
                HeadInput::EveryStep => "",
                HeadInput::LastStep => ", on the last step",
                HeadInput::FinalState => ", on the final states",
            };
            s += &format!("  head: dense {}", h.input_size());
            for (i, d) in h.layers.iter().enumerate() {
                let on = if i + 1 == h.layers.len() { on } else { "" };
                s += &format!(" -> {} ({:?}{on})", d.output_size, d.activation);
            }
            s += "\n";
        }
        s
    }
}

/// A file's bytes, after checking that it is not a directory (`expected` says what it should
/// be) and that it fits `--max-memory` (`what` names it there); errors name `name`.
pub(crate) fn read_file(
    path: &Path,
    name: &str,
    expected: &str,
    what: &str,
) -> Result<Vec<u8>, ModelError> {
    let io = |cause| ModelError::Io {
        file: name.to_string(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(ModelError::invalid(
            name,
            format!("is a directory, expected {expected}"),
        ));
    }
    // A FIFO or device: refused before opening (it could block, or never end).
    crate::inputs::regular(path).map_err(io)?;
    crate::limits::check_memory(what, Some(meta.len() as u128))
        .map_err(|e| ModelError::invalid(name, e.to_string()))?;
    std::fs::read(path).map_err(io)
}

/// Loads a model from `builtin:NAME`, a `.onnx` file or a `.safetensors` file, and validates it.
/// `opts` are checked first ([`LoadOptions::check`]; errors name the settings as flags).
pub fn load(spec: &str, opts: &LoadOptions) -> Result<Model, ModelError> {
    opts.check(spec)
        .map_err(|(which, e)| ModelError::invalid(spec, format!("{}: {e}", which.flag())))?;
    let model = if let Some(name) = spec.strip_prefix("builtin:") {
        builtin::build(name)?
    } else {
        let path = Path::new(spec);
        let bytes = read_file(path, spec, "a .onnx or .safetensors file", "model file")?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "onnx" => onnx::parse(spec, &bytes)?,
            "safetensors" => safetensors::parse(spec, &bytes, opts)?,
            _ => {
                return Err(ModelError::invalid(
                    spec,
                    "unknown model kind: expected a .onnx or .safetensors file or builtin:NAME",
                ))
            }
        }
    };
    model.validate()?;
    Ok(model)
}
