//! Progress on stderr while a command runs: on a terminal one line redrawn
//! in place four times a second; otherwise (a log file, a pipe) a plain line
//! every `every`, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(250);

pub struct Progress {
    terminal: bool,
    every: Duration,
    started: Instant,
    last: Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(every: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            terminal: std::io::stderr().is_terminal(),
            every,
            started: now,
            last: now,
            drawn: false,
        }
    }

    /// How often [`Progress::tick`] should be called.
    pub fn interval(&self) -> Duration {
        if self.terminal {
            REDRAW
        } else {
            self.every.max(REDRAW)
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Shows `line` (built by the caller from its counters) if it is time.
    pub fn tick(&mut self, line: &str) {
        if self.last.elapsed() + Duration::from_millis(5) < self.interval() {
            return;
        }
        self.last = Instant::now();
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the work.
        let written = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        if written.and_then(|()| err.flush()).is_ok() {
            self.drawn = true;
        }
    }

    /// Ends the redrawn line, so what follows starts on its own.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            let mut err = std::io::stderr().lock();
            if writeln!(err).is_err() {
                self.drawn = false;
            }
        }
    }
}

/// `12345 lines, 12000 events/s` style rate for progress lines.
pub fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}
