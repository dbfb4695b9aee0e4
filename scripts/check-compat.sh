#!/usr/bin/env bash
# Fails when a source file outside src/core/pg_compat.{hpp,cpp} tests the
# PostgreSQL version: every difference between the majors edgesync supports
# lives there, behind a function (docs/cpp-boundary.md).
set -euo pipefail
cd "$(dirname "$0")/.."
found=$(grep -rnE 'PG_VERSION_NUM|PG_MAJORVERSION' src test/unit --include='*.cpp' --include='*.hpp' --include='*.h' |
	grep -vE '^src/core/pg_compat\.(hpp|cpp):' || true)
if [ -n "$found" ]; then
	echo "version tests outside src/core/pg_compat.{hpp,cpp}:" >&2
	echo "$found" >&2
	exit 1
fi
