#!/usr/bin/env bash
# deps.sh makes sure the C libraries the cgo build links against are installed:
# Little CMS 2 (liblcms2-dev: headers for the build, liblcms2-2 at run time), used by
# internal/colour to convert embedded ICC colour profiles. It installs them with apt-get
# when they are missing and this is root (or sudo works), and otherwise says what to run.
# A CGO_ENABLED=0 build needs none of this (profiled images are then refused).
set -euo pipefail

die() { printf 'deps.sh: %s\n' "$*" >&2; exit 1; }

have_lcms() { printf '#include <lcms2.h>\n' | ${CC:-cc} -E -x c - >/dev/null 2>&1; }

if [ "${CGO_ENABLED:-1}" = 0 ] || have_lcms; then
	exit 0
fi
command -v apt-get >/dev/null || die "the Little CMS 2 headers (lcms2.h) are missing: install liblcms2-dev (Debian/Ubuntu) or lcms2-devel, or build with CGO_ENABLED=0"
sudo=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "the Little CMS 2 headers are missing and this is not root: run apt-get install liblcms2-dev"
	sudo=(sudo)
fi
printf 'deps.sh: installing liblcms2-dev with apt-get\n' >&2
if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends liblcms2-dev >&2; then
	"${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed; check the network and the apt sources"
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends liblcms2-dev >&2 ||
		die "apt-get install liblcms2-dev failed; see the output above"
fi
have_lcms || die "lcms2.h is still not found after installing liblcms2-dev"
