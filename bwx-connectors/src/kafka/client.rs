//! The librdkafka client context of every consumer and producer bwx creates: its log lines
//! and client-level errors go to `tracing` at the level they deserve.
//!
//! librdkafka reports a broker it cannot reach at its error level, once per broker
//! connection attempt, and every end of a partition as a "global error", although the
//! client reconnects by itself and the flow goes on. Here:
//! - the end of a partition is a debug line;
//! - connection trouble the client retries by itself is a warning, and the same warning
//!   (numbers aside) is written at most once per 30 s per client, with a count of the ones
//!   left out;
//! - fatal errors, and librdkafka's own error-level lines that are not connection trouble,
//!   stay errors.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;

/// How long a repeated warning stays quiet.
const QUIET_FOR: Duration = Duration::from_secs(30);

/// A client's log sink: labels its lines with what the client serves (`step x, worker n`)
/// and keeps repeated warnings down.
pub(crate) struct ClientLogs {
    label: String,
    recent: Mutex<HashMap<String, (Instant, u64)>>,
}

impl ClientLogs {
    pub(crate) fn new(label: String) -> Self {
        ClientLogs {
            label,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Writes `text` as a warning unless the same text (numbers aside) was written less
    /// than [`QUIET_FOR`] ago.
    fn warn_limited(&self, text: &str) {
        let key: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
        let now = Instant::now();
        let left_out = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            match recent.get_mut(&key) {
                Some((since, quiet)) if now.duration_since(*since) < QUIET_FOR => {
                    *quiet += 1;
                    return;
                }
                Some((since, quiet)) => {
                    *since = now;
                    std::mem::take(quiet)
                }
                None => {
                    recent.insert(key, (now, 0));
                    0
                }
            }
        };
        if left_out > 0 {
            tracing::warn!(
                "{}: {text} ({left_out} more like it in the last {QUIET_FOR:?})",
                self.label
            );
        } else {
            tracing::warn!("{}: {text}", self.label);
        }
    }
}

/// Whether a librdkafka log line is about reaching a broker, which the client retries.
fn is_connection_trouble(facility: &str, message: &str) -> bool {
    matches!(
        facility,
        "FAIL" | "ERROR" | "BROKERFAIL" | "DESTROY" | "RESOLVE" | "CONNECT"
    ) || [
        "Connect to",
        "Connection refused",
        "Disconnected",
        "all brokers are down",
        "timed out",
    ]
    .iter()
    .any(|s| message.contains(s))
}

impl ClientContext for ClientLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                if is_connection_trouble(facility, message) {
                    self.warn_limited(&format!("librdkafka {facility}: {message}"));
                } else {
                    tracing::error!("{}: librdkafka {facility}: {message}", self.label);
                }
            }
            RDKafkaLogLevel::Warning => self.warn_limited(&format!("librdkafka {facility}: {message}")),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!("{}: librdkafka {facility}: {message}", self.label)
            }
            RDKafkaLogLevel::Debug => tracing::debug!("{}: librdkafka {facility}: {message}", self.label),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!("{}: end of a partition: {reason}", self.label)
            }
            _ if matches!(error, RdError::PartitionEOF(_)) => {
                tracing::debug!("{}: end of a partition: {reason}", self.label)
            }
            Some(RDKafkaErrorCode::Fatal) => tracing::error!(
                "{}: the Kafka client failed for good: {error}: {reason}",
                self.label
            ),
            _ => self.warn_limited(&format!(
                "the Kafka client reports (and retries by itself): {reason}"
            )),
        }
    }
}

impl ConsumerContext for ClientLogs {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_warnings_are_counted_not_repeated() {
        let logs = ClientLogs::new("step f.in".into());
        logs.warn_limited("Connect to 127.0.0.1:9092 failed (after 1ms)");
        logs.warn_limited("Connect to 127.0.0.1:9092 failed (after 7ms)");
        logs.warn_limited("another thing");
        let recent = logs.recent.lock().unwrap();
        assert_eq!(recent.len(), 2);
        assert!(recent.values().any(|(_, quiet)| *quiet == 1));
    }

    #[test]
    fn connection_trouble_is_recognized() {
        assert!(is_connection_trouble(
            "FAIL",
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed"
        ));
        assert!(!is_connection_trouble(
            "CONFWARN",
            "Configuration property x is deprecated"
        ));
    }
}
