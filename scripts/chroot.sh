#!/usr/bin/env bash
# Debian chroots to build and test edgesync against other PostgreSQL majors
# than the machine's own (docs/testing.md, "Other PostgreSQL versions").
#
#   scripts/chroot.sh create SUITE        debootstrap SUITE (trixie, sid, ...)
#                                         and install edgesync's dependencies
#                                         with scripts/install-deps.sh; reused
#                                         when it is already there
#   scripts/chroot.sh run SUITE CMD...    run CMD as root inside the chroot,
#                                         with only loopback (no network)
#   scripts/chroot.sh run-online SUITE CMD...  the same with the host's network
#                                         (package registries: npm for TAP's
#                                         RxDB layer)
#   scripts/chroot.sh path SUITE          print the chroot's directory
#
# Chroots live in $EDGESYNC_CHROOTS (default /var/tmp/edgesync-chroots), never
# in the checkout.  The Debian mirror is the one this machine's apt uses
# ($EDGESYNC_MIRROR overrides it).  Every command runs in its own mount and
# PID namespace, so nothing started inside (a server, a test cluster)
# outlives it and no mount leaks to the host; `run` also gets its own network
# namespace with only loopback, so test servers cannot meet the host's ports
# (`run-online` keeps the host's network).
# A policy-rc.d refuses every service start, and postgresql-common creates no
# main cluster: installing postgresql-NN starts nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
chroots=${EDGESYNC_CHROOTS:-/var/tmp/edgesync-chroots}

die() { echo "chroot.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, unshare)"

# The first Debian archive (not debian-security) that apt is configured with.
mirror() {
	if [ -n "${EDGESYNC_MIRROR:-}" ]; then echo "$EDGESYNC_MIRROR"; return; fi
	local m
	m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE '^(deb +(\[[^]]*\] +)?|URIs: *)[a-z]+://[^ ]*/debian/?( |$)' |
		grep -oE '[a-z]+://[^ ]*' | head -n 1 || true)
	echo "${m:-http://deb.debian.org/debian}"
}

# Runs "$@" (a shell command string) inside the chroot at $1, in fresh mount
# and PID namespaces; with net=isolated, also in a network namespace with
# loopback up.  The chroot gets /proc, the host's /dev and its own /dev/shm.
in_chroot() {
	local root=$1 net=$2 cmd=$3
	local unshare_opts=(--mount --pid --fork --kill-child)
	local lo_up=:
	if [ "$net" = isolated ]; then
		unshare_opts+=(--net)
		lo_up="ip link set lo up"
	fi
	unshare "${unshare_opts[@]}" /bin/sh -ec "
		$lo_up
		mount -t proc proc '$root/proc'
		mount --rbind /dev '$root/dev'
		mount -t tmpfs -o mode=1777 shm '$root/dev/shm'
		exec chroot '$root' /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			CI=\"\${CI:-}\" PGMAJOR=\"\${PGMAJOR:-}\" /bin/bash -c \"\$0\"" "$cmd"
}

create() {
	local suite=$1 root=$chroots/$1
	if [ -f "$root/.edgesync-ready" ]; then
		# Reused: bring edgesync's dependencies up to date with this tree's list.
		cp "$here/scripts/install-deps.sh" "$root/root/install-deps.sh"
		in_chroot "$root" host "bash /root/install-deps.sh"
		return
	fi
	command -v debootstrap >/dev/null || {
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	}
	command -v ip >/dev/null || {
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
	}
	local m new=$root.new
	m=$(mirror)
	echo "chroot.sh: creating $root ($suite from $m)" >&2
	mkdir -p "$chroots"
	rm -rf "$new"
	debootstrap --variant=minbase --include=ca-certificates,make "$suite" "$new" "$m" >"$chroots/$suite.debootstrap.log" 2>&1 ||
		{ tail -n 30 "$chroots/$suite.debootstrap.log" >&2; die "debootstrap $suite failed"; }
	echo "deb $m $suite main" >"$new/etc/apt/sources.list"
	printf '#!/bin/sh\n# edgesync chroot: no service starts here.\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	mkdir -p "$new/etc/postgresql-common"
	echo "create_main_cluster = false" >"$new/etc/postgresql-common/createcluster.conf"
	# The mirror may be a dated snapshot: sid's Release files carry a
	# Valid-Until that has passed there.  (Stable releases carry none.)
	echo 'Acquire::Check-Valid-Until "false";' >"$new/etc/apt/apt.conf.d/99edgesync-snapshot"
	cp /etc/resolv.conf "$new/etc/resolv.conf"
	cp "$here/scripts/install-deps.sh" "$new/root/install-deps.sh"
	in_chroot "$new" host "bash /root/install-deps.sh"
	touch "$new/.edgesync-ready"
	mv "$new" "$root"
}

case "${1:-}" in
create) [ $# -eq 2 ] || die "usage: $0 create SUITE"; create "$2" ;;
run | run-online)
	[ $# -ge 3 ] || die "usage: $0 $1 SUITE CMD..."
	root=$chroots/$2
	[ -f "$root/.edgesync-ready" ] || die "no chroot $root: run $0 create $2"
	net=isolated
	[ "$1" = run-online ] && net=host
	shift 2
	in_chroot "$root" "$net" "$*"
	;;
path) [ $# -eq 2 ] || die "usage: $0 path SUITE"; echo "$chroots/$2" ;;
*) die "usage: $0 create|run|run-online|path SUITE [CMD...]" ;;
esac
