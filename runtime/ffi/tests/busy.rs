//! One session used by four threads at once (a misuse the API documents): every call either
//! returns `CTR_EDGE_STATUS_BUSY` having changed nothing, or succeeds with the scores of its own
//! inputs (the tiny model's plain dot products), never another thread's.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::tiny_model::{self, K};
use common::*;
use ctr_edge::*;

/// A pointer shared by the threads on purpose (the misuse under test).
#[derive(Clone, Copy)]
struct Shared(*mut ctr_edge_session);
// SAFETY: the session is used from several threads at once deliberately; the C API must turn
// that into BUSY statuses, which is what this test checks.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Rows for thread `t`: its own size and values, so scores of another thread's call would
/// differ in count or in value.
fn rows_of(t: usize) -> Vec<f32> {
    let n = 3000 + 700 * t;
    (0..n * K)
        .map(|i| ((i * (t + 3)) % 97) as f32 * 0.01 - 0.3 * t as f32)
        .collect()
}

#[test]
fn concurrent_calls_on_one_session_are_busy_or_correct() {
    let dir = tiny_model::temp_dir("busy");
    let path = c(tiny_model::write(&dir).to_str().unwrap());
    let mut model = std::ptr::null_mut();
    // SAFETY: valid C string and out pointer.
    let status = unsafe { ctr_edge_model_open(path.as_ptr(), &mut model) };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    let opened = Opened::with_model(model);
    let shared = Shared(opened.session);
    let (ok, busy) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (ok, busy) = (&ok, &busy);
            scope.spawn(move || {
                let shared = shared;
                let rows = rows_of(t);
                let expected = tiny_model::reference(&rows);
                let name = c("X");
                let shape = [rows.len() / K, K];
                let input = x_input(&name, &shape, &rows);
                let mut out = vec![f32::NAN; expected.len() + 8000];
                let mut calls = 0;
                // Until contention has been seen (or the deadline), and at least 200 calls.
                while calls < 200
                    || (busy.load(Ordering::Relaxed) == 0 && Instant::now() < deadline)
                {
                    calls += 1;
                    out.fill(f32::NAN);
                    let (status, written) = run(shared.0, &[input], &mut out);
                    match status {
                        ctr_edge_status::Ok => {
                            assert_eq!(
                                written,
                                expected.len(),
                                "thread {t}: count of another call"
                            );
                            for (i, (g, e)) in out.iter().zip(&expected).enumerate() {
                                assert!(
                                    (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                                    "thread {t}, row {i}: {g} instead of {e}"
                                );
                            }
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        ctr_edge_status::Busy => {
                            assert_eq!(written, 0, "thread {t}: a BUSY call wrote a count");
                            assert!(
                                out.iter().all(|v| v.is_nan()),
                                "thread {t}: BUSY wrote scores"
                            );
                            assert!(last_error().contains("in use"), "{}", last_error());
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("thread {t}: {other:?}: {}", last_error()),
                    }
                }
            });
        }
    });
    let (ok, busy) = (ok.into_inner(), busy.into_inner());
    eprintln!("{ok} calls succeeded, {busy} were BUSY");
    assert!(ok > 0, "no call succeeded");
    assert!(busy > 0, "four threads on one session never met within 5 s");
    // The session is usable again by one thread afterwards.
    let rows = rows_of(1);
    let name = c("X");
    let shape = [rows.len() / K, K];
    let mut out = vec![0.0; rows.len() / K];
    let (status, _) = run(opened.session, &[x_input(&name, &shape, &rows)], &mut out);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    drop(opened);
    let _ = std::fs::remove_dir_all(dir);
}
