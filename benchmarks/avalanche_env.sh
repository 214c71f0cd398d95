#!/usr/bin/env bash
# Builds the separate environment benchmarks/vs_avalanche.py runs in (see docs/continual.md).
#
# Avalanche (avalanche-lib 0.6) needs torchvision, and the package index's torchvision wheel is
# built against the index's torch (a CUDA build): beside adaptloop's CPU torch 2.13.0 it fails to
# import ("operator torchvision::nms does not exist"). So Avalanche gets its own virtual
# environment: the index's torch 2.13.0 (it runs on the CPU as well), the torchvision built for it,
# avalanche-lib, quadprog (Avalanche's GEM) and adaptloop's own dependencies. The benchmark
# re-runs itself in it, so ours and Avalanche's run in one process on the same torch build.
#
#   bash benchmarks/avalanche_env.sh            # once; ~4 GB, a few minutes
#   python benchmarks/vs_avalanche.py
#
# ADAPTLOOP_AVALANCHE_VENV: where (default ~/.cache/adaptloop/avalanche-venv).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ADAPTLOOP_AVALANCHE_VENV:-$HOME/.cache/adaptloop/avalanche-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --prefer-binary \
    "torch==2.13.0" "torchvision==0.28.0" "avalanche-lib==0.6.0" "quadprog>=0.1.11"
# adaptloop's dependencies (the benchmark imports adaptloop from this checkout's src/)
"$venv/bin/pip" install "$repo[torch]"
if "$venv/bin/python" -c "import torch, sys; sys.exit('+cpu' not in torch.__version__)"; then
    # a pip configuration whose find-links folder holds torch-2.13.0+cpu wins over the index's
    # torch 2.13.0 (a local version sorts higher), and the index's torchvision cannot load beside it
    echo "$venv got a CPU-only torch from a find-links folder: rebuild without it, e.g." >&2
    echo "  rm -r $venv; PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null bash $0" >&2
    exit 1
fi
"$venv/bin/python" -c "import avalanche, quadprog, torchvision.ops"
echo "Avalanche environment ready: $venv/bin/python"
