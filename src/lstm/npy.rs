//! Input sequences and output arrays as NumPy `.npy` files: float32 `[T, I]` (one sequence) or
//! `[N, T, I]` (a batch of sequences of one length) in, float32 arrays out. Outputs are
//! written to a temporary file and renamed, so a failed run never leaves half a file.

use super::ModelError;
use std::path::Path;

/// A batch of `count` sequences of `steps` steps of `width` features, `[N, T, I]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequences {
    pub count: usize,
    pub steps: usize,
    pub width: usize,
    pub data: Vec<f32>,
    /// Whether the file was `[N, T, I]` (outputs then keep the batch axis).
    pub batched: bool,
}

impl Sequences {
    /// Sequence `n` as `[T, I]`.
    pub fn sequence(&self, n: usize) -> &[f32] {
        let len = self.steps * self.width;
        &self.data[n * len..(n + 1) * len]
    }

    /// Builds a batch from `[N, T, I]` data, checking sizes and finiteness; `name` is used in
    /// errors.
    pub fn new(
        name: &str,
        shape: [usize; 3],
        data: Vec<f32>,
        batched: bool,
    ) -> Result<Self, ModelError> {
        let [count, steps, width] = shape;
        if count == 0 || steps == 0 || width == 0 {
            return Err(ModelError::invalid(
                name,
                format!("empty input of shape {shape:?}"),
            ));
        }
        if data.len() != count * steps * width {
            return Err(ModelError::invalid(
                name,
                "data length does not match the shape",
            ));
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            let (n, rest) = (pos / (steps * width), pos % (steps * width));
            return Err(ModelError::invalid(
                name,
                format!(
                    "non-finite value (NaN or Inf) at sequence {n}, step {}, feature {}",
                    rest / width,
                    rest % width
                ),
            ));
        }
        Ok(Sequences {
            count,
            steps,
            width,
            data,
            batched,
        })
    }
}

/// Reads a float32 `.npy` of shape `[T, I]` or `[N, T, I]`.
pub fn read_sequences(path: &Path) -> Result<Sequences, ModelError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        file: name.clone(),
        source,
    })?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| ModelError::invalid(&name, format!("not a .npy file ({e})")))?;
    let descr = npy.dtype().descr();
    if descr != "'<f4'" {
        return Err(ModelError::invalid(
            &name,
            format!(
                "dtype is {descr}, expected float32 ('<f4'); convert with x.astype(numpy.float32)"
            ),
        ));
    }
    if npy.order() != npyz::Order::C {
        return Err(ModelError::invalid(
            &name,
            "Fortran-order arrays are not supported; save a C-order array",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let (dims, batched) = match shape[..] {
        [t, i] => ([1, t, i], false),
        [n, t, i] => ([n, t, i], true),
        _ => {
            return Err(ModelError::invalid(
                &name,
                format!("shape {shape:?}: expected [T, I] or [N, T, I]"),
            ))
        }
    };
    let data: Vec<f32> = npy
        .into_vec()
        .map_err(|e| ModelError::invalid(&name, format!("truncated or unreadable data ({e})")))?;
    Sequences::new(&name, dims, data, batched)
}

/// Reads any float32 `.npy` as (shape, data); used by tests and tools.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        file: name.clone(),
        source,
    })?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| ModelError::invalid(&name, format!("not a .npy file ({e})")))?;
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let data = npy
        .into_vec::<f32>()
        .map_err(|e| ModelError::invalid(&name, format!("not float32 data ({e})")))?;
    Ok((shape, data))
}

/// Writes a float32 C-order `.npy` (format 1.0) atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ModelError> {
    let name = path.display().to_string();
    let io = |source| ModelError::Io {
        file: name.clone(),
        source,
    };
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::report::write_atomic(path, |out| out.write_all(&bytes)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_our_writer_and_npyz() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.5 - 3.0).collect();
        write_f32(&p, &[2, 3, 4], &data).unwrap();
        let s = read_sequences(&p).unwrap();
        assert_eq!((s.count, s.steps, s.width, s.batched), (2, 3, 4, true));
        assert_eq!(s.data, data);
        write_f32(&p, &[6, 4], &data).unwrap();
        let s = read_sequences(&p).unwrap();
        assert_eq!((s.count, s.steps, s.width, s.batched), (1, 6, 4, false));
    }

    #[test]
    fn rejects_nan_and_wrong_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write_f32(&p, &[1, 2, 2], &[0.0, 1.0, f32::NAN, 2.0]).unwrap();
        let e = read_sequences(&p).unwrap_err().to_string();
        assert!(e.contains("NaN") && e.contains("step 1"), "{e}");
        write_f32(&p, &[4], &[0.0; 4]).unwrap();
        assert!(read_sequences(&p)
            .unwrap_err()
            .to_string()
            .contains("expected [T, I]"));
    }
}
