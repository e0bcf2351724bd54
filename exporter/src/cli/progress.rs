//! A rows-done progress bar on stderr, drawn only when stderr is a terminal and the work
//! spans several batches; silent otherwise (pipes, CI logs, tests).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress over the rows of one model run.
pub struct RowsProgress {
    bar: Option<ProgressBar>,
}

impl RowsProgress {
    /// A bar for `rows` rows fed `batch_size` at a time.
    pub fn new(rows: usize, batch_size: usize) -> RowsProgress {
        let visible = rows > batch_size && std::io::stderr().is_terminal();
        let bar = visible.then(|| {
            let bar = ProgressBar::new(rows as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({eta})",
            ) {
                bar.set_style(style);
            }
            bar
        });
        RowsProgress { bar }
    }

    /// `done` of `total` rows are scored.
    pub fn update(&mut self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    /// Remove the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
