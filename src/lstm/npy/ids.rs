//! Model-aware inputs: [`read_inputs`] reads a model's `.npy` input, float32 sequences for a
//! model without an embedding and integer token ids (int64 or int32, `[T]` or `[N, T]`,
//! batch-major whatever the graph's layout, as float inputs are) for one with, looked up into
//! the float sequences every stage runs on. Each kind given to the other model is refused,
//! naming the file and what it needs.

use super::{body, header_of, read_bytes, read_sequences_from, Sequences};
use crate::lstm::{Embedding, Model, ModelError};
use std::path::Path;

/// Reads the input of `model` from `path`: float32 sequences, or token ids looked up in the
/// model's embedding. Every error names the file (one line).
pub fn read_inputs(path: &Path, model: &Model) -> Result<Sequences, ModelError> {
    let name = path.display().to_string();
    let bytes = read_bytes(path)?;
    parse_inputs(&name, &bytes, model)
}

/// [`read_inputs`] on bytes already in memory; `name` is used in errors.
pub fn parse_inputs(name: &str, bytes: &[u8], model: &Model) -> Result<Sequences, ModelError> {
    let header = header_of(name, bytes)?;
    let integer = int_size(&header.descr).is_some();
    match &model.embedding {
        None if integer => Err(ModelError::invalid(
            name,
            format!(
                "holds integers ('{}'), token ids, but the model '{}' has no embedding; give float32 sequences, [T, I] or [N, T, I]",
                header.descr, model.name
            ),
        )),
        None => read_sequences_from(name, bytes),
        Some(e) if !integer => Err(ModelError::invalid(
            name,
            format!(
                "dtype is '{}', but the model '{}' starts with an embedding of {} tokens: give integer token ids (int64 or int32), [T] or [N, T]",
                header.descr, model.name, e.vocab
            ),
        )),
        Some(e) => {
            let (shape, ids) = parse_ids(name, bytes)?;
            look_up(name, e, &shape, &ids)
        }
    }
}

/// The byte size and endianness of an integer dtype token ids may have (the index types of
/// ONNX `Gather`): `(8 | 4, big_endian)`.
fn int_size(descr: &str) -> Option<(usize, bool)> {
    match descr {
        "<i8" => Some((8, false)),
        ">i8" => Some((8, true)),
        "<i4" => Some((4, false)),
        ">i4" => Some((4, true)),
        _ => None,
    }
}

/// Reads an int64 or int32 `.npy` (C order) as (shape, values widened to i64), checked like
/// [`super::parse_f32`] before anything is allocated.
pub fn parse_ids(name: &str, bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), ModelError> {
    let header = header_of(name, bytes)?;
    let Some((size, big_endian)) = int_size(&header.descr) else {
        return Err(ModelError::invalid(
            name,
            format!(
                "dtype is '{}', expected token ids of int64 ('<i8') or int32 ('<i4')",
                header.descr
            ),
        ));
    };
    let dtype = if size == 8 { "int64" } else { "int32" };
    let (shape, data) = body(name, bytes, &header, size as u128, dtype)?;
    let ids = data
        .chunks_exact(size)
        .map(|c| match (size, big_endian) {
            (8, false) => i64::from_le_bytes(c.try_into().unwrap_or_default()),
            (8, true) => i64::from_be_bytes(c.try_into().unwrap_or_default()),
            (_, false) => i32::from_le_bytes(c.try_into().unwrap_or_default()).into(),
            (_, true) => i32::from_be_bytes(c.try_into().unwrap_or_default()).into(),
        })
        .collect();
    Ok((shape, ids))
}

/// Token ids `[T]` or `[N, T]` looked up into `[N, T, E]` sequences, after checking that
/// the result fits `--max-memory` (a small file of ids can ask for a large batch).
fn look_up(
    name: &str,
    e: &Embedding,
    shape: &[usize],
    ids: &[i64],
) -> Result<Sequences, ModelError> {
    let (dims, batched) = match shape[..] {
        [t] => ([1, t], false),
        [n, t] => ([n, t], true),
        _ => {
            return Err(ModelError::invalid(
                name,
                format!("shape {shape:?}: token ids must be [T] or [N, T]"),
            ))
        }
    };
    if dims.contains(&0) {
        return Err(ModelError::invalid(
            name,
            format!("empty input of shape {shape:?}"),
        ));
    }
    let need = crate::limits::product(&[4, dims[0] as u128, dims[1] as u128, e.dim as u128]);
    crate::limits::check_memory(
        &format!(
            "{} x {} token ids looked up into {} features each",
            dims[0], dims[1], e.dim
        ),
        need,
    )
    .map_err(|err| ModelError::invalid(name, err.to_string()))?;
    e.lookup(name, dims, ids, batched)
}

