//! `/metrics`: Prometheus text format.
//!
//! Two sources:
//!
//! - HTTP requests, recorded by [`track`] into the process's `metrics`
//!   recorder (installed once, [`install`]): `wablast_http_requests_total`
//!   and `wablast_http_request_duration_seconds`, labelled by method, route
//!   template (`MatchedPath`; `unmatched` for paths no route knows, never
//!   the raw path) and status.
//! - Projection lag, measured on each scrape and written straight into the
//!   answer rather than kept in the recorder: a reading that failed leaves
//!   no stale figures behind (only `wablast_projection_lag_up 0`), and each
//!   application answers for its own database and log even when several
//!   share a process (as the tests do).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wablast_projections::lag::Lag;

use crate::AppState;
use crate::routes::health;

const REQUESTS: &str = "wablast_http_requests_total";
const DURATION: &str = "wablast_http_request_duration_seconds";

/// Latency buckets, in seconds (Prometheus's defaults).
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (a scrape folds them too); until then they are kept in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The process's recorder, installed as the global `metrics` recorder on
/// first use; later calls (another application in the same process) get the
/// same one.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), DURATION_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            // Someone else's recorder: /metrics answers without the HTTP
            // figures rather than the process failing.
            tracing::warn!(error.message = %err, "a metrics recorder was already installed; HTTP metrics are not exported");
        }
        metrics::describe_counter!(REQUESTS, "HTTP requests answered.");
        metrics::describe_histogram!(
            DURATION,
            metrics::Unit::Seconds,
            "Time taken to answer HTTP requests."
        );
        let upkeep = handle.clone();
        // A thread rather than a task: the recorder outlives any one runtime
        // (each test has its own).
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            })
            .expect("the metrics upkeep thread starts");
        handle
    })
}

/// Middleware counting and timing every request by method, route template
/// and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_str().to_owned()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The method, or `OTHER` for extension methods (a client must not be able
/// to mint label values).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Prometheus metrics: HTTP requests and projection lag.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus text format \
        (`wablast_http_requests_total`, `wablast_http_request_duration_seconds`, \
        `wablast_projection_lag_commits`, `wablast_projection_lag_seconds`, \
        `wablast_projection_checkpoint`, `wablast_stream_last_sequence`, \
        `wablast_projection_lag_up`; and, from the statistics projection, \
        `messages_sent_total`, `messages_failed_total`, `queue_depth`, \
        `wallet_points_deducted_total`, each also with the `wablast_` prefix; per live engine \
        `wablast_fleet_engine_sessions`, `wablast_fleet_engine_sends_per_minute`, \
        `wablast_fleet_engine_memory_rss_bytes`, `wablast_fleet_engine_heartbeat_age_seconds`, \
        `wablast_fleet_engine_drained`)",
        body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = install().render();
    let lags = health::measure_lag(&state).await;
    if let Err(err) = &lags {
        tracing::warn!(error.message = %err, "projection lag not measured");
    }
    render_lag(&mut body, lags.ok().as_deref(), chrono::Utc::now());
    match wablast_projections::queries::stats::totals(&state.db).await {
        Ok(totals) => render_totals(&mut body, &totals),
        Err(err) => tracing::warn!(error.message = %err, "message totals not measured"),
    }
    match wablast_workflows::fleet::EngineRegistry::find(state.log.jetstream(), state.log.prefix())
        .await
    {
        Ok(Some(registry)) => match registry.live().await {
            Ok(engines) => render_fleet(&mut body, &engines, chrono::Utc::now()),
            Err(err) => tracing::warn!(error.message = %err, "engines not read for the metrics"),
        },
        Ok(None) => render_fleet(&mut body, &[], chrono::Utc::now()),
        Err(err) => tracing::warn!(error.message = %err, "engines not read for the metrics"),
    }
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body)
}

