#!/usr/bin/env bash
# Instructions per request for each server variant, counted by callgrind (deterministic).
# VARIANTS overrides the list, e.g. VARIANTS="verify-raw verify-sw verify-reference".
# Runs each variant with N1 and N2 requests and prints (I(N2) - I(N1)) / (N2 - N1), so that
# process and runtime setup cancel out. Worker and sink costs are included (same thread).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-2000}
N2=${N2:-12000}
cargo bench --all-features --bench instructions --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
total() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out"; rm -f "$out"
}
printf '%-16s %12s %12s\n' variant instr/req "added"
base=""
for v in ${VARIANTS:-bare trace monitored monitored-json}; do
  a=$(total "$v" "$N1"); b=$(total "$v" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  [ -n "$base" ] || base=$per
  printf '%-16s %12d %+12d\n' "$v" "$per" $(( per - base ))
done
