#!/usr/bin/env python3
"""Measurements for BENCHMARKS.md: runs that are kept, and the tables made from them.

usage:
  scripts/bench.py run SUITE [--reps N] [--only TEXT] [--session NAME] [--bwx BIN] [--timely BIN]
  scripts/bench.py tables [--check]

`run` appends one JSON record per timed run to benches/results/SUITE.jsonl (the BENCH
line's fields, the machine's 1-minute load when the run started, the session name, the
git commit and the time). Runs of the systems compared alternate (A, B, A, B, ...) after
one untimed warm-up round (`--only TEXT`: only the configurations whose JSON contains
TEXT, e.g. `--only '"curve": "keys"'`), and every run's digest must agree with the others' of the same
configuration (and with the expected one where the bench kit lists it), or the run is kept
but marked and left out of the tables.

`tables` rewrites every generated table in BENCHMARKS.md (between `<!-- table: NAME -->`
and `<!-- /table -->`) from benches/results/*.jsonl; `--check` only reports whether they
are current.

Suites:
  workloads  (a)-(d): timely and bwx (per-worker clocks for (c) and (d)), 1 and 2 workers;
             (b)-(d) at sizes that keep every timed region at 2 s or more
  per-key    (c) and (d) with Bytewax's per-key clocks (--per-key-clock) against timely
  nexmark    q0-q22 at 10M events (r10k), 1 worker; timely too for q0, q5, q7, q8, q11
  latency    the open-loop driver at 10 %, 50 % and 90 % of bwx's peak rate: timely and bwx
             (running aggregate), bwx with snapshots every second, bwx tumbling window
  growth     events 1M-100M, keys 1k-10M, workers 1-2, processes 1-2; peak RSS

The binaries: bwx's bench (`cargo bench --bench workloads --no-run` prints its path) and
the kit's timely runner (`$BENCH_WORK/target-timely/release/bench-timely`). Run from the
repository root after `bash ../shared/bench/setup.sh`.
"""

import argparse
import datetime
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benches", "results")
WORK = os.path.abspath(os.environ.get("BENCH_WORK", os.path.join(ROOT, "target", "bench-work")))
DATA = os.path.join(WORK, "data")

# Expected digests of the bench kit (WORKLOADS.md) at its default sizes.
EXPECTED = {
    ("a-wordcount", None): "6431a66645328ad1f712f073e42ec5177fcae9fa82648be50e79db7e6745fd4b",
    ("b-running-mean", None): "db9929d070c983b7551b7d5395b525426be9e91ae8e7dc2d8bf5129e9e85495e",
    ("c-tumbling", None): "2d8a22eb871c655d3564507baa382a9fda796ceb7c85603e367bb437f6203d9a",
    ("d-hot-items", None): "007b09fa5c9b464f74ab93d49730c93f54ff22805ebde88c9e5d42999cf1eb39",
    ("nexmark-q0-r10k", 10_000_000): "13b06202cc0b79927a33cfd8b914dab4b220b413d46b5def44057074eb9ed714",
    ("nexmark-q5-r10k", 10_000_000): "80c51510b4a6592da40048e91c87ea60d11d7453c8173546749e67df030c9b9c",
    ("nexmark-q7-r10k", 10_000_000): "40df10ab15b23a8b2438892a5b00de80b8ada14ec10633d48b47879e769602e8",
    ("nexmark-q8-r10k", 10_000_000): "d44342172ea2ac985a01db70354b7bf3dc0a03a5ce286b03cc18873f72e8b15b",
    ("nexmark-q11-r10k", 10_000_000): "6bdfa69d3cbfd397d4dded4a9dba7f9a9db6ad8bfa1dfa0ad752e9a5e1b812e2",
    ("latency", None): "592e63709d2c62ed11ba083c11d811b380a0f04e24de4ca8489d3360c6e4b54b",
}
TIMELY_NEXMARK = ("q0", "q5", "q7", "q8", "q11")


def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def commit():
    out = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    return out + ("+dirty" if dirty else "")


