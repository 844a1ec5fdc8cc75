//! Input sequences and output arrays as NumPy `.npy` files: float32 `[T, I]` (one sequence) or
//! `[N, T, I]` (a batch of sequences of one length) in, or integer token ids for a model with
//! an embedding ([`ids`]: `[T]`, `[N, T]`), float32 arrays out. Outputs are
//! written to a temporary file and renamed, so a failed run never leaves half a file.
//!
//! The reader is our own (a few dozen lines of header parsing): every size in a header is
//! checked against the file's length with checked arithmetic before anything is allocated,
//! so a hostile header is a one-line error, never a panic or an abort.

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
        let need = count.checked_mul(steps).and_then(|n| n.checked_mul(width));
        if need != Some(data.len()) {
            return Err(ModelError::invalid(
                name,
                format!("{} values do not fill the shape {shape:?}", data.len()),
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

/// Reads a float32 `.npy` of shape `[T, I]` or `[N, T, I]` (the inputs of a model without an
/// embedding; commands read a model's inputs with [`read_inputs`]).
pub fn read_sequences(path: &Path) -> Result<Sequences, ModelError> {
    let name = path.display().to_string();
    read_sequences_from(&name, &read_bytes(path)?)
}

/// [`read_sequences`] on bytes already in memory; `name` is used in errors.
fn read_sequences_from(name: &str, bytes: &[u8]) -> Result<Sequences, ModelError> {
    let (shape, data) = parse_f32(name, bytes)?;
    let (dims, batched) = match shape[..] {
        [t, i] => ([1, t, i], false),
        [n, t, i] => ([n, t, i], true),
        _ => {
            return Err(ModelError::invalid(
                name,
                format!("shape {shape:?}: expected [T, I] or [N, T, I]"),
            ))
        }
    };
    Sequences::new(name, dims, data, batched)
}

/// Reads any float32 `.npy` (C order) as (shape, data). The header is checked before anything
/// is allocated: the file must hold exactly the bytes its shape needs, so a header that
/// claims more data than the file has (or a shape whose product overflows) is an error, not
/// an allocation.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let name = path.display().to_string();
    parse_f32(&name, &read_bytes(path)?)
}

/// A file's bytes, after checking it is a file and that it fits `--max-memory`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, ModelError> {
    let name = path.display().to_string();
    crate::lstm::read_file(path, &name, "a .npy file", "the file")
}

/// [`read_f32`] on bytes already in memory; `name` is used in errors.
pub fn parse_f32(name: &str, bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let header = header_of(name, bytes)?;
    let big_endian = match header.descr.as_str() {
        "<f4" => false,
        ">f4" => true,
        d => {
            return Err(ModelError::invalid(
                name,
                format!(
                    "dtype is '{d}', expected float32 ('<f4'); convert with x.astype(numpy.float32)"
                ),
            ))
        }
    };
    let (shape, data) = body(name, bytes, &header, 4, "float32")?;
    let values = data
        .chunks_exact(4)
        .map(|c| {
            let b = [c[0], c[1], c[2], c[3]];
            if big_endian {
                f32::from_be_bytes(b)
            } else {
                f32::from_le_bytes(b)
            }
        })
        .collect();
    Ok((shape, values))
}

/// The header of a `.npy` in memory; `name` is used in errors.
fn header_of(name: &str, bytes: &[u8]) -> Result<header::Header, ModelError> {
    header::parse(bytes).map_err(|p| ModelError::invalid(name, format!("not a .npy file ({p})")))
}

/// The shape and the data bytes of a C-order `.npy` of `size`-byte values (`dtype` names
/// them), checked before anything is allocated: the data must be exactly what the shape
/// needs, with no product that overflows.
fn body<'a>(
    name: &str,
    bytes: &'a [u8],
    header: &header::Header,
    size: u128,
    dtype: &str,
) -> Result<(Vec<usize>, &'a [u8]), ModelError> {
    let bad = |p: String| ModelError::invalid(name, p);
    if header.fortran_order {
        return Err(bad(
            "Fortran-order arrays are not supported; save a C-order array".into(),
        ));
    }
    let data = &bytes[header.data_start..];
    let need = header
        .shape
        .iter()
        .try_fold(size, |a, &d| a.checked_mul(d as u128));
    match need {
        Some(n) if n == data.len() as u128 => {}
        Some(n) => {
            return Err(bad(format!(
                "shape {:?} needs {n} bytes of {dtype} data, the file has {}{}",
                header.shape,
                data.len(),
                if n > data.len() as u128 {
                    " (truncated, or a wrong shape in the header)"
                } else {
                    " (extra bytes after the data)"
                }
            )))
        }
        None => {
            return Err(bad(format!(
                "shape {:?} has more elements than any file can hold",
                header.shape
            )))
        }
    }
    let shape = header
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            bad(format!(
                "shape {:?} does not fit this machine",
                header.shape
            ))
        })?;
    Ok((shape, data))
}

