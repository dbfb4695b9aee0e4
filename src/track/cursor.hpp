/*
 * cursor.hpp — the text form of sync_log cursors.
 *
 * A cursor says which changes a reader has seen, in terms of transaction
 * snapshots (as PgQ does), because log ids are not in commit order:
 *
 *   es1/<database>/<scope>/<seen>/<window>/<last xid>/<last id>[/<load>]
 *
 *   database  "<system identifier hex>.<database oid>": a cursor from another
 *             database is refused, not misread;
 *   scope     "all" (edgesync.changes) or "rel<oid>" (edgesync.pull of one table);
 *   seen      a pg_snapshot: every transaction visible in it was delivered
 *             ("-" at the very start);
 *   window    a later pg_snapshot whose new transactions are being delivered,
 *             with the (xid, id) of the last row delivered from it; all three
 *             are "-" when no window is open;
 *   load      pull() only, while its initial load reads the table: "k" and the
 *             last key loaded (its JSON, as it is: the field is the rest of
 *             the text, "/" included), "k" alone before the first; absent
 *             once the load is done (and in changes() cursors).  Earlier
 *             cursors carry the key's JSON in hex ("k7b22..."): still read
 *             (devices keep them), no longer written.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgesync::track {

struct Cursor {
	std::string database;
	std::string scope;
	std::optional<std::string> seen;   /* pg_snapshot text */
	std::optional<std::string> window; /* pg_snapshot text */
	int64_t last_xid = 0;			   /* meaningful when window is set */
	int64_t last_id = 0;
	std::optional<std::string> load; /* JSON of the last key loaded; "" before the first */
};

/* Parses text; throws edgesync::Error (22023) naming what is wrong. */
Cursor parse_cursor(std::string_view text);

/* The text form of c. */
std::string format_cursor(const Cursor &c);

/*
 * The first five fields of format_cursor(c), up to the window: a reader
 * that hands out a cursor per row appends each row's "/<last xid>/<last
 * id>" (or "/-/-" with no window) and load position to one head.
 */
std::string format_cursor_head(const Cursor &c);

/* True if s is the text of a pg_snapshot: xmin:xmax:xip,... in order. */
bool is_snapshot_text(std::string_view s);

} // namespace edgesync::track
