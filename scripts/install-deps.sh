#!/bin/sh
# Installs the Debian packages the harness needs when run as root; otherwise prints the exact
# command to run. Quiet when everything is already present.
set -e
PKGS="build-essential cmake pkg-config liblua5.4-dev libinih-dev libsqlite3-dev libjansson-dev libpcre2-dev libopenblas-dev clang-format sqlite3 gnuplot-nox"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "telepathy: missing Debian packages:$missing"
if [ "$(id -u)" = "0" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq $missing
else
  echo "telepathy: run this, then retry:"
  echo "  sudo apt-get install -y$missing"
  exit 1
fi
