//! What people see: progress bars drawn from the library's events (on a
//! terminal only), step lines for `run`, the plan confirmation, and the
//! message after Ctrl-C.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use supamigrate::events::{Event, Observer, SharedObserver, Unit};
use supamigrate::journal::Confirmation;
use supamigrate::ops::Approver;

use crate::args::Cli;

/// Draws the library's events.
struct Bars {
    draw: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<u64, ProgressBar>>,
    step: Arc<Mutex<Option<&'static str>>>,
}

fn style(unit: Unit) -> ProgressStyle {
    let template = match unit {
        Unit::Bytes => {
            "{msg:>10} [{bar:30}] {percent}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
        }
        Unit::Items => "{msg:>10} [{bar:40}] {pos}/{len} {elapsed}",
        Unit::Spinner => "  {prefix}: {msg}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Observer for Bars {
    fn event(&self, event: Event) {
        match event {
            Event::Step { name, earlier } => {
                *self.step.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
                if earlier {
                    println!("✓ {name} (done by an earlier run)");
                } else {
                    println!("→ {name}");
                }
            }
            _ if !self.draw => {}
            Event::BarStart {
                id,
                label,
                total,
                unit,
            } => {
                let bar = self
                    .multi
                    .add(ProgressBar::new(total).with_style(style(unit)));
                if unit == Unit::Spinner {
                    bar.set_prefix(label);
                } else {
                    bar.set_message(label);
                }
                self.bars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, bar);
            }
            Event::BarInc { id, n } => {
                if let Some(b) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    b.inc(n);
                }
            }
            Event::BarMessage { id, text } => {
                if let Some(b) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    b.set_message(text);
                }
            }
            Event::BarEnd { id } => {
                if let Some(b) = self
                    .bars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
                    b.finish_and_clear();
                }
            }
        }
    }
}

/// The front end's state.
pub struct Ui {
    observer: SharedObserver,
    step: Arc<Mutex<Option<&'static str>>>,
}

impl Ui {
    /// For `cli`: bars only on a terminal and without `-q`.
    pub fn new(cli: &Cli) -> Ui {
        let draw = std::io::stderr().is_terminal() && !cli.quiet;
        let multi = MultiProgress::new();
        if !draw {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let step = Arc::new(Mutex::new(None));
        Ui {
            observer: Arc::new(Bars {
                draw,
                multi,
                bars: Mutex::new(HashMap::new()),
                step: step.clone(),
            }),
            step,
        }
    }

    /// Where the library reports progress.
    pub fn observer(&self) -> SharedObserver {
        self.observer.clone()
    }

    /// After Ctrl-C.
    pub fn interrupted(&self) {
        let step = *self.step.lock().unwrap_or_else(|e| e.into_inner());
        let during = step
            .map(|s| format!(" during step {s}"))
            .unwrap_or_default();
        eprintln!(
            "interrupted{during}: workers stopped; nothing is half-committed (each copy task, statement and section commits with its record). Run the same command again to resume."
        );
    }
}

/// Shows the plan and asks on the terminal (or goes ahead with `--yes`).
pub struct Confirm {
    /// `--yes`.
    pub yes: bool,
}

impl Approver for Confirm {
    fn approve(&self, summary: &str) -> supamigrate::Result<Confirmation> {
        println!("{summary}");
        if self.yes {
            println!("--yes: going ahead with this plan");
            return Ok(Confirmation::Flag);
        }
        if !std::io::stdin().is_terminal() {
            return Err(supamigrate::Error::invalid_input(
                "the plan must be confirmed before anything is written to the target, and there is no terminal to ask on; nothing was written",
            )
            .with_hint("review the plan above (or with `supamigrate plan`), then pass --yes, or run on a terminal to answer"));
        }
        print!("Write to the target with this plan? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| supamigrate::Error::io("reading the answer", e))?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(Confirmation::Terminal),
            _ => Err(supamigrate::Error::invalid_input(
                "the plan was not confirmed; nothing was written to the target",
            )
            .with_hint("change what the plan should decide with the flags `supamigrate plan --help` lists, then run again")),
        }
    }
}

/// Asks `question` on the terminal (or goes ahead with `--yes`); `refused`
/// says what was not done when the answer is no or there is no terminal.
pub fn ask(question: &str, yes: bool, refused: &str) -> supamigrate::Result<()> {
    if yes {
        println!("--yes: going ahead");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(supamigrate::Error::invalid_input(format!(
            "this must be confirmed and there is no terminal to ask on; {refused}"
        ))
        .with_hint("review what is shown above, then pass --yes, or run on a terminal to answer"));
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| supamigrate::Error::io("reading the answer", e))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(supamigrate::Error::invalid_input(format!(
            "not confirmed; {refused}"
        ))),
    }
}
