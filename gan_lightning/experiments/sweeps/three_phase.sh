#!/usr/bin/env bash
# The three-phase protocol of compare_gan (Kurach et al. 2019), end to end:
#   1. wide random search, 2. narrow bayes search around the best region, 3. the best
#   configuration over seeds (a study with aggregates). Add --offline to run without wandb.
# Usage: experiments/sweeps/three_phase.sh [--offline] [wide trials] [narrow trials] [seeds]
set -euo pipefail
OFFLINE=""; [ "${1:-}" = "--offline" ] && { OFFLINE="--offline"; shift; }
WIDE=${1:-20}; NARROW=${2:-10}; SEEDS=${3:-0-4}
gan-lightning sweep experiments/sweeps/wgan_gp_wide.yaml --count "$WIDE" $OFFLINE
gan-lightning sweep experiments/sweeps/wgan_gp_narrow.yaml --count "$NARROW" $OFFLINE --study-seeds "$SEEDS"
