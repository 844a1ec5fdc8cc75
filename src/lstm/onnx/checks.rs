//! What the importer checks before it reads a node: the graph input's declared type, which
//! nodes feed an output at all, and every attribute of the ops it reads (defined by ONNX for
//! that op, given once, of its type).

use super::pb::{self, NodeProto};

/// What the graph input declares: token ids or a float sequence, and its feature width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Declared {
    /// Integer token ids (`[steps, batch]` or `[batch, steps]`) for an embedding to look up.
    pub ids: bool,
    /// The feature width of a float sequence, if declared.
    pub width: Option<usize>,
    /// The sizes declared for the first two axes (steps and batch in the graph's order), where
    /// they are literal: onnxruntime refuses an input of any other size.
    pub lead: [Option<usize>; 2],
}

/// What the graph input declares. A float sequence must be float32 of rank 3 (`[steps, batch,
/// features]` or `[batch, steps, features]`); token ids int64 or int32 (the index types of
/// ONNX `Gather`) of rank 2. An input without a declared type is a float sequence unless it
/// declares rank 2.
pub(super) fn declared_input(input: &pb::ValueInfoProto) -> Result<Declared, String> {
    let float = Declared {
        ids: false,
        width: None,
        lead: [None; 2],
    };
    let Some(t) = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Ok(float);
    };
    let name = &input.name;
    let rank = t.shape.as_ref().map(|s| s.dim.len());
    let ids = match t.elem_type {
        pb::INT64 | pb::INT32 => true,
        0 => rank == Some(2),
        pb::FLOAT => false,
        e => {
            return Err(format!(
                "graph input '{name}' has element type {e} ({}); the input must be a float32 sequence or int64 / int32 token ids",
                pb::type_name(e)
            ))
        }
    };
    let literal = |d: &pb::DimensionProto| d.dim_value.filter(|&n| n > 0).map(|n| n as usize);
    let lead = |shape: &pb::TensorShapeProto| [literal(&shape.dim[0]), literal(&shape.dim[1])];
    match (ids, t.shape.as_ref()) {
        (_, None) => Ok(Declared {
            ids,
            width: None,
            lead: [None; 2],
        }),
        (true, Some(shape)) if shape.dim.len() != 2 => Err(format!(
            "graph input '{name}' holds token ids ({}) of rank {}; token ids must be [steps, batch] or [batch, steps]",
            pb::type_name(t.elem_type),
            shape.dim.len()
        )),
        (true, Some(shape)) => Ok(Declared {
            ids,
            width: None,
            lead: lead(shape),
        }),
        (false, Some(shape)) if shape.dim.len() != 3 => Err(format!(
            "graph input '{name}' has rank {}; the sequence must be float32 [steps, batch, features] or [batch, steps, features] (token ids: int64 or int32 [steps, batch] or [batch, steps])",
            shape.dim.len()
        )),
        (false, Some(shape)) => Ok(Declared {
            ids,
            width: literal(&shape.dim[2]),
            lead: lead(shape),
        }),
    }
}

/// Which nodes feed a graph output (the others are skipped: an exporter's dead ends).
pub(super) fn live_nodes(graph: &pb::GraphProto) -> Vec<bool> {
    let mut needed: std::collections::HashSet<&str> =
        graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut live = vec![false; graph.node.len()];
    for (idx, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o.as_str())) {
            live[idx] = true;
            needed.extend(node.input.iter().map(String::as_str));
        }
    }
    live
}

