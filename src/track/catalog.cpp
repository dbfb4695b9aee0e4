/*
 * catalog.cpp — SQL-callable helpers behind track()/untrack() and cursors.
 *
 *   edgesync._register(tbl, log_changes, skip_unchanged) / _unregister(tbl)
 *   edgesync._register_schema(nsp)
 *       Write the catalog of tracked tables (schemas).  The caller must own
 *       the table (schema), checked here against the calling role; the write
 *       itself runs as the catalog's owner, which is why these are C
 *       functions and not SECURITY DEFINER ones: a definer function cannot
 *       see who called it.
 *
 *   edgesync._cursor_parse(cursor, scope) / _cursor_make(scope, ...)
 *       The text form of cursors (cursor.hpp), tied to this database.
 */
#include "core/catalog_owner.hpp"
#include "core/guard.hpp"
#include "track/cursor.hpp"

#include <cstdio>

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(edgesync_register);
PG_FUNCTION_INFO_V1(edgesync_unregister);
PG_FUNCTION_INFO_V1(edgesync_register_schema);
PG_FUNCTION_INFO_V1(edgesync_cursor_parse);
PG_FUNCTION_INFO_V1(edgesync_cursor_make);
}

namespace edgesync::track {

namespace {

void
require_table_owner(Oid relid)
{
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
}

/* What a cursor scope is for, in the user's words. */
std::string
describe_scope(const std::string &scope)
{
	if (scope == "all")
		return "edgesync.changes()";
	unsigned long oid = 0;
	if (scope.rfind("rel", 0) == 0 && sscanf(scope.c_str() + 3, "%lu", &oid) == 1) {
		char *name = pg_call([&] { return get_rel_name(static_cast<Oid>(oid)); });
		return name != nullptr ? format("edgesync.pull() of table \"%s\"", name)
							   : std::string("edgesync.pull() of a dropped table");
	}
	return format("scope \"%s\"", scope.c_str());
}

/* "<system identifier>.<database oid>": what ties a cursor to this database. */
std::string
database_identity()
{
	return format("%llx.%u", static_cast<unsigned long long>(GetSystemIdentifier()), MyDatabaseId);
}

} // namespace

} // namespace edgesync::track

using namespace edgesync::track;

Datum
edgesync_register(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	Oid types[3] = {OIDOID, BOOLOID, BOOLOID};
	Datum values[3] = {ObjectIdGetDatum(relid), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};

	require_table_owner(relid);
	/* No ON CONFLICT: PostgreSQL does not allow it on user catalog tables. */
	edgesync::run_as_catalog_owner(
		"tracked_tables",
		"WITH updated AS ("
		"  UPDATE edgesync.tracked_tables SET log_changes = $2, skip_unchanged = $3"
		"   WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass RETURNING 1)"
		" INSERT INTO edgesync.tracked_tables (relid, log_changes, skip_unchanged)"
		" SELECT $1::pg_catalog.regclass, $2, $3 WHERE NOT EXISTS (SELECT FROM updated)",
		3, types, values);
	/* The output plugin's cache of the table is stale from this commit on. */
	CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

Datum
edgesync_unregister(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};

	require_table_owner(relid);
	edgesync::run_as_catalog_owner(
		"tracked_tables",
		"DELETE FROM edgesync.tracked_tables WHERE relid OPERATOR(pg_catalog.=) "
		"$1::pg_catalog.regclass",
		1, types, values);
	CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

Datum
edgesync_register_schema(PG_FUNCTION_ARGS)
{
	Oid nspid = PG_GETARG_OID(0);
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(nspid)};

	if (!pg_namespace_ownercheck(nspid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_SCHEMA, get_namespace_name(nspid));
	edgesync::run_as_catalog_owner(
		"tracked_tables",
		"INSERT INTO edgesync.tracked_schemas (nspid) VALUES ($1::pg_catalog.regnamespace)"
		" ON CONFLICT (nspid) DO NOTHING",
		1, types, values);
	PG_RETURN_VOID();
}

/*
 * edgesync._cursor_parse(cursor text, scope text)
 *   -> (seen text, window text, last_xid bigint, last_id bigint)
 * A NULL cursor is the start of the log: all four NULL.
 */
Datum
edgesync_cursor_parse(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	Datum values[4] = {0, 0, 0, 0};
	bool nulls[4] = {true, true, true, true};

	if (!PG_ARGISNULL(0)) {
		char *cursor_text = text_to_cstring(PG_GETARG_TEXT_PP(0));
		char *scope = text_to_cstring(PG_GETARG_TEXT_PP(1));
		char *seen = nullptr;
		char *window = nullptr;
		int64 last_xid = 0, last_id = 0;

		edgesync::guarded([&] {
			Cursor c = parse_cursor(cursor_text);
			if (c.database != database_identity())
				throw edgesync::Error("22023", "cursor belongs to another database")
					.detail(edgesync::format("The cursor was issued by database \"%s\".",
											 c.database.c_str()))
					.hint("Start again with a NULL cursor.");
			if (c.scope != scope)
				throw edgesync::Error("22023", "cursor was issued for another stream of changes")
					.detail(edgesync::format("The cursor was issued by %s, not by %s.",
											 describe_scope(c.scope).c_str(),
											 describe_scope(scope).c_str()))
					.hint("Cursors of edgesync.changes() and of edgesync.pull() for each table are "
						  "not interchangeable.");
			seen = c.seen ? edgesync::pg_call([&] { return pstrdup(c.seen->c_str()); }) : nullptr;
			window =
				c.window ? edgesync::pg_call([&] { return pstrdup(c.window->c_str()); }) : nullptr;
			last_xid = c.last_xid;
			last_id = c.last_id;
		});

		if (seen != nullptr) {
			values[0] = CStringGetTextDatum(seen);
			nulls[0] = false;
		}
		if (window != nullptr) {
			values[1] = CStringGetTextDatum(window);
			values[2] = Int64GetDatum(last_xid);
			values[3] = Int64GetDatum(last_id);
			nulls[1] = nulls[2] = nulls[3] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * edgesync._cursor_make(scope text, seen text, window text, last_xid bigint,
 * last_id bigint) -> text
 */
Datum
edgesync_cursor_make(PG_FUNCTION_ARGS)
{
	char *scope = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char *seen = PG_ARGISNULL(1) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char *window = PG_ARGISNULL(2) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(2));
	int64 last_xid = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	int64 last_id = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4);

	char *result = edgesync::guarded([&] {
		Cursor c;
		c.database = database_identity();
		c.scope = scope;
		if (seen != nullptr)
			c.seen = seen;
		if (window != nullptr) {
			c.window = window;
			c.last_xid = last_xid;
			c.last_id = last_id;
		}
		std::string formatted = format_cursor(c);
		return edgesync::pg_call([&] { return pstrdup(formatted.c_str()); });
	});
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
