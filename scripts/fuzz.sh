#!/usr/bin/env bash
# Runs every cargo-fuzz target for a set time (not part of CI: needs nightly and libFuzzer).
#   scripts/fuzz.sh [seconds-per-target] [target...]
# Seeds: fuzz/seeds/<target> (checked in); the growing corpus: fuzz/corpus/<target>;
# crashes: fuzz/artifacts/<target>. Minimize one with
#   cargo +nightly fuzz tmin <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-180}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p fuzz/logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    echo "== $t: ${secs}s"
    if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"fuzz/logs/$t.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done' "fuzz/logs/$t.log" || true
    else
        status=1
        echo "!! $t found a problem: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        tail -30 "fuzz/logs/$t.log"
    fi
done
exit $status
