//! The hostile corpus (`tests/hostile/corpus.rs`) through the C ABI: a C driver
//! (`tests/c/hostile_driver.c`, built here against this build's static library) opens each
//! case, runs it and prints the status. Every case must end with the status the corpus expects
//! (or a correct result) within 2 s and 256 MiB of resident memory, with no crash or abort;
//! with valgrind installed, the small cases also run under memcheck and must be clean
//! (`CTR_EDGE_REQUIRE_VALGRIND=1`, which CI sets, makes its absence a failure).

#[path = "../../../tests/hostile/corpus.rs"]
mod corpus;
#[path = "../../../tests/hostile/watch.rs"]
mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use corpus::{Case, Expect};

const TIME_LIMIT: Duration = Duration::from_secs(2);
const RSS_LIMIT: u64 = 256 << 20;
/// Address space the driver may map: far more than a good run needs, small enough that a
/// runaway allocation fails in the child instead of swapping the machine.
const ADDRESS_SPACE: u64 = 4 << 30;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `libctr_edge.a` of the build this test belongs to (as `c_example.rs` finds it).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    let candidates = [
        deps.join("libctr_edge.a"),
        deps.parent().expect("profile folder").join("libctr_edge.a"),
    ];
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    found.unwrap_or_else(|| panic!("libctr_edge.a not built (looked at {candidates:?})"))
}

/// Builds the driver once for every test of this binary (they run in parallel and would
/// otherwise write the executable while another runs it), or `None` when the C compiler does
/// not build for this test's architecture (a cross test under qemu).
fn driver() -> Option<PathBuf> {
    static DRIVER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DRIVER.get_or_init(build_driver).clone()
}

fn build_driver() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let machine = Command::new(&cc).arg("-dumpmachine").output().ok()?;
    if !String::from_utf8_lossy(&machine.stdout).starts_with(std::env::consts::ARCH) {
        eprintln!(
            "skipping: {cc} does not build for {}",
            std::env::consts::ARCH
        );
        return None;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile_c");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join("hostile_driver");
    let root = workspace_root();
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-I"])
        .arg(root.join("runtime/ffi/include"))
        .arg(root.join("runtime/ffi/tests/c/hostile_driver.c"))
        .arg(static_library())
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(status.success(), "{cc} failed to build hostile_driver.c");
    Some(exe)
}

fn corpus_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn all_cases(dir: &Path) -> Vec<Case> {
    let mut cases = corpus::write_corpus(dir);
    cases.extend(corpus::write_fifo_case(dir));
    cases
}

fn command(prefix: &[&str], exe: &Path, model: &Path, batch: usize, fill: f32, id: i64) -> Command {
    let mut cmd = Command::new(
        prefix
            .first()
            .map(PathBuf::from)
            .unwrap_or(exe.to_path_buf()),
    );
    cmd.args(prefix.iter().skip(1));
    if !prefix.is_empty() {
        cmd.arg(exe);
    }
    cmd.arg(model)
        .arg(batch.to_string())
        .arg(fill.to_string())
        .arg(id.to_string());
    cmd
}

/// What is wrong with how the driver ended on `case`, if anything.
fn judge(case: &Case, w: &watch::Watched) -> Option<String> {
    if w.timed_out {
        return Some(format!(
            "killed after {:?} (limit {TIME_LIMIT:?})",
            w.elapsed
        ));
    }
    if w.code != Some(0) {
        return Some(format!(
            "driver ended with code {:?} signal {:?}; stderr: {}",
            w.code,
            w.signal,
            w.stderr.trim()
        ));
    }
    let mut lines = w.stdout.lines();
    let status = lines.next().unwrap_or("").trim_start_matches("STATUS ");
    if status != case.expect.c_status() {
        return Some(format!(
            "status {status}, expected {}; stderr: {}",
            case.expect.c_status(),
            w.stderr.trim()
        ));
    }
    if let (Expect::Ok, Some(reference)) = (case.expect, &case.reference) {
        let got: Vec<f32> = lines.filter_map(|l| l.trim().parse().ok()).collect();
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

#[test]
fn hostile_corpus_through_the_c_abi() {
    let Some(exe) = driver() else { return };
    let dir = corpus_dir("hostile_c_corpus");
    let cases = all_cases(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let cmd = command(
            &[],
            &exe,
            &case.model(),
            case.batch,
            case.float_fill,
            case.id_fill,
        );
        let w = watch::run(cmd, TIME_LIMIT, Some(ADDRESS_SPACE));
        eprintln!(
            "{:<32} {:<18} {:>6.0} ms {:>6.1} MiB",
            case.name,
            w.stdout.lines().next().unwrap_or("-"),
            w.elapsed.as_secs_f64() * 1e3,
            w.max_rss as f64 / (1 << 20) as f64
        );
        let mut problem = judge(case, &w);
        if problem.is_none() && w.max_rss > RSS_LIMIT {
            problem = Some(format!("peak RSS {} MiB over 256 MiB", w.max_rss >> 20));
        }
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_loader_corpus_through_the_c_abi() {
    // The runtime's committed malformed files: whatever each one is, the library must return a
    // status (any) in time and memory, without crashing.
    let Some(exe) = driver() else { return };
    let corpus = workspace_root().join("runtime/tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    assert!(
        files.len() > 20,
        "{} files in {}",
        files.len(),
        corpus.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let w = watch::run(
            command(&[], &exe, file, 2, 0.5, 0),
            TIME_LIMIT,
            Some(ADDRESS_SPACE),
        );
        let status = w.stdout.lines().next().unwrap_or("");
        if w.timed_out
            || w.code != Some(0)
            || !status.starts_with("STATUS ")
            || w.max_rss > RSS_LIMIT
        {
            failures.push(format!("{}: {w:?}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_corpus_is_valgrind_clean() {
    let Some(exe) = driver() else { return };
    let have = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CTR_EDGE_REQUIRE_VALGRIND").is_none(),
            "CTR_EDGE_REQUIRE_VALGRIND is set but valgrind is not installed"
        );
        eprintln!("skipping: valgrind not installed");
        return;
    }
    let dir = corpus_dir("hostile_c_valgrind");
    let prefix = [
        "valgrind",
        "--quiet",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
    ];
    let mut failures = Vec::new();
    for case in all_cases(&dir).iter().filter(|c| !c.big) {
        let cmd = command(
            &prefix,
            &exe,
            &case.model(),
            case.batch,
            case.float_fill,
            case.id_fill,
        );
        let w = watch::run(cmd, Duration::from_secs(120), None);
        if let Some(p) = judge(case, &w) {
            failures.push(format!("{}: {p}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "under valgrind:\n{}",
        failures.join("\n")
    );
}
