#!/usr/bin/env bash
# Instructions per request for each server variant, counted by callgrind (deterministic).
# VARIANTS overrides the list, e.g. VARIANTS="verify-raw verify-sw verify-reference".
# Runs each variant with N1 and N2 requests and prints (I(N2) - I(N1)) / (N2 - N1), so that
# process and runtime setup cancel out. Worker and sink costs are included (same thread).
#
# `scripts/instructions.sh --check` is the regression guard CI runs: it measures the variants
# of benches/budgets.txt (with N1=200, N2=1200 unless set) and fails when one costs more than
# 3 % over its budget there. Changing a budget is a reviewed change, its reason in the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
check=""
if [ "${1:-}" = "--check" ]; then
  check=benches/budgets.txt
  N1=${N1:-200}
  N2=${N2:-1200}
  VARIANTS=${VARIANTS:-$(awk '!/^#/ && NF {print $1}' "$check")}
fi
N1=${N1:-2000}
N2=${N2:-12000}
cargo bench --all-features --bench instructions --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
total() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out"; rm -f "$out"
}
if [ -n "$check" ]; then
  printf '%-18s %12s %12s %8s\n' variant instr/req budget ratio
else
  printf '%-16s %12s %12s\n' variant instr/req "added"
fi
base=""
over=""
for v in ${VARIANTS:-bare trace monitored monitored-json}; do
  a=$(total "$v" "$N1"); b=$(total "$v" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  if [ -n "$check" ]; then
    budget=$(awk -v v="$v" '$1 == v {print $2}' "$check")
    ratio=$(awk -v p="$per" -v b="$budget" 'BEGIN {printf "%.3f", p / b}')
    verdict=ok
    if [ $(( per * 100 )) -gt $(( budget * 103 )) ]; then verdict="OVER"; over="$over $v"; fi
    printf '%-18s %12d %12d %8s %s\n' "$v" "$per" "$budget" "$ratio" "$verdict"
  else
    [ -n "$base" ] || base=$per
    printf '%-16s %12d %+12d\n' "$v" "$per" $(( per - base ))
  fi
done
if [ -n "$over" ]; then
  echo "more than 3 % over budget:$over (benches/budgets.txt)"
  exit 1
fi
