#!/usr/bin/env bash
# Installs what edgesync needs to build and test on Debian/Ubuntu.
#
# Which PostgreSQL: the one PG_CONFIG names when it is given (its Debian
# packages if it is one, otherwise only the build tools are installed); else
# PGMAJOR when it is set; else the server whose development files `pg_config`
# already finds; else the distribution's own (the `postgresql` package's major:
# 15 on Debian 12, 17 on Debian 13, 18 on unstable).  It prints nothing when
# everything is there.
#
# Run as root it installs the missing packages with apt-get; run as anyone
# else it prints the one command to run and fails.  Idempotent and quiet when
# everything is already there, so `make test` and `make demo` call it first.
set -euo pipefail

# The major version a pg_config reports ("PostgreSQL 17.2 (Debian ...)" -> 17).
major_of() { "$1" --version 2>/dev/null | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p'; }

debian_server=yes
if [ -n "${PG_CONFIG:-}" ] && [ "$PG_CONFIG" != pg_config ]; then
	PGMAJOR=$(major_of "$PG_CONFIG")
	[ -n "$PGMAJOR" ] || { echo "edgesync: $PG_CONFIG --version gave no PostgreSQL version" >&2; exit 1; }
	case "$(command -v "$PG_CONFIG" || echo "$PG_CONFIG")" in
	/usr/lib/postgresql/"$PGMAJOR"/bin/pg_config) ;;
	*) debian_server=no ;; # a server built by hand: bring only the tools
	esac
elif [ -z "${PGMAJOR:-}" ]; then
	# Debian's /usr/bin/pg_config runs the newest installed server-dev's.
	if command -v pg_config >/dev/null && [ -f "$(pg_config --pgxs 2>/dev/null)" ]; then
		PGMAJOR=$(major_of pg_config)
	else
		if [ "$(id -u)" -eq 0 ] && ! apt-cache show postgresql >/dev/null 2>&1; then
			apt-get update -qq
		fi
		PGMAJOR=$(apt-cache show --no-all-versions postgresql 2>/dev/null |
			sed -nE 's/^Depends:.*postgresql-([0-9]+).*/\1/p' | head -n 1)
		[ -n "$PGMAJOR" ] || { echo "edgesync: cannot tell the distribution's PostgreSQL (apt-cache show postgresql); set PGMAJOR" >&2; exit 1; }
	fi
fi

packages=(
	make g++ cmake googletest libgtest-dev
	libcurl4-openssl-dev libpq-dev libipc-run-perl openssl iproute2
	# The server headers include ICU's (utils/pg_locale.h) on every major.
	libicu-dev
)
if [ "$debian_server" = yes ]; then
	packages+=("postgresql-$PGMAJOR" "postgresql-server-dev-$PGMAJOR" "postgresql-client-$PGMAJOR"
		"postgresql-$PGMAJOR-wal2json")
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

# The output plugin allow-list (output_plugin_libraries) appeared in a
# minor release; an older installed server must be upgraded with the rest.
if [ "$debian_server" = yes ] && [ -x "/usr/lib/postgresql/$PGMAJOR/bin/postgres" ]; then
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
