/*
 * catalog.cpp — SQL-callable helpers behind track()/untrack() and cursors.
 *
 *   edgesync._register(tbl, log_changes, skip_unchanged) / _unregister(tbl)
 *   edgesync._register_schema(nsp)
 *       Write the catalog of tracked tables (schemas, and the tables of a
 *       tracked schema that wait for a primary key: pending_tables).  Each checks
 *       everything itself, against the calling role, so it is safe whoever
 *       calls it: _register() refuses what track() refuses (anything but a
 *       permanent table or partitioned table that is not a partition, a table
 *       without a primary key or with a managed column of another type, a
 *       table the caller does not own), _register_schema() a system schema or
 *       one the caller does not own.  They stay executable by PUBLIC because
 *       track() and track_schema() run as their caller (they create triggers
 *       and columns as the table's owner) and call them; the write itself runs
 *       as the catalog's owner.  That is why these are C functions and not
 *       SECURITY DEFINER ones: a definer function cannot see who called it.
 *
 *   edgesync._cursor_parse(cursor, scope) / _cursor_make(scope, ...)
 *       The text form of cursors (cursor.hpp), tied to this database.
 */
#include "core/catalog_owner.hpp"
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "core/sql_objects.hpp"
#include "track/catalog.hpp"

#include <cstdio>

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
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
	if (!edgesync::owns_relation(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
}

/* relid as regclass prints it (schema-qualified unless on the search_path). */
char *
regclass_text(Oid relid)
{
	return DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)));
}

const char *
relkind_words(char relkind)
{
	switch (relkind) {
	case RELKIND_VIEW:
		return "a view";
	case RELKIND_MATVIEW:
		return "a materialized view";
	case RELKIND_FOREIGN_TABLE:
		return "a foreign table";
	case RELKIND_SEQUENCE:
		return "a sequence";
	case RELKIND_INDEX:
	case RELKIND_PARTITIONED_INDEX:
		return "an index";
	case RELKIND_COMPOSITE_TYPE:
		return "a composite type";
	default:
		return "not a table";
	}
}

/*
 * Raises track()'s error if relid is not a relation the calling role may
 * track: an ordinary or partitioned table, permanent, not a partition, owned
 * by the caller.  From pg_class only, so it can run before the lock is taken
 * (and is run again after).
 */
void
check_trackable_kind(Oid relid)
{
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation with OID %u does not exist", relid)));
	Form_pg_class form = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple));
	char relkind = form->relkind;
	char persistence = form->relpersistence;
	bool partition = form->relispartition;
	ReleaseSysCache(tuple);

	char *name = regclass_text(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("cannot track \"%s\"", name),
						errdetail("\"%s\" is %s; only tables can be tracked.", name,
								  relkind_words(relkind))));
	if (persistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track temporary table \"%s\"", name),
				 errdetail("Temporary tables are private to one session and never replicated.")));
	if (persistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("cannot track unlogged table \"%s\"", name),
						errdetail("Changes to unlogged tables are not written to the WAL, so they "
								  "cannot be streamed."),
						errhint("Make it logged first: ALTER TABLE %s SET LOGGED.", name)));
	if (partition)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("cannot track partition \"%s\"", name),
				 errdetail("A partitioned table is tracked as a whole, with all its partitions."),
				 errhint("Track its partitioned table: SELECT edgesync.track(%s).",
						 quote_literal_cstr(
							 regclass_text(llast_oid(get_partition_ancestors(relid)))))));
	require_table_owner(relid);
}

/*
 * Everything track() requires of relid, checked for the calling role, with
 * the relation locked against concurrent DDL until the end of the
 * transaction: what is registered stays what was checked.
 */
void
check_trackable(Oid relid)
{
	/* Checked before the lock too, so nobody can lock a table they may not track. */
	check_trackable_kind(relid);
	/* CREATE TRIGGER's lock: track() creates them next. */
	LockRelationOid(relid, ShareRowExclusiveLock);
	check_trackable_kind(relid);

	Relation rel = relation_open(relid, NoLock);
	Oid pk = edgesync::primary_key_index(rel);
	relation_close(rel, NoLock);
	char *name = regclass_text(relid);
	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key", name),
				 errdetail("edgesync identifies the rows of tracked tables by their primary key."),
				 errhint("Add one first, e.g. ALTER TABLE %s ADD PRIMARY KEY (id).", name)));

	/* The columns track() maintains: missing is fine (it adds them), another type is not. */
	static const struct {
		const char *name;
		Oid type;
	} managed[] = {
		{"version", INT8OID}, {"created_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID}};
	for (const auto &col : managed) {
		AttrNumber attnum = get_attnum(relid, col.name);
		if (attnum == InvalidAttrNumber)
			continue;
		Oid type = get_atttype(relid, attnum);
		if (type != col.type)
			ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
							errmsg("column \"%s\" of table \"%s\" has type %s, not %s", col.name,
								   name, format_type_be(type), format_type_be(col.type)),
							errdetail("edgesync keeps version (bigint), created_at and updated_at "
									  "(timestamptz) in every tracked table."),
							errhint("Rename or convert the column, then track the table again.")));
	}
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

} // namespace

