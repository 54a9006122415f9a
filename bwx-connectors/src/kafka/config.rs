//! Broker address and librdkafka settings, with secrets kept out of logs and errors.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;

/// Brokers plus any librdkafka setting (`security.protocol`, `sasl.*`, `ssl.*`, `fetch.*`, ...),
/// passed through unchanged.
///
/// Its `Debug` output and every error that mentions a setting replace secret values
/// (any setting whose name contains `password`, `secret`, `oauthbearer.config`, `.pem` or
/// `jaas`) by `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    brokers: String,
    settings: BTreeMap<String, String>,
}

const REDACTED: &str = "[redacted]";

/// Whether a librdkafka setting holds a secret that must never be printed.
pub fn is_secret_setting(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "oauthbearer.config", ".pem", "jaas"]
        .iter()
        .any(|s| name.contains(s))
}

impl KafkaConfig {
    /// A configuration for these bootstrap brokers (`host:port`, comma-separated).
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            settings: BTreeMap::new(),
        }
    }

    /// Adds or replaces a librdkafka setting.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.insert(name.into(), value.into());
        self
    }

    /// Adds several settings at once.
    pub fn set_all<I, K, V>(mut self, settings: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.settings
            .extend(settings.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// A setting's value, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The librdkafka configuration: brokers, the user's settings, then `forced` (which wins).
    pub(crate) fn client_config(&self, forced: &[(&str, &str)]) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.settings {
            cc.set(k, v);
        }
        for (k, v) in forced {
            cc.set(*k, *v);
        }
        cc
    }

    /// `text` with every secret setting's value replaced; used on librdkafka error strings,
    /// which may quote an invalid value.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (k, v) in &self.settings {
            if is_secret_setting(k) && !v.is_empty() {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"bootstrap.servers", &self.brokers);
        for (k, v) in &self.settings {
            if is_secret_setting(k) {
                map.entry(k, &REDACTED);
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_hide_secrets() {
        let c = KafkaConfig::new("b:9092")
            .set("sasl.username", "alice")
            .set("sasl.password", "hunter2")
            .set("ssl.key.password", "s3cr3t");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("alice") && dbg.contains("b:9092"), "{dbg}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cr3t"), "{dbg}");
        let err = c.scrub("Invalid value \"hunter2\" for property sasl.password");
        assert!(!err.contains("hunter2") && err.contains(REDACTED), "{err}");
    }
}
