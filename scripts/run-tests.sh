#!/usr/bin/env bash
# The whole test suite, every layer, from a fresh machine: `make test`.
#
#   1. installs missing packages (scripts/install-deps.sh);
#   2. builds the extension (PGXS) and installs it into a private copy of the
#      PostgreSQL installation (scripts/private-install.sh), never the system;
#   3. runs GoogleTest (ctest), pg_regress, isolation and TAP tests, each
#      against temporary clusters it creates on unix sockets in a temp dir,
#      and RxDB devices in Node.js against one (test/rxdb/run.sh);
#   4. prints one closing line: "N passed, N failed", summed over the layers.
#
# As root, clusters run as an unprivileged user (EDGESYNC_TEST_USER, default
# postgres) from a copy of the tree in a temp dir that user owns: initdb
# refuses root, and the checkout may not be readable by that user.
#
# Options: --only LAYER (unit, regress, isolation, tap, rxdb; repeatable).
# To run some tests of a layer, name them in the environment as the Makefile
# does: REGRESS="track sync", ISOLATION="cursor-rule", PROVE_TESTS="test/t/010_track_crash.pl".
# KEEP_RESULTS=DIR keeps a failing regress/isolation run's outputs in DIR.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PG_CONFIG=${PG_CONFIG:-pg_config}
test_user=${EDGESYNC_TEST_USER:-postgres}
layers=()
while [ $# -gt 0 ]; do
	case "$1" in
		--only) layers+=("$2"); shift 2 ;;
		*) echo "usage: $0 [--only unit|regress|isolation|tap|rxdb]..." >&2; exit 2 ;;
	esac
done
[ ${#layers[@]} -eq 0 ] && layers=(unit regress isolation tap rxdb)

bash scripts/install-deps.sh || exit 1

total_passed=0
total_failed=0
summary=()
record() { # layer passed failed
	total_passed=$((total_passed + $2))
	total_failed=$((total_failed + $3))
	summary+=("$(printf '%-10s %5d passed, %d failed' "$1" "$2" "$3")")
}

# Everything this run creates lives here; removed on exit.
workdir=$(mktemp -d /tmp/edgesync-test.XXXXXX)
cleanup() {
	# Stop any server a crashed or interrupted test left behind (by its own
	# data directory, never by process name), then remove the work dir.
	local pidfile datadir
	while IFS= read -r pidfile; do
		datadir=$(dirname "$pidfile")
		as_test_user "${PRIVATE_BINDIR:-$("$PG_CONFIG" --bindir)}/pg_ctl" stop -D "$datadir" -m immediate >/dev/null 2>&1
	done < <(find "$workdir" -name postmaster.pid 2>/dev/null)
	rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build and install (private: $workdir/install)"
source scripts/private-install.sh
if ! make -s PG_CONFIG="$PG_CONFIG" >/dev/null || ! private_install "$workdir/install"; then
	echo "build failed" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	id "$test_user" >/dev/null 2>&1 || useradd --system --create-home "$test_user"
	testdir=$workdir/tree
	mkdir "$testdir"
	tar --exclude=./.git --exclude=./build -cf - . | tar -xf - -C "$testdir"
	chown -R "$test_user": "$workdir"
	as_test_user() { runuser -u "$test_user" -- env TMPDIR="$workdir" PATH="$PATH" "$@"; }
else
	testdir=$here
	as_test_user() { env TMPDIR="$workdir" "$@"; }
fi

# Runs one installcheck layer into $workdir/NAME.log; returns make's status.
run_layer() { # name, then the make arguments that select it
	local name=$1; shift
	local log="$workdir/$name.log"
	echo "== $name"
	(cd "$testdir" && as_test_user make PG_CONFIG="$PG_CONFIG" bindir="$PRIVATE_BINDIR" \
		installcheck "$@") >"$log" 2>&1
	local rc=$?
	grep -E '^(test |     |ok |not ok |test/t/|Files=|Result:)' "$log" | sed 's/^/   /'
	return $rc
}

for layer in "${layers[@]}"; do
	case "$layer" in
	unit)
		echo "== unit (GoogleTest)"
		log="$workdir/unit.log"
		if cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1 &&
			cmake --build build -j2 >>"$log" 2>&1; then
			(cd build && ctest --output-on-failure) >>"$log" 2>&1
			line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
			failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
			total=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
			if [ -z "$line" ]; then failed=1; total=1; fi
			echo "   $line"
			[ "$failed" -gt 0 ] && cat "$log"
			record unit $((total - failed)) "$failed"
		else
			cat "$log"
			record unit 0 1
		fi
		;;
	regress | isolation)
		if [ "$layer" = regress ]; then
			run_layer regress ISOLATION= TAP_TESTS= ${REGRESS:+"REGRESS=$REGRESS"}
			rc=$?
			outdir=output_regress
		else
			run_layer isolation REGRESS= TAP_TESTS= ${ISOLATION:+"ISOLATION=$ISOLATION"}
			rc=$?
			outdir=output_isolation
		fi
		log="$workdir/$layer.log"
		passed=$(grep -cE '^(test| ) .* \.\.\. ok|^ok ' "$log")
		failed=$(grep -cE '\.\.\. FAILED|^not ok ' "$log")
		if [ "$rc" != 0 ] && [ "$failed" -eq 0 ]; then failed=1; cat "$log"; fi
		if [ -f "$testdir/$outdir/regression.diffs" ] && [ "$failed" -gt 0 ]; then
			cat "$testdir/$outdir/regression.diffs"
			# KEEP_RESULTS=DIR keeps the outputs, to review and copy into expected/.
			if [ -n "${KEEP_RESULTS:-}" ]; then
				mkdir -p "$KEEP_RESULTS/$layer" && cp -r "$testdir/$outdir/results/." "$KEEP_RESULTS/$layer/"
			fi
		fi
		record "$layer" "$passed" "$failed"
		;;
	tap)
		run_layer tap REGRESS= ISOLATION= ${PROVE_TESTS:+"PROVE_TESTS=$PROVE_TESTS"}
		rc=$?
		log="$workdir/tap.log"
		tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$log" | tail -1)
		failed=$(sed -nE 's/.*Failed ([0-9]+)\/[0-9]+ subtests.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
		dead=$(grep -cE 'Wstat: [1-9].*Tests: 0|No plan found|Bad plan' "$log")
		tests=${tests:-0}
		failed=$((failed + dead))
		if [ "$rc" != 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
		if [ "$failed" -gt 0 ]; then
			cat "$log"
			find "$testdir/tmp_check/log" -name 'regress_log_*' -exec tail -n 60 {} \; 2>/dev/null
		fi
		record tap $((tests - failed > 0 ? tests - failed : 0)) "$failed"
		;;
	rxdb)
		# Node.js, RxDB from npm, and a cluster of its own (as the test user).
		echo "== rxdb (RxDB devices in Node.js)"
		log="$workdir/rxdb.log"
		PG_BINDIR=$PRIVATE_BINDIR bash test/rxdb/run.sh >"$log" 2>&1
		rc=$?
		grep -E '^(ok|not ok) ' "$log" | sed 's/^/   /'
		passed=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log" | tail -1)
		failed=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log" | tail -1)
		passed=${passed:-0}
		failed=${failed:-0}
		if [ "$rc" != 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
		[ "$failed" -gt 0 ] && cat "$log"
		record rxdb "$passed" "$failed"
		;;
	*) echo "unknown layer: $layer" >&2; exit 2 ;;
	esac
done

echo
echo "== summary"
printf '   %s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
