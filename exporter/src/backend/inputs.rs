//! Matching data arrays to a model's declared inputs. Both backends describe their model's
//! inputs as [`InputSpec`]s and call [`match_inputs`], so a mismatch reads the same whichever
//! engine runs: `input 'X': model expects f32 [N, 8], file has f32 [100, 9]`.

use crate::error::{Error, Result};
use crate::npz::{DType, NpyArray};

/// One dimension of a declared input shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (the batch `N`, or another named dimension); any size matches.
    Free(String),
}

/// What a model declares for one input.
#[derive(Debug, Clone)]
pub(crate) struct InputSpec {
    /// Input name.
    pub name: String,
    /// Element type; `None` when the model leaves it open.
    pub dtype: Option<DType>,
    /// Shape; `None` when the model leaves even the rank open.
    pub dims: Option<Vec<Dim>>,
}

impl InputSpec {
    /// `f32 [N, 8]`, as used in messages.
    pub fn describe(&self) -> String {
        let dtype = self.dtype.map_or("any type", DType::name);
        match &self.dims {
            None => format!("{dtype} [N, ...]"),
            Some(dims) => {
                let dims: Vec<String> = dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_string(),
                        Dim::Free(s) => s.clone(),
                    })
                    .collect();
                format!("{dtype} [{}]", dims.join(", "))
            }
        }
    }

    /// Whether `array` fits: same dtype, same rank, same size on every fixed dimension but the
    /// first (the batch axis, which the backends always feed with the data's row count).
    fn accepts(&self, array: &NpyArray) -> bool {
        if self.dtype.is_some_and(|d| d != array.dtype()) || array.shape.is_empty() {
            return false;
        }
        match &self.dims {
            None => true,
            Some(dims) => {
                dims.len() == array.shape.len()
                    && dims
                        .iter()
                        .zip(&array.shape)
                        .skip(1)
                        .all(|(d, &n)| !matches!(d, Dim::Fixed(m) if *m != n))
            }
        }
    }
}

/// Find, for each spec in order, the array of the same name and check it; all matched arrays
/// must have the same number of rows, which is returned. Arrays named after no input are
/// ignored with a warning.
pub(crate) fn match_inputs<'a>(
    specs: &[InputSpec],
    arrays: &'a [NpyArray],
) -> Result<(Vec<&'a NpyArray>, usize)> {
    let mut matched = Vec::with_capacity(specs.len());
    for spec in specs {
        let array =
            arrays
                .iter()
                .find(|a| a.name == spec.name)
                .ok_or_else(|| Error::MissingInput {
                    input: spec.name.clone(),
                    expected: spec.describe(),
                    available: arrays.iter().map(|a| a.name.clone()).collect(),
                })?;
        array.check()?;
        if !spec.accepts(array) {
            return Err(Error::InputMismatch {
                input: spec.name.clone(),
                expected: spec.describe(),
                got: array.describe(),
            });
        }
        matched.push(array);
    }
    for array in arrays {
        if !specs.iter().any(|s| s.name == array.name) {
            log::warn!(
                "array '{}' ({}) is not a model input; ignored",
                array.name,
                array.describe()
            );
        }
    }
    let mut rows = None;
    for array in &matched {
        // `accepts` refused scalars, so every matched array has a first axis.
        let n = array.rows().unwrap_or(0);
        match rows {
            None => rows = Some((array.name.clone(), n)),
            Some((ref first, m)) if m != n => {
                return Err(Error::RowCountMismatch {
                    first: (first.clone(), m),
                    other: (array.name.clone(), n),
                })
            }
            Some(_) => {}
        }
    }
    Ok((matched, rows.map_or(0, |(_, n)| n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npz::ArrayData;

    fn spec(name: &str, dtype: DType, dims: Vec<Dim>) -> InputSpec {
        InputSpec {
            name: name.into(),
            dtype: Some(dtype),
            dims: Some(dims),
        }
    }

    fn f32_array(name: &str, shape: Vec<usize>) -> NpyArray {
        let n = shape.iter().product();
        NpyArray::new(name, shape, ArrayData::F32(vec![0.0; n])).unwrap()
    }

    #[test]
    fn matching_inputs_are_returned_in_model_order() {
        let specs = vec![
            spec("b", DType::F32, vec![Dim::Free("N".into()), Dim::Fixed(2)]),
            spec("a", DType::F32, vec![Dim::Fixed(1), Dim::Free("S".into())]),
        ];
        let arrays = vec![
            f32_array("a", vec![5, 7]),
            f32_array("b", vec![5, 2]),
            f32_array("label", vec![5]),
        ];
        let (matched, rows) = match_inputs(&specs, &arrays).unwrap();
        assert_eq!(rows, 5);
        assert_eq!(matched[0].name, "b");
        assert_eq!(matched[1].name, "a");
    }

    #[test]
    fn mismatches_name_the_input_and_both_shapes() {
        let specs = vec![spec(
            "X",
            DType::F32,
            vec![Dim::Free("N".into()), Dim::Fixed(8)],
        )];
        let e = match_inputs(&specs, &[f32_array("X", vec![100, 9])])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "input 'X': model expects f32 [N, 8], file has f32 [100, 9]"
        );
        let wrong_type = NpyArray::new("X", vec![1, 8], ArrayData::F64(vec![0.0; 8])).unwrap();
        let e = match_inputs(&specs, &[wrong_type]).unwrap_err().to_string();
        assert_eq!(
            e,
            "input 'X': model expects f32 [N, 8], file has f64 [1, 8]"
        );
        let e = match_inputs(&specs, &[f32_array("X", vec![8])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("f32 [8]"), "{e}");
        let e = match_inputs(&specs, &[f32_array("Y", vec![1, 8])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'X'") && e.contains("f32 [N, 8]") && e.contains("Y"),
            "{e}"
        );
    }

    #[test]
    fn row_counts_must_agree() {
        let specs = vec![
            spec("a", DType::F32, vec![Dim::Free("N".into())]),
            spec("b", DType::F32, vec![Dim::Free("N".into())]),
        ];
        let e =
            match_inputs(&specs, &[f32_array("a", vec![3]), f32_array("b", vec![4])]).unwrap_err();
        assert!(matches!(e, Error::RowCountMismatch { .. }), "{e}");
    }
}
