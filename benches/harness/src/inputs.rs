//! Synthesized model inputs: the shapes of the model's input specs with every symbolic dim set
//! to the batch size; floats follow a deterministic pattern in [0, 1), integers are 0.
//!
//! The DeepCTR fixtures take one float input and cast the ids inside the graph: values below 1
//! cast to id 0, which every embedding table has, so any model of that family runs on them.

use ctr_edge_runtime::model::IoInfo;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{DType, Input};

use crate::error::BenchError;

/// Values of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// f32 values.
    F32(Vec<f32>),
    /// i64 values.
    I64(Vec<i64>),
    /// i32 values.
    I32(Vec<i32>),
}

/// One synthesized input: its name, shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticInput {
    /// Model input name.
    pub name: String,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Values,
}

impl SyntheticInput {
    /// Borrowed as a runtime input.
    pub fn as_input(&self) -> Input<'_> {
        Input {
            name: &self.name,
            shape: &self.shape,
            data: match &self.values {
                Values::F32(v) => InputData::F32(v),
                Values::I64(v) => InputData::I64(v),
                Values::I32(v) => InputData::I32(v),
            },
        }
    }
}

/// Inputs for `batch` candidates of a model with input specs `specs`.
pub fn synthesize(specs: &[IoInfo], batch: usize) -> Result<Vec<SyntheticInput>, BenchError> {
    specs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(batch)).collect();
            let len = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    BenchError::unsupported(&spec.name, format!("shape {shape:?} overflows"))
                })?;
            let values = match spec.dtype {
                DType::F32 => Values::F32(
                    // Multiplicative hash of the index, folded into [0, 1).
                    (0..len)
                        .map(|i| ((i.wrapping_mul(7919) % 1000) as f32) / 1000.0)
                        .collect(),
                ),
                DType::I64 => Values::I64(vec![0; len]),
                DType::I32 => Values::I32(vec![0; len]),
                other => {
                    let reason = format!("dtype {other:?} (the harness fills f32, i64, i32)");
                    return Err(BenchError::unsupported(&spec.name, reason));
                }
            };
            Ok(SyntheticInput {
                name: spec.name.clone(),
                shape,
                values,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_dims_take_the_batch_size() {
        let specs = [IoInfo {
            name: "X".into(),
            dtype: DType::F32,
            shape: vec![None, Some(3)],
        }];
        let inputs = synthesize(&specs, 4).unwrap();
        assert_eq!(inputs[0].shape, vec![4, 3]);
        let Values::F32(v) = &inputs[0].values else {
            panic!("f32 expected")
        };
        assert_eq!(v.len(), 12);
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
    }
}
