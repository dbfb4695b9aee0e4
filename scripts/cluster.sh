# cluster.sh — throwaway PostgreSQL clusters for scripts (sourced, not run).
#
# cluster_start NAME: initdb + start a cluster in $CLUSTER_ROOT/NAME as an
# unprivileged user (root is refused by initdb), listening only on a unix
# socket in $CLUSTER_ROOT and on a free loopback port, configured with
# test/edgesync.conf.  Sets NAME_PORT.  cluster_stop_all stops every cluster
# started here (by data directory, never by process name) and removes
# $CLUSTER_ROOT; install it as an EXIT trap.  PG_BINDIR may be pointed at a
# private installation (scripts/private-install.sh) before cluster_start.
# cluster_psql NAME [psql args]: psql as the cluster's superuser.
# cluster_setup: the preamble of the demo and of every benchmark (packages,
# build, private install, clusters stopped on exit).

PG_BINDIR=$(${PG_CONFIG:-pg_config} --bindir)
CLUSTER_USER=${EDGESYNC_TEST_USER:-postgres}
CLUSTER_ROOT=$(mktemp -d /tmp/edgesync-demo.XXXXXX)
CLUSTERS=()

if [ "$(id -u)" -eq 0 ]; then
	id "$CLUSTER_USER" >/dev/null 2>&1 || useradd --system --create-home "$CLUSTER_USER"
	chown "$CLUSTER_USER": "$CLUSTER_ROOT"
	chmod 755 "$CLUSTER_ROOT"
	as_cluster_user() { runuser -u "$CLUSTER_USER" -- "$@"; }
else
	CLUSTER_USER=$(id -un)
	as_cluster_user() { "$@"; }
fi

free_port() {
	local port
	for port in $(seq 54400 54499); do
		if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
			[ ! -e "$CLUSTER_ROOT/.s.PGSQL.$port" ]; then
			echo "$port"
			return
		fi
	done
	return 1
}

cluster_start() {
	local name=$1 port attempt
	as_cluster_user "$PG_BINDIR/initdb" -D "$CLUSTER_ROOT/$name" -U postgres -A trust \
		--no-sync >/dev/null || return 1
	cat "$(dirname "${BASH_SOURCE[0]}")/../test/edgesync.conf" |
		as_cluster_user tee -a "$CLUSTER_ROOT/$name/postgresql.conf" >/dev/null
	CLUSTERS+=("$name")
	# Another job may take the port found free before the server binds it:
	# then try another (a later "port =" line overrides an earlier one).
	for attempt in 1 2 3 4 5; do
		port=$(free_port) || { echo "no free port" >&2; return 1; }
		cat <<-CONF | as_cluster_user tee -a "$CLUSTER_ROOT/$name/postgresql.conf" >/dev/null
			port = $port
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$CLUSTER_ROOT'
		CONF
		if as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/$name" -l "$CLUSTER_ROOT/$name.log" \
			-w start >/dev/null; then
			printf -v "${name}_PORT" '%s' "$port"
			return 0
		fi
		sleep 0.$RANDOM
	done
	cat "$CLUSTER_ROOT/$name.log" >&2
	return 1
}

cluster_psql() {
	local name=$1; shift
	local port_var="${name}_PORT"
	as_cluster_user "$PG_BINDIR/psql" -X -q -h "$CLUSTER_ROOT" -p "${!port_var}" -U postgres "$@"
}

cluster_stop_all() {
	local name
	# A cluster a script stopped itself fails to stop again: go on with the
	# others (an EXIT trap runs under the caller's set -e).
	for name in "${CLUSTERS[@]}"; do
		as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/$name" -m fast -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$CLUSTER_ROOT"
}

# Packages, a fresh build of edgesync installed into a private copy of
# PostgreSQL under $CLUSTER_ROOT (PG_BINDIR points there), and every cluster
# stopped on exit.  A script with more to clean up sets its own EXIT trap
# afterwards and calls cluster_stop_all from it.
cluster_setup() {
	bash scripts/install-deps.sh
	make -s >/dev/null
	trap 'set +e; cluster_stop_all' EXIT
	source scripts/private-install.sh
	private_install "$CLUSTER_ROOT/install"
	PG_BINDIR=$PRIVATE_BINDIR
}
