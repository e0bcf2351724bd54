//! Latency statistics: nearest-rank percentiles over the timed runs, and the median open time.

use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Latency of one batch size over the timed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median, in microseconds.
    pub p50_us: f64,
    /// 90th percentile, in microseconds.
    pub p90_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
    /// Mean, in microseconds.
    pub mean_us: f64,
}

impl Latency {
    /// Statistics of `samples` (at least one).
    pub fn of(samples: &mut [Duration]) -> Latency {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: f64 = samples.iter().copied().map(us).sum();
        Latency {
            p50_us: us(percentile(samples, 50)),
            p90_us: us(percentile(samples, 90)),
            p99_us: us(percentile(samples, 99)),
            mean_us: total / samples.len().max(1) as f64,
        }
    }
}

/// Nearest-rank percentile `p` of sorted `samples` (zero when empty): the smallest sample with
/// at least `p`% of the samples at or below it, so p50 <= p90 <= p99 always holds.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// `warmup` untimed calls of `run`, then `iters` timed ones.
pub fn time_runs(
    warmup: usize,
    iters: usize,
    mut run: impl FnMut() -> Result<(), BenchError>,
) -> Result<Latency, BenchError> {
    for _ in 0..warmup {
        run()?;
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        run()?;
        samples.push(start.elapsed());
    }
    Ok(Latency::of(&mut samples))
}

/// A measured call, for [`time_runs_interleaved`].
pub type Run<'a> = &'a mut dyn FnMut() -> Result<(), BenchError>;

/// `warmup` untimed rounds, then `iters` timed rounds, each round calling every one of `runs`
/// once in order: a slow phase of the machine (another process, a frequency change) then hits
/// all of them alike, which back-to-back series do not guarantee. One latency per run.
pub fn time_runs_interleaved(
    warmup: usize,
    iters: usize,
    runs: &mut [Run<'_>],
) -> Result<Vec<Latency>, BenchError> {
    for _ in 0..warmup {
        for run in runs.iter_mut() {
            run()?;
        }
    }
    let mut samples = vec![Vec::with_capacity(iters); runs.len()];
    for _ in 0..iters {
        for (run, samples) in runs.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            run()?;
            samples.push(start.elapsed());
        }
    }
    Ok(samples.iter_mut().map(|s| Latency::of(s)).collect())
}

/// Median of `samples`, in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    percentile(samples, 50).as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let l = Latency::of(&mut s);
        assert_eq!((l.p50_us, l.p90_us, l.p99_us), (50.0, 90.0, 99.0));
        assert!((l.mean_us - 50.5).abs() < 1e-9);
        let mut one = [Duration::from_micros(7)];
        let l = Latency::of(&mut one);
        assert_eq!((l.p50_us, l.p99_us), (7.0, 7.0));
    }
}
