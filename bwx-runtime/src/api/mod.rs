//! The dataflow API: Bytewax's HTTP contract, one server per process.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | a live page: the flow's steps with items in and out per second, frontier lags and snapshot times |
//! | `GET /metrics` | every metric of the [registry](crate::monitor::registry), in Prometheus's text format |
//! | `GET /dataflow` | the flow as JSON ([`Dataflow::to_json`](crate::Dataflow::to_json)) |
//! | `GET /status` | the run's [`StatusReport`](crate::monitor::StatusReport) as JSON: 200 while the flow runs or after it finished, 503 while it starts, after it stopped early or failed (a readiness probe) |
//! | `GET /status/live` | the same JSON, always 200 while the process answers (a liveness probe) |
//!
//! The server runs on its own thread with a single-threaded tokio runtime, apart from the
//! worker threads. The command line (`bwx::cli`) starts it with
//! `BYTEWAX_DATAFLOW_API_ENABLED=true` (or `--dataflow-api`) on port
//! `BYTEWAX_DATAFLOW_API_PORT` (3030) of `BWX_DATAFLOW_API_BIND` (0.0.0.0), and writes the
//! flow's JSON to `$BYTEWAX_DATAFLOW_API_CACHE_PATH/dataflow.json` when it starts, as
//! Bytewax does. For Kubernetes:
//!
//! ```yaml
//! readinessProbe: { httpGet: { path: /status, port: 3030 } }
//! livenessProbe:  { httpGet: { path: /status/live, port: 3030 } }
//! ```
//!
//! From a program:
//!
//! ```
//! use bwx::api::{ApiConfig, DataflowApi};
//! use bwx::monitor::Monitor;
//! use bwx::prelude::*;
//! use bwx::testing::{TestingSink, TestingSource};
//!
//! let flow = Dataflow::new("served");
//! flow.input("inp", TestingSource::new(0..10u32)).output("out", TestingSink::new());
//! let monitor = Monitor::new(&flow);
//! let api = DataflowApi::start(&ApiConfig::local(0), monitor.clone()).unwrap();
//! bwx::run_main_with(&flow, RunConfig::default().monitor(monitor)).unwrap();
//!
//! use std::io::{Read, Write};
//! let mut conn = std::net::TcpStream::connect(api.local_addr()).unwrap();
//! conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//! let mut reply = String::new();
//! conn.read_to_string(&mut reply).unwrap();
//! assert!(reply.contains(r#"bytewax_item_out_count_total{step_id="served.inp",worker_index="0"} 10"#));
//! ```

mod routes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::monitor::Monitor;

/// The port of the dataflow API unless `BYTEWAX_DATAFLOW_API_PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 3030;

/// Where the dataflow API listens and where it writes `dataflow.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// The address to bind (port 0: any free port; see [`DataflowApi::local_addr`]).
    pub addr: SocketAddr,
    /// The directory to write `dataflow.json` to when the server starts; `None` writes
    /// nothing.
    pub cache_dir: Option<PathBuf>,
}

impl ApiConfig {
    /// Port `port` on every interface (0.0.0.0), writing `./dataflow.json`, as Bytewax.
    pub fn new(port: u16) -> ApiConfig {
        ApiConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            cache_dir: Some(PathBuf::from(".")),
        }
    }

    /// Port `port` on the loopback interface only, writing no file.
    pub fn local(port: u16) -> ApiConfig {
        ApiConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            cache_dir: None,
        }
    }
}

/// A running dataflow API server; dropping it stops the server.
pub struct DataflowApi {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DataflowApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataflowApi").field("addr", &self.addr).finish()
    }
}

/// Why the dataflow API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The address could not be bound (in use, or not this machine's).
    #[error("the dataflow API cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server's thread or runtime could not be made.
    #[error("the dataflow API cannot start its thread: {0}")]
    Runtime(#[source] std::io::Error),
}

impl DataflowApi {
    /// Binds `config.addr` now (so that a port in use is an error here), writes
    /// `dataflow.json`, and serves `monitor` from a thread of its own.
    pub fn start(config: &ApiConfig, monitor: Monitor) -> Result<DataflowApi, ApiError> {
        let bind = |source| ApiError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        if let Some(dir) = &config.cache_dir {
            let path = dir.join("dataflow.json");
            if let Err(e) =
                std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, monitor.dataflow_json()))
            {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ApiError::Runtime)?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = routes::router(monitor);
        let thread = std::thread::Builder::new()
            .name("bwx-dataflow-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the dataflow API cannot serve on {addr}: {e}");
                            return;
                        }
                    };
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("the dataflow API on {addr} stopped: {e}");
                    }
                })
            })
            .map_err(ApiError::Runtime)?;
        tracing::info!(%addr, "dataflow API listening on http://{addr}/");
        Ok(DataflowApi {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the server listens on (with its port, when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DataflowApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
