//! `wablast replay`: projections rebuilt from sequence 0 and swapped in,
//! with a progress line (events/s, ETA) on a terminal and a log line every
//! few seconds otherwise.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tracing::info;
use wablast_eventstore::EventLog;
use wablast_projections::rebuild::{self, Progress};

/// Rebuilds the named projections and prints what each took.
pub async fn run(db: &PgPool, log: &EventLog, names: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let terminal = std::io::stderr().is_terminal();
    let last_log = Mutex::new(Instant::now());
    let show = move |p: &Progress| {
        if terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", render(p));
            let _ = err.flush();
        } else if let Ok(mut last) = last_log.lock()
            && last.elapsed() >= Duration::from_secs(5)
        {
            *last = Instant::now();
            info!(progress = %render(p), "rebuilding");
        }
    };
    let report = rebuild::rebuild(db, log, &names, Some(&show)).await;
    if terminal {
        eprintln!();
    }
    let report = report?;
    for done in &report.projections {
        let seconds = done.elapsed.as_secs_f64();
        println!(
            "{}: {} events in {:.1} s ({:.0} events/s), swapped in",
            done.projection,
            done.events,
            seconds,
            done.events as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

/// `sessions events 42% 120000/290000 48000 ev/s ETA 3 s`
pub fn render(p: &Progress) -> String {
    let seconds = p.elapsed.as_secs_f64().max(1e-9);
    let rate = p.events as f64 / seconds;
    let done = if p.target == 0 {
        1.0
    } else {
        p.position as f64 / p.target as f64
    };
    let eta = if done > 0.0 && done < 1.0 {
        format!("ETA {:.0} s", seconds * (1.0 - done) / done)
    } else {
        "ETA -".to_owned()
    };
    format!(
        "{} {} {:>3.0}% {}/{} {:.0} ev/s {}",
        p.projection,
        p.stream.name(),
        done * 100.0,
        p.position,
        p.target,
        rate,
        eta
    )
}
