#!/usr/bin/env bash
# `make demo`: edgesync on a throwaway "hospital" cluster, start to finish.
# Leaves nothing running and nothing on disk.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
make -s >/dev/null

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
trap cluster_stop_all EXIT
source scripts/private-install.sh
private_install "$CLUSTER_ROOT/install"
PG_BINDIR=$PRIVATE_BINDIR

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting a throwaway hospital cluster"
cluster_start hospital
echo "hospital: PostgreSQL on unix socket $CLUSTER_ROOT, port $hospital_PORT"

say "CREATE EXTENSION edgesync"
cluster_psql hospital -d postgres -c 'CREATE EXTENSION edgesync'
cluster_psql hospital -d postgres -c 'SELECT edgesync.version()'

say "What the extension provides so far"
cluster_psql hospital -d postgres -c '\dx+ edgesync'

say "Stopping the cluster"
