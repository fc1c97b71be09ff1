#!/bin/sh
# deps.sh PKG... [--commands CMD:PKG...] - make sure the Debian packages this
# project builds and tests with are installed: installs them with apt-get when
# run as root, otherwise prints the exact command to run and fails. After
# --commands, PKG is needed only when the command CMD is not found (node and
# npm may come from elsewhere, such as NodeSource's nodejs, which has npm).
# deps.sh --build-check CC PC:DEB... - what `make` needs to compile, asked of
# the tools the build itself uses (the C compiler, pkg-config and each
# pkg-config module PC, shipped by Debian package DEB). Prints nothing when
# all is there, else one line naming the missing Debian packages.
build_check() {
	cc=$1
	shift
	missing=""
	add() { case " $missing " in *" $1 "*) ;; *) missing="$missing $1" ;; esac; }
	command -v "$cc" >/dev/null 2>&1 || add build-essential
	if command -v pkg-config >/dev/null 2>&1; then
		for pair in "$@"; do
			pkg-config --exists "${pair%%:*}" || add "${pair#*:}"
		done
	else
		# without pkg-config, ask dpkg which -dev packages are there
		add pkg-config
		for pair in "$@"; do
			dpkg-query -W -f='${Status}' "${pair#*:}" 2>/dev/null | grep -q "install ok installed" ||
				add "${pair#*:}"
		done
	fi
	[ -z "$missing" ] && return 0
	echo "cannot build, missing Debian packages:$missing; run 'make deps' as root, or: sudo apt-get install -y$missing"
}
if [ "${1:-}" = --build-check ]; then
	shift
	build_check "$@"
	exit 0
fi

missing=""
commands=""
for p in "$@"; do
	if [ "$p" = --commands ]; then
		commands=1
	elif [ -n "$commands" ]; then
		command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
	else
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	fi
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