std::string
database_identity()
{
	return format("%llx.%u", static_cast<unsigned long long>(GetSystemIdentifier()), MyDatabaseId);
}

Cursor
parse_cursor_for(std::string_view text, const std::string &scope)
{
	Cursor c = parse_cursor(text);
	if (c.database != database_identity())
		throw edgesync::Error("22023", "cursor belongs to another database")
			.detail(
				edgesync::format("The cursor was issued by database \"%s\".", c.database.c_str()))
			.hint("Start again with a NULL cursor.");
	if (c.scope != scope)
		throw edgesync::Error("22023", "cursor was issued for another stream of changes")
			.detail(edgesync::format("The cursor was issued by %s, not by %s.",
									 describe_scope(c.scope).c_str(),
									 describe_scope(scope).c_str()))
			.hint("Cursors of edgesync.changes() and of edgesync.pull() for each table are not "
				  "interchangeable.");
	return c;
}

} // namespace edgesync::track

using namespace edgesync::track;

Datum
edgesync_register(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	Oid types[3] = {OIDOID, BOOLOID, BOOLOID};
	Datum values[3] = {ObjectIdGetDatum(relid), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};

	check_trackable(relid);
	/* No ON CONFLICT: PostgreSQL does not allow it on user catalog tables. */
	edgesync::run_as_catalog_owner(
		"tracked_tables",
		"WITH updated AS ("
		"  UPDATE edgesync.tracked_tables SET log_changes = $2, skip_unchanged = $3"
		"   WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass RETURNING 1)"
		" INSERT INTO edgesync.tracked_tables (relid, log_changes, skip_unchanged)"
		" SELECT $1::pg_catalog.regclass, $2, $3 WHERE NOT EXISTS (SELECT FROM updated)",
		3, types, values);
	/* No longer waiting for a primary key, if it was (none to wait in before 0.2.0). */
	Oid nsp = get_namespace_oid("edgesync", false);
	if (OidIsValid(get_relname_relid("pending_tables", nsp)))
		edgesync::run_as_catalog_owner(
			"pending_tables",
			"DELETE FROM edgesync.pending_tables WHERE relid OPERATOR(pg_catalog.=) "
			"$1::pg_catalog.regclass",
			1, types, values);
	/* The output plugin's and the triggers' caches of the table are stale from this commit on. */
	CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

Datum
edgesync_unregister(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};

	/* Whatever the relation has become, its owner may take it out of the catalog. */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation with OID %u does not exist", relid)));
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

	char *name = get_namespace_name(nspid);
	if (name == nullptr)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA),
						errmsg("schema with OID %u does not exist", nspid)));
	if (IsCatalogNamespace(nspid) || IsToastNamespace(nspid) || isAnyTempNamespace(nspid) ||
		strcmp(name, "information_schema") == 0 || strncmp(name, "pg_", 3) == 0 ||
		nspid == get_namespace_oid("edgesync", true))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("cannot track schema \"%s\"", name),
				 errdetail("System schemas cannot be tracked.")));
	if (!edgesync::owns_schema(nspid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_SCHEMA, name);
	/* 0.1.0's table kept the schema as regnamespace (docs/upgrading.md). */
	char *version = edgesync::installed_sql_version();
	bool by_oid = version != nullptr && strcmp(version, "0.1.0") == 0;
	edgesync::run_as_catalog_owner(
		"tracked_schemas",
		by_oid ? "INSERT INTO edgesync.tracked_schemas (nspid) VALUES ($1::pg_catalog.regnamespace)"
				 " ON CONFLICT (nspid) DO NOTHING"
			   : "INSERT INTO edgesync.tracked_schemas (nspname)"
				 " SELECT n.nspname FROM pg_catalog.pg_namespace n"
				 " WHERE n.oid OPERATOR(pg_catalog.=) $1 ON CONFLICT (nspname) DO NOTHING",
		1, types, values);
	/* Its tables without a primary key wait for one (track_schema() warns about each). */
	if (OidIsValid(get_relname_relid("pending_tables", get_namespace_oid("edgesync", false))))
		edgesync::run_as_catalog_owner(
			"pending_tables",
			"INSERT INTO edgesync.pending_tables (relid)"
			" SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c"
			"  WHERE c.relnamespace OPERATOR(pg_catalog.=) $1"
			"    AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"
			"    AND NOT c.relispartition AND c.relpersistence OPERATOR(pg_catalog.=) 'p'"
			"    AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i"
			"                     WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisprimary)"
			"    AND NOT EXISTS (SELECT FROM edgesync.tracked_tables t"
			"                     WHERE t.relid OPERATOR(pg_catalog.=) c.oid::pg_catalog.regclass)"
			" ON CONFLICT (relid) DO NOTHING",
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
			Cursor c = parse_cursor_for(cursor_text, scope);
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
