/*
 * remote_columns.cpp — what federate() asks the hospital before it creates
 * anything: edgesync._remote_columns(server, schema, table), the table's
 * columns to compare with the replica's, and edgesync._remote_access(...),
 * whether the user mapping's role sees all of it (every row, and the
 * columns the view reads).  Both go through edgesync's own connection
 * (remote.hpp) as the calling role; a hospital that cannot be reached is an
 * error here (08001): federate() needs it.
 */
#include "core/guard.hpp"
#include "federate/remote.hpp"

#include <cstring>

extern "C" {
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(edgesync_remote_columns);
PG_FUNCTION_INFO_V1(edgesync_remote_access);
}

using namespace edgesync;

namespace {

/*
 * Runs sql at the hospital as the calling role and returns its rows into
 * the function's result set (ncols text or boolean columns, as the result
 * type says).  An unreachable hospital is an error.
 */
void
hospital_rows_to_result(FunctionCallInfo fcinfo, const char *server, const char *schema,
						const char *table, const char *sql, int nparams, const char *const *values)
{
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	TupleDesc desc = rsinfo->setDesc;

	char *why = nullptr;
	PGconn *conn = federate::remote_connect(server, GetUserId(), true, &why);
	PGresult *res = nullptr;
	if (conn != nullptr)
		res = federate::remote_exec(conn, sql, nparams, values, &why);
	if (res == nullptr)
		ereport(ERROR, (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
						errmsg("could not read the hospital's table \"%s.%s\" on server \"%s\"",
							   schema, table, server),
						errdetail_internal("%s", why)));
	/* libpq's result is malloc'd: freed on an error (out of memory) too. */
	PG_TRY();
	{
		Datum *out = static_cast<Datum *>(palloc(sizeof(Datum) * desc->natts));
		bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * desc->natts));
		for (int r = 0; r < PQntuples(res); r++) {
			for (int c = 0; c < desc->natts; c++) {
				nulls[c] = PQgetisnull(res, r, c) != 0;
				const char *v = PQgetvalue(res, r, c);
				if (nulls[c])
					out[c] = Datum(0);
				else if (TupleDescAttr(desc, c)->atttypid == BOOLOID)
					out[c] = BoolGetDatum(strcmp(v, "t") == 0);
				else
					out[c] = CStringGetTextDatum(v);
			}
			tuplestore_putvalues(rsinfo->setResult, desc, out, nulls);
		}
	}
	PG_CATCH();
	{
		PQclear(res);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PQclear(res);
}

} // namespace

/*
 * edgesync._remote_columns(server, schema, table): the hospital table's
 * columns (name, type as format_type() writes it, part of the primary key),
 * through edgesync's own connection.  No rows: no such table.
 */
Datum
edgesync_remote_columns(PG_FUNCTION_ARGS)
{
	return guarded([&] {
		return pg_call([&] {
			const char *server = NameStr(*PG_GETARG_NAME(0));
			const char *values[2] = {NameStr(*PG_GETARG_NAME(1)), NameStr(*PG_GETARG_NAME(2))};
			hospital_rows_to_result(
				fcinfo, server, values[0], values[1],
				"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
				"       coalesce(a.attnum = ANY (i.indkey), false)"
				"  FROM pg_catalog.pg_attribute a"
				"  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
				"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				"  LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary"
				" WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f')"
				"   AND a.attnum > 0 AND NOT a.attisdropped"
				" ORDER BY a.attnum",
				2, values);
			return Datum(0);
		});
	});
}

/*
 * edgesync._remote_access(server, schema, table, columns text[])
 *   -> (remote_role text, rows_hidden boolean, unreadable text)
 * As the user mapping's role at the hospital: its name, whether row level
 * security limits what it sees of the table (row_security_active(): false
 * for a superuser, a BYPASSRLS role, the owner without FORCE, or a table
 * without row security), and which of columns it may not SELECT (quoted,
 * comma-separated; NULL if none).  No row: no such table.
 */
Datum
edgesync_remote_access(PG_FUNCTION_ARGS)
{
	return guarded([&] {
		return pg_call([&] {
			const char *server = NameStr(*PG_GETARG_NAME(0));
			const char *values[3] = {NameStr(*PG_GETARG_NAME(1)), NameStr(*PG_GETARG_NAME(2)),
									 OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(3))};
			hospital_rows_to_result(
				fcinfo, server, values[0], values[1],
				"SELECT current_user, pg_catalog.row_security_active(c.oid),"
				"       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(col), ', ')"
				"          FROM pg_catalog.unnest($3::pg_catalog.text[]) AS col"
				"         WHERE NOT pg_catalog.has_column_privilege(c.oid, col, 'SELECT'))"
				"  FROM pg_catalog.pg_class c"
				"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				" WHERE n.nspname = $1 AND c.relname = $2",
				3, values);
			return Datum(0);
		});
	});
}
