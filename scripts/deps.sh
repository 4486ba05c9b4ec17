#!/bin/sh
# Makes sure the Debian packages named on the command line are installed.
#
# As root (CI, containers) it installs what is missing with apt-get; otherwise it stops and prints the exact
# apt-get line to run. Used by the Makefile before building, testing and benchmarking.
set -eu

missing=""
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y --no-install-recommends $missing >/tmp/tollgate-apt.log 2>&1; then
        apt-get update >/tmp/tollgate-apt.log 2>&1 || true
        apt-get install -y --no-install-recommends $missing >>/tmp/tollgate-apt.log 2>&1 || {
            cat /tmp/tollgate-apt.log >&2
            echo "deps: apt-get could not install:$missing" >&2
            exit 1
        }
    fi
    exit 0
fi

echo "Tollgate needs Debian packages that are not installed. Run:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
