//! ONNX tensors (initializers, `Constant` values) decoded: float32/float64 to f32 values,
//! int32/int64 to integer vectors; other element types are refused. An initializer's values
//! may live in a file beside the model (external data, as `torch.onnx.export` writes them by
//! default since its dynamo exporter).

use super::*;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// `t` with its external data read into `raw_data` (`t` itself when it has none). `file` is
/// the model's path: the data file must be a regular file in its directory or below (no
/// symbolic link, none on the way out of it, as the ONNX checker requires) and hold the
/// tensor's bytes exactly where `offset` and `length` say. `read` counts the bytes read so far
/// for the model: their total is bounded by `--max-memory`.
pub(super) fn with_external<'a>(
    file: &str,
    t: &'a TensorProto,
    read: &mut u128,
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
        other => return Err(unsupported_type(other)),
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
    *read += u128::from(bytes);
    crate::limits::check_memory("the model's external data", Some(*read))
        .map_err(|e| e.to_string())?;
    let path = data_path(file, location)?;
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

/// The external data file `location` names beside the model `file`: a relative path that
/// stays in the model's directory, to a regular file that is not a symbolic link (a link, a
/// directory or a pipe is refused, as the ONNX checker refuses them).
fn data_path(file: &str, location: &str) -> Result<PathBuf, String> {
    let outside =
        || format!("external data location '{location}' must be a file in the model's directory");
    let relative = !location.is_empty()
        && Path::new(location)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !relative {
        return Err(outside());
    }
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let path = dir.join(location);
    let cannot = |e: std::io::Error| format!("external data '{}': {e}", path.display());
    let meta = std::fs::symlink_metadata(&path).map_err(cannot)?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "external data '{}' is a symbolic link; keep the data file itself beside the model",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "external data '{}' is not a regular file",
            path.display()
        ));
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let real = std::fs::canonicalize(&path).map_err(cannot)?;
    let home = std::fs::canonicalize(dir).map_err(cannot)?;
    if !real.starts_with(&home) {
        return Err(outside());
    }
    Ok(path)
}

/// The external data files the initializers of the ONNX model `file` name, each once, in the
/// order first named: a run that records or hashes a model's inputs must include them (the
/// weights live there). Locations the import would refuse are left out (the import says why).
pub fn external_files(file: &str) -> Result<Vec<PathBuf>, ModelError> {
    let bytes = crate::inputs::read(Path::new(file)).map_err(|cause| ModelError::Io {
        file: file.to_string(),
        cause,
    })?;
    // A model whose weights are in the file names no external data: one pass over the bytes
    // for the key every reference holds spares decoding (and copying) all of its weights.
    if !bytes.windows(8).any(|w| w == b"location") {
        return Ok(Vec::new());
    }
    let Ok(proto) = pb::ModelProto::decode(&bytes[..]) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for t in proto.graph.iter().flat_map(|g| &g.initializer) {
        let location = (t.external_data.iter()).find(|e| e.key == "location");
        if let (1, Some(l)) = (t.data_location, location) {
            if let Ok(p) = data_path(file, &l.value) {
                if !files.contains(&p) {
                    files.push(p);
                }
            }
        }
    }
    Ok(files)
}

fn unsupported_type(t: i32) -> String {
    format!("tensor element type {t} is not supported (float32, float64, int32, int64)")
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
        other => Err(unsupported_type(other)),
    }
}
