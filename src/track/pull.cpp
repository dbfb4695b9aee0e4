/*
 * pull.cpp — edgesync.pull(tbl, cursor, max): the current rows of the keys
 * changed after a cursor, and tombstones for deleted keys.
 *
 * Two privileges meet here.  The change log's keys (and the images of
 * deleted rows, see sync_log.cpp) are read by nobody but the extension's
 * owner, so the window of log rows (edgesync._window) runs as the log's
 * owner.  The rows themselves are read as the caller
 * (edgesync._pull_page), so that table privileges and row level security
 * decide what comes back: a live row the caller cannot see is left out, and
 * a tombstone is handed out only if the caller could have seen the deleted
 * row (under row level security: its SELECT policies, evaluated against the
 * row's image).  _pull_page gets the window as arrays; called directly with
 * made-up arrays it can tell nothing its caller could not SELECT.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/catalog_owner.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(edgesync_pull);
}

namespace {

constexpr int kWindowArrays = 7; /* pks, ops, versions, xids, ids, cursors, images */

} // namespace

/*
 * edgesync.pull(tbl regclass, cursor text, max integer)
 *   -> (pk jsonb, row jsonb, version bigint, deleted boolean, next_cursor text)
 */
Datum
edgesync_pull(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("edgesync.pull() needs a table")));
	Oid relid = PG_GETARG_OID(0);
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	/* As the caller: the table must be tracked (the usual error otherwise). */
	SPI_connect();
	Oid check_types[1] = {REGCLASSOID};
	Datum check_values[1] = {ObjectIdGetDatum(relid)};
	if (SPI_execute_with_args("SELECT edgesync._require_tracked($1)", 1, check_types, check_values,
							  nullptr, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not check table %u", relid);
	SPI_finish();

	/* As the log's owner: the window's log rows, as arrays in window order. */
	Oid types[4] = {TEXTOID, TEXTOID, OIDOID, INT4OID};
	Datum args[4] = {CStringGetTextDatum(psprintf("rel%u", relid)),
					 PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1), ObjectIdGetDatum(relid),
					 PG_ARGISNULL(2) ? Datum(0) : PG_GETARG_DATUM(2)};
	char arg_nulls[5] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', ' ', PG_ARGISNULL(2) ? 'n' : ' ', '\0'};
	edgesync::OwnerRows window = edgesync::query_as_catalog_owner(
		"sync_log_data",
		"SELECT pg_catalog.array_agg(w.log_pk ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.log_op ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.log_version ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.log_xid ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.log_id ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.next_cursor ORDER BY w.ordinality),"
		"       pg_catalog.array_agg(w.log_image ORDER BY w.ordinality)"
		"  FROM edgesync._window($1, $2, $3, $4) WITH ORDINALITY AS w",
		4, types, args, arg_nulls);
	Datum arrays[kWindowArrays];
	bool array_nulls[kWindowArrays];
	heap_deform_tuple(window.rows[0], window.desc, arrays, array_nulls);

	/* As the caller: the rows and tombstones the caller may see. */
	Oid page_types[1 + kWindowArrays] = {REGCLASSOID,  TEXTARRAYOID, CHARARRAYOID, INT8ARRAYOID,
										 INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum page_args[1 + kWindowArrays];
	char page_nulls[1 + kWindowArrays + 1];
	page_args[0] = ObjectIdGetDatum(relid);
	page_nulls[0] = ' ';
	for (int i = 0; i < kWindowArrays; i++) {
		page_args[1 + i] = arrays[i];
		page_nulls[1 + i] = array_nulls[i] ? 'n' : ' ';
	}
	page_nulls[1 + kWindowArrays] = '\0';
	SPI_connect();
	if (SPI_execute_with_args("SELECT * FROM edgesync._pull_page($1, $2, $3, $4, $5, $6, $7, $8)",
							  1 + kWindowArrays, page_types, page_args, page_nulls, true,
							  0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pulled rows of table %u", relid);
	for (uint64 i = 0; i < SPI_processed; i++) {
		Datum values[5];
		bool nulls[5];
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return Datum(0);
}
