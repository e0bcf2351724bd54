//! What the fuzz targets (`fuzz/`, see fuzz/README.md) found, each input replayed as its target
//! saw it and held to the outcome the rules ask for: a typed error naming what was wrong, or a
//! correct result; never a panic, an abort or a huge allocation.
//!
//! Inputs live in `tests/corpus/fuzz/`, named `TARGET_WHAT.bin`, byte for byte the crash file
//! libFuzzer wrote (the layout of each target is documented in its source,
//! `fuzz/fuzz_targets/TARGET.rs`; the replay helpers below follow it).

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{DType, Error, Input, Limits, Model, OpenOptions, Verify};

fn corpus_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/corpus/fuzz/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The limits of the `open_plan` target.
fn fuzz_limits() -> Limits {
    let mut l = Limits::DEFAULT;
    l.max_nodes = 10_000;
    l.max_depth = 1_000;
    l.max_folded_bytes = 16 << 20;
    l.max_scratch_bytes = 64 << 20;
    l
}

/// Replays an `open_plan` input: flags byte (bits 0-1 weights check, 2-3 batch, bit 4 a second
/// run at batch + 1, bit 5 fusions off, bit 6 zero weights), u32 LE ONNX length, ONNX,
/// weights. Returns the first error (open or run), or the output shapes of the last run.
fn replay_open_plan(data: &[u8]) -> Result<Vec<Vec<usize>>, Error> {
    assert!(data.len() >= 5, "an open_plan case has a 5-byte header");
    let flags = data[0];
    let n = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
    let rest = &data[5..];
    let (onnx, given) = rest.split_at(n.min(rest.len()));
    let zeros = vec![0u8; 8 << 20];
    let weights = if flags & 0x40 != 0 { &zeros[..] } else { given };
    let verify = match flags & 3 {
        1 => Verify::Identity,
        2 => Verify::Full,
        _ => Verify::None,
    };
    let options = OpenOptions::new().limits(fuzz_limits()).verify(verify);
    let model = Model::from_bytes_with(onnx, weights, &options)?;
    let mut session = model.session();
    session.set_fusion(flags & 0x20 == 0);
    let batch = usize::from((flags >> 2) & 3);
    let batches: &[usize] = if flags & 0x10 != 0 {
        &[batch, batch + 1]
    } else {
        &[batch]
    };
    let mut shapes = Vec::new();
    for &b in batches {
        let values: Vec<(Vec<usize>, Zeros)> = model
            .inputs()
            .iter()
            .map(|info| {
                let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(b)).collect();
                let zeros = Zeros::new(info.dtype, shape.iter().product());
                (shape, zeros)
            })
            .collect();
        let inputs: Vec<Input<'_>> = model
            .inputs()
            .iter()
            .zip(&values)
            .map(|(info, (shape, zeros))| Input {
                name: &info.name,
                shape,
                data: zeros.data(),
            })
            .collect();
        session.run(&inputs)?;
        shapes = (0..session.output_count())
            .map(|i| session.output_typed(i).unwrap().shape.to_vec())
            .collect();
    }
    Ok(shapes)
}

/// Zeros of one input's dtype (0.0, 0, false: a valid value and id for every input).
enum Zeros {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl Zeros {
    fn new(dtype: DType, n: usize) -> Zeros {
        match dtype {
            DType::F32 => Zeros::F32(vec![0.0; n]),
            DType::F16 => Zeros::F16(vec![half::f16::ZERO; n]),
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

// ---- open_plan findings ----

/// Found by `open_plan` (device run of fuzz/README.md): an exported DeepFM graph mutated so
/// that a `ConstantOfShape` asks for 2^52 f32 values (a 16 PiB constant). The planner
/// allocated it before any check (`OwnedData::zeros` from `plan::Planner::node`, the
/// `ConstantOfShape` arm): the allocation fails and aborts the process. With a 16 MiB
/// `max_folded_bytes` it must be a `ResourceLimit` on that budget.
#[test]
fn constant_of_shape_of_2e52_values_is_a_resource_limit() {
    let case = corpus_file("open_plan_constant_of_shape_2e52.bin");
    match replay_open_plan(&case) {
        Err(Error::ResourceLimit { limit, allowed, .. }) => {
            assert_eq!(limit, "max_folded_bytes");
            assert_eq!(allowed, 16 << 20);
        }
        other => panic!("expected ResourceLimit on max_folded_bytes, got {other:?}"),
    }
}
