//! Spans exported over OTLP/HTTP (the `otlp` feature).
//!
//! Every timed call of a step (`next_batch`, `write_batch`, `flat_map_batch`,
//! `on_batch`, ...) is a span named after the call, with the attributes `step_id` and
//! `worker_index`, at debug level under the target `bwx::step`. The command line exports
//! them when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, with the standard variables: `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` (sample a busy flow: `traceidratio` with `0.01`),
//! `OTEL_SDK_DISABLED`. The protocol is `http/protobuf` (port 4318). `BWX_OTLP_FILTER`
//! (`RUST_LOG` syntax, default `bwx::step=debug,info`) picks what is exported.

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// What is exported unless `BWX_OTLP_FILTER` says otherwise.
const DEFAULT_FILTER: &str = "bwx::step=debug,info";

/// The exporting tracer provider; [`Exporter::shutdown`] sends what is still queued.
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

/// The layer that turns spans into OTLP spans.
pub(crate) type OtlpLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Exporter {
    /// The layer and its exporter when the environment asks for OTLP export, `None`
    /// when it does not, or why it cannot.
    pub(crate) fn from_env() -> Result<Option<(OtlpLayer, Exporter)>, String> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let protocol =
            var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is '{p}', but this build exports http/protobuf only \
                 (an OTLP/HTTP endpoint, usually port 4318)"
            ));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("cannot make the OTLP exporter: {e}"))?;
        let mut resource = Resource::builder();
        if var("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("bwx");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let filter = var("BWX_OTLP_FILTER")
            .map(|f| EnvFilter::try_new(&f).map_err(|e| format!("BWX_OTLP_FILTER '{f}': {e}")))
            .transpose()?
            .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bwx"))
            .with_filter(filter)
            .boxed();
        Ok(Some((layer, Exporter { provider })))
    }

    /// Sends the spans still queued and stops the exporter.
    pub(crate) fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            let _ = crate::cli::write_stderr_line(&format!("warning: the last spans were not exported: {e}"));
        }
    }
}
