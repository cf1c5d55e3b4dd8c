#!/usr/bin/env bash
# Whole-command benchmark: `foundry scan` over every corpus event file with every SigmaHQ
# rule, on one core (RAYON_NUM_THREADS=1), indexing on and off in the same run; prints
# events/s, peak memory and the ratio; then the same indexed scan over only the corpus
# records of 512 to 1,535 bytes (about 1 KB, the size the throughput goal names).
# Needs a release build: cargo build --release -p foundry
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/foundry
corpus=../shared/corpus
rules=()
for d in rules rules-emerging-threats rules-threat-hunting rules-compliance rules-placeholder; do
  rules+=(--rules "$corpus/sigma/$d")
done
mapfile -t inputs < <(find "$corpus/events/otrf" -name '*.jsonl' | sort)
run() {
  local label=$1; shift
  /usr/bin/time -v -o /tmp/foundry-bench-time.txt env RAYON_NUM_THREADS=1 \
    "$bin" scan "${rules[@]}" --mapping config/mappings/windows.toml \
    --mapping config/mappings/cloud-and-syslog.toml "$@" "${inputs[@]}" \
    > /tmp/foundry-bench-hits.jsonl 2> /tmp/foundry-bench-stderr.txt || true
  local summary rss
  summary=$(tail -n 1 /tmp/foundry-bench-stderr.txt)
  rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' /tmp/foundry-bench-time.txt)
  echo "$label: $summary; peak RSS ${rss} KiB; $(wc -l < /tmp/foundry-bench-hits.jsonl) hit lines"
  echo "$summary" | sed -E 's/.*\(([0-9]+) events\/s\).*/\1/'
}
indexed=$(run indexed | tee /dev/stderr | tail -n 1)
flat=$(run every-rule-on-every-event --no-index | tee /dev/stderr | tail -n 1)
echo "ratio indexed / unindexed: $(python3 -c "print(round($indexed / $flat, 1))")x"
about_1kb=$(mktemp --suffix=.jsonl)
trap 'rm -f "$about_1kb"' EXIT
cat "${inputs[@]}" | tr -d '\r' | LC_ALL=C awk 'length($0) >= 512 && length($0) < 1536' > "$about_1kb"
inputs=("$about_1kb")
run "indexed, events of about 1 KB ($(wc -l < "$about_1kb") records, $(( $(wc -c < "$about_1kb") / $(wc -l < "$about_1kb") )) bytes on average)" | head -n 1
