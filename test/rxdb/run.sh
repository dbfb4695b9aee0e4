#!/usr/bin/env bash
# test/rxdb/run.sh — RxDB devices against a real edgesync (replication.test.mjs).
#
# Needs Node.js 18 or later and npm: installs Debian's nodejs and npm when
# they are missing (as root; otherwise it says what to run).  Installs the
# npm packages pinned by package-lock.json (npm ci) once per lock file, into
# a cache outside the tree (EDGESYNC_NODE_CACHE, default ~/.cache/edgesync),
# starts a throwaway cluster as the unprivileged test user (scripts/cluster.sh;
# PG_BINDIR may point at a private installation with edgesync in it), runs
# the test with node's test runner and stops the cluster.  Prints node's TAP,
# whose "# pass N" and "# fail N" lines scripts/run-tests.sh counts.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

node_major() { node -e 'process.stdout.write(String(process.versions.node.split(".")[0]))' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null || [ "$(node_major)" -lt 18 ]; then
	cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm"
	if [ "$(id -u)" -ne 0 ]; then
		echo "edgesync: the RxDB test needs Node.js 18 or later and npm; run as root: $cmd" >&2
		exit 1
	fi
	echo "edgesync: installing nodejs and npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	if [ "$(node_major)" -lt 18 ]; then
		echo "edgesync: Node.js $(node --version) is too old for RxDB 16 (18 or later)" >&2
		exit 1
	fi
fi

# The packages, once per lock file: npm ci takes exactly what the lock pins.
lock_hash=$(sha256sum "$here/package-lock.json" | cut -c1-16)
deps=${EDGESYNC_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgesync}/rxdb-$lock_hash
if [ ! -e "$deps/node_modules/.edgesync-complete" ]; then
	echo "edgesync: npm ci into $deps" >&2
	rm -rf "$deps"
	mkdir -p "$deps"
	cp "$here/package.json" "$here/package-lock.json" "$deps/"
	(cd "$deps" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
	touch "$deps/node_modules/.edgesync-complete"
fi
cp "$here"/*.test.mjs "$deps/"

# A cluster with edgesync (PG_BINDIR from the caller survives cluster.sh).
bindir=${PG_BINDIR:-}
source scripts/cluster.sh
[ -n "$bindir" ] && PG_BINDIR=$bindir
trap 'set +e; cluster_stop_all' EXIT
cluster_start hospital

cd "$deps"
PGHOST=$CLUSTER_ROOT PGPORT=$hospital_PORT PGUSER=postgres \
	node --test --test-reporter=tap ./*.test.mjs
