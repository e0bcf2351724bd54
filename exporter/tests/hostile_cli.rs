//! The hostile corpus (`tests/hostile/corpus.rs`) through the command line: `ctr-edge run` with
//! the native runtime and with tract, and `ctr-edge inspect`, on every case. Each must end with
//! a typed error (exit status 1 and a message, no panic, no abort) or a correct result within
//! 2 s and 256 MiB of resident memory.

#[path = "../../tests/hostile/corpus.rs"]
mod corpus;
#[path = "../../tests/hostile/watch.rs"]
mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use corpus::{Case, Expect};
use ctr_edge_exporter::npz::{read_npy, write_npz, ArrayData, NpyArray};

const TIME_LIMIT: Duration = Duration::from_secs(2);
const RSS_LIMIT: u64 = 256 << 20;
/// Address space the command may map (tract and the runtime reserve far less for a good run).
const ADDRESS_SPACE: u64 = 8 << 30;

/// The case's inputs as the drivers define them (`corpus::float_value`, `corpus::id_value`).
fn write_inputs(case: &Case) -> PathBuf {
    let arrays: Vec<NpyArray> = case
        .inputs
        .iter()
        .map(|spec| {
            let mut shape = vec![case.batch];
            shape.extend(&spec.dims);
            let n: usize = shape.iter().product();
            let data = if spec.ids {
                ArrayData::I64((0..n).map(|i| corpus::id_value(case.id_fill, i)).collect())
            } else {
                ArrayData::F32(
                    (0..n)
                        .map(|i| corpus::float_value(case.float_fill, i))
                        .collect(),
                )
            };
            NpyArray::new(spec.name.clone(), shape, data).expect("input array")
        })
        .collect();
    let path = case.dir.join("inputs.npz");
    write_npz(&path, &arrays).expect("inputs written");
    path
}

fn ctr_edge(args: &[&Path]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctr-edge"));
    cmd.args(args);
    cmd.env("RUST_BACKTRACE", "0");
    cmd
}

/// What is wrong with how the command ended, if anything. `strict`: the outcome must be the
/// corpus's (the native runtime); otherwise any typed error or success will do (tract, which
/// may accept what the runtime refuses, or refuse for its own reasons).
fn judge(case: &Case, w: &watch::Watched, out: Option<&Path>, strict: bool) -> Option<String> {
    if w.timed_out {
        return Some(format!(
            "killed after {:?} (limit {TIME_LIMIT:?})",
            w.elapsed
        ));
    }
    if w.max_rss > RSS_LIMIT {
        return Some(format!("peak RSS {} MiB over 256 MiB", w.max_rss >> 20));
    }
    let stderr = w.stderr.trim();
    if w.signal.is_some() || stderr.contains("panicked") {
        return Some(format!("crashed (signal {:?}): {stderr}", w.signal));
    }
    match (w.code, case.expect) {
        (Some(0), Expect::Ok) => {}
        (Some(0), _) if !strict => {}
        (Some(0), expect) => return Some(format!("exit 0, expected {expect:?}")),
        (Some(1), Expect::Ok) if strict => return Some(format!("failed: {stderr}")),
        (Some(1), expect) => {
            if stderr.is_empty() {
                return Some("exit 1 without a message".into());
            }
            if let (true, Some(piece)) = (strict, expect.message()) {
                if !stderr.to_lowercase().contains(piece) {
                    return Some(format!("message lacks {piece:?}: {stderr}"));
                }
            }
            return None;
        }
        (code, _) => return Some(format!("exit code {code:?}: {stderr}")),
    }
    if let (Some(out), Some(reference)) = (out, &case.reference) {
        let got = match read_npy(out) {
            Ok(a) => match a.data {
                ArrayData::F32(v) => v,
                other => return Some(format!("output is {}", other.dtype())),
            },
            Err(e) => return Some(format!("reading the output: {e}")),
        };
        let close = got.len() == reference.len()
            && got
                .iter()
                .zip(reference)
                .all(|(a, b)| (a - b).abs() <= 1e-5);
        if !close {
            return Some(format!("scores {got:?}, reference {reference:?}"));
        }
    }
    None
}

/// The corpus written afresh into a folder of its own (`tag`) under the test's temp folder.
fn fresh_corpus(tag: &str) -> (PathBuf, Vec<Case>) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let cases = corpus::write_corpus(&root);
    (root, cases)
}

