//! ONNX tensors (initializers, `Constant` values) decoded: float32/float64 to f32 values,
//! int32/int64 to integer vectors; external data and other element types are refused.

use super::*;

pub(super) fn tensor_val(t: &TensorProto) -> Result<Val, String> {
    if t.data_location == 1 {
        return Err("external data is not supported; save the model with weights inside".into());
    }
    if let Some(d) = t.dims.iter().find(|&&d| d < 0) {
        return Err(format!(
            "has a negative dimension ({d}) in its shape {:?}",
            t.dims
        ));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("has an impossibly large shape")?;
    let raw = &t.raw_data;
    match t.data_type {
        pb::FLOAT | pb::DOUBLE => {
            let data: Vec<f32> = if t.data_type == pb::FLOAT && !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else if t.data_type == pb::DOUBLE && !raw.is_empty() {
                crate::lstm::narrow_f64(
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
                )?
            } else if t.data_type == pb::FLOAT {
                t.float_data.clone()
            } else {
                crate::lstm::narrow_f64(t.double_data.iter().copied())?
            };
            if data.len() != n {
                return Err(format!("has {} values for shape {dims:?}", data.len()));
            }
            Ok(Val::Floats { dims, data })
        }
        pb::INT64 | pb::INT32 => {
            let vals: Vec<i64> = match (t.data_type, raw.is_empty()) {
                (pb::INT64, false) => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
                (pb::INT64, true) => t.int64_data.clone(),
                (_, false) => raw
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                (_, true) => t.int32_data.iter().map(|&v| v as i64).collect(),
            };
            if vals.len() != n {
                return Err(format!("has {} values for shape {dims:?}", vals.len()));
            }
            Ok(Val::Ints {
                vals: vals.into_iter().map(Dim::Known).collect(),
                scalar: dims.is_empty(),
            })
        }
        other => Err(format!(
            "tensor element type {other} is not supported (float32, float64, int32, int64)"
        )),
    }
}
