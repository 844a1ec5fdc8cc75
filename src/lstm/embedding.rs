//! The optional embedding front end: a table of `vocab` rows of `dim` floats that turns token
//! ids into the LSTM's float inputs (PyTorch `nn.Embedding`, exported to ONNX as a `Gather`
//! of the table by the integer graph input).
//!
//! A lookup copies a table row exactly (f32 in, the same f32 out), so the looked-up vectors
//! are the LSTM's float inputs in every respect: they are quantized, calibrated and evaluated
//! as a float `.npy` of the same values would be (docs/NUMERICS.md), on either engine. The
//! table itself is not quantized and not costed by the accelerator model (docs/MODEL.md).

use super::npy::Sequences;
use super::ModelError;

/// Which token ids a model takes: its file format's rule for negative ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegativeIds {
    /// ONNX `Gather` (onnxruntime): ids in `[-vocab, vocab - 1]`, a negative id counting from
    /// the end of the table (-1 is the last row).
    FromEnd,
    /// PyTorch `nn.Embedding`: ids in `[0, vocab - 1]`; a negative id is an error.
    Refused,
}

/// A token-embedding table before the first LSTM layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Number of rows (token ids), V.
    pub vocab: usize,
    /// Width of a row, E: the first LSTM layer's input size.
    pub dim: usize,
    /// `[vocab, dim]`, row-major: row `v` is token `v`'s input vector.
    pub table: Vec<f32>,
    /// How negative ids are read.
    pub negative: NegativeIds,
}

impl Embedding {
    /// Checks the table against its sizes and the first layer's input width, and that every
    /// value is finite; the message says what is wrong (the caller names the model).
    pub fn validate(&self, input_size: usize) -> Result<(), String> {
        if self.vocab == 0 || self.dim == 0 {
            return Err(format!(
                "embedding: a table of {} x {} has no rows or no columns",
                self.vocab, self.dim
            ));
        }
        if self.vocab.checked_mul(self.dim) != Some(self.table.len()) {
            return Err(format!(
                "embedding: {} values for a table of {} x {}",
                self.table.len(),
                self.vocab,
                self.dim
            ));
        }
        if self.dim != input_size {
            return Err(format!(
                "embedding: rows of {} values do not match the first layer's input size {input_size}",
                self.dim
            ));
        }
        if let Some(pos) = self.table.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "embedding: non-finite value (NaN or Inf) in row {}, column {}",
                pos / self.dim,
                pos % self.dim
            ));
        }
        Ok(())
    }

    /// The table row of token `id`, or why the id is not one (its range, and the rule for
    /// negative ids).
    pub fn row(&self, id: i64) -> Result<&[f32], String> {
        let v = self.vocab as i64;
        let index = match self.negative {
            NegativeIds::FromEnd if (-v..0).contains(&id) => id + v,
            _ if (0..v).contains(&id) => id,
            NegativeIds::FromEnd => {
                return Err(format!(
                    "token id {id} is outside the vocabulary of {v} (ids -{v}..{}, negative ones counting from the end as ONNX Gather reads them)",
                    v - 1
                ))
            }
            NegativeIds::Refused => {
                return Err(format!(
                    "token id {id} is outside the vocabulary of {v} (ids 0..{})",
                    v - 1
                ))
            }
        } as usize;
        Ok(&self.table[index * self.dim..(index + 1) * self.dim])
    }

    /// Looks up `count` sequences of `steps` token ids (`[N, T]`, row-major) into `[N, T, E]`
    /// float inputs; an id out of range is an error naming `name`, the sequence and the step.
    pub fn lookup(
        &self,
        name: &str,
        [count, steps]: [usize; 2],
        ids: &[i64],
        batched: bool,
    ) -> Result<Sequences, ModelError> {
        let mut data = Vec::with_capacity(ids.len().saturating_mul(self.dim));
        for (at, &id) in ids.iter().enumerate() {
            let row = self.row(id).map_err(|p| {
                let (n, t) = (at / steps.max(1), at % steps.max(1));
                ModelError::invalid(name, format!("sequence {n}, step {t}: {p}"))
            })?;
            data.extend_from_slice(row);
        }
        Sequences::new(name, [count, steps, self.dim], data, batched)
    }
}

/// `n` seeded token ids, uniform over the vocabulary (`gen-input`, a sweep's generated input).
pub fn random_ids(rng: &mut super::builtin::SplitMix64, e: &Embedding, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| (rng.next_u64() % e.vocab as u64) as i64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(negative: NegativeIds) -> Embedding {
        Embedding {
            vocab: 3,
            dim: 2,
            table: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
            negative,
        }
    }

    #[test]
    fn lookup_copies_rows_and_names_a_bad_id() {
        let e = table(NegativeIds::FromEnd);
        let s = e.lookup("ids.npy", [2, 2], &[2, 0, -1, -3], true).unwrap();
        assert_eq!((s.count, s.steps, s.width), (2, 2, 2));
        assert_eq!(s.data, [2.0, 2.5, 0.0, 0.5, 2.0, 2.5, 0.0, 0.5]);
        let err = e
            .lookup("ids.npy", [2, 2], &[0, 1, 2, 3], true)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ids.npy: sequence 1, step 1: token id 3")
                && err.contains("vocabulary of 3"),
            "{err}"
        );
        assert!(e.row(-4).is_err());
        let torch = table(NegativeIds::Refused);
        assert!(torch.row(-1).unwrap_err().contains("ids 0..2"));
        assert_eq!(torch.row(1).unwrap(), [1.0, 1.5]);
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let mut e = table(NegativeIds::Refused);
        assert!(e.validate(2).is_ok());
        assert!(e.validate(3).unwrap_err().contains("input size 3"));
        e.table[3] = f32::NAN;
        assert!(e.validate(2).unwrap_err().contains("row 1, column 1"));
        e.table.pop();
        assert!(e.validate(2).unwrap_err().contains("5 values"));
    }
}
