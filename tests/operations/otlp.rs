//! Spans per step exported over OTLP/HTTP (the `otlp` feature) to a receiver in the test:
//! an HTTP server that decodes the protobuf `ExportTraceServiceRequest`s it is sent and
//! answers as an OTLP collector does.

use std::sync::mpsc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

use crate::harness::run;

/// Receives OTLP/HTTP trace exports on a loopback port; hands each request to `sink`.
fn receiver(
    sink: mpsc::Sender<ExportTraceServiceRequest>,
) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
                    != Some("application/x-protobuf")
                {
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                }
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        let _ = sink.send(request);
                        (
                            StatusCode::OK,
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
                }
            }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    (addr, runtime)
}

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            AnyValue::IntValue(i) => Some(*i),
            _ => None,
        })
}

#[test]
fn every_step_exports_spans_over_otlp() {
    let (sink, received) = mpsc::channel();
    let (addr, _runtime) = receiver(sink);
    let endpoint = format!("http://{addr}");
    let done = run(
        "quick",
        &["run", "-w", "2"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "ops-test"),
        ],
    );
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.stderr, "", "export problems are reported on stderr");
    // The exporter sent everything before the process exited.
    let requests: Vec<ExportTraceServiceRequest> = received.try_iter().collect();
    assert!(!requests.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        for resource in &request.resource_spans {
            let attributes = &resource.resource.as_ref().unwrap().attributes;
            assert_eq!(text(attributes, "service.name"), Some("ops-test"));
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    let step = text(&span.attributes, "step_id").unwrap_or_else(|| panic!("{span:?}"));
                    let worker = int(&span.attributes, "worker_index").unwrap();
                    assert!((0..2).contains(&worker), "{span:?}");
                    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
                    seen.insert((span.name.clone(), step.to_string()));
                }
            }
        }
    }
    for (call, step) in [
        ("next_batch", "ops.inp"),
        ("flat_map_batch", "ops.double"),
        ("flat_map_batch", "ops.keep"),
        ("on_batch", "ops.sum"),
        ("write_batch", "ops.out"),
    ] {
        assert!(
            seen.contains(&(call.to_string(), step.to_string())),
            "no {call} span of {step}: {seen:?}"
        );
    }

    // Without the variables nothing is exported and nothing is said.
    let quiet = run("quick", &["run"], &[]);
    assert!(quiet.status.success());
    assert_eq!(quiet.stderr, "");
}

#[test]
fn an_unsupported_protocol_is_said_once_and_the_flow_runs() {
    let done = run(
        "quick",
        &["run"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(
        done.stderr.trim(),
        "warning: traces are not exported: OTEL_EXPORTER_OTLP_PROTOCOL is 'grpc', but this build \
         exports http/protobuf only (an OTLP/HTTP endpoint, usually port 4318)"
    );
}