mod header;
mod ids;

pub use ids::{parse_ids, parse_inputs, read_inputs, write_i64};

/// Writes a float32 C-order `.npy` (format 1.0) atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ModelError> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(path, "<f4", shape, &bytes)
}

/// Writes a C-order `.npy` (format 1.0) of `data`, values of dtype `descr`, atomically.
fn write_raw(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<(), ModelError> {
    let name = path.display().to_string();
    let io = |cause| ModelError::Io {
        file: name.clone(),
        cause,
    };
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    crate::report::write_atomic(path, |out| out.write_all(&bytes)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a hand-written header (format 1.0) and `data_bytes` bytes of data.
    fn with_header(dict: &str, data_bytes: usize) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.push(b'\n');
        b.extend(std::iter::repeat_n(0u8, data_bytes));
        b
    }

    #[test]
    fn shapes_that_wrap_or_exceed_the_file_are_one_line_errors() {
        let shapes = [
            "(288230376151711760, 8, 8)",
            "(2305843009213694080, 8)",
            "(16, 288230376151711752, 8)",
            "(4294967296, 4294967296, 8)",
            "(0, 18446744073709551615, 18446744073709551615)",
            "(99999999999999999999999, 1)",
            "(64, 4)",
        ];
        for shape in shapes {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            let e = parse_f32("x.npy", &with_header(&dict, 4096))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("x.npy: ") && !e.contains('\n'), "{e}");
            assert!(
                e.contains("shape") || e.contains("too large"),
                "{shape}: {e}"
            );
        }
    }

    /// numpy reads the last of two equal keys; taking the first read `[1, 6]` data as `[6, 1]`.
    #[test]
    fn a_key_given_twice_is_refused() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6), 'shape': (6, 1), }";
        let e = parse_f32("x.npy", &with_header(dict, 24))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the header gives 'shape' more than once"), "{e}");
    }

    #[test]
    fn header_variants_numpy_writes_are_read() {
        // Lists, 'L' suffixes, no trailing comma, double quotes, other key order, v2.0.
        for dict in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}",
            "{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<f4\"}",
            "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }",
        ] {
            let (shape, data) = parse_f32("x", &with_header(dict, 24)).unwrap();
            assert_eq!((shape, data.len()), (vec![2, 3], 6), "{dict}");
        }
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        let dict = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n";
        v2.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v2.extend_from_slice(dict.as_bytes());
        v2.extend_from_slice(&1.5f32.to_be_bytes());
        assert_eq!(parse_f32("x", &v2).unwrap(), (vec![1], vec![1.5]));
    }

    #[test]
    fn round_trips_through_our_writer_and_npyz() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.5 - 3.0).collect();
        write_f32(&p, &[2, 3, 4], &data).unwrap();
        let s = read_sequences(&p).unwrap();
        assert_eq!((s.count, s.steps, s.width, s.batched), (2, 3, 4, true));
        assert_eq!(s.data, data);
        // npyz (an independent reader) agrees with what we wrote.
        let bytes = std::fs::read(&p).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[2, 3, 4]);
        assert_eq!(npy.into_vec::<f32>().unwrap(), data);
        write_f32(&p, &[6, 4], &data).unwrap();
        let s = read_sequences(&p).unwrap();
        assert_eq!((s.count, s.steps, s.width, s.batched), (1, 6, 4, false));
    }

    proptest::proptest! {
        /// Our reader and npyz agree on every array our writer makes (any rank 0..4 shape).
        #[test]
        fn reader_agrees_with_npyz(shape in proptest::collection::vec(0usize..5, 0..4), seed in 0u64..1000) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|k| (k as f32 - seed as f32) * 0.25).collect();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.npy");
            write_f32(&p, &shape, &data).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let theirs = npyz::NpyFile::new(&bytes[..]).unwrap();
            let their_shape: Vec<usize> = theirs.shape().iter().map(|&d| d as usize).collect();
            let their_data = theirs.into_vec::<f32>().unwrap();
            let ours = parse_f32("x", &bytes).unwrap();
            proptest::prop_assert_eq!(ours, (their_shape, their_data));
        }
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
