#!/usr/bin/env bash
# Installs the Debian packages the book needs when they are missing: graphviz's `dot` (flowcharts),
# npm (the site's own copy of the widget manager and MathJax) and, with --browser, Chromium (the
# browser tests). As root it uses apt-get; otherwise it says what
# to install and fails.
set -euo pipefail
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [[ "${1:-}" == "--browser" ]] && ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
((${#need[@]})) || exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "Missing system packages: ${need[*]}." >&2
  echo "Install them with your package manager, e.g. 'sudo apt-get install ${need[*]}'" >&2
  echo "(macOS: 'brew install graphviz' and a Chromium/Chrome; set CHROMIUM=/path/to/chrome)." >&2
  exit 1
fi
