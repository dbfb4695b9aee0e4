# private-install.sh — a private copy of the PostgreSQL installation with
# edgesync installed into it (sourced, not run).
#
# private_install DIR: copies the server's bin, lib and share trees under DIR
# (same absolute layout, so the copied postgres finds its libraries and
# extension files relative to itself, as PostgreSQL's own tmp_install does)
# and runs `make install DESTDIR=DIR`.  Sets PRIVATE_BINDIR.  Tests and the
# demo run from it: they need no root to install, never change the system
# installation, and several checkouts can test side by side.

private_install() {
	local dir=$1
	local pg_config=${PG_CONFIG:-pg_config}
	local bindir pkglibdir sharedir
	bindir=$("$pg_config" --bindir)
	pkglibdir=$("$pg_config" --pkglibdir)
	sharedir=$("$pg_config" --sharedir)

	local tree
	for tree in "$(dirname "$bindir")" "$pkglibdir" "$sharedir"; do
		mkdir -p "$dir$(dirname "$tree")"
		[ -e "$dir$tree" ] || cp -a "$tree" "$dir$tree"
	done
	# An edgesync left in the system installation must not shadow ours.
	rm -f "$dir$pkglibdir/edgesync.so" "$dir$sharedir"/extension/edgesync*
	make -s PG_CONFIG="$pg_config" install DESTDIR="$dir" >/dev/null || return 1
	PRIVATE_BINDIR=$dir$bindir
}
