//! The routes of the dataflow API.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::monitor::{Monitor, metrics_text};

/// The live page: one file, no build step.
const PAGE: &str = include_str!("page.html");

pub(super) fn router(monitor: Monitor) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/dataflow", get(dataflow))
        .route("/status", get(status))
        .route("/status/live", get(live))
        .with_state(monitor)
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics_text(),
    )
        .into_response()
}

async fn dataflow(State(monitor): State<Monitor>) -> Response {
    json(StatusCode::OK, monitor.dataflow_json().to_string())
}

async fn status(State(monitor): State<Monitor>) -> Response {
    let report = monitor.status();
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(code, serde_json::to_string(&report).unwrap_or_default())
}

async fn live(State(monitor): State<Monitor>) -> Response {
    json(
        StatusCode::OK,
        serde_json::to_string(&monitor.status()).unwrap_or_default(),
    )
}

fn json(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
