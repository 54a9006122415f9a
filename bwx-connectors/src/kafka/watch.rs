//! The topic watch of a source: a thread per process that asks the brokers about the
//! source's topics every metadata interval, so that a topic deleted under a flow, or
//! partitions added to it, are noticed within seconds (librdkafka alone does not tell a
//! consumer that assigns its partitions).
//!
//! Partitions compare a change counter once per batch (one atomic load) and read the
//! topic's state only when it moved. Added partitions are reported here, once; a deleted
//! topic is reported by each of its partitions, as an error of the flow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

use super::source::KafkaConsumer;

/// What the last look at a topic found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TopicState {
    /// It exists with this many partitions.
    Partitions(usize),
    /// The broker says it does not exist (why).
    Missing(String),
}

/// The latest state of a source's topics, shared by the partitions of one process.
pub(crate) struct TopicWatch {
    states: Mutex<HashMap<String, TopicState>>,
    changes: AtomicU64,
}

impl TopicWatch {
    /// Starts the watch thread; it ends soon after the last partition drops the watch.
    pub(crate) fn start(
        client: KafkaConsumer,
        step: String,
        topics: Vec<String>,
        interval: Duration,
    ) -> Result<Arc<TopicWatch>, String> {
        let watch = Arc::new(TopicWatch {
            states: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&watch);
        thread::Builder::new()
            .name(format!("bwx-topic-watch-{step}"))
            .spawn(move || run(&client, &step, &topics, interval, &weak))
            .map_err(|e| format!("cannot start the topic watch thread: {e}"))?;
        Ok(watch)
    }

    /// How many changes were seen so far.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The latest state of `topic`, once looked at.
    pub(crate) fn state(&self, topic: &str) -> Option<TopicState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()
    }

    /// Records what a look found; reports added partitions.
    fn record(&self, step: &str, topic: &str, now: TopicState) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let before = states.insert(topic.to_string(), now.clone());
        match (&before, &now) {
            (Some(b), n) if b == n => return,
            (Some(TopicState::Partitions(was)), TopicState::Partitions(is)) if is > was => {
                tracing::warn!(
                    "step {step}: topic {topic:?} has {is} partitions now, {} more than when the flow started; \
                     the source lists partitions when it starts, so restart the flow to read the new ones \
                     (a resumed flow reads them from its starting offset)",
                    is - was
                );
            }
            (Some(_), TopicState::Missing(why)) => {
                tracing::error!("step {step}: topic {topic:?} is gone: {why}");
            }
            _ => {}
        }
        // The first look at a topic is no news for the partitions.
        if before.is_some() {
            self.changes.fetch_add(1, Ordering::Release);
        }
    }
}

fn run(client: &KafkaConsumer, step: &str, topics: &[String], interval: Duration, watch: &Weak<TopicWatch>) {
    let mut due = Instant::now();
    loop {
        // Short sleeps, so that the thread ends soon after the flow.
        while Instant::now() < due {
            if watch.strong_count() == 0 {
                return;
            }
            thread::sleep(Duration::from_millis(50).min(interval));
        }
        due = Instant::now() + interval;
        for topic in topics {
            // A broker that cannot be reached says nothing about the topic; librdkafka's
            // connection warnings already tell of the outage.
            let Ok(metadata) = client.fetch_metadata(Some(topic), interval.max(Duration::from_secs(5)))
            else {
                continue;
            };
            let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                continue;
            };
            let state = match t.error().map(RDKafkaErrorCode::from) {
                Some(code @ (RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)) => {
                    TopicState::Missing(code.to_string())
                }
                Some(_) => continue,
                None if t.partitions().is_empty() => TopicState::Missing("it has no partitions".into()),
                None => TopicState::Partitions(t.partitions().len()),
            };
            let Some(w) = watch.upgrade() else { return };
            w.record(step, topic, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_after_the_first_look_count() {
        let w = TopicWatch {
            states: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
        };
        w.record("f.in", "t", TopicState::Partitions(2));
        w.record("f.in", "t", TopicState::Partitions(2));
        assert_eq!(w.changes(), 0);
        w.record("f.in", "t", TopicState::Partitions(3));
        assert_eq!(w.changes(), 1);
        w.record("f.in", "t", TopicState::Missing("gone".into()));
        assert_eq!(
            (w.changes(), w.state("t")),
            (2, Some(TopicState::Missing("gone".into())))
        );
    }
}
