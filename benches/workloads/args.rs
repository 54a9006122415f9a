//! The command line of the workloads bench (WORKLOADS.md section 4.2).

pub const USAGE: &str = "usage: cargo bench --bench workloads -- \
    <a-wordcount|b-running-mean|c-tumbling|d-hot-items|nexmark-<q0..q22>-<r10m|r10k>|keyed-running-mean> \
    [--workers N] [--processes P] --data DIR [--events N] [--out FILE] [--macro] [--per-key-clock]\n       \
    cargo bench --bench workloads -- latency [--workers N] [--rate R] [--secs S] [--warmup-secs S] \
    [--keys K] [--window] [--snapshots S]";

/// The options of `latency` (WORKLOADS.md section 5).
pub struct Latency {
    /// Offered records per second.
    pub rate: u64,
    /// Measured seconds, after the warm-up.
    pub secs: f64,
    pub warmup_secs: f64,
    /// A tumbling event-time window instead of the running aggregate.
    pub window: bool,
    /// Recovery on, with an epoch (and snapshots) this often.
    pub snapshots: Option<std::time::Duration>,
}

pub struct Args {
    pub workload: String,
    pub workers: usize,
    pub processes: usize,
    pub data: String,
    pub events: Option<u64>,
    pub out: Option<String>,
    /// Build the flow with `dataflow!` instead of the builder (the same steps).
    pub macro_form: bool,
    /// (c) and (d): one event clock per key (Bytewax's semantics) instead of per worker.
    pub per_key_clock: bool,
    /// Set in the child processes of a `--processes P` run.
    pub member: Option<Member>,
    pub latency: Latency,
    /// `latency` and `keyed-running-mean`: the number of keys.
    pub keys: u64,
}

/// This process's place in a multi-process run (internal flags set by the parent).
pub struct Member {
    pub process_id: usize,
    pub addresses: Vec<String>,
    pub rows_file: String,
}

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            workload: String::new(),
            workers: 1,
            processes: 1,
            data: "target/bench-work/data".into(),
            events: None,
            out: None,
            macro_form: false,
            per_key_clock: false,
            member: None,
            keys: 10_000,
            latency: Latency {
                rate: 1_000_000,
                secs: 10.0,
                warmup_secs: 2.0,
                window: false,
                snapshots: None,
            },
        };
        let (mut process_id, mut addresses, mut rows_file) = (None, None, None);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--workers" | "-w" => args.workers = number(&value("--workers")?)?,
                "--processes" => args.processes = number(&value("--processes")?)?,
                "--data" => args.data = value("--data")?,
                "--events" => args.events = Some(number(&value("--events")?)? as u64),
                "--out" => args.out = Some(value("--out")?),
                "--macro" => args.macro_form = true,
                "--per-key-clock" => args.per_key_clock = true,
                "--rate" => args.latency.rate = number(&value("--rate")?)? as u64,
                "--secs" => args.latency.secs = seconds(&value("--secs")?)?,
                "--warmup-secs" => args.latency.warmup_secs = seconds(&value("--warmup-secs")?)?,
                "--keys" => args.keys = number(&value("--keys")?)? as u64,
                "--window" => args.latency.window = true,
                "--snapshots" => {
                    let every = seconds(&value("--snapshots")?)?;
                    args.latency.snapshots = Some(std::time::Duration::from_secs_f64(every));
                }
                "--bench" => {}
                "--member-process-id" => process_id = Some(number(&value("--member-process-id")?)?),
                "--member-addresses" => addresses = Some(value("--member-addresses")?),
                "--member-rows-file" => rows_file = Some(value("--member-rows-file")?),
                other if !other.starts_with('-') && args.workload.is_empty() => {
                    args.workload = other.to_string()
                }
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        if args.workload.is_empty() {
            return Err("no workload given".into());
        }
        if args.workers == 0 || args.processes == 0 {
            return Err("--workers and --processes must be at least 1".into());
        }
        if let (Some(process_id), Some(addresses), Some(rows_file)) = (process_id, addresses, rows_file) {
            let addresses = addresses.split(';').map(String::from).collect();
            args.member = Some(Member {
                process_id,
                addresses,
                rows_file,
            });
        }
        Ok(args)
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    text.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

fn number(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("{text:?} is not a number"))
}
