//! Progress as events: the library says what is happening, front ends
//! decide how to show it (the CLI draws progress bars on a terminal and
//! nothing otherwise). Nothing here writes to a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a progress bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (shown as MB, MB/s).
    Bytes,
    /// Items (chunks, objects, statements).
    Items,
    /// Nothing countable: a spinner with a message.
    Spinner,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step of `run` starts; `earlier` when an earlier run finished it.
    Step {
        /// The step's name.
        name: &'static str,
        /// Done by an earlier run (nothing to do now).
        earlier: bool,
    },
    /// A bar appears.
    BarStart {
        /// Its id, unique in this process.
        id: u64,
        /// What it measures (`copy`, `worker 1`, `verify`…).
        label: String,
        /// Its total (0 when unknown).
        total: u64,
        /// What it counts.
        unit: Unit,
    },
    /// A bar advanced by `n`.
    BarInc {
        /// Which bar.
        id: u64,
        /// How much.
        n: u64,
    },
    /// A bar's message changed (the task a worker is on…).
    BarMessage {
        /// Which bar.
        id: u64,
        /// The message.
        text: String,
    },
    /// A bar is done and disappears.
    BarEnd {
        /// Which bar.
        id: u64,
    },
}

/// Receives events. Implementations must be cheap: workers call them on
/// every batch.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}

/// Ignores everything (scripts, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: Event) {}
}

/// The observer operations report to.
pub type SharedObserver = Arc<dyn Observer>;

/// An observer that ignores everything.
pub fn quiet() -> SharedObserver {
    Arc::new(Quiet)
}

static NEXT_BAR: AtomicU64 = AtomicU64::new(1);

/// A progress bar: events out, ended when dropped.
pub struct Bar {
    id: u64,
    observer: SharedObserver,
}

impl Bar {
    /// Starts a bar.
    pub fn new(observer: &SharedObserver, label: impl Into<String>, total: u64, unit: Unit) -> Bar {
        let id = NEXT_BAR.fetch_add(1, Ordering::Relaxed);
        observer.event(Event::BarStart {
            id,
            label: label.into(),
            total,
            unit,
        });
        Bar {
            id,
            observer: observer.clone(),
        }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.observer.event(Event::BarInc { id: self.id, n });
    }

    /// Sets the message.
    pub fn message(&self, text: impl Into<String>) {
        self.observer.event(Event::BarMessage {
            id: self.id,
            text: text.into(),
        });
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.observer.event(Event::BarEnd { id: self.id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Observer for Recorder {
        fn event(&self, e: Event) {
            let s = match e {
                Event::BarStart { label, total, .. } => format!("start {label} {total}"),
                Event::BarInc { n, .. } => format!("inc {n}"),
                Event::BarMessage { text, .. } => format!("msg {text}"),
                Event::BarEnd { .. } => "end".to_string(),
                Event::Step { name, earlier } => format!("step {name} {earlier}"),
            };
            self.0.lock().unwrap().push(s);
        }
    }

    #[test]
    fn a_bar_starts_moves_and_ends_when_dropped() {
        let rec = Arc::new(Recorder::default());
        let obs: SharedObserver = rec.clone();
        {
            let bar = Bar::new(&obs, "copy", 10, Unit::Bytes);
            bar.inc(4);
            bar.message("public.t");
        }
        assert_eq!(
            *rec.0.lock().unwrap(),
            ["start copy 10", "inc 4", "msg public.t", "end"]
        );
    }
}
