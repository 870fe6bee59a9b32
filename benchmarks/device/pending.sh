#!/usr/bin/env bash
# Measurements that wait for a lent GPU (the `device` tool of /work/.library; 15 minutes a session, 10 a call).
# The open bars of issues 10 and 14 are compute-bound on the project's 2 CPU cores; on a GPU each fits one call.
#
# Here, once:       bash benchmarks/device/pending.sh prepare        (fills .device/: omegaconf, the Fashion-MNIST gz)
# On the device:    run(command="bash benchmarks/device/pending.sh cyclegan_paper_nets", carry=[".device"], timeout_s=590)
#                   run(command="bash benchmarks/device/pending.sh stargan_long", carry=[".device"], timeout_s=590)
# Here, a check:    SMOKE=1 bash benchmarks/device/pending.sh cyclegan_paper_nets   (2 steps, 50 test images, CPU)
# Each job writes its summary and evaluation JSON under $OUT (at most 8 files come back).
set -euo pipefail
cd "$(dirname "$0")/../.."
job=${1:?usage: pending.sh prepare|cyclegan_paper_nets|stargan_long}
py=${PYTHON:-python3}
out=${OUT:-/tmp/pending_out}
mkdir -p "$out"

if [ "$job" = prepare ]; then
    rm -rf .device && mkdir -p .device/site .device/fashion
    site=$(.venv/bin/python -c "import omegaconf, os; print(os.path.dirname(os.path.dirname(omegaconf.__file__)))")
    cp -r "$site"/omegaconf .device/site/
    [ -d "$site"/antlr4 ] && cp -r "$site"/antlr4 .device/site/  # omegaconf < 2.4 needs the antlr4 runtime
    cp /usr/share/datasets/fashion-mnist/*.gz .device/fashion/
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
    du -sh .device
    exit 0
fi

if [ "${SMOKE:-0}" = 1 ]; then
    py=.venv/bin/python
    common=(steps=2 metrics.every=0 metrics.n=50 log.sample_every=0 "out=$out/$job")
    n=50
    device=cpu
else
    export PYTHONPATH="$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    mkdir -p data/FashionMNIST/raw
    for f in .device/fashion/*.gz; do gunzip -c "$f" > "data/FashionMNIST/raw/$(basename "${f%.gz}")"; done
    common=(trainer.accelerator=gpu log.progress=false "out=$out/$job")
    n=10000
    device=cuda
    nvidia-smi --query-gpu=name --format=csv,noheader
fi

case "$job" in
    cyclegan_paper_nets)  # issue 10: Zhu et al.'s ResNet-9 generators and 64-wide nets, the configured 10,000 steps
        $py -m gan_lightning train exp=cyclegan_edges nets.resnet_blocks=9 nets.g_width=64 nets.d_width=64 "${common[@]}" ;;
    stargan_long)  # issue 14: StarGAN at 5x the CPU run's 4,000 steps (the paper trains 200,000)
        if [ "${SMOKE:-0}" = 1 ]; then length=(); else length=(steps=20000 metrics.every=5000); fi
        $py -m gan_lightning train exp=stargan_fashion "${common[@]}" "${length[@]}" ;;
    *) echo "unknown job '$job'" >&2; exit 2 ;;
esac
$py -m gan_lightning evaluate "$out/$job/checkpoints/last.ckpt" --n "$n" --device "$device" --out "$out/$job-evaluate.json"
cp "$out/$job/summary.json" "$out/$job-summary.json"
