#!/usr/bin/env bash
# Install what rebuy needs to build, run and test, from Debian 12's archive
# (and npm for the contract-test tools).  Installs only what is missing, so
# it is quick on a machine that has everything.
#
#   deploy/install-deps.sh          build + run dependencies
#   deploy/install-deps.sh --test   also Node.js and the test tools
set -euo pipefail

want_test=0
[[ ${1:-} == --test ]] && want_test=1

pkgs=(gcc libc6-dev meson ninja-build pkg-config python3 libmicrohttpd-dev
      libjansson-dev libpq-dev libssl-dev postgresql-15
      curl ca-certificates)
if (( want_test )); then
    pkgs+=(wrk postgresql-client-15)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done

SUDO=
if (( EUID != 0 )); then SUDO=sudo; fi
if (( ${#missing[@]} )); then
    echo "installing: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
