/*
 * catalog.hpp — cursors tied to this database (catalog.cpp), for the other
 * readers of the change log.
 */
#pragma once

#include "track/cursor.hpp"

namespace edgesync::track {

/* "<system identifier>.<database oid>": what ties a cursor to this database. */
std::string database_identity();

/*
 * Parses text, a cursor that this database issued for scope ("all", or
 * "rel<oid>"); throws edgesync::Error (22023) if it is malformed or from
 * another database or stream.
 */
Cursor parse_cursor_for(std::string_view text, const std::string &scope);

} // namespace edgesync::track
