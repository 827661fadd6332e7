#!/usr/bin/env bash
# Soak: the `full-hanging` server (Stripe verification, memory dedupe, a reporting backend that
# never answers) at full load for SECONDS (default 300) with a distinct delivery id per request
# (millions of deliveries through the memory store's 100,000-entry cap). Samples the server's
# RSS every 10 s; RSS must stay flat (within 10 %) once the store is full.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-300}
VARIANT=${VARIANT:-full-hanging}
cargo build --release --all-features --example load_server --example load_gen >/dev/null 2>&1
log=$(mktemp)
taskset -c 0 target/release/examples/load_server "$VARIANT" >"$log" &
pid=$!
for _ in $(seq 100); do grep -q PORT "$log" && break; sleep 0.05; done
port=$(awk '/PORT/ {print $2}' "$log")
taskset -c 1 target/release/examples/load_gen "$port" 32 2048 "$SECONDS_TOTAL" >"$log.gen" &
gen=$!
for t in $(seq 0 10 "$SECONDS_TOTAL"); do
  echo "t=${t}s rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  sleep 10
done
wait "$gen"
echo "load: $(cat "$log.gen")"
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -f "$log" "$log.gen"
