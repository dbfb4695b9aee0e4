#!/usr/bin/env bash
# `make demo`: edgesync on throwaway clusters, start to finish.  Each chapter
# is a file in scripts/demo/, run in name order with the helpers below.
# Leaves nothing running and nothing on disk.
set -euo pipefail
cd "$(dirname "$0")/.."

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
cluster_setup

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# hospital_sql SQL...: run statements on the hospital's database, echoing them.
hospital_sql() { cluster_psql hospital -d hospital -e "$@"; }

say "Starting a throwaway hospital cluster"
cluster_start hospital
cluster_psql hospital -d postgres -c 'CREATE DATABASE hospital'
echo "hospital: PostgreSQL on unix socket $CLUSTER_ROOT, port $hospital_PORT"

for chapter in scripts/demo/*.sh; do
	source "$chapter"
done

say "Stopping every cluster"
