//! Per-thread scoring state: the plan for the current batch size and its preallocated scratch.
//! (Stub: the graph engine fills it in.)

use crate::error::{Error, Result};
use crate::model::Model;
use alloc::string::String;

/// Borrowed values of one model input.
#[derive(Debug, Clone, Copy)]
pub enum InputData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// i64 values.
    I64(&'a [i64]),
    /// i32 values.
    I32(&'a [i32]),
}

/// One named input for [`Session::run`].
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Name of the model input.
    pub name: &'a str,
    /// Shape (first axis = batch).
    pub shape: &'a [usize],
    /// Values, row-major.
    pub data: InputData<'a>,
}

/// A model output after [`Session::run`].
#[derive(Debug, Clone, Copy)]
pub struct OutputView<'s> {
    /// Output name.
    pub name: &'s str,
    /// Shape.
    pub shape: &'s [usize],
    /// Values (f32), row-major.
    pub data: &'s [f32],
}

/// Scoring state for one thread.
pub struct Session<'m, 'w> {
    model: &'m Model<'w>,
}

impl<'m, 'w> Session<'m, 'w> {
    /// A session on `model`.
    pub fn new(model: &'m Model<'w>) -> Self {
        Session { model }
    }

    /// Score one batch. After the first call at a given batch size, this does not allocate.
    pub fn run(&mut self, _inputs: &[Input<'_>]) -> Result<()> {
        let _ = self.model;
        Err(Error::InvalidGraph {
            reason: String::from("not implemented yet"),
        })
    }

    /// Output `index` of the last run.
    pub fn output(&self, _index: usize) -> Option<OutputView<'_>> {
        None
    }
}
