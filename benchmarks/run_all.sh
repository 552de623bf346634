#!/usr/bin/env bash
# Every benchmark once, one after the other, for the table in benchmarks/README.md: run it on an
# otherwise idle machine. Each script measures the matmul peak of the machine in the same run;
# the JSON results go to benchmarks/results/ and a log of everything printed to
# benchmarks/results/run_all.log. About 12-13 minutes on 2 CPU cores.
#
#   bash benchmarks/run_all.sh            # PYTHON=path/to/python to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
R=benchmarks/results
LOG=$R/run_all.log
mkdir -p "$R"
: > "$LOG"
run() {
    echo "== $(date -u +%FT%TZ) $*" | tee -a "$LOG"
    "$PY" "$@" 2>&1 | grep -v -E '^(WARNING|I0000|E0000|W0000)|cuda|rebuild TensorFlow' | tee -a "$LOG"
}
"$PY" -c "from tf_bimodal.training.runtime import matmul_rates as m; r = m(); print('matmul peak (2048 x 2048) at the start: ' + ', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in r.items()))" 2>/dev/null | tee -a "$LOG"
run benchmarks/bench_precision.py --preset cpu --steps 15 --rounds 2 --json $R/precision.json
run benchmarks/bench_precision.py --preset paper --models w_mm_unet --batch 1 --steps 2 --json $R/precision_paper.json
run benchmarks/bench_classification.py --models mff --sizes 336 --steps 3 --json $R/classification_mff_336.json
run benchmarks/bench_segmentation.py --sizes cpu --output $R/segmentation_cpu.json
run benchmarks/bench_pipeline.py --json $R/pipeline.json
run benchmarks/bench_phantom.py
run benchmarks/bench_export.py --json $R/export.json
"$PY" -c "from tf_bimodal.training.runtime import matmul_rates as m; r = m(); print('matmul peak (2048 x 2048) at the end: ' + ', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in r.items()))" 2>/dev/null | tee -a "$LOG"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
