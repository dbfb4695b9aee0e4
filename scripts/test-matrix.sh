#!/usr/bin/env bash
# The whole test suite (`make test`) against the PostgreSQL of other Debian
# releases, each in its own chroot (scripts/chroot.sh):
#
#   scripts/test-matrix.sh [SUITE...]     default: trixie (PostgreSQL 17) and
#                                         sid (PostgreSQL 18)
#
# For each suite it creates the chroot if it is not there yet (or brings its
# packages up to date), copies this tree into it, runs `make test` there (the
# same script as a native run: scripts/install-deps.sh picks the suite's own
# PostgreSQL), then `make demo`, and reports the suite's counts and times.  It
# ends with one line, "N passed, N failed", summed over the suites (a failed
# demo counts as one failed test), and exits non-zero if a suite failed.  Logs
# stay in $EDGESYNC_CHROOTS/logs/.  Runs as root.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
chroots=${EDGESYNC_CHROOTS:-/var/tmp/edgesync-chroots}
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(trixie sid)
logs=$chroots/logs
mkdir -p "$logs"

# The files of this tree a build needs: tracked and untracked ones, not what
# .gitignore names (objects, test outputs).  Without git, everything but them.
tree_files() {
	if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$here" ls-files -z --cached --others --exclude-standard
	else
		find . -path ./.git -prune -o -path ./build -prune -o -type f \
			! -name '*.o' ! -name '*.so' -print0
	fi
}

