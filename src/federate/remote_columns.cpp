/*
 * remote_columns.cpp — edgesync._remote_columns(server, schema, table), which
 * federate() uses to compare the replica's columns with the hospital's table
 * before it creates anything.  It reads the hospital's catalog through
 * edgesync's own connection (remote.hpp) as the calling role; a hospital
 * that cannot be reached is an error here (08001): federate() needs it.
 */
#include "core/guard.hpp"
#include "federate/remote.hpp"

#include <cstring>

extern "C" {
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(edgesync_remote_columns);
}

using namespace edgesync;

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
			InitMaterializedSRF(fcinfo, 0);
			ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

			char *why = nullptr;
			PGconn *conn = federate::remote_connect(server, GetUserId(), true, &why);
			PGresult *res = nullptr;
			if (conn != nullptr)
				res = federate::remote_exec(
					conn,
					"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
					"       coalesce(a.attnum = ANY (i.indkey), false)"
					"  FROM pg_catalog.pg_attribute a"
					"  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
					"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
					"  LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary"
					" WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f')"
					"   AND a.attnum > 0 AND NOT a.attisdropped"
					" ORDER BY a.attnum",
					2, values, &why);
			if (res == nullptr)
				ereport(ERROR, (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
								errmsg("could not read the hospital's table \"%s.%s\" on server "
									   "\"%s\"",
									   values[0], values[1], server),
								errdetail_internal("%s", why)));
			/* libpq's result is malloc'd: freed on an error (out of memory) too. */
			PG_TRY();
			{
				for (int r = 0; r < PQntuples(res); r++) {
					Datum out[3];
					bool nulls[3] = {false, false, false};
					out[0] = CStringGetTextDatum(PQgetvalue(res, r, 0));
					out[1] = CStringGetTextDatum(PQgetvalue(res, r, 1));
					out[2] = BoolGetDatum(strcmp(PQgetvalue(res, r, 2), "t") == 0);
					tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
				}
			}
			PG_CATCH();
			{
				PQclear(res);
				PG_RE_THROW();
			}
			PG_END_TRY();
			PQclear(res);
			return Datum(0);
		});
	});
}
