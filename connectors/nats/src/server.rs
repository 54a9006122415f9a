//! Connecting: a client and the runtime that drives it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, Context};
use tokio::runtime::Runtime;

use crate::NatsError;
use crate::error::Cause;

/// How long connecting and each request may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A NATS server, and the runtime (one thread) that drives the connector's clients, so
/// that their pings and acknowledgements flow while the worker is busy elsewhere.
#[derive(Clone)]
pub(crate) struct Server {
    pub url: String,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Server {
    pub fn new(url: &str) -> Result<Server, NatsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bwx-nats")
            .enable_all()
            .build()
            .map_err(NatsError::Runtime)?;
        Ok(Server {
            url: url.to_string(),
            runtime: Arc::new(runtime),
        })
    }

    /// Runs `f` on the connector's runtime and waits for it.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A JetStream context on a new connection.
    pub fn connect(&self) -> Result<Context, NatsError> {
        let url = self.url.clone();
        // The context spawns its tasks on the runtime it is made in.
        self.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(TIMEOUT)
                .request_timeout(Some(TIMEOUT))
                .connect(url)
                .await?;
            Ok(jetstream::new(client))
        })
        .map_err(|e: async_nats::ConnectError| NatsError::Connect {
            at: self.url.clone(),
            source: Box::new(e),
        })
    }

    /// Wraps a failed request with what was being done.
    pub fn failed<E: Into<Cause>>(&self, doing: impl Into<String>) -> impl FnOnce(E) -> NatsError + '_ {
        let doing = doing.into();
        move |e| NatsError::Request {
            doing,
            at: self.url.clone(),
            source: e.into(),
        }
    }
}