# Puts this machine's own PostgreSQL server (when it is an older major than
# the chroot's), with edgesync built for it, beside the chroot's: TAP 055
# upgrades a hospital from it with pg_upgrade.  Shared libraries the chroot's
# release lacks (older sonames: ICU, OpenLDAP) are copied with it; JIT is
# left out (the test runs it with jit = off).  Only for the suites in
# $EDGESYNC_UPGRADE_SUITES (default trixie: 15 to 17, the upgrade
# docs/upgrading.md describes).  Not sid: this machine's 15.20 stores an
# attribute option (pg_attver) on every column that 18.6 rejects, so
# pg_upgrade to it fails in pg_restore for any database.
stage_host_server() { # suite root
	local suite=$1 root=$2 host_major chroot_major dir lib
	case " ${EDGESYNC_UPGRADE_SUITES-trixie} " in *" $suite "*) ;; *) return 0 ;; esac
	host_major=$(pg_config --version 2>/dev/null | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p')
	chroot_major=$(chroot "$root" pg_config --version 2>/dev/null | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p')
	[ -n "$host_major" ] && [ -n "$chroot_major" ] && [ "$host_major" -lt "$chroot_major" ] || return 0
	[ -x "/usr/lib/postgresql/$host_major/bin/postgres" ] || return 0
	echo "   (staging this machine's PostgreSQL $host_major for the pg_upgrade test)"
	rm -rf "$root/usr/lib/postgresql/$host_major" "$root/usr/share/postgresql/$host_major"
	mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
	cp -a "/usr/lib/postgresql/$host_major" "$root/usr/lib/postgresql/"
	cp -a "/usr/share/postgresql/$host_major" "$root/usr/share/postgresql/"
	rm -f "$root/usr/lib/postgresql/$host_major/lib/llvmjit"*
	dir=$root/usr/local/lib/edgesync-host
	mkdir -p "$dir"
	echo /usr/local/lib/edgesync-host >"$root/etc/ld.so.conf.d/edgesync-host.conf"
	local pass
	for pass in 1 2 3; do # a copied library may need others (libldap needs liblber)
		for lib in $(chroot "$root" sh -c "ldd /usr/lib/postgresql/$host_major/bin/* /usr/lib/postgresql/$host_major/lib/*.so 2>/dev/null" |
			sed -nE 's/^\s*(\S+) => not found$/\1/p' | sort -u); do
			cp -L "$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')" "$dir/" 2>/dev/null || true
		done
		chroot "$root" ldconfig
	done
	# edgesync for that server, built here from a copy of the tree.
	local build
	build=$(mktemp -d /tmp/edgesync-stage.XXXXXX)
	tree_files | tar --null -T - -cf - | tar -xf - -C "$build"
	(cd "$build" && make -s -j2 PG_CONFIG="/usr/lib/postgresql/$host_major/bin/pg_config" >/dev/null &&
		make -s PG_CONFIG="/usr/lib/postgresql/$host_major/bin/pg_config" install DESTDIR="$root" >/dev/null) ||
		echo "   (could not build edgesync for PostgreSQL $host_major: the pg_upgrade test will skip)"
	rm -rf "$build"
}

total_passed=0
total_failed=0
summary=()
for suite in "${suites[@]}"; do
	echo "== $suite"
	log=$logs/$suite.log
	start=$(date +%s)
	if ! bash scripts/chroot.sh create "$suite" >"$log" 2>&1; then
		cat "$log"
		summary+=("$(printf '%-8s chroot creation failed' "$suite")")
		total_failed=$((total_failed + 1))
		continue
	fi
	created=$(date +%s)

	root=$(bash scripts/chroot.sh path "$suite")
	stage_host_server "$suite" "$root" >>"$log" 2>&1
	rm -rf "$root/root/edgesync"
	mkdir -p "$root/root/edgesync"
	tree_files | tar --null -T - -cf - | tar -xf - -C "$root/root/edgesync"
	# What the RxDB layer downloads, fetched first with the host's network
	# (the same cache as test/rxdb/run.sh: Debian's nodejs and npm, then npm ci
	# of its lock file); the suite itself runs with only loopback, so that a
	# test's "unreachable" server is not someone else's port on this machine.
	if [ -f test/rxdb/package-lock.json ]; then
		mkdir -p "$root/usr/local/share/ca-certificates"
		cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
		bash scripts/chroot.sh run-online "$suite" 'set -e
			update-ca-certificates >/dev/null 2>&1 || true
			command -v npm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
			cd /root/edgesync/test/rxdb
			deps=$HOME/.cache/edgesync/rxdb-$(sha256sum package-lock.json | cut -c1-16)
			if [ ! -e "$deps/node_modules/.edgesync-complete" ]; then
				rm -rf "$deps"; mkdir -p "$deps"; cp package.json package-lock.json "$deps/"
				cd "$deps" && NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
					npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
				touch "$deps/node_modules/.edgesync-complete"
			fi' >>"$log" 2>&1 || echo "   (could not fetch the RxDB layer's packages: see $log)"
	fi
	bash scripts/chroot.sh run "$suite" \
		'cd /root/edgesync && echo "PostgreSQL $(pg_config --version 2>/dev/null)" && make test' >>"$log" 2>&1
	rc=$?
	finished=$(date +%s)
	# The README's other command: the demo runs its whole story on this
	# suite's server too (a failure counts as one failed test).
	demo_log=$logs/$suite-demo.log
	bash scripts/chroot.sh run "$suite" 'cd /root/edgesync && make demo' >"$demo_log" 2>&1
	demo_rc=$?
	demo=ok
	[ "$demo_rc" -ne 0 ] && demo=FAILED

	version=$(sed -nE 's/^PostgreSQL PostgreSQL ([0-9.]+).*/\1/p' "$log" | head -n 1)
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	passed=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
	failed=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
	passed=${passed:-0}
	failed=${failed:-1}
	[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
	if [ "$demo_rc" -ne 0 ]; then
		failed=$((failed + 1))
		echo "   make demo failed on $suite; the end of $demo_log:"
		tail -n 40 "$demo_log" | sed 's/^/   | /'
	fi
	sed -n '/^== summary/,$p' "$log" | sed 's/^/   /'
	if [ "$failed" -gt 0 ]; then
		echo "   $suite failed; the end of $log:"
		tail -n 150 "$log" | sed 's/^/   | /'
	fi
	summary+=("$(printf '%-8s PostgreSQL %-6s %4d passed, %d failed (chroot %ds, tests %ds), make demo %s' \
		"$suite" "${version:-?}" "$passed" "$failed" $((created - start)) $((finished - created)) "$demo")")
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
done

echo
echo "== matrix"
printf '   %s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
