#!/usr/bin/env bash
# Starts or stops the servers of the connector tests on loopback, from Debian's packages:
# PostgreSQL, Redis, NATS (with JetStream) and Mosquitto (MQTT), on non-default ports, with
# their data under target/servers. Each is ready when `start` returns.
#
#   apt-get install -y postgresql redis-server nats-server mosquitto
#   scripts/servers.sh start        # fresh data every time; stops what it started before
#   eval "$(scripts/servers.sh env)"  # BWX_POSTGRES_URL, BWX_REDIS_URL, BWX_NATS_URL, BWX_MQTT_ADDR
#   cargo test -p bwx-postgres -p bwx-redis -p bwx-nats -p bwx-mqtt
#   scripts/servers.sh stop
#
# Ports: BWX_PG_PORT (15432), BWX_REDIS_PORT (16379), BWX_NATS_PORT (14222), BWX_MQTT_PORT
# (11883); data and logs in BWX_SERVERS_DIR (target/servers); BWX_MQTT_INFLIGHT sets
# Mosquitto's max_inflight_messages (20 unless set; 0 is no limit, for throughput: an MQTT
# source reads at most that many messages per partition and epoch). Always stop with the same
# settings you started with. PostgreSQL runs as the `postgres` user (it refuses root), with
# prepared transactions enabled (the exactly-once sink needs them) and fsync off (test data).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="${BWX_SERVERS_DIR:-$ROOT/target/servers}"
PG_PORT="${BWX_PG_PORT:-15432}"
REDIS_PORT="${BWX_REDIS_PORT:-16379}"
NATS_PORT="${BWX_NATS_PORT:-14222}"
MQTT_PORT="${BWX_MQTT_PORT:-11883}"

listening() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # name port
  local deadline=$((SECONDS + 30))
  until listening "$2"; do
    if ((SECONDS >= deadline)); then
      echo "servers: $1 does not listen on 127.0.0.1:$2 after 30 s; its log:" >&2
      tail -n 20 "$DIR/$1.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$bin" ]] || { echo "servers: PostgreSQL is not installed (apt-get install -y postgresql)" >&2; exit 1; }
  echo "$bin"
}

as_postgres() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_pg() {
  local bin
  bin=$(pg_bin)
  rm -rf "$DIR/pg"
  mkdir -p "$DIR/pg"
  # The postgres user must reach its directory.
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$DIR/pg"
    chmod o+x "$DIR" "$(dirname "$DIR")"
  fi
  as_postgres "$bin/initdb" -D "$DIR/pg/data" -U bwx -A trust --no-sync >"$DIR/postgres-init.log" 2>&1
  as_postgres "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 30 start -o \
    "-h 127.0.0.1 -p $PG_PORT -k $DIR/pg -c max_prepared_transactions=64 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB" \
    >"$DIR/postgres-start.log" 2>&1 || { cat "$DIR/pg/postgres.log" >&2; return 1; }
  cp "$DIR/pg/postgres.log" "$DIR/postgres.log" 2>/dev/null || true
  wait_port postgres "$PG_PORT"
}

stop_pg() {
  [[ -f "$DIR/pg/data/postmaster.pid" ]] || return 0
  as_postgres "$(pg_bin)/pg_ctl" -D "$DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
}

start_redis() {
  command -v redis-server >/dev/null || { echo "servers: redis-server is not installed" >&2; exit 1; }
  rm -rf "$DIR/redis"
  mkdir -p "$DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$DIR/redis" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
  wait_port redis "$REDIS_PORT"
}

start_nats() {
  command -v nats-server >/dev/null || { echo "servers: nats-server is not installed" >&2; exit 1; }
  rm -rf "$DIR/nats"
  mkdir -p "$DIR/nats"
  nohup nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DIR/nats" -P "$DIR/nats.pid" -l "$DIR/nats.log" \
    >/dev/null 2>&1 &
  wait_port nats "$NATS_PORT"
}

start_mqtt() {
  command -v mosquitto >/dev/null || { echo "servers: mosquitto is not installed" >&2; exit 1; }
  mkdir -p "$DIR"
  cat >"$DIR/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages ${BWX_MQTT_INFLIGHT:-20}
pid_file $DIR/mosquitto.pid
log_dest file $DIR/mosquitto.log
user $(id -un)
EOF
  mosquitto -c "$DIR/mosquitto.conf" -d 2>>"$DIR/mosquitto.log"
  wait_port mosquitto "$MQTT_PORT"
}

stop_pidfile() { # name
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$DIR/$1.pid"
}

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    # Idempotent: servers this script left running (an interrupted run) are stopped first.
    "$0" stop
    for port in "$PG_PORT" "$REDIS_PORT" "$NATS_PORT" "$MQTT_PORT"; do
      if listening "$port"; then
        echo "servers: 127.0.0.1:$port is taken; stop what runs there (scripts/servers.sh stop) or pick other ports" >&2
        exit 1
      fi
    done
    start_pg
    start_redis
    start_nats
    start_mqtt
    ;;
  stop)
    stop_pg
    stop_pidfile redis
    stop_pidfile nats
    stop_pidfile mosquitto
    ;;
  env)
    echo "export BWX_POSTGRES_URL='host=127.0.0.1 port=$PG_PORT user=bwx dbname=postgres'"
    echo "export BWX_REDIS_URL='redis://127.0.0.1:$REDIS_PORT/'"
    echo "export BWX_NATS_URL='nats://127.0.0.1:$NATS_PORT'"
    echo "export BWX_MQTT_ADDR='127.0.0.1:$MQTT_PORT'"
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
