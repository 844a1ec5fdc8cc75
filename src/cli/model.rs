//! The model-level commands' flags: which model to load (a file or built-in, and what a
//! safetensors file needs named beside it), and `infer`, `ranges` and `gen-input`.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Which model to load.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model: a .onnx file, a .safetensors file (PyTorch nn.LSTM naming) or builtin:NAME.
    /// (Not empty: an empty path would fail later without naming the flag.)
    #[arg(long, value_name = "FILE|builtin:NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub model: String,
    #[command(flatten)]
    pub settings: LoadArgs,
}

/// What a safetensors model needs named beside its file (an ONNX graph carries its own).
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// safetensors only: name of a dense head after the LSTM (`fc` reads fc.weight, fc.bias),
    /// or its layers in order (`fc1,fc2`).
    #[arg(long, value_name = "NAME[,NAME...]")]
    pub head: Option<String>,
    /// safetensors only: activation after the head, or after each of its layers in order
    /// (`relu,softmax`): none, relu, tanh, sigmoid, softmax.
    #[arg(long, value_name = "ACTIVATION[,...]")]
    pub head_activation: Option<String>,
    /// safetensors only: which hidden vectors the head reads: every step (`fc(y)`, the
    /// default), the last step (`fc(y[:, -1])`) or each direction's final state
    /// (`fc(h_n[-1])`, `fc(cat(h_n[-2], h_n[-1]))`).
    #[arg(long, value_name = "every-step|last-step|final-state")]
    pub head_input: Option<String>,
    /// safetensors only: an nn.Embedding before the LSTM (`emb` reads emb.weight); inputs are ids.
    #[arg(long, value_name = "NAME")]
    pub embedding: Option<String>,
}

/// What `infer` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// The last LSTM layer's hidden sequence, [T, H*directions] or [N, T, H*directions].
    Hidden,
    /// The dense head's output, [T, O] or [N, T, O]; [O] or [N, O] for a head on the last
    /// step or the final states.
    Output,
}

#[derive(Debug, Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input sequences: float32 .npy of shape [T, I] or [N, T, I]; for a model with an
    /// embedding, int64 or int32 token ids of shape [T] or [N, T].
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Precision config: one format for everything (fp32, fx8, fx16.12, fp16, bf16, fp8e4m3,
    /// fp8e5m2, e<E>m<M>) or per role: w=weights, a=activations, p=pre-activations, c=cell
    /// state, e.g. `w=fx8,a=fx8,c=fx16`. See docs/NUMERICS.md.
    #[arg(long, default_value = "fp32", value_name = "CONFIG")]
    pub precision: String,
    /// Output file (float32 .npy); written whole or not at all.
    #[arg(long, value_name = "Y.npy")]
    pub output: PathBuf,
    /// Write the last layer's hidden states or the head's output.
    #[arg(long, value_enum, default_value_t = What::Hidden)]
    pub what: What,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RangesArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Calibration sequences: float32 .npy of shape [T, I] or [N, T, I]; for a model with an
    /// embedding, int64 or int32 token ids of shape [T] or [N, T].
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Precision configs whose resolved formats to show (NUMERICS.md §3: `cal=max|mse|p<q>`,
    /// `wscale=tensor|channel`).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "fx8;fx8,cal=p99.99;fx8,cal=mse;fx16;fx16,cal=mse"
    )]
    pub precisions: String,
    /// Also write the table as CSV (written whole or not at all).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenInputArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of sequences N [default: the model's, if it fixes them; else 4].
    #[arg(long)]
    pub sequences: Option<usize>,
    /// Steps per sequence T [default: the model's, if it fixes them; else 32].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file, float32 [N, T, I] (int64 token ids [N, T] for a model with an embedding).
    #[arg(long, value_name = "X.npy")]
    pub output: PathBuf,
}
