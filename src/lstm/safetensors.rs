//! safetensors import in PyTorch `nn.LSTM` naming: `<prefix>weight_ih_l<k>`,
//! `<prefix>weight_hh_l<k>`, `<prefix>bias_ih_l<k>`, `<prefix>bias_hh_l<k>`, with `_reverse`
//! for the second direction of a bidirectional layer (gate order i, f, g, o, as stored
//! internally). The prefix is found from the `weight_ih_l0` key; a dense head is named with
//! `--head NAME` (`NAME.weight [O, In]`, `NAME.bias [O]`), a multi-layer one with
//! `--head fc1,fc2` (in order), an `nn.Embedding` before it with `--embedding NAME`
//! (`NAME.weight [vocab, dim]`). float32, float16 and bfloat16 tensors are read exactly,
//! float64 rounded to the nearest float32.

use super::{
    Cell, Dense, Direction, Embedding, Head, HeadActivation, Layer, LoadOptions, Model, ModelError,
    NegativeIds, Tensor,
};
use crate::format::FloatFormat;
use safetensors::{Dtype, SafeTensors};

/// Parses a safetensors file; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8], opts: &LoadOptions) -> Result<Model, ModelError> {
    let err = |p: String| ModelError::invalid(file, p);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a safetensors file ({e})")))?;
    if let Some(name) = repeated_name(bytes) {
        return Err(err(format!(
            "the header lists '{name}' twice (the file is ambiguous: readers keep one or the other)"
        )));
    }
    let mut prefixes: Vec<String> = st
        .names()
        .iter()
        .filter_map(|n| n.strip_suffix("weight_ih_l0").map(str::to_string))
        .collect();
    prefixes.sort();
    let prefix = match &prefixes[..] {
        [p] => p.clone(),
        [] => {
            return Err(err(
                "no '<prefix>weight_ih_l0' tensor: not a PyTorch nn.LSTM state dict".into(),
            ))
        }
        many => {
            return Err(err(format!(
                "several LSTM modules ({many:?}); keep one per file"
            )))
        }
    };
    let get = |name: &str| -> Result<Option<Tensor>, ModelError> {
        match st.tensor(name) {
            Err(_) => Ok(None),
            Ok(view) => Ok(Some((
                view.shape().to_vec(),
                values(name, &view).map_err(err)?,
            ))),
        }
    };
    if st
        .names()
        .iter()
        .any(|n| n.starts_with(&format!("{prefix}weight_hr_l")))
    {
        return Err(err(
            "LSTM with projections (proj_size > 0) is not supported".into(),
        ));
    }
    let mut layers = Vec::new();
    let mut expected_input: Option<usize> = None;
    // Whether the module has biases (nn.LSTM: in every layer and direction, or nowhere), and
    // the first tensor that says so.
    let mut biased: Option<(bool, String)> = None;
    for k in 0.. {
        let base = format!("{prefix}weight_ih_l{k}");
        if get(&base)?.is_none() {
            break;
        }
        let bidir = st.names().iter().any(|n| *n == format!("{base}_reverse"));
        let direction = if bidir {
            Direction::Bidirectional
        } else {
            Direction::Forward
        };
        let mut cells = Vec::new();
        let (mut input_size, mut hidden) = (0, 0);
        for suffix in if bidir {
            vec!["", "_reverse"]
        } else {
            vec![""]
        } {
            let name = |what: &str| format!("{prefix}{what}_l{k}{suffix}");
            let (wd, w) = get(&name("weight_ih"))?
                .ok_or_else(|| err(format!("missing tensor '{}'", name("weight_ih"))))?;
            let (rd, r) = get(&name("weight_hh"))?
                .ok_or_else(|| err(format!("missing tensor '{}'", name("weight_hh"))))?;
            let [g4, i] = wd[..] else {
                return Err(err(format!(
                    "'{}' has shape {wd:?}, expected [4H, I]",
                    name("weight_ih")
                )));
            };
            if g4 == 0 {
                return Err(err(format!(
                    "'{}' has 0 rows: a hidden size of 0 (4H rows, H at least 1)",
                    name("weight_ih")
                )));
            }
            if g4 % 4 != 0 {
                return Err(err(format!(
                    "'{}' has {g4} rows, not a multiple of 4 (four gates)",
                    name("weight_ih")
                )));
            }
            let h = g4 / 4;
            if rd != [4 * h, h] {
                return Err(err(format!(
                    "'{}' has shape {rd:?}, expected [{}, {h}]",
                    name("weight_hh"),
                    4 * h
                )));
            }
            if let Some(e) = expected_input {
                if i != e {
                    return Err(err(format!(
                        "'{}' expects {i} inputs but the previous layer gives {e}",
                        name("weight_ih")
                    )));
                }
            }
            if cells.len() == 1 && i != input_size {
                return Err(err(format!(
                    "'{}' has {i} inputs, but '{prefix}weight_ih_l{k}' has {input_size}",
                    name("weight_ih")
                )));
            }
            let bias = |what: &str| -> Result<Option<Vec<f32>>, ModelError> {
                match get(&name(what))? {
                    None => Ok(None),
                    Some((bd, b)) if bd == [4 * h] => Ok(Some(b)),
                    Some((bd, _)) => Err(err(format!(
                        "'{}' has shape {bd:?}, expected [{}]",
                        name(what),
                        4 * h
                    ))),
                }
            };
            let (b_ih, b_hh) = match (bias("bias_ih")?, bias("bias_hh")?) {
                (Some(a), Some(b)) => (a, b),
                (None, None) => (vec![0.0; 4 * h], vec![0.0; 4 * h]),
                (Some(_), None) | (None, Some(_)) => {
                    return Err(err(format!(
                        "'{}' and '{}': one is missing (nn.LSTM has both biases, or neither with bias=False)",
                        name("bias_ih"),
                        name("bias_hh")
                    )))
                }
            };
            let has = st.names().contains(&name("bias_ih").as_str());
            match &biased {
                None => biased = Some((has, name("bias_ih"))),
                Some((first, seen)) if *first != has => {
                    let (with, without) = if has {
                        (name("bias_ih"), seen.clone())
                    } else {
                        (seen.clone(), name("bias_ih"))
                    };
                    return Err(err(format!(
                        "'{with}' is there but '{without}' is not (nn.LSTM has biases in every layer and direction, or none with bias=False)"
                    )));
                }
                Some(_) => {}
            }
            cells.push(Cell {
                w,
                r,
                b_ih,
                b_hh,
                peephole: None,
                h0: None,
                c0: None,
            });
            (input_size, hidden) = (i, h);
        }
        if cells.len() == 2 && cells[1].r.len() != cells[0].r.len() {
            return Err(err(format!(
                "layer {k}: the two directions have different hidden sizes"
            )));
        }
        layers.push(Layer {
            input_size,
            hidden_size: hidden,
            direction,
            cells,
        });
        expected_input = Some(hidden * direction.count());
    }
    // Every tensor directly under the module must be one of the parameters read: a layer
    // after a gap (l0 and l2 without l1), a reverse tensor beside a one-way layer or a
    // misspelt name would otherwise be dropped without a word.
    if let Some(problem) = stray(&st.names(), &prefix, &layers) {
        return Err(err(problem));
    }
    let embedding = match &opts.embedding {
        None => None,
        Some(name) => Some(embedding(name, get(&format!("{name}.weight"))?).map_err(err)?),
    };
    opts.consistent()
        .map_err(|(which, e)| err(format!("{}: {e}", which.flag())))?;
    let activations = &opts.head_activation;
    let mut dense = Vec::with_capacity(opts.head.len());
    for (i, name) in opts.head.iter().enumerate() {
        let (wd, weight) = get(&format!("{name}.weight"))?
            .ok_or_else(|| err(format!("head layer '{name}': no tensor '{name}.weight'")))?;
        let [out, input] = wd[..] else {
            return Err(err(format!(
                "'{name}.weight' has shape {wd:?}, expected [out, in]"
            )));
        };
        let bias = match get(&format!("{name}.bias"))? {
            None => vec![0.0; out],
            Some((bd, b)) if bd == [out] => b,
            Some((bd, _)) => {
                return Err(err(format!(
                    "'{name}.bias' has shape {bd:?}, expected [{out}]"
                )))
            }
        };
        dense.push(Dense {
            input_size: input,
            output_size: out,
            weight,
            bias,
            activation: activations.get(i).copied().unwrap_or(HeadActivation::None),
        });
    }
    let head = (!dense.is_empty()).then(|| Head {
        layers: dense,
        input: opts.head_input.unwrap_or_default(),
    });
    Ok(Model {
        name: file.to_string(),
        layers,
        head,
        fixed: Default::default(),
        embedding,
    })
}

