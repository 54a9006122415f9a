//! `--processes P`: the lead process starts P members of a bwx cluster on loopback ports
//! and combines their measurements into one BENCH line (secs: the slowest member; CPU
//! seconds and peak RSS: summed).

use std::net::TcpListener;
use std::process::{Command, ExitCode, Stdio};

use crate::Outcome;
use crate::args::{Args, Member};

/// Run by a member after its timed region: one MEMBER line and its rows in a file.
pub fn report(member: &Member, outcome: Outcome, secs: f64, cpu: f64) -> ExitCode {
    let mut text = (outcome.rows)().join("\n");
    text.push('\n');
    if let Err(e) = std::fs::write(&member.rows_file, text) {
        eprintln!("workloads: cannot write {}: {e}", member.rows_file);
        return ExitCode::from(1);
    }
    println!(
        "MEMBER secs={secs} cpu_s={cpu} rss_mb={} events={}",
        crate::meter::peak_rss_mb(),
        outcome.events
    );
    ExitCode::SUCCESS
}

pub fn lead(args: &Args) -> ExitCode {
    match run_members(args) {
        Ok((events, rows, secs, cpu, rss)) => crate::finish(args, events, rows, (secs, cpu, rss), ""),
        Err(message) => {
            eprintln!("workloads: {message}");
            ExitCode::from(1)
        }
    }
}

type Combined = (u64, Vec<String>, f64, f64, f64);

fn run_members(args: &Args) -> Result<Combined, String> {
    // Ask the OS for free ports, then release them for the members to bind.
    let listeners: Vec<TcpListener> = (0..args.processes)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}")))
        .collect::<Result<_, _>>()?;
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    drop(listeners);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("bwx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let own_args: Vec<String> = std::env::args().skip(1).collect();
    let mut children = Vec::new();
    for id in 0..args.processes {
        let rows_file = dir.join(format!("rows-{id}.txt"));
        let child = Command::new(&exe)
            .args(&own_args)
            .args([
                "--member-process-id",
                &id.to_string(),
                "--member-addresses",
                &addresses.join(";"),
            ])
            .arg("--member-rows-file")
            .arg(&rows_file)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start member {id}: {e}"))?;
        children.push((id, child, rows_file));
    }
    let (mut events, mut rows, mut secs, mut cpu, mut rss) = (0u64, Vec::new(), 0f64, 0f64, 0f64);
    for (id, child, rows_file) in children {
        let output = child
            .wait_with_output()
            .map_err(|e| format!("member {id}: {e}"))?;
        if !output.status.success() {
            return Err(format!("member {id} failed: {}", output.status));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("MEMBER "))
            .ok_or(format!("member {id} printed no MEMBER line"))?;
        for pair in line.split_whitespace().skip(1) {
            let (key, value) = pair.split_once('=').ok_or(format!("bad MEMBER line {line:?}"))?;
            let number: f64 = value.parse().map_err(|_| format!("bad MEMBER line {line:?}"))?;
            match key {
                "secs" => secs = secs.max(number),
                "cpu_s" => cpu += number,
                "rss_mb" => rss += number,
                "events" => events += number as u64,
                _ => {}
            }
        }
        let text = std::fs::read_to_string(&rows_file).map_err(|e| format!("member {id}: {e}"))?;
        rows.extend(text.lines().filter(|l| !l.is_empty()).map(String::from));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((events, rows, secs, cpu, rss))
}
