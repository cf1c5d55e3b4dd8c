#!/usr/bin/env bash
# Starts tansu, a Kafka-protocol broker (Apache-2.0, from crates.io), on 127.0.0.1:19092 in
# the background with in-memory storage, for the worker's end-to-end test. Installs it first
# when it is missing (about 12 minutes on 2 cores). Prints the broker address on stdout, last.
#
#   brokers=$(bash deploy/ci/start-tansu.sh | tail -n 1)
#   FOUNDRY_E2E_BROKERS=$brokers cargo test -p foundry --test e2e_broker
#
# Environment: TANSU_PORT (default 19092), TANSU_LOG (default /tmp/tansu.log).
set -euo pipefail

port="${TANSU_PORT:-19092}"
log="${TANSU_LOG:-/tmp/tansu.log}"
addr="127.0.0.1:${port}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v tansu >/dev/null 2>&1; then
    echo "start-tansu: installing tansu (cargo install tansu --locked --features dynostore)" >&2
    cargo install tansu --locked --features dynostore >&2
fi

if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
    echo "start-tansu: something already listens on ${addr}; using it" >&2
    echo "${addr}"
    exit 0
fi

nohup tansu broker \
    --listener-url "tcp://${addr}" \
    --advertised-listener-url "tcp://${addr}" \
    --storage-engine "memory://tansu/" \
    >"${log}" 2>&1 &
pid=$!
echo "start-tansu: tansu pid ${pid}, log ${log}" >&2

for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
        echo "${addr}"
        exit 0
    fi
    if ! kill -0 "${pid}" 2>/dev/null; then
        echo "start-tansu: tansu exited; its log follows" >&2
        cat "${log}" >&2
        exit 1
    fi
    sleep 0.2
done
echo "start-tansu: tansu did not listen on ${addr} within 20 s" >&2
exit 1
