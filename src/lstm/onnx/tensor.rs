//! ONNX tensors (initializers, `Constant` values) decoded: float32/float64 to f32 values,
//! int32/int64 to integer vectors; other element types are refused. An initializer's values
//! may live in a file beside the model (external data, as `torch.onnx.export` writes them by
//! default since its dynamo exporter).

use super::*;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// `t` with its external data read into `raw_data` (`t` itself when it has none). `file` is
/// the model's path: the data file must lie in its directory or below, as the ONNX checker
/// requires, and hold the tensor's bytes exactly where `offset` and `length` say.
pub(super) fn with_external<'a>(
    file: &str,
    t: &'a TensorProto,
) -> Result<Cow<'a, TensorProto>, String> {
    if t.data_location != 1 {
        return Ok(Cow::Borrowed(t));
    }
    let entry = |key: &str| {
        (t.external_data.iter())
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("external data without a 'location'")?;
    let inside = !location.is_empty()
        && Path::new(location)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(format!(
            "external data location '{location}' must be a file in the model's directory"
        ));
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("external data {key} '{v}' is not a byte count"))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let size: u64 = match t.data_type {
        pb::FLOAT | pb::INT32 => 4,
        pb::DOUBLE | pb::INT64 => 8,
        other => {
            return Err(format!(
                "tensor element type {other} is not supported (float32, float64, int32, int64)"
            ))
        }
    };
    let bytes = (t.dims.iter())
        .try_fold(size, |a, &d| {
            u64::try_from(d).ok().and_then(|d| a.checked_mul(d))
        })
        .ok_or_else(|| format!("has an impossible shape {:?}", t.dims))?;
    if let Some(length) = number("length")? {
        if length != bytes {
            return Err(format!(
                "external data of {length} bytes for shape {:?}, which needs {bytes}",
                t.dims
            ));
        }
    }
    crate::limits::check_memory("an initializer's external data", Some(u128::from(bytes)))
        .map_err(|e| e.to_string())?;
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let path = dir.join(location);
    let cannot = |e: std::io::Error| format!("external data '{}': {e}", path.display());
    let mut f = std::fs::File::open(&path).map_err(cannot)?;
    let len = f.metadata().map_err(cannot)?.len();
    if offset.checked_add(bytes).is_none_or(|end| end > len) {
        return Err(format!(
            "external data '{}' has {len} bytes; the tensor needs {bytes} from offset {offset}",
            path.display()
        ));
    }
    f.seek(SeekFrom::Start(offset)).map_err(cannot)?;
    let mut raw = vec![0u8; bytes as usize];
    f.read_exact(&mut raw).map_err(cannot)?;
    Ok(Cow::Owned(TensorProto {
        raw_data: raw,
        data_location: 0,
        external_data: Vec::new(),
        ..t.clone()
    }))
}

pub(super) fn tensor_val(t: &TensorProto) -> Result<Val, String> {
    if t.data_location == 1 {
        return Err("external data is supported in initializers only".into());
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
