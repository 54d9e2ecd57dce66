#!/usr/bin/env bash
# Create (once per machine) the Python 3.12 environment described by requirements.lock.
# The environment lives outside the clone, keyed by the lock file's hash, so every clone
# of the same lock (including CI's fresh one) reuses it. Prints the venv path on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
home="${REDBLUE_HOME:-$HOME/.cache/redblue}"
lock="$here/requirements.lock"
hash="$(sha256sum "$lock" | cut -c1-12)"
venv="$home/venv-$hash"

find_python() {
  for cand in "${REDBLUE_PYTHON:-}" python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  return 1
}

if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi

py="$(find_python)" || {
  echo "redblue: Python 3.12 is required (Ludwig >= 0.11.1 needs it)." >&2
  echo "  install it (e.g. 'pyenv install 3.12') or set REDBLUE_PYTHON=/path/to/python3.12" >&2
  exit 1
}
mkdir -p "$home"
echo "redblue: creating environment $venv from requirements.lock (first time only; ~7 GB, a few minutes)" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip uv >&2
"$venv/bin/python" -m uv pip install --python "$venv/bin/python" -r "$lock" >&2
touch "$venv/.complete"
echo "redblue: environment ready" >&2
echo "$venv"
