#!/usr/bin/env bash
# Starts a throw-away PostgreSQL on 127.0.0.1:55432 for the hub's PG test variants and prints
# its URL on stdout (the only line printed there). Usage from CI:
#   export FOUNDRY_TEST_PG_URL="$(bash crates/hub/tests/start-postgres.sh)"
# Stop it with: pg_ctl -D "$FOUNDRY_PG_DIR" stop   (the data dir is printed on stderr).
set -euo pipefail

PORT="${FOUNDRY_PG_PORT:-55432}"
log() { echo "start-postgres: $*" >&2; }

# A server this script started earlier (a second local run) is used as it is.
if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then
    log "something already listens on 127.0.0.1:$PORT; using it"
    echo "postgres://postgres@127.0.0.1:$PORT/postgres"
    exit 0
fi

find_bindir() {
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
        fi
    done | sort -V | tail -n 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
    log "PostgreSQL not found; installing the Debian package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)"
fi
log "using $BINDIR"

# PostgreSQL refuses to run as root: use the 'postgres' user, creating it if needed.
RUN_AS=()
if [ "$(id -u)" = "0" ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home /var/lib/postgresql --shell /bin/bash postgres >&2
    fi
    RUN_AS=(runuser -u postgres --)
fi

DATA="$(mktemp -d /tmp/foundry-pg.XXXXXX)"
chmod 700 "$DATA"
if [ "${#RUN_AS[@]}" -gt 0 ]; then chown postgres "$DATA"; fi

"${RUN_AS[@]}" "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
"${RUN_AS[@]}" "$BINDIR/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA \
        -c fsync=off -c max_connections=200" start >&2
log "data dir $DATA (stop: ${RUN_AS[*]} $BINDIR/pg_ctl -D $DATA stop)"
echo "postgres://postgres@127.0.0.1:$PORT/postgres"
