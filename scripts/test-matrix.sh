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
# PostgreSQL) and reports the suite's counts and times.  It ends with one line,
# "N passed, N failed", summed over the suites, and exits non-zero if a suite
# failed.  Logs stay in $EDGESYNC_CHROOTS/logs/.  Runs as root.
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
	rm -rf "$root/root/edgesync"
	mkdir -p "$root/root/edgesync"
	tree_files | tar --null -T - -cf - | tar -xf - -C "$root/root/edgesync"
	bash scripts/chroot.sh run "$suite" \
		'cd /root/edgesync && echo "PostgreSQL $(pg_config --version 2>/dev/null)" && make test' >>"$log" 2>&1
	rc=$?
	finished=$(date +%s)

	version=$(sed -nE 's/^PostgreSQL PostgreSQL ([0-9.]+).*/\1/p' "$log" | head -n 1)
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	passed=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
	failed=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
	passed=${passed:-0}
	failed=${failed:-1}
	[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
	sed -n '/^== summary/,$p' "$log" | sed 's/^/   /'
	if [ "$failed" -gt 0 ]; then
		echo "   $suite failed; the end of $log:"
		tail -n 150 "$log" | sed 's/^/   | /'
	fi
	summary+=("$(printf '%-8s PostgreSQL %-6s %4d passed, %d failed (chroot %ds, tests %ds)' \
		"$suite" "${version:-?}" "$passed" "$failed" $((created - start)) $((finished - created)))")
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
done

echo
echo "== matrix"
printf '   %s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