#[test]
fn hostile_corpus_through_the_command_line() {
    let (root, mut cases) = fresh_corpus("hostile_cli_corpus");
    cases.extend(corpus::write_fifo_case(&root));
    let mut failures = Vec::new();
    for case in &cases {
        let data = write_inputs(case);
        let model = case.model();
        for backend in ["native", "tract"] {
            let out = case.dir.join(format!("out-{backend}.npy"));
            let _ = std::fs::remove_file(&out);
            let mut cmd = ctr_edge(&[Path::new("run"), &model, Path::new("--data"), &data]);
            cmd.args(["--backend", backend, "-o"]).arg(&out);
            let w = watch::run(cmd, TIME_LIMIT, Some(ADDRESS_SPACE));
            eprintln!(
                "{:<32} run {backend:<6} exit {:<7} {:>6.0} ms {:>6.1} MiB",
                case.name,
                format!("{:?}", w.code),
                w.elapsed.as_secs_f64() * 1e3,
                w.max_rss as f64 / (1 << 20) as f64
            );
            let strict = backend == "native";
            if let Some(p) = judge(
                case,
                &w,
                Some(&out)
                    .filter(|_| w.code == Some(0))
                    .map(|p| p.as_path()),
                strict,
            ) {
                failures.push(format!("{} (run --backend {backend}): {p}", case.name));
            }
        }
        let w = watch::run(
            ctr_edge(&[Path::new("inspect"), &model]),
            TIME_LIMIT,
            Some(ADDRESS_SPACE),
        );
        if let Some(p) = judge(case, &w, None, false) {
            failures.push(format!("{} (inspect): {p}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `compress` keeps only an artifact the native runtime loads and scores: a model with an op
/// the runtime lacks (PRelu) is refused with the runtime's reason and nothing written, unless
/// `--force`, which writes it and says, in the output and the report, what will fail.
#[test]
fn compress_refuses_what_the_runtime_cannot_run() {
    let (root, cases) = fresh_corpus("hostile_cli_native_check");
    let prelu = cases
        .iter()
        .find(|c| c.name == "prelu_unsupported")
        .expect("corpus case");
    let out = root.join("out");
    let compress = |extra: &[&str]| {
        let mut cmd = ctr_edge(&[Path::new("compress"), &prelu.model()]);
        cmd.args(["--method", "none", "-o"]).arg(&out).args(extra);
        cmd.output().expect("ctr-edge runs")
    };
    let refused = compress(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    for piece in ["native runtime cannot run", "PRelu", "--force"] {
        assert!(stderr.contains(piece), "lacks {piece:?}: {stderr}");
    }
    assert!(!out.exists(), "a refused artifact was written");

    let forced = compress(&["--force"]);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert_eq!(forced.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("native check FAILED"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["native_check"]["passed"], false, "{report}");
    assert!(
        report["native_check"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("PRelu")),
        "{report}"
    );

    // A model the runtime runs passes the check and says so.
    let valid = cases.iter().find(|c| c.name == "mlp_valid").unwrap();
    let ok_out = root.join("ok");
    let mut cmd = ctr_edge(&[Path::new("compress"), &valid.model()]);
    cmd.args(["--method", "none", "-o"]).arg(&ok_out);
    let ok = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("native check scored 2 row(s)"), "{stdout}");
}

/// `inspect` names the ops the native runtime lacks (the corpus's PRelu model), and says when
/// there are none (its MLP: MatMul, Add, Relu, Sigmoid).
#[test]
fn inspect_lists_ops_the_runtime_lacks() {
    let (_, cases) = fresh_corpus("hostile_cli_inspect_ops");
    let model = |name: &str| cases.iter().find(|c| c.name == name).unwrap().model();
    let inspect = |name: &str, json: bool| {
        let mut cmd = ctr_edge(&[Path::new("inspect"), &model(name)]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = inspect("prelu_unsupported", false);
    assert!(
        text.contains("native runtime LACKS: PRelu (1 node)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&inspect("prelu_unsupported", true)).unwrap();
    assert_eq!(
        json["native_unsupported"],
        serde_json::json!([{"op": "PRelu", "nodes": 1}]),
        "{json}"
    );
    let text = inspect("mlp_valid", false);
    assert!(
        text.contains("native runtime: every op is supported"),
        "{text}"
    );
}
