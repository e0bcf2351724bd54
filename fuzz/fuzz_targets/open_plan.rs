//! Open + plan + run: `Model::from_bytes_with` under small limits (decoding, weights check,
//! graph loading, constant folding, the load-time validation plan), then `Session::run` on a
//! small batch of zeros (zero is a valid id for every embedding table) and a read of every
//! output.
//!
//! Input layout (`fuzz/seed.sh` writes the seeds in it):
//! - byte 0, flags: bits 0-1 the weights check (1 Identity, 2 Full, else None); bits 2-3 the
//!   batch size given to symbolic dimensions (0-3); bit 4: a second run at batch + 1 (a second
//!   plan in the same session); bit 5: fusions off; bit 6: the weights are 8 MiB of zeros
//!   instead of the input's bytes (for the seeds of exported artifacts, whose weights files
//!   are too large to mutate; zero is a valid value for every tensor);
//! - bytes 1..5: the ONNX length `n`, u32 little-endian (clamped to what follows);
//! - `n` bytes of ONNX, then the weights file's bytes (the rest).
//!
//! Inputs shorter than 5 bytes are taken as ONNX bytes alone. A finding is a panic, an
//! overflow, a sanitizer report, an allocation over `-malloc_limit_mb` or a hang; and a run's
//! outputs must hold exactly the values their shapes announce.
#![no_main]

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{DType, Input, Limits, Model, OpenOptions, Verify};
use std::sync::OnceLock;

use half::f16;
use libfuzzer_sys::fuzz_target;

/// The limits every open runs under: small enough that libFuzzer's `-malloc_limit_mb=1024`
/// only fires on an allocation the limits failed to stop.
fn limits() -> Limits {
    let mut l = Limits::DEFAULT;
    l.max_nodes = 10_000;
    l.max_depth = 1_000;
    l.max_folded_bytes = 16 << 20;
    l.max_scratch_bytes = 64 << 20;
    l
}

/// Inputs with more values than this in all are not run (the harness's own memory).
const MAX_INPUT_VALUES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let (flags, onnx, mut weights) = split(data);
    if flags & 0x40 != 0 {
        weights = zero_weights();
    }
    let verify = match flags & 3 {
        1 => Verify::Identity,
        2 => Verify::Full,
        _ => Verify::None,
    };
    let options = OpenOptions::new().limits(limits()).verify(verify);
    let Ok(model) = Model::from_bytes_with(onnx, weights, &options) else {
        return;
    };
    let batch = usize::from((flags >> 2) & 3);
    let mut session = model.session();
    session.set_fusion(flags & 0x20 == 0);
    run_zeros(&model, &mut session, batch);
    if flags & 0x10 != 0 {
        run_zeros(&model, &mut session, batch + 1);
    }
});

fn zero_weights() -> &'static [u8] {
    static ZEROS: OnceLock<Vec<u64>> = OnceLock::new();
    let words = ZEROS.get_or_init(|| vec![0u64; 1 << 20]);
    // SAFETY: u8 has no alignment or validity requirements; same allocation, 8 bytes a word.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

fn split(data: &[u8]) -> (u8, &[u8], &[u8]) {
    if data.len() < 5 {
        return (0, data, &[]);
    }
    let n = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let rest = &data[5..];
    let n = n.min(rest.len());
    (data[0], &rest[..n], &rest[n..])
}

/// Zeros of one input's dtype.
enum Zeros {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl Zeros {
    fn new(dtype: DType, n: usize) -> Zeros {
        match dtype {
            DType::F32 => Zeros::F32(vec![0.0; n]),
            DType::F16 => Zeros::F16(vec![f16::ZERO; n]),
            DType::I64 => Zeros::I64(vec![0; n]),
            DType::I32 => Zeros::I32(vec![0; n]),
            DType::Bool => Zeros::Bool(vec![false; n]),
        }
    }

    fn data(&self) -> InputData<'_> {
        match self {
            Zeros::F32(v) => InputData::F32(v),
            Zeros::F16(v) => InputData::F16(v),
            Zeros::I64(v) => InputData::I64(v),
            Zeros::I32(v) => InputData::I32(v),
            Zeros::Bool(v) => InputData::Bool(v),
        }
    }
}

fn run_zeros(model: &Model<'_>, session: &mut ctr_edge_runtime::Session<'_, '_>, batch: usize) {
    let mut shapes = Vec::new();
    let mut total = 0usize;
    for info in model.inputs() {
        let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(batch)).collect();
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return;
        };
        total = total.saturating_add(n);
        if total > MAX_INPUT_VALUES {
            return;
        }
        shapes.push((shape, Zeros::new(info.dtype, n)));
    }
    let inputs: Vec<Input<'_>> = model
        .inputs()
        .iter()
        .zip(&shapes)
        .map(|(info, (shape, zeros))| Input {
            name: &info.name,
            shape,
            data: zeros.data(),
        })
        .collect();
    if session.run(&inputs).is_err() {
        return;
    }
    assert_eq!(session.output_count(), model.outputs().len());
    for (i, info) in model.outputs().iter().enumerate() {
        let out = session
            .output_typed(i)
            .unwrap_or_else(|| panic!("output {i} unreadable after a successful run"));
        assert_eq!(out.name, info.name);
        let numel = out.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(
            numel,
            Some(out.data.len()),
            "output '{}' {:?}",
            out.name,
            out.shape
        );
        assert_eq!(out.data.dtype(), info.dtype, "output '{}'", out.name);
    }
}