/// A name the header of a file that `SafeTensors::deserialize` accepted gives twice (its JSON
/// object is read into a map, the last entry kept).
fn repeated_name(bytes: &[u8]) -> Option<String> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            // Read to the end (the deserializer refuses a map left half read).
            let (mut seen, mut twice) = (std::collections::HashSet::new(), None);
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(name.clone()) {
                    twice = twice.or(Some(name));
                }
            }
            Ok(twice)
        }
    }
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(n).ok()?)?)?;
    let mut de = serde_json::Deserializer::from_slice(header);
    serde::Deserializer::deserialize_map(&mut de, Names)
        .ok()
        .flatten()
}

/// The embedding `NAME`: `NAME.weight [vocab, dim]` of an `nn.Embedding`, which refuses
/// negative ids (torch raises on them).
fn embedding(name: &str, weight: Option<Tensor>) -> Result<Embedding, String> {
    let (dims, table) =
        weight.ok_or_else(|| format!("embedding '{name}': no tensor '{name}.weight'"))?;
    let [vocab, dim] = dims[..] else {
        return Err(format!(
            "'{name}.weight' has shape {dims:?}, expected [vocab, dim]"
        ));
    };
    Ok(Embedding {
        vocab,
        dim,
        table,
        negative: NegativeIds::Refused,
    })
}

