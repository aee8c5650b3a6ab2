#!/usr/bin/env bash
# Checks the system packages a make target needs, and installs the missing ones as root on Debian.
#
#   system-deps.sh [--optional] graphviz|npm|chromium ...
#
# graphviz: `dot`, for the Foundations flowchart (make lab/unit/assignments can do without it);
# npm: the site's own copy of the widget manager and MathJax, eslint and prettier (make book/lint/
# test), and node for the browser runtime's unit tests (make js-unit, the last step of make unit);
# chromium: the browser tests (make test only).
# As root with apt-get, missing packages are installed. Otherwise the script prints the command for
# Debian/Ubuntu, macOS (Homebrew) and conda, and fails -- or, with --optional, only warns.
set -euo pipefail
optional=0
if [[ "${1:-}" == "--optional" ]]; then optional=1; shift; fi
apt=() brew=() conda=()
for tool in "$@"; do
  case "$tool" in
    graphviz) command -v dot >/dev/null 2>&1 || { apt+=(graphviz); brew+=(graphviz); conda+=(graphviz); } ;;
    npm) command -v npm >/dev/null 2>&1 || { apt+=(nodejs npm); brew+=(node); conda+=(nodejs); } ;;
    chromium)
      if [[ -z "${CHROMIUM:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
        apt+=(chromium); brew+=(--cask chromium); conda+=()
      fi ;;
    *) echo "system-deps.sh: unknown tool '$tool'" >&2; exit 2 ;;
  esac
done
((${#apt[@]})) || exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt[@]}" >/dev/null
  exit 0
fi
{
  echo "Missing system packages: ${apt[*]}. Install them with one of:"
  echo "  Debian/Ubuntu:     sudo apt-get install ${apt[*]}"
  echo "  macOS (Homebrew):  brew install ${brew[*]}"
  if ((${#conda[@]})); then echo "  conda:             conda install -c conda-forge ${conda[*]}"; fi
  if [[ " ${apt[*]} " == *" chromium "* ]]; then
    echo "  (or point CHROMIUM=/path/to/chrome at a Chromium or Chrome you already have)"
  fi
} >&2
if ((optional)); then
  echo "(continuing without them: only what needs them will fail)" >&2
  exit 0
fi
exit 1