def parse_bench(text):
    for line in text.splitlines():
        if line.startswith("BENCH "):
            return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return None


def bwx_binary(given):
    if given:
        return given
    out = sh(["cargo", "bench", "--bench", "workloads", "--no-run", "--message-format", "short"])
    m = re.search(r"\((\S*workloads-[0-9a-f]+)\)", out.stderr)
    if not m:
        sys.exit("cannot find the bench binary:\n" + out.stderr[-2000:])
    return os.path.join(ROOT, m.group(1))


class Run:
    """One configuration of one system: a command and what to record with it."""

    def __init__(self, system, config, cmd):
        self.system, self.config, self.cmd = system, config, cmd


def measure(suite, session, groups, reps):
    """Runs every group (the configurations compared) `reps` times, alternating."""
    path = os.path.join(RESULTS, f"{suite}.jsonl")
    os.makedirs(RESULTS, exist_ok=True)
    rev = commit()
    for group in groups:
        for rnd in range(-1, reps):
            for run in group:
                started_load = load()
                p = sh(run.cmd)
                rec = parse_bench(p.stdout)
                if p.returncode != 0 or rec is None:
                    print(f"FAILED {run.system} {run.config}: {(p.stderr or p.stdout)[-500:]}", flush=True)
                    continue
                tag = "warm-up" if rnd < 0 else f"rep {rnd + 1}"
                print(f"  {tag:8s} {run.system:6s} {json.dumps(run.config)} secs={rec['secs']} cpu_s={rec['cpu_s']} "
                      f"rss_mb={rec['rss_mb']} load={started_load} digest={rec['digest'][:12]}", flush=True)
                if rnd < 0:
                    continue
                rec.update(system=run.system, config=run.config, load=started_load, session=session,
                           commit=rev, time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
                with open(path, "a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------
# Suites


def suite_workloads(bwx, timely, reps):
    # Sizes whose timely runs take 2 s or more on this machine ((a) reads a fixed corpus).
    sizes = {"a-wordcount": None, "b-running-mean": 80_000_000, "c-tumbling": 100_000_000, "d-hot-items": 30_000_000}
    groups = []
    for workers in (1, 2):
        for w, n in sizes.items():
            tail = [w, "--workers", str(workers), "--data", DATA] + (["--events", str(n)] if n else [])
            config = {"workload": w, "workers": workers, "events": n}
            groups.append([Run("timely", config, [timely] + tail), Run("bwx", config, [bwx] + tail)])
    return groups


def suite_per_key(bwx, timely, reps):
    groups = []
    for w, n in (("c-tumbling", 100_000_000), ("d-hot-items", 30_000_000)):
        tail = [w, "--data", DATA, "--events", str(n)]
        config = {"workload": w, "workers": 1, "events": n, "clock": "per-key"}
        groups.append([Run("timely", config, [timely] + tail), Run("bwx", config, [bwx] + tail + ["--per-key-clock"])])
    return groups


def suite_nexmark(bwx, timely, reps):
    groups = []
    for q in range(23):
        w = f"nexmark-q{q}-r10k"
        tail = [w, "--data", DATA, "--events", "10000000"]
        config = {"workload": w, "workers": 1, "events": 10_000_000}
        group = [Run("bwx", config, [bwx] + tail)]
        if f"q{q}" in TIMELY_NEXMARK:
            group.insert(0, Run("timely", config, [timely] + tail))
        groups.append(group)
    return groups


def peak_rate(bwx):
    """bwx's sustained rate of the latency flow: records per second when offered far more."""
    rec = parse_bench(sh([bwx, "latency", "--rate", "50000000", "--secs", "0.5", "--warmup-secs", "0"]).stdout)
    return float(rec["events"]) / float(rec["secs"])


def suite_latency(bwx, timely, reps):
    peak = peak_rate(bwx)
    print(f"peak of bwx's latency flow: {peak:,.0f} records/s (load {load()})", flush=True)
    groups = []
    for share in (10, 50, 90):
        rate = int(peak * share / 100) // 1000 * 1000
        tail = ["latency", "--rate", str(rate), "--secs", "10", "--warmup-secs", "2"]
        config = {"workload": "latency", "share": share, "rate": rate, "peak": round(peak)}
        groups.append([
            Run("timely", config, [timely] + tail),
            Run("bwx", config, [bwx] + tail),
            Run("bwx", dict(config, snapshots=1), [bwx] + tail + ["--snapshots", "1"]),
            Run("bwx", dict(config, window=True), [bwx] + tail + ["--window"]),
        ])
    return groups


def suite_growth(bwx, timely, reps):
    groups = []
    for n in (1_000_000, 10_000_000, 100_000_000):
        tail = ["b-running-mean", "--data", DATA, "--events", str(n)]
        config = {"workload": "b-running-mean", "curve": "events", "events": n}
        groups.append([Run("timely", config, [timely] + tail), Run("bwx", config, [bwx] + tail)])
    for keys in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        n = max(20_000_000, 2 * keys)
        tail = ["keyed-running-mean", "--keys", str(keys), "--data", DATA, "--events", str(n)]
        config = {"workload": "keyed-running-mean", "curve": "keys", "keys": keys, "events": n}
        groups.append([Run("bwx", config, [bwx] + tail)])
    for workers, processes in ((1, 1), (2, 1), (1, 2)):
        tail = ["b-running-mean", "--data", DATA, "--events", "40000000", "--workers", str(workers)]
        config = {"workload": "b-running-mean", "curve": "parallelism", "workers": workers, "processes": processes,
                  "events": 40_000_000}
        runs = [Run("bwx", config, [bwx] + tail + ["--processes", str(processes)])]
        if processes == 1:
            runs.insert(0, Run("timely", config, [timely] + tail))
        groups.append(runs)
    return groups


SUITES = {"workloads": suite_workloads, "per-key": suite_per_key, "nexmark": suite_nexmark,
          "latency": suite_latency, "growth": suite_growth}


# ---------------------------------------------------------------------------------------
# Tables


def records(suite):
    path = os.path.join(RESULTS, f"{suite}.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def key(config):
    return json.dumps(config, sort_keys=True)


def good(recs):
    """The records whose digest agrees with the expected one (or, without one, with every
    other run of the same configuration and size)."""
    by_config = {}
    for r in recs:
        by_config.setdefault(key(r["config"]), []).append(r)
    out = []
    for rs in by_config.values():
        c = rs[0]["config"]
        want = EXPECTED.get((c.get("workload"), c.get("events")))
        # The kit's digests are of the default sizes (latency: the default 1M records/s).
        if want is None and c.get("events") is None and c.get("rate", 1_000_000) == 1_000_000:
            want = EXPECTED.get((c.get("workload"), None))
        if want is None:
            digests = {r["digest"] for r in rs}
            want = digests.pop() if len(digests) == 1 else None
        out.extend(r for r in rs if want is not None and r["digest"] == want)
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(recs, system, config_filter):
    """(median events/cpu_s, median cpu_s, median rss_mb, runs, load range, sessions) of the
    records of `system` whose config matches."""
    rs = [r for r in recs if r["system"] == system and config_filter(r["config"])]
    if not rs:
        return None
    cpu = med([float(r["cpu_s"]) for r in rs])
    events = float(rs[0]["events"])
    loads = [float(r["load"]) for r in rs]
    return {
        "eps_cpu": events / cpu,
        "cpu": cpu,
        "secs": med([float(r["secs"]) for r in rs]),
        "rss": med([float(r["rss_mb"]) for r in rs]),
        "runs": len(rs),
        "load": f"{min(loads):.1f}-{max(loads):.1f}",
        "sessions": sorted({r["session"] for r in rs}),
        "records": rs,
    }


def per_session(recs, system, config_filter):
    """Median events/cpu_s of each session."""
    out = {}
    for r in recs:
        if r["system"] == system and config_filter(r["config"]):
            out.setdefault(r["session"], []).append(float(r["events"]) / float(r["cpu_s"]))
    return {s: med(v) for s, v in out.items()}


def fmt_m(x):
    return f"{x / 1e6:,.2f} M"


def sessions_spread(recs, system, f):
    s = per_session(recs, system, f)
    if len(s) < 2:
        return "-"
    vals = list(s.values())
    return f"{(max(vals) / min(vals) - 1) * 100:.1f} %"


def table_ratio(suite, rows_of, title_system="bwx"):
    recs = good(records(suite))
    lines = ["| workload | workers | events | timely events/cpu_s | bwx events/cpu_s | bwx / timely | timely rss | bwx rss "
             "| runs | load | sessions apart (bwx) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, f in rows_of(recs):
        t, b = summary(recs, "timely", f), summary(recs, title_system, f)
        if not b:
            continue
        tv = fmt_m(t["eps_cpu"]) if t else "-"
        ratio = f"{b['eps_cpu'] / t['eps_cpu']:.2f}" if t else "-"
        trss = f"{t['rss']:.1f} MB" if t else "-"
        c = b["records"][0]["config"]
        lines.append(f"| {label} | {c.get('workers', 1)} | {c.get('events') or 'corpus'} | {tv} | {fmt_m(b['eps_cpu'])} "
                     f"| {ratio} | {trss} | {b['rss']:.1f} MB | {b['runs']} | {b['load']} "
                     f"| {sessions_spread(recs, title_system, f)} |")
    return "\n".join(lines)


def configs(recs, pred=lambda c: True):
    seen = {}
    for r in recs:
        if pred(r["config"]):
            seen.setdefault(key(r["config"]), r["config"])
    return list(seen.values())


def t_workloads():
    def rows(recs):
        for c in sorted(configs(recs), key=lambda c: (c["workers"], c["workload"])):
            yield c["workload"], (lambda cc: lambda x: x == cc)(c)
    return table_ratio("workloads", rows)


def t_per_key():
    def rows(recs):
        for c in sorted(configs(recs), key=lambda c: c["workload"]):
            yield c["workload"] + ", per-key clocks", (lambda cc: lambda x: x == cc)(c)
    return table_ratio("per-key", rows)


# Published per-core throughput (events per second per core) of the Nexmark suite:
# Flink 1.13 on 3 x 8 cores, 100M events at 10M/s (nexmark/nexmark README, "Benchmark Results",
# https://github.com/nexmark/nexmark/blob/14d126f2b8649011157e0f41d0f7699d0639b582/README.md).
FLINK_PER_CORE = {0: 155.02e3, 1: 157.94e3, 2: 175.21e3, 3: 152.12e3, 4: 34.33e3, 5: 22.14e3, 7: 12.33e3,
                  8: 146.14e3, 9: 14.24e3, 10: 57.81e3, 11: 39.7e3, 12: 75.67e3, 13: 130.73e3, 14: 161.23e3,
                  15: 72.42e3, 16: 18.65e3, 17: 116.8e3, 18: 53.7e3, 19: 44.04e3, 20: 18.98e3, 21: 98.49e3,
                  22: 129.96e3}


def t_nexmark():
    recs = good(records("nexmark"))
    lines = ["| query | bwx events/cpu_s | timely events/cpu_s | bwx / timely | bwx rss | timely rss | Flink 1.13 "
             "(published, per core) | bwx / Flink | runs | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for q in range(23):
        w = f"nexmark-q{q}-r10k"
        f = lambda c, w=w: c["workload"] == w
        b, t = summary(recs, "bwx", f), summary(recs, "timely", f)
        if not b:
            continue
        flink = FLINK_PER_CORE.get(q)
        cells = [
            f"q{q}",
            fmt_m(b["eps_cpu"]),
            fmt_m(t["eps_cpu"]) if t else "-",
            f"{b['eps_cpu'] / t['eps_cpu']:.2f}" if t else "-",
            f"{b['rss']:.1f} MB",
            f"{t['rss']:.1f} MB" if t else "-",
            f"{flink / 1e3:,.1f} k" if flink else "not run (FLINK-19059)",
            f"{b['eps_cpu'] / flink:,.0f}x" if flink else "-",
            str(b["runs"]),
            b["load"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def t_latency():
    recs = good(records("latency"))
    lines = ["| share of peak | rate (records/s) | system | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | p99 / timely's "
             "| runs | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(configs(recs), key=lambda c: (c["share"], c.get("snapshots", 0), c.get("window", False))):
        for system in ("timely", "bwx"):
            rs = [r for r in recs if r["system"] == system and r["config"] == c]
            if not rs:
                continue
            q = {k: med([float(r[k]) for r in rs]) for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")}
            base = c.get("snapshots") is None and not c.get("window")
            t = [float(r["p99_us"]) for r in recs if r["system"] == "timely" and r["config"]["share"] == c["share"]
                 and r["config"].get("snapshots") is None and not r["config"].get("window")]
            label = system + (", snapshots every 1 s" if c.get("snapshots") else "") + (", tumbling window" if c.get("window") else "")
            ratio = f"{q['p99_us'] / med(t):.2f}" if t and system == "bwx" and (base or c.get("snapshots")) else "-"
            loads = [float(r["load"]) for r in rs]
            lines.append(f"| {c['share']} % | {c['rate']:,} | {label} | {q['p50_us']:.1f} | {q['p90_us']:.1f} | {q['p99_us']:.1f} "
                         f"| {q['p999_us']:.1f} | {q['max_us']:.1f} | {ratio} | {len(rs)} | {min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


def t_growth():
    recs = good(records("growth"))
    lines = ["| curve | point | system | events | cpu_s | ns/event (cpu) | peak rss | bytes/key | runs | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in configs(recs):
        for system in ("timely", "bwx"):
            s = summary(recs, system, lambda x, c=c: x == c)
            if not s:
                continue
            point = {"events": f"{c.get('events'):,} events", "keys": f"{c.get('keys', 0):,} keys",
                     "parallelism": f"{c.get('workers')} workers x {c.get('processes')} processes"}[c["curve"]]
            per_key = "-"
            if c["curve"] == "keys":
                per_key = f"{s['rss'] * 1024 * 1024 / c['keys']:,.0f}"
            lines.append(f"| {c['curve']} | {point} | {system} | {c['events']:,} | {s['cpu']:.2f} "
                         f"| {s['cpu'] * 1e9 / c['events']:.1f} | {s['rss']:.1f} MB | {per_key} | {s['runs']} | {s['load']} |")
    return "\n".join(lines)


TABLES = {"workloads": t_workloads, "per-key": t_per_key, "nexmark": t_nexmark, "latency": t_latency, "growth": t_growth}


def tables(check):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read()
    def replace(m):
        return f"<!-- table: {m.group(1)} -->\n{TABLES[m.group(1)]()}\n<!-- /table -->"
    new = re.sub(r"<!-- table: ([\w-]+) -->\n.*?<!-- /table -->", replace, text, flags=re.S)
    if check:
        print("tables are current" if new == text else "tables are out of date")
        return new == text
    with open(path, "w") as f:
        f.write(new)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("suite", choices=sorted(SUITES))
    r.add_argument("--reps", type=int, default=5)
    r.add_argument("--only", default=None, help="only configurations whose JSON contains this text")
    r.add_argument("--session", default=datetime.datetime.now().strftime("%Y-%m-%dT%H:%M"))
    r.add_argument("--bwx", default=None)
    r.add_argument("--timely", default=os.path.join(WORK, "target-timely", "release", "bench-timely"))
    t = sub.add_parser("tables")
    t.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.cmd == "tables":
        sys.exit(0 if tables(a.check) else 1)
    bwx = bwx_binary(a.bwx)
    print(f"== {a.suite}: bwx {bwx}, commit {commit()}, session {a.session}, load {load()}", flush=True)
    groups = SUITES[a.suite](bwx, a.timely, a.reps)
    if a.only:
        groups = [g for g in groups if a.only in key(g[0].config)]
    measure(a.suite, a.session, groups, a.reps)


if __name__ == "__main__":
    main()
