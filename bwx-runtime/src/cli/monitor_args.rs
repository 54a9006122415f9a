//! The monitoring flags of `run`, and the arguments of `visualize`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::api::{ApiConfig, DEFAULT_PORT};

/// The dataflow API and the progress line.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct MonitorArgs {
    /// Serve the dataflow API: Prometheus metrics at /metrics, the flow at /dataflow, the
    /// run's status at /status and a live page at /.
    #[arg(
        long = "dataflow-api",
        env = "BYTEWAX_DATAFLOW_API_ENABLED",
        help_heading = "Monitoring"
    )]
    pub dataflow_api: bool,

    /// The dataflow API's port (0: any free port; with --processes, process i uses PORT + i).
    #[arg(
        long,
        env = "BYTEWAX_DATAFLOW_API_PORT",
        default_value_t = DEFAULT_PORT,
        value_name = "PORT",
        help_heading = "Monitoring"
    )]
    pub dataflow_api_port: u16,

    /// The address the dataflow API listens on.
    #[arg(
        long,
        env = "BWX_DATAFLOW_API_BIND",
        default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        value_name = "IP",
        help_heading = "Monitoring"
    )]
    pub dataflow_api_bind: IpAddr,

    /// Where the dataflow API writes dataflow.json when it starts.
    #[arg(
        long,
        env = "BYTEWAX_DATAFLOW_API_CACHE_PATH",
        default_value = ".",
        value_name = "DIR",
        help_heading = "Monitoring"
    )]
    pub dataflow_api_cache_path: PathBuf,

    /// Do not draw the progress line (drawn on stderr when it is a terminal).
    #[arg(long, env = "BWX_NO_PROGRESS", help_heading = "Monitoring")]
    pub no_progress: bool,
}

impl MonitorArgs {
    /// Where the dataflow API listens, if it is enabled.
    pub fn api_config(&self) -> Option<ApiConfig> {
        self.dataflow_api.then(|| ApiConfig {
            addr: SocketAddr::new(self.dataflow_api_bind, self.dataflow_api_port),
            cache_dir: Some(self.dataflow_api_cache_path.clone()),
        })
    }

    /// The port of process `process_id` of a `--processes` run, which share one host: the
    /// base port plus the id (0 stays 0: any free port).
    fn port_of(&self, process_id: usize) -> u16 {
        match self.dataflow_api_port {
            0 => 0,
            port => port.saturating_add(process_id as u16),
        }
    }

    /// The flags that give process `process_id` of a `--processes` run its own API port;
    /// the processes draw no progress line (they share the terminal).
    pub(crate) fn child_args(&self, process_id: usize) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--no-progress".into()];
        if self.dataflow_api {
            args.extend([
                "--dataflow-api".into(),
                "--dataflow-api-port".into(),
                self.port_of(process_id).to_string().into(),
                "--dataflow-api-bind".into(),
                self.dataflow_api_bind.to_string().into(),
                "--dataflow-api-cache-path".into(),
                self.dataflow_api_cache_path.clone().into(),
            ]);
        }
        args
    }
}

/// The drawing formats of `visualize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ValueEnum)]
pub enum DiagramFormat {
    /// A Mermaid flowchart (Bytewax's layout).
    #[default]
    Mermaid,
    /// A Graphviz digraph (`dot -Tsvg`).
    Dot,
    /// JSON, as `GET /dataflow` serves it.
    Json,
}

/// The arguments of `visualize`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct VisualizeArgs {
    /// The drawing format.
    #[arg(
        short = 'o',
        long = "format",
        visible_alias = "output-format",
        value_enum,
        default_value_t
    )]
    pub format: DiagramFormat,
}
