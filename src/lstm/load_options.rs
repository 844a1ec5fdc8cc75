//! How a safetensors model's head and embedding are named, as the command line (`--head fc1,fc2
//! --head-activation relu,softmax --head-input last-step --embedding emb`) and sweep files
//! (`workload.head`, ...) spell them: parsed, and checked against each other and the model file
//! before it is read, with errors that say which setting is wrong ([`LoadSetting`]) so each
//! caller names it its own way.

use super::{HeadActivation, HeadInput};
use std::path::Path;

/// The settings a state dict needs beside its file (an ONNX graph carries its own head and
/// embedding; a built-in model has none).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The name prefixes of the head's dense layers, in order (`fc` → `fc.weight`, `fc.bias`);
    /// empty for no head.
    pub head: Vec<String>,
    /// The activation after each of those layers (one per layer). Empty: none after any.
    pub head_activation: Vec<HeadActivation>,
    /// Which hidden vectors that head reads.
    pub head_input: Option<HeadInput>,
    /// The name prefix of an `nn.Embedding` before the LSTM (`emb` → `emb.weight [vocab,
    /// dim]`); the model then takes token ids.
    pub embedding: Option<String>,
}

/// Which setting an error of [`LoadOptions::parse`] or [`LoadOptions::check`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSetting {
    Head,
    Activation,
    Input,
    Embedding,
}

impl LoadSetting {
    /// Its command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            LoadSetting::Head => "--head",
            LoadSetting::Activation => "--head-activation",
            LoadSetting::Input => "--head-input",
            LoadSetting::Embedding => "--embedding",
        }
    }

    /// Its key in a sweep file's `[workload]`.
    pub fn key(self) -> &'static str {
        match self {
            LoadSetting::Head => "workload.head",
            LoadSetting::Activation => "workload.head_activation",
            LoadSetting::Input => "workload.head_input",
            LoadSetting::Embedding => "workload.embedding",
        }
    }
}

/// Whether `spec` names a safetensors file (the loader goes by the extension, in any case).
fn is_safetensors(spec: &str) -> bool {
    Path::new(spec)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

impl LoadOptions {
    /// The settings as spelt on the command line and in sweep files: `fc` or `fc1,fc2`, one
    /// activation per layer (`relu,softmax`), the input, and the embedding's name.
    pub fn parse(
        head: Option<&str>,
        activation: Option<&str>,
        input: Option<&str>,
        embedding: Option<&str>,
    ) -> Result<LoadOptions, (LoadSetting, String)> {
        let list = |s: Option<&str>, what: LoadSetting| -> Result<Vec<String>, _> {
            let Some(s) = s else { return Ok(Vec::new()) };
            let parts: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
            if parts.iter().any(String::is_empty) {
                return Err((what, format!("'{s}' has an empty name in its list")));
            }
            Ok(parts)
        };
        let head = list(head, LoadSetting::Head)?;
        let head_activation = list(activation, LoadSetting::Activation)?
            .iter()
            .map(|a| a.parse().map_err(|e| (LoadSetting::Activation, e)))
            .collect::<Result<_, _>>()?;
        let head_input = input
            .map(|s| s.parse().map_err(|e| (LoadSetting::Input, e)))
            .transpose()?;
        let embedding = match embedding.map(str::trim) {
            Some("") => return Err((LoadSetting::Embedding, "the name is empty".into())),
            Some(e) if e.contains(',') => {
                let problem = format!("'{e}': one embedding only (a name, not a list)");
                return Err((LoadSetting::Embedding, problem));
            }
            e => e.map(str::to_string),
        };
        Ok(LoadOptions {
            head,
            head_activation,
            head_input,
            embedding,
        })
    }

    /// Checks the settings against each other ([`LoadOptions::consistent`]) and the model they
    /// load: any of them needs a safetensors file.
    pub fn check(&self, model: &str) -> Result<(), (LoadSetting, String)> {
        if let Some(which) = self.given().first() {
            if !is_safetensors(model) {
                let problem = "applies to safetensors models only (an ONNX graph carries its own head and embedding)";
                return Err((*which, problem.into()));
            }
        }
        self.consistent()
    }

    /// The settings given, in [`LoadSetting`] order.
    pub fn given(&self) -> Vec<LoadSetting> {
        let on = [
            (LoadSetting::Head, !self.head.is_empty()),
            (LoadSetting::Activation, !self.head_activation.is_empty()),
            (LoadSetting::Input, self.head_input.is_some()),
            (LoadSetting::Embedding, self.embedding.is_some()),
        ];
        on.into_iter()
            .filter(|(_, on)| *on)
            .map(|(s, _)| s)
            .collect()
    }

    /// An activation or an input needs a head, and a head's activations are one per layer.
    pub fn consistent(&self) -> Result<(), (LoadSetting, String)> {
        for which in self.given() {
            if matches!(which, LoadSetting::Activation | LoadSetting::Input) && self.head.is_empty()
            {
                return Err((which, "needs a head: name its dense layers too".into()));
            }
        }
        let (activations, layers) = (self.head_activation.len(), self.head.len());
        if activations > 0 && activations != layers {
            return Err((
                LoadSetting::Activation,
                format!("{activations} activations for {layers} head layers (give one per layer, in order)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_against_each_other_and_the_file() {
        let parse = |h, a, i, e| LoadOptions::parse(h, a, i, e);
        let ok = parse(
            Some("fc1, fc2"),
            Some("relu,softmax"),
            Some("last-step"),
            Some("emb"),
        );
        let ok = ok.unwrap();
        assert_eq!(ok.head, ["fc1", "fc2"]);
        assert_eq!(ok.check("m.safetensors"), Ok(()));
        assert_eq!(ok.check("M.SafeTensors"), Ok(()));
        let which = |r: Result<(), (LoadSetting, String)>| r.unwrap_err().0;
        assert_eq!(which(ok.check("m.onnx")), LoadSetting::Head);
        let emb = parse(None, None, None, Some("emb")).unwrap();
        assert_eq!(which(emb.check("builtin:tiny")), LoadSetting::Embedding);
        for (a, i, want) in [
            (Some("relu"), None, LoadSetting::Activation),
            (None, Some("last-step"), LoadSetting::Input),
        ] {
            let o = parse(None, a, i, None).unwrap();
            assert_eq!(which(o.check("m.safetensors")), want);
        }
        let o = parse(Some("fc1,fc2"), Some("softmax"), None, None).unwrap();
        let (w, e) = o.check("m.safetensors").unwrap_err();
        assert_eq!(
            (w, e.as_str()),
            (
                LoadSetting::Activation,
                "1 activations for 2 head layers (give one per layer, in order)"
            )
        );
        for (h, a, i, e, want) in [
            (Some("fc,"), None, None, None, LoadSetting::Head),
            (None, Some("gelu"), None, None, LoadSetting::Activation),
            (None, None, Some("middle"), None, LoadSetting::Input),
            (None, None, None, Some(" "), LoadSetting::Embedding),
            (None, None, None, Some("a,b"), LoadSetting::Embedding),
        ] {
            assert_eq!(parse(h, a, i, e).unwrap_err().0, want);
        }
    }
}
