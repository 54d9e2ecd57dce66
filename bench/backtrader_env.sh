#!/usr/bin/env bash
# The benchmark's own environment for backtrader (never the product's lock): created once in
# ~/.cache/redblue/bench-venv (or $REDBLUE_HOME/bench-venv) with `pip install backtrader pandas`.
# Prints the path of its python on stdout.
set -euo pipefail
home="${REDBLUE_HOME:-$HOME/.cache/redblue}"
venv="$home/bench-venv"
if [ ! -f "$venv/.complete" ]; then
  echo "bench: creating $venv (backtrader, pandas; once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q backtrader pandas >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
