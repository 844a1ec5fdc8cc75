//! The dense head after the last LSTM layer: its layers (`fc`, or `fc2(relu(fc1(..)))`), their
//! activations and which hidden vectors it reads. It runs in f32 on the host for every engine (`eval::apply_head`,
//! docs/NUMERICS.md section 8).

/// The activation after one dense layer of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadActivation {
    None,
    /// `max(v, 0)`, between the dense layers of a multi-layer head.
    Relu,
    Tanh,
    Sigmoid,
    /// Over the layer's outputs (one row).
    Softmax,
}

impl HeadActivation {
    /// The name `--head-activation` and sweep files spell.
    pub fn name(self) -> &'static str {
        match self {
            HeadActivation::None => "none",
            HeadActivation::Relu => "relu",
            HeadActivation::Tanh => "tanh",
            HeadActivation::Sigmoid => "sigmoid",
            HeadActivation::Softmax => "softmax",
        }
    }
}

impl HeadActivation {
    const ALL: [HeadActivation; 5] = [
        HeadActivation::None,
        HeadActivation::Relu,
        HeadActivation::Tanh,
        HeadActivation::Sigmoid,
        HeadActivation::Softmax,
    ];
}

impl std::str::FromStr for HeadActivation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(
            s,
            &HeadActivation::ALL,
            HeadActivation::name,
            "head activation",
        )
    }
}

/// The one of `all` that `name` spells `s`, or an error listing them (`what` names the kind).
fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        format!("unknown {what} '{s}' ({})", names.join(", "))
    })
}

/// Which of the last layer's hidden vectors the dense head reads (docs/NUMERICS.md section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadInput {
    /// Every step, `fc(y)`: `[T, O]` per sequence (a tagger, a language model).
    #[default]
    EveryStep,
    /// The last time step alone, `fc(y[:, -1])`: `[1, O]` per sequence. A reverse
    /// direction's part of it is the first step that direction computes.
    LastStep,
    /// Each direction's final state (ONNX `Y_h`: forward at the last step, reverse at the
    /// first), in direction order: `fc(h_n[-1])` of a one-direction model,
    /// `fc(cat(h_n[-2], h_n[-1]))` of a bidirectional one. `[1, O]` per sequence.
    FinalState,
}

impl HeadInput {
    /// The name `--head-input` and sweep files spell.
    pub fn name(self) -> &'static str {
        match self {
            HeadInput::EveryStep => "every-step",
            HeadInput::LastStep => "last-step",
            HeadInput::FinalState => "final-state",
        }
    }
}

impl std::str::FromStr for HeadInput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let all = [
            HeadInput::EveryStep,
            HeadInput::LastStep,
            HeadInput::FinalState,
        ];
        by_name(s, &all, HeadInput::name, "head input")
    }
}

/// One dense layer of the head: `activation(W x + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub input_size: usize,
    pub output_size: usize,
    /// `[O, In]`, row-major.
    pub weight: Vec<f32>,
    /// `[O]`.
    pub bias: Vec<f32>,
    pub activation: HeadActivation,
}

/// Dense layers on the last LSTM layer's hidden states (every step's, or one per sequence):
/// a classifier `fc`, or `fc2(relu(fc1(..)))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// In order; never empty. The first reads the hidden vectors, each next one the previous
    /// one's outputs.
    pub layers: Vec<Dense>,
    /// Which hidden vectors it reads.
    pub input: HeadInput,
}

impl Head {
    /// Features it reads per vector (the last LSTM layer's output width).
    pub fn input_size(&self) -> usize {
        self.layers.first().map_or(0, |d| d.input_size)
    }

    /// Outputs per vector (its last layer's).
    pub fn output_size(&self) -> usize {
        self.layers.last().map_or(0, |d| d.output_size)
    }

    /// The activation of its outputs (its last layer's).
    pub fn output_activation(&self) -> HeadActivation {
        self.layers
            .last()
            .map_or(HeadActivation::None, |d| d.activation)
    }

    /// Output rows per sequence of `steps` steps: `steps`, or 1 for a head on one vector.
    pub fn rows(&self, steps: usize) -> usize {
        match self.input {
            HeadInput::EveryStep => steps,
            HeadInput::LastStep | HeadInput::FinalState => 1,
        }
    }

    /// Checks the layers chain from `input` features (the last LSTM layer's output width):
    /// sizes, weight and bias lengths, finite values. The error names the layer.
    pub(super) fn validate(&self, input: usize) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err("head: it has no dense layer".into());
        }
        let mut width = input;
        for (i, d) in self.layers.iter().enumerate() {
            // "head" for a one-layer head, as before; "head layer i" in a longer one.
            let at = if self.layers.len() == 1 {
                "head".to_string()
            } else {
                format!("head layer {i}")
            };
            if d.input_size != width {
                let from = if i == 0 {
                    "the last layer's output".to_string()
                } else {
                    format!("head layer {}'s output", i - 1)
                };
                return Err(format!(
                    "{at}: input size {} does not match {from} {width}",
                    d.input_size
                ));
            }
            if d.output_size == 0 {
                return Err(format!(
                    "{at}: it has no outputs (a weight of shape [0, in])"
                ));
            }
            if d.weight.len() != d.input_size * d.output_size || d.bias.len() != d.output_size {
                return Err(format!(
                    "{at}: weight has {} values and bias {} for a {}x{} layer",
                    d.weight.len(),
                    d.bias.len(),
                    d.output_size,
                    d.input_size
                ));
            }
            if let Some(pos) = d.weight.iter().chain(&d.bias).position(|v| !v.is_finite()) {
                return Err(format!(
                    "{at}: non-finite value (NaN or Inf) at index {pos}"
                ));
            }
            width = d.output_size;
        }
        Ok(())
    }
}
