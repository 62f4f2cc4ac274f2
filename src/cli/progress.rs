//! Progress of long commands (`seed`, `events replay`, `audit export`, `verify`, `restore`), drawn
//! on standard error. indicatif draws nothing when standard error is not a terminal, so scripts,
//! CI logs and pipes get only the commands' result lines.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `length` steps, labelled.
pub fn bar(length: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>13} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A spinner for work whose length is not known (one long statement), labelled.
pub fn spinner(label: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"));
    spinner.set_message(label.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