/// The seed's business metrics (seed 003 names them without a prefix; the
/// `wablast_` twins follow this project's convention), from the `stats`
/// projection and the campaigns' counts.
fn render_totals(out: &mut String, totals: &wablast_projections::queries::stats::Totals) {
    let metrics: [(&str, &str, &str, i64); 4] = [
        (
            "messages_sent_total",
            "counter",
            "Messages sent.",
            totals.sent,
        ),
        (
            "messages_failed_total",
            "counter",
            "Messages that failed for good.",
            totals.failed,
        ),
        (
            "queue_depth",
            "gauge",
            "Campaign messages queued, not yet taken by a sender.",
            totals.queued,
        ),
        (
            "wallet_points_deducted_total",
            "counter",
            "Points the messages sent cost.",
            totals.points_spent,
        ),
    ];
    for (name, kind, help, value) in metrics {
        for name in [name.to_owned(), format!("wablast_{name}")] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// Appends one gauge per live engine and figure of its heartbeat.
fn render_fleet(
    out: &mut String,
    engines: &[wablast_workflows::fleet::EngineInfo],
    now: chrono::DateTime<chrono::Utc>,
) {
    type Figure =
        fn(&wablast_workflows::fleet::EngineInfo, chrono::DateTime<chrono::Utc>) -> Option<f64>;
    let figures: [(&str, &str, Figure); 5] = [
        (
            "wablast_fleet_engine_sessions",
            "Sessions the engine runs.",
            |e, _| Some(e.sessions as f64),
        ),
        (
            "wablast_fleet_engine_sends_per_minute",
            "Messages the engine sent in the last minute.",
            |e, _| Some(e.sends_per_minute as f64),
        ),
        (
            "wablast_fleet_engine_memory_rss_bytes",
            "The engine process's resident memory.",
            |e, _| e.memory_rss_bytes.map(|b| b as f64),
        ),
        (
            "wablast_fleet_engine_heartbeat_age_seconds",
            "Seconds since the engine's last heartbeat.",
            |e, now| Some((now - e.heartbeat_at).as_seconds_f64().max(0.0)),
        ),
        (
            "wablast_fleet_engine_drained",
            "1 while the engine is drained (takes no session).",
            |e, _| Some(f64::from(u8::from(e.draining))),
        ),
    ];
    for (name, help, figure) in figures {
        family(out, name, help);
        for engine in engines {
            if let Some(value) = figure(engine, now) {
                let _ = writeln!(
                    out,
                    "{name}{{engine=\"{}\",host=\"{}\"}} {value}",
                    escape(&engine.engine),
                    escape(&engine.host)
                );
            }
        }
    }
}

/// Appends the lag gauges (or only `wablast_projection_lag_up 0`).
fn render_lag(out: &mut String, lags: Option<&[Lag]>, now: chrono::DateTime<chrono::Utc>) {
    family(
        out,
        "wablast_projection_lag_up",
        "1 when the projection lag below could be measured, 0 when NATS or PostgreSQL did not answer.",
    );
    let _ = writeln!(
        out,
        "wablast_projection_lag_up {}",
        u8::from(lags.is_some())
    );
    let Some(lags) = lags else {
        return;
    };

    family(
        out,
        "wablast_projection_lag_commits",
        "Commits of the stream the projection has not applied yet.",
    );
    for lag in lags {
        sample(out, "wablast_projection_lag_commits", lag, lag.behind());
    }
    family(
        out,
        "wablast_projection_lag_seconds",
        "Age of the oldest commit the projection has not applied yet (0 when caught up).",
    );
    for lag in lags {
        sample(
            out,
            "wablast_projection_lag_seconds",
            lag,
            lag.age_seconds(now),
        );
    }
    family(
        out,
        "wablast_projection_checkpoint",
        "Stream sequence of the last commit the projection applied.",
    );
    for lag in lags {
        sample(out, "wablast_projection_checkpoint", lag, lag.checkpoint);
    }

    family(
        out,
        "wablast_stream_last_sequence",
        "Sequence of the last commit in the stream.",
    );
    let mut streams = Vec::new();
    for lag in lags {
        if !streams.iter().any(|&(stream, _)| stream == lag.stream) {
            streams.push((lag.stream, lag.last_sequence));
        }
    }
    for (stream, last) in streams {
        let _ = writeln!(
            out,
            "wablast_stream_last_sequence{{stream=\"{}\"}} {last}",
            escape(stream.name())
        );
    }
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn sample(out: &mut String, name: &str, lag: &Lag, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "{name}{{projection=\"{}\",stream=\"{}\"}} {value}",
        escape(lag.projection),
        escape(lag.stream.name())
    );
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use wablast_projections::LogStream;

    use super::*;

    fn lag(projection: &'static str, stream: LogStream, last: u64, checkpoint: u64) -> Lag {
        Lag {
            projection,
            stream,
            last_sequence: last,
            checkpoint,
            oldest_unprojected_at: (last > checkpoint)
                .then(|| Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()),
        }
    }

    #[test]
    fn the_lag_gauges_are_written_per_projection_and_stream() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 30).unwrap();
        let lags = [
            lag("sessions", LogStream::Events, 10, 7),
            lag("campaigns", LogStream::Events, 10, 10),
            lag("messages", LogStream::Messages, 4, 4),
        ];
        let mut out = String::new();

        render_lag(&mut out, Some(&lags), now);

        for line in [
            "wablast_projection_lag_up 1",
            "wablast_projection_lag_commits{projection=\"sessions\",stream=\"events\"} 3",
            "wablast_projection_lag_seconds{projection=\"sessions\",stream=\"events\"} 30",
            "wablast_projection_lag_seconds{projection=\"campaigns\",stream=\"events\"} 0",
            "wablast_projection_checkpoint{projection=\"sessions\",stream=\"events\"} 7",
            "wablast_projection_lag_commits{projection=\"messages\",stream=\"messages\"} 0",
            "wablast_stream_last_sequence{stream=\"events\"} 10",
            "wablast_stream_last_sequence{stream=\"messages\"} 4",
            "# TYPE wablast_projection_lag_commits gauge",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
        assert_eq!(
            out.matches("wablast_stream_last_sequence{").count(),
            2,
            "one per stream"
        );
    }

    #[test]
    fn an_unmeasured_lag_is_only_the_up_gauge_at_zero() {
        let mut out = String::new();

        render_lag(&mut out, None, Utc::now());

        assert!(out.lines().any(|l| l == "wablast_projection_lag_up 0"));
        assert!(!out.contains("wablast_projection_lag_commits"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