/// A tensor's values as f32: float32 as stored, float16 and bfloat16 widened (exactly),
/// float64 rounded to the nearest float32 (a finite value beyond float32's range is refused).
fn values(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, String> {
    let data = view.data();
    let halves = |format: FloatFormat| {
        data.chunks_exact(2)
            .map(|c| format.decode(u16::from_le_bytes([c[0], c[1]]) as u32))
            .collect()
    };
    match view.dtype() {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(halves(FloatFormat::FP16)),
        Dtype::BF16 => Ok(halves(FloatFormat::BF16)),
        Dtype::F64 => super::narrow_f64(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
        )
        .map_err(|e| format!("tensor '{name}': {e}")),
        other => Err(format!(
            "tensor '{name}': dtype {other:?} is not supported (float32, float16, bfloat16 or float64)"
        )),
    }
}

/// The first tensor directly under the LSTM module (`<prefix>NAME`, no further `.`) that is
/// not one of the parameters of `layers`, with what is wrong with it.
fn stray(names: &[&str], prefix: &str, layers: &[Layer]) -> Option<String> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names.into_iter().find_map(|n| {
        let rest = n.strip_prefix(prefix).filter(|r| !r.contains('.'))?;
        let Some((k, reverse)) = parameter_layer(rest) else {
            return Some(format!(
                "tensor '{n}' is not an nn.LSTM parameter (weight_ih_l<k>, weight_hh_l<k>, \
                 bias_ih_l<k>, bias_hh_l<k>, each with _reverse in a bidirectional layer)"
            ));
        };
        match layers.get(k) {
            None => Some(format!(
                "tensor '{n}' is of layer {k}, but there is no '{prefix}weight_ih_l{}'",
                layers.len()
            )),
            Some(l) if reverse && l.direction != Direction::Bidirectional => Some(format!(
                "tensor '{n}' is of a reverse direction, but layer {k} has no \
                 '{prefix}weight_ih_l{k}_reverse'"
            )),
            Some(_) => None,
        }
    })
}

/// For `weight_ih_l3_reverse` and the like: (layer, reverse); `None` for any other name.
fn parameter_layer(name: &str) -> Option<(usize, bool)> {
    let rest = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let (digits, reverse) = match rest.strip_suffix("_reverse") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    Some((digits.parse().ok().filter(|_| canonical)?, reverse))
}
