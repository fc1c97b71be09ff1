#!/bin/sh
# deps.sh PKG... - make sure the Debian packages this project builds with are
# installed: installs them with apt-get when run as root, otherwise prints
# the exact command to run and fails.
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq $missing >/dev/null || { echo "deps: apt-get failed"; exit 1; }
else
	echo "deps: missing Debian packages:$missing"
	echo "deps: run: sudo apt-get install -y$missing"
	exit 1
fi
