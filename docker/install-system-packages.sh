#!/usr/bin/env bash
# Install the Debian packages listed in docker/apt-packages.txt when the SExtractor binary is
# missing. Used by the Makefile (make setup/test/demo) and by docker/Dockerfile, so that what CI
# proves is what the image installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=$(grep -v '^\s*#' "$here/apt-packages.txt" | xargs)

if [ "${1:-}" != "--force" ]; then
  for name in ${EZPHOT_SEXTRACTOR:-} source-extractor sex sextractor; do
    if command -v "$name" >/dev/null 2>&1; then
      echo "SExtractor found: $(command -v "$name")"
      exit 0
    fi
  done
fi

if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  cat >&2 <<MSG
SExtractor is not installed and this user cannot install Debian packages.
Install it yourself:   sudo apt-get install $packages
or use conda:          conda install -c conda-forge astromatic-source-extractor
or the Docker image:   make docker && docker run --rm -v \$PWD:/data ezphot --help
MSG
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here: install '$packages' with your package manager, or use the Docker image (make docker)." >&2
  exit 1
fi
echo "Installing Debian packages: $packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $packages