/// Writes an int64 C-order `.npy` (format 1.0) atomically: token ids for a model with an
/// embedding (`gen-input`, tests).
pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<(), ModelError> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    super::write_raw(path, "<i8", shape, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::NegativeIds;

    fn model(embedding: bool) -> Model {
        let mut m = crate::lstm::builtin::build("tiny").unwrap();
        m.embedding = embedding.then(|| Embedding {
            vocab: 5,
            dim: 16,
            table: (0..80).map(|v| v as f32).collect(),
            negative: NegativeIds::FromEnd,
        });
        m
    }

    /// A file with a hand-written header (format 1.0) and the given data bytes.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.push(b'\n');
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn int64_and_int32_ids_of_either_endianness_are_looked_up() {
        let m = model(true);
        let le64: Vec<u8> = [4i64, 0, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let be32: Vec<u8> = [4i32, 0, -1].iter().flat_map(|v| v.to_be_bytes()).collect();
        for (descr, data) in [("<i8", le64), (">i4", be32)] {
            let s = parse_inputs("x.npy", &npy(descr, "(3,)", &data), &m).unwrap();
            assert_eq!((s.count, s.steps, s.width, s.batched), (1, 3, 16, false));
            assert_eq!(s.data[..16], m.embedding.as_ref().unwrap().table[64..]);
            assert_eq!(s.data[16..32], m.embedding.as_ref().unwrap().table[..16]);
            assert_eq!(s.data[32..], s.data[..16], "-1 is the last row");
        }
    }

    #[test]
    fn the_wrong_kind_of_input_is_named() {
        let floats = npy("<f4", "(1, 2, 16)", &[0; 128]);
        let e = parse_inputs("x.npy", &floats, &model(true)).unwrap_err();
        assert!(e.to_string().contains("embedding of 5 tokens"), "{e}");
        let ids = npy("<i8", "(2, 2)", &[0; 32]);
        let e = parse_inputs("x.npy", &ids, &model(false)).unwrap_err();
        assert!(e.to_string().contains("has no embedding"), "{e}");
        assert!(parse_inputs("x.npy", &ids, &model(true)).is_ok());
        for (descr, shape, bytes, want) in [
            ("<i8", "(1, 2, 2)", 32, "must be [T] or [N, T]"),
            ("<i8", "(0, 2)", 0, "empty input"),
            ("<i8", "(2, 3)", 40, "needs 48 bytes of int64"),
            (
                "<i4",
                "(18446744073709551615, 18446744073709551615, 4)",
                8,
                "more elements",
            ),
            ("<u8", "(2,)", 16, "give integer token ids (int64 or int32)"),
        ] {
            let e = parse_inputs("x.npy", &npy(descr, shape, &vec![0; bytes]), &model(true))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("x.npy: ") && e.contains(want), "{e}");
        }
        let big: Vec<u8> = [1i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = parse_inputs("x.npy", &npy("<i8", "(1, 2)", &big), &model(true)).unwrap_err();
        assert!(
            e.to_string()
                .contains("sequence 0, step 1: token id 7 is outside the vocabulary of 5"),
            "{e}"
        );
    }

    #[test]
    fn ids_round_trip_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.npy");
        write_i64(&p, &[2, 3], &[0, 1, 2, 3, 4, -5]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let (shape, ids) = parse_ids("ids", &bytes).unwrap();
        assert_eq!((shape, ids), (vec![2, 3], vec![0, 1, 2, 3, 4, -5]));
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.into_vec::<i64>().unwrap(), [0, 1, 2, 3, 4, -5]);
        let s = read_inputs(&p, &model(true)).unwrap();
        assert_eq!((s.count, s.steps, s.width, s.batched), (2, 3, 16, true));
    }
}