/// The attributes ONNX defines for the ops the importer reads, with their types (`None`:
/// an op whose attributes the importer does not check here).
fn known_attributes(op: &str, opset: i64) -> Option<&'static [(&'static str, i32)]> {
    use pb::{ATTR_FLOAT as F, ATTR_FLOATS as FS, ATTR_INT as I, ATTR_INTS as IS};
    use pb::{ATTR_STRING as S, ATTR_STRINGS as SS, ATTR_TENSOR as T};
    // Opsets before 7 had attributes since removed (`consumed_inputs`, `broadcast`,
    // LSTM's `output_sequence`): not checked there.
    if opset < 7 {
        return None;
    }
    const LSTM: &[(&str, i32)] = &[
        ("activation_alpha", FS),
        ("activation_beta", FS),
        ("activations", SS),
        ("clip", F),
        ("direction", S),
        ("hidden_size", I),
        ("input_forget", I),
        ("layout", I),
    ];
    Some(match op {
        // `layout` (the last) from opset 14.
        "LSTM" if opset < 14 => &LSTM[..LSTM.len() - 1],
        "LSTM" => LSTM,
        "Gemm" => &[("alpha", F), ("beta", F), ("transA", I), ("transB", I)],
        "Softmax" | "Gather" | "Concat" => &[("axis", I)],
        "MatMul" | "Add" | "Sigmoid" | "Relu" | "Tanh" | "Identity" | "Expand" => &[],
        "Transpose" => &[("perm", IS)],
        // The axes are an attribute before opset 13, input 1 from 13 (`axes_form`).
        "Squeeze" | "Unsqueeze" if opset < 13 => &[("axes", IS)],
        "Squeeze" | "Unsqueeze" => &[],
        "Reshape" if opset < 14 => &[],
        "Reshape" => &[("allowzero", I)],
        "Shape" if opset < 15 => &[],
        "Shape" => &[("start", I), ("end", I)],
        "ConstantOfShape" => &[("value", T)],
        "Slice" if opset < 10 => &[("starts", IS), ("ends", IS), ("axes", IS)],
        "Slice" => &[],
        _ => return None,
    })
}

/// Refuses an attribute that ONNX does not define on the op at `opset`, one given twice, or
/// one of the wrong type (a type left unset, as very old exporters do, is taken as written),
/// and axes given another opset's way ([`axes_form`]).
pub(super) fn check_attributes(node: &NodeProto, opset: i64) -> Result<(), String> {
    let Some(known) = known_attributes(&node.op_type, opset) else {
        return axes_form(node, opset);
    };
    for (k, a) in node.attribute.iter().enumerate() {
        if node.attribute[..k].iter().any(|b| b.name == a.name) {
            return Err(format!("attribute '{}' is given twice", a.name));
        }
        let Some(&(_, want)) = known.iter().find(|(name, _)| *name == a.name) else {
            let since = match (node.op_type.as_str(), a.name.as_str()) {
                ("Squeeze" | "Unsqueeze", "axes") => "; from opset 13 the axes are input 1",
                ("LSTM", "layout") | ("Reshape", "allowzero") => "; it is defined from opset 14",
                ("Shape", "start" | "end") => "; it is defined from opset 15",
                _ => "",
            };
            return Err(format!(
                "attribute '{}' is not an attribute of {} (opset {opset}){since}",
                a.name, node.op_type
            ));
        };
        if a.r#type != 0 && a.r#type != want {
            return Err(format!(
                "attribute '{}' is {}, but {} defines it as {}",
                a.name,
                pb::attr_type_name(a.r#type),
                node.op_type,
                pb::attr_type_name(want)
            ));
        }
    }
    axes_form(node, opset)
}

/// Refuses a Squeeze or Unsqueeze whose axes are given the other opset's way (an attribute
/// before opset 13, input 1 from 13), an Unsqueeze without axes, and a Concat without its
/// axis: onnxruntime refuses each.
fn axes_form(node: &NodeProto, opset: i64) -> Result<(), String> {
    let op = node.op_type.as_str();
    let has_attr = |name: &str| node.attribute.iter().any(|a| a.name == name);
    let input_axes = node.input.get(1).is_some_and(|n| !n.is_empty());
    match op {
        "Squeeze" | "Unsqueeze" if opset < 13 && node.input.len() > 1 => Err(format!(
            "takes its axes as input 1 ('{}'), but before opset 13 {op} has one input and the axes are its attribute (opset {opset})",
            node.input[1]
        )),
        "Unsqueeze" if opset < 13 && !has_attr("axes") => Err(format!(
            "has no attribute 'axes', which Unsqueeze requires before opset 13 (opset {opset})"
        )),
        "Unsqueeze" if opset >= 13 && !input_axes => Err(format!(
            "has no axes input (input 1), which Unsqueeze requires from opset 13 (opset {opset})"
        )),
        "Concat" if opset >= 4 && !has_attr("axis") => {
            Err("has no attribute 'axis', which Concat requires".into())
        }
        _ => Ok(()),
    }
}
