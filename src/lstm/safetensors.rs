//! safetensors import in PyTorch `nn.LSTM` naming: `<prefix>weight_ih_l<k>`,
//! `<prefix>weight_hh_l<k>`, `<prefix>bias_ih_l<k>`, `<prefix>bias_hh_l<k>`, with `_reverse`
//! for the second direction of a bidirectional layer (gate order i, f, g, o, as stored
//! internally). The prefix is found from the `weight_ih_l0` key; a dense head is named with
//! `--head NAME` (`NAME.weight [O, In]`, `NAME.bias [O]`).

use super::{Cell, Direction, Head, HeadActivation, Layer, LoadOptions, Model, ModelError, Tensor};
use safetensors::{Dtype, SafeTensors};

/// Parses a safetensors file; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8], opts: &LoadOptions) -> Result<Model, ModelError> {
    let err = |p: String| ModelError::invalid(file, p);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a safetensors file ({e})")))?;
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
            Ok(view) => {
                let data = match view.dtype() {
                    Dtype::F32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    Dtype::F64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                        .collect(),
                    other => {
                        return Err(err(format!(
                        "tensor '{name}': dtype {other:?} is not supported (float32 or float64)"
                    )))
                    }
                };
                Ok(Some((view.shape().to_vec(), data)))
            }
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
            if g4 == 0 || g4 % 4 != 0 {
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
            let bias = |what: &str| -> Result<Vec<f32>, ModelError> {
                match get(&name(what))? {
                    None => Ok(vec![0.0; 4 * h]),
                    Some((bd, b)) if bd == [4 * h] => Ok(b),
                    Some((bd, _)) => Err(err(format!(
                        "'{}' has shape {bd:?}, expected [{}]",
                        name(what),
                        4 * h
                    ))),
                }
            };
            cells.push(Cell {
                w,
                r,
                b_ih: bias("bias_ih")?,
                b_hh: bias("bias_hh")?,
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
    // A layer after a gap (l0 and l2 without l1) would be dropped without a word.
    let found = layers.len();
    let stray = st.names().iter().find_map(|n| {
        let rest = n.strip_prefix(prefix.as_str())?;
        let k = rest.split('_').find_map(|part| part.strip_prefix('l'))?;
        let k: usize = k.parse().ok()?;
        (k >= found && rest.starts_with("weight_")).then(|| (n.to_string(), k))
    });
    if let Some((n, k)) = stray {
        return Err(err(format!(
            "tensor '{n}' is of layer {k}, but there is no '{prefix}weight_ih_l{found}'"
        )));
    }
    let head = match &opts.head {
        None => None,
        Some(name) => {
            let (wd, weight) = get(&format!("{name}.weight"))?
                .ok_or_else(|| err(format!("--head {name}: no tensor '{name}.weight'")))?;
            let [out, input] = wd[..] else {
                return Err(err(format!(
                    "'{name}.weight' has shape {wd:?}, expected [out, in]"
                )));
            };
            let bias = match get(&format!("{name}.bias"))? {
                None => vec![0.0; out],
                Some((_, b)) => b,
            };
            Some(Head {
                input_size: input,
                output_size: out,
                weight,
                bias,
                activation: opts.head_activation.unwrap_or(HeadActivation::None),
            })
        }
    };
    if head.is_none() && opts.head_activation.is_some() {
        return Err(err("--head-activation needs --head".into()));
    }
    Ok(Model {
        name: file.to_string(),
        layers,
        head,
        fixed: Default::default(),
    })
}
