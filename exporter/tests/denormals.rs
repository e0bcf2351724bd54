//! `compress` writes denormal weights as zero and says how many: on the two fixtures trained
//! with weight decay (movielens_nfm, talkingdata_deepfm) the count equals numpy's count of the
//! original model's denormal initializer values (`meta.json`, written by make_fixtures.py), and
//! the written weights, read here from model.weights at the offsets model.onnx records (prost,
//! not the runtime), hold none.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::ModelProto;

mod common;

use common::{ctr_edge, path_str as s, stderr, stdout};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// Every f32 value of the FLOAT initializers of the artifact in `dir`.
fn artifact_f32(dir: &Path) -> Vec<f32> {
    let model = ModelProto::decode(&fs::read(dir.join("model.onnx")).unwrap()[..]).unwrap();
    let weights = fs::read(dir.join("model.weights")).unwrap();
    let mut values = Vec::new();
    for t in &model.graph.unwrap().initializer {
        if t.data_type != DataType::Float as i32 {
            continue;
        }
        let bytes: &[u8] = if t.external_data.is_empty() {
            &t.raw_data
        } else {
            let get = |key: &str| -> usize {
                let e = t.external_data.iter().find(|e| e.key == key).unwrap();
                e.value.parse().unwrap()
            };
            let (offset, length) = (get("offset"), get("length"));
            &weights[offset..offset + length]
        };
        values.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        values.extend(&t.float_data);
    }
    values
}

#[test]
fn compress_writes_denormal_weights_as_zero_and_counts_them() {
    for name in ["movielens_nfm", "talkingdata_deepfm"] {
        let dir = fixture(name);
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let numpy = meta["weights"]["denormal"].as_u64().unwrap() as usize;
        assert!(numpy > 1000, "{name}: the fixture has {numpy} denormals");
        let out = common::scratch_in("denormals", name);
        let _ = fs::remove_dir_all(&out);
        let o = ctr_edge(&[
            "compress",
            s(&dir.join("model.onnx")),
            "--method",
            "none",
            "-o",
            s(&out),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("denormals    {numpy} weight(s)")),
            "{name}: {}",
            stdout(&o)
        );
        let report: Value =
            serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        assert_eq!(
            report["denormal_weights_flushed"].as_u64(),
            Some(numpy as u64),
            "{name}"
        );
        let values = artifact_f32(&out);
        assert!(values.len() > 10_000, "{name}: {} f32 values", values.len());
        let left = values.iter().filter(|v| v.is_subnormal()).count();
        assert_eq!(left, 0, "{name}: denormals left in the artifact");
    }
}
