#!/usr/bin/env bash
# Installs what edgesync needs to build and test on Debian/Ubuntu.
#
# Run as root it installs the missing packages with apt-get; run as anyone
# else it prints the one command to run and fails.  Idempotent and quiet when
# everything is already there, so `make test` and `make demo` call it first.
set -euo pipefail

PGMAJOR=${PGMAJOR:-15}
packages=(
	make g++ cmake googletest libgtest-dev
	"postgresql-$PGMAJOR" "postgresql-server-dev-$PGMAJOR" "postgresql-client-$PGMAJOR"
	libcurl4-openssl-dev libpq-dev libipc-run-perl openssl
	"postgresql-$PGMAJOR-wal2json"
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

# The output plugin allow-list (output_plugin_libraries) appeared in a
# minor release; an older installed server must be upgraded with the rest.
if [ -x "/usr/lib/postgresql/$PGMAJOR/bin/postgres" ]; then
	# (postgres --describe-config refuses to run as root: read the binary.)
	if ! grep -qa output_plugin_libraries "/usr/lib/postgresql/$PGMAJOR/bin/postgres"; then
		missing+=("postgresql-$PGMAJOR" "postgresql-client-$PGMAJOR" "postgresql-server-dev-$PGMAJOR")
	fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "edgesync: missing packages: ${missing[*]}" >&2
	echo "edgesync: run as root:  $cmd" >&2
	exit 1
fi

echo "edgesync: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
