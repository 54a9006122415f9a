//! Logs of a flow binary: `tracing` events on stderr, as text or JSON lines, filtered by
//! `RUST_LOG`; with the `otlp` feature, spans exported over OTLP.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::terminal::{LogWriter, stderr_is_terminal};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event (with colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `spans`.
    Json,
}

/// What must outlive the run for its logs and traces to be complete.
pub(crate) struct LogGuard {
    #[cfg(feature = "otlp")]
    otlp: Option<crate::otlp::Exporter>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.otlp.take() {
            exporter.shutdown();
        }
    }
}

/// The default filter: warnings and errors.
const DEFAULT_FILTER: &str = "warn";

/// Installs the subscriber: `format` lines on stderr, filtered by `RUST_LOG` (warnings and
/// errors when it is unset or invalid). A subscriber the program installed first is kept.
pub(crate) fn init(format: LogFormat) -> LogGuard {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    match format {
        LogFormat::Text => layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(|| LogWriter { json: false })
                .with_ansi(stderr_is_terminal())
                .with_filter(filter())
                .boxed(),
        ),
        LogFormat::Json => layers.push(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_current_span(false)
                .with_writer(|| LogWriter { json: true })
                .with_ansi(false)
                .with_filter(filter())
                .boxed(),
        ),
    }
    #[cfg(feature = "otlp")]
    let otlp = match crate::otlp::Exporter::from_env() {
        Ok(Some((layer, exporter))) => {
            layers.push(layer);
            Some(exporter)
        }
        Ok(None) => None,
        Err(e) => {
            let _ = super::write_stderr_line(&format!("warning: traces are not exported: {e}"));
            None
        }
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    LogGuard {
        #[cfg(feature = "otlp")]
        otlp,
    }
}
