/*
 * merge.cpp — what a federated scan returns: per primary key, the freshest of
 * the hospital's live row and the replica's row, merged in memory.
 *
 * This is the merge of a filtered scan (the one-patient lookup), and of any
 * scan whose keys the two servers may sort differently; an unfiltered scan
 * whose keys sort alike streams instead (stream.cpp), by the same rules.
 * One scan asks the replica at most twice and the hospital once, with the
 * pushed-down filter F:
 *
 *   replica:  R  = SELECT cols FROM replica WHERE F
 *   hospital: L  = SELECT cols FROM remote WHERE F          (one statement,
 *             L2 = versions of R's keys that L lacks          one snapshot)
 *   replica:  R2 = versions of L's keys missing from R
 *
 * and then, per key, with lv/rv the live/replica versions:
 *
 *   in L, and not in the replica or lv >= rv   -> the live row ('hospital')
 *   in R, and the hospital has it with lv < rv -> the replica row ('replica')
 *   in R, hospital lacks it                    -> nothing (deleted there)
 *   in R, hospital has lv >= rv outside F      -> nothing (the fresher row
 *                                                 does not match the filter)
 *
 * A tie goes to the hospital, whose row also has the columns the stream
 * redacted or hashed.  If the hospital cannot be reached, or fails at any
 * point, everything it said is dropped and the answer is R alone with
 * _source 'replica', after a WARNING.  The hospital's answers are read in
 * full before any row is returned (all or nothing), so a hospital dying in
 * the middle of a scan never yields half an answer.
 *
 * "The hospital lacks it" means deleted only if the hospital shows the
 * mapped role every row.  The same statement asks whether row level
 * security limits that role on the table; if it does, the hospital's answer
 * is dropped as if it had failed (WARNING, R alone), or, for a view made
 * with visible_rows_only, the replica rows the hospital did not show are
 * returned with _source 'replica_unverified'.
 *
 * C-style code (no C++ objects): PostgreSQL errors may pass through it.
 */
#include "federate/deparse.hpp"
#include "federate/remote.hpp"
#include "federate/scan.hpp"

#include <cstring>

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
}

namespace edgesync::federate {

namespace {

/* One candidate row: the data columns in cols order. */
struct KeyEntry;
struct Row {
	Datum *values;
	bool *nulls;
	int64 version;
	char *key;		 /* key_text() of the row */
	KeyEntry *entry; /* its key's entry */
};

/* Everything known about one primary key. */
struct KeyEntry {
	char *key; /* hash key: the key columns' text, length-prefixed */
	Row *live;
	Row *replica;
	bool live_known; /* the hospital has this key (live_version valid) */
	bool replica_known;
	int64 live_version;
	int64 replica_version;
};

uint32
key_hash(const void *key, Size)
{
	const char *s = *static_cast<char *const *>(key);
	return hash_bytes(reinterpret_cast<const unsigned char *>(s), strlen(s));
}

int
key_match(const void *a, const void *b, Size)
{
	return strcmp(*static_cast<char *const *>(a), *static_cast<char *const *>(b));
}

/*
 * The text of a row's key, from the local values (so both sides agree): the
 * column's text for a one-column key, length-prefixed texts otherwise.
 */
char *
key_text(FederatedScan *s, Datum *values, bool *nulls)
{
	if (s->nkeys == 1) {
		int i = s->keys[0];
		return nulls[i] ? pstrdup("") : OutputFunctionCall(&s->output[i], values[i]);
	}
	StringInfoData buf;
	initStringInfo(&buf);
	for (int k = 0; k < s->nkeys; k++) {
		int i = s->keys[k];
		if (nulls[i]) {
			appendStringInfoString(&buf, "N|");
			continue;
		}
		char *text = OutputFunctionCall(&s->output[i], values[i]);
		appendStringInfo(&buf, "%zu:%s|", strlen(text), text);
	}
	return buf.data;
}

KeyEntry *
lookup(HTAB *keys, char *key)
{
	bool found;
	KeyEntry *e = static_cast<KeyEntry *>(hash_search(keys, &key, HASH_ENTER, &found));
	if (!found) {
		memset(e, 0, sizeof(*e));
		e->key = key;
	}
	return e;
}

int64
version_of(FederatedScan *s, Datum *values, bool *nulls, int column)
{
	return nulls[column] ? 0 : DatumGetInt64(values[column]);
}

/* The key columns of rows, as one array per key column (for "IN (unnest...)"). */
Datum *
key_arrays(FederatedScan *s, Row **rows, int n, Oid *array_types)
{
	Datum *arrays = static_cast<Datum *>(palloc(sizeof(Datum) * s->nkeys));
	for (int k = 0; k < s->nkeys; k++) {
		int i = s->keys[k];
		Oid type = TupleDescAttr(s->tupdesc, s->cols[i] - 1)->atttypid;
		int16 len;
		bool byval;
		char align;
		get_typlenbyvalalign(type, &len, &byval, &align);
		Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * n));
		for (int r = 0; r < n; r++)
			elems[r] = rows[r]->values[i];
		arrays[k] = PointerGetDatum(construct_array(elems, n, type, len, byval, align));
		array_types[k] = get_array_type(type);
	}
	return arrays;
}

/*
 * "SELECT k1, k2, version FROM table WHERE (k1, k2) IN
 *  (SELECT * FROM ROWS FROM (unnest($1::t1[]), unnest($2::t2[])))"
 */
char *
versions_sql(FederatedScan *s, const char *table, Oid *array_types)
{
	StringInfoData buf;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	for (int k = 0; k < s->nkeys; k++)
		appendStringInfo(&buf, "%s, ", s->names[s->keys[k]]);
	appendStringInfo(&buf, "%s FROM %s WHERE (", s->names[s->version], table);
	for (int k = 0; k < s->nkeys; k++)
		appendStringInfo(&buf, "%s%s", k ? ", " : "", s->names[s->keys[k]]);
	appendStringInfoString(&buf, ") IN (SELECT * FROM ROWS FROM (");
	for (int k = 0; k < s->nkeys; k++)
		appendStringInfo(&buf, "%spg_catalog.unnest($%d::%s)", k ? ", " : "", k + 1,
						 format_type_be_qualified(array_types[k]));
	appendStringInfoString(&buf, "))");
	return buf.data;
}

/* A row of the hospital's text answer as local values. */
Row *
live_row(FederatedScan *s, PGresult *res, int r)
{
	Row *row = static_cast<Row *>(palloc(sizeof(Row)));
	row->values = static_cast<Datum *>(palloc(sizeof(Datum) * s->ncols));
	row->nulls = static_cast<bool *>(palloc(sizeof(bool) * s->ncols));
	for (int i = 0; i < s->ncols; i++) {
		Form_pg_attribute att = TupleDescAttr(s->tupdesc, s->cols[i] - 1);
		row->nulls[i] = PQgetisnull(res, r, i);
		row->values[i] =
			InputFunctionCall(&s->input[i], row->nulls[i] ? nullptr : PQgetvalue(res, r, i),
							  s->ioparams[i], att->atttypmod);
	}
	row->version = version_of(s, row->values, row->nulls, s->version);
	return row;
}

/*
 * Asks the hospital, in one statement (one round trip, one snapshot):
 *
 *   SELECT cols, true FROM remote WHERE F                           -- L
 *   UNION ALL
 *   SELECT keys, version (other columns NULL), false FROM remote    -- L2
 *    WHERE (keys) IN (the replica's keys) AND (F) IS NOT TRUE
 *
 * L2 is left out when there is no filter (L then has every row) or no
 * replica row.  Fills live_rows and, through the key entries, what the
 * hospital has.  False (and *why) if it failed.
 */
bool
ask_hospital(FederatedScan *s, HTAB *keys, List *replica_rows, Datum *param_values,
			 bool *param_nulls, List **live_rows, char **why)
{
	if (remote_failed_this_statement(s->server)) {
		*why = pstrdup("It failed earlier in this statement.");
		return false;
	}
	PGconn *conn = remote_connect(s->server, s->userid, false, why);
	if (conn == nullptr)
		return false;

	bool versions = s->where[0] != '\0' && replica_rows != NIL;
	int nparams = s->nparams + (versions ? s->nkeys : 0);
	const char **texts = static_cast<const char **>(palloc0(sizeof(char *) * (nparams + 1)));
	int nestlevel = set_transmission_modes();
	for (int p = 0; p < s->nparams; p++) {
		if (param_nulls[p])
			continue;
		Oid out;
		bool varlena;
		getTypeOutputInfo(s->param_types[p], &out, &varlena);
		texts[p] = OidOutputFunctionCall(out, param_values[p]);
	}

	StringInfoData sql;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfo(&sql, "%s, ", s->names[i]);
	appendStringInfo(&sql, "true FROM %s%s", s->remote_table, s->where);
	if (versions) {
		int n = list_length(replica_rows);
		Row **rows = static_cast<Row **>(palloc(sizeof(Row *) * n));
		int r = 0;
		ListCell *lc;
		foreach (lc, replica_rows)
			rows[r++] = static_cast<Row *>(lfirst(lc));
		Oid *array_types = static_cast<Oid *>(palloc(sizeof(Oid) * s->nkeys));
		Datum *arrays = key_arrays(s, rows, n, array_types);

		appendStringInfoString(&sql, " UNION ALL SELECT ");
		for (int i = 0; i < s->ncols; i++) {
			bool is_key = i == s->version;
			for (int k = 0; k < s->nkeys; k++)
				is_key = is_key || s->keys[k] == i;
			appendStringInfo(&sql, "%s, ", is_key ? s->names[i] : "NULL");
		}
		appendStringInfo(&sql, "false FROM %s WHERE (", s->remote_table);
		for (int k = 0; k < s->nkeys; k++)
			appendStringInfo(&sql, "%s%s", k ? ", " : "", s->names[s->keys[k]]);
		appendStringInfoString(&sql, ") IN (SELECT * FROM ROWS FROM (");
		for (int k = 0; k < s->nkeys; k++) {
			Oid out;
			bool varlena;
			getTypeOutputInfo(array_types[k], &out, &varlena);
			texts[s->nparams + k] = OidOutputFunctionCall(out, arrays[k]);
			appendStringInfo(&sql, "%spg_catalog.unnest($%d::%s)", k ? ", " : "",
							 s->nparams + k + 1, format_type_be_qualified(array_types[k]));
		}
		/* s->where is " WHERE <filter>" */
		appendStringInfo(&sql, ")) AND (%s) IS NOT TRUE", s->where + strlen(" WHERE "));
	}
	reset_transmission_modes(nestlevel);
	/* One row of NULLs if row level security limits the mapped role on the table. */
	appendStringInfoString(&sql, " UNION ALL SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfoString(&sql, "NULL, ");
	appendStringInfo(&sql, "NULL WHERE pg_catalog.row_security_active(%s::pg_catalog.regclass)",
					 quote_literal_cstr(s->remote_table));

	PGresult *res = remote_exec(conn, sql.data, nparams, texts, why);
	if (res == nullptr)
		return false;
	if (PQnfields(res) != s->ncols + 1) {
		PQclear(res);
		*why = psprintf("The hospital's table %s has changed.", s->remote_table);
		return false;
	}
	/*
	 * A cancel or a value the type's input function rejects raises an error
	 * here: the result (malloc'd by libpq, unknown to any memory context)
	 * must be freed on the way out.
	 */
	PG_TRY();
	{
		int n = PQntuples(res);
		for (int r = 0; r < n; r++) {
			CHECK_FOR_INTERRUPTS();
			if (PQgetisnull(res, r, s->ncols)) {
				s->rows_hidden = true;
				continue;
			}
			Row *row = live_row(s, res, r);
			row->key = key_text(s, row->values, row->nulls);
			row->entry = lookup(keys, row->key);
			row->entry->live_known = true;
			row->entry->live_version = row->version;
			if (strcmp(PQgetvalue(res, r, s->ncols), "t") == 0) {
				row->entry->live = row;
				*live_rows = lappend(*live_rows, row);
			}
		}
	}
	PG_CATCH();
	{
		PQclear(res);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PQclear(res);
	return true;
}

HeapTuple
output_tuple(FederatedScan *s, Row *row, Datum source)
{
	static Datum *values = nullptr; /* scratch, sized for the widest table seen */
	static bool *nulls = nullptr;
	static int size = 0;
	int natts = s->tupdesc->natts;
	if (natts > size) {
		values = static_cast<Datum *>(MemoryContextAlloc(TopMemoryContext, sizeof(Datum) * natts));
		nulls = static_cast<bool *>(MemoryContextAlloc(TopMemoryContext, sizeof(bool) * natts));
		size = natts;
	}
	for (int a = 0; a < natts; a++)
		nulls[a] = true;
	for (int i = 0; i < s->ncols; i++) {
		values[s->cols[i] - 1] = row->values[i];
		nulls[s->cols[i] - 1] = row->nulls[i];
	}
	values[s->source_attno - 1] = source;
	nulls[s->source_attno - 1] = false;
	values[s->version_attno - 1] = Int64GetDatum(row->version);
	nulls[s->version_attno - 1] = false;
	return heap_form_tuple(s->tupdesc, values, nulls);
}

} // namespace

/* Runs sql on the replica as the view's owner; returns SPI_tuptable's rows. */
int
replica_query(FederatedScan *s, const char *sql, int nargs, Oid *types, Datum *values,
			  const char *nulls)
{
	Oid saved_user;
	int saved_context;
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(s->userid, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	/*
	 * The SQL names its tables, types and functions with their schemas, but
	 * the IN of the key lookup finds "=" by name: on the caller's search_path
	 * it could run the caller's own operator with the owner's rights.  An
	 * error unwinds both settings with the (sub)transaction.
	 */
	int nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, true, 0);
	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(saved_user, saved_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the replica failed: %s", SPI_result_code_string(rc));
	return static_cast<int>(SPI_processed);
}

void
warn_unreachable(FederatedScan *s, const char *why)
{
	if (remote_should_warn(s->server))
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("hospital server \"%s\" is unreachable: answering from the replica alone",
						s->server),
				 errdetail_internal("%s", why ? why : ""),
				 errhint("Rows changed at the hospital since the replica last caught up are "
						 "shown as the replica has them (_source is 'replica').")));
}

void
warn_rows_hidden(FederatedScan *s)
{
	/* Rows the role cannot see would look deleted: the hospital's answer is not used. */
	s->reachable = false;
	remote_skip_this_statement(s->server, s->userid);
	if (remote_should_warn(s->server))
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row level security hides rows of %s from the user mapping's role on "
						"hospital server \"%s\": answering from the replica alone",
						s->remote_table, s->server),
				 errdetail("A federated view takes a replica row that the hospital does not "
						   "return as deleted there."),
				 errhint("Map a role that sees every row of the table (its owner, or a role "
						 "with BYPASSRLS), or call edgesync.federate() again with "
						 "visible_rows_only => true.")));
}

void
build_answer(FederatedScan *s, Datum *param_values, bool *param_nulls)
{
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	HASHCTL ctl = {};
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hash = key_hash;
	ctl.match = key_match;
	ctl.hcxt = s->cxt;
	HTAB *keys = hash_create("edgesync federated keys", 1024, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);

	/* R: the replica's rows under the same filter. */
	StringInfoData sql;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "", s->names[i]);
	appendStringInfo(&sql, " FROM %s%s", s->replica_table, s->where);
	char *spi_nulls = static_cast<char *>(palloc(s->nparams + 1));
	for (int p = 0; p < s->nparams; p++)
		spi_nulls[p] = param_nulls[p] ? 'n' : ' ';

	List *replica_rows = NIL;
	SPI_connect();
	int n = replica_query(s, sql.data, s->nparams, s->param_types, param_values, spi_nulls);
	for (int r = 0; r < n; r++) {
		MemoryContextSwitchTo(s->cxt);
		Row *row = static_cast<Row *>(palloc(sizeof(Row)));
		row->values = static_cast<Datum *>(palloc(sizeof(Datum) * s->ncols));
		row->nulls = static_cast<bool *>(palloc(sizeof(bool) * s->ncols));
		HeapTuple copy = heap_copytuple(SPI_tuptable->vals[r]);
		heap_deform_tuple(copy, SPI_tuptable->tupdesc, row->values, row->nulls);
		row->version = version_of(s, row->values, row->nulls, s->version);
		replica_rows = lappend(replica_rows, row);
		row->key = key_text(s, row->values, row->nulls);
		row->entry = lookup(keys, row->key);
		row->entry->replica = row;
		row->entry->replica_known = true;
		row->entry->replica_version = row->version;
	}
	SPI_finish();
	MemoryContextSwitchTo(s->cxt);

	/* L and L2: the hospital's rows and versions. */
	List *live_rows = NIL;
	char *why = nullptr;
	s->rows_hidden = false;
	s->reachable = ask_hospital(s, keys, replica_rows, param_values, param_nulls, &live_rows, &why);
	MemoryContextSwitchTo(s->cxt);

	ListCell *lc;
	List *out = NIL;
	if (s->reachable && s->rows_hidden && !s->visible_rows_only) {
		warn_rows_hidden(s);
		foreach (lc, replica_rows)
			out = lappend(out, output_tuple(s, static_cast<Row *>(lfirst(lc)), s->replica_text));
	} else if (!s->reachable) {
		warn_unreachable(s, why);
		foreach (lc, replica_rows)
			out = lappend(out, output_tuple(s, static_cast<Row *>(lfirst(lc)), s->replica_text));
	} else {
		/* R2: replica versions of live keys the filtered replica read did not return. */
		List *unmatched = NIL;
		foreach (lc, live_rows) {
			Row *row = static_cast<Row *>(lfirst(lc));
			if (!row->entry->replica_known)
				unmatched = lappend(unmatched, row);
		}
		if (unmatched != NIL) {
			int nu = list_length(unmatched);
			Row **rows = static_cast<Row **>(palloc(sizeof(Row *) * nu));
			int u = 0;
			foreach (lc, unmatched)
				rows[u++] = static_cast<Row *>(lfirst(lc));
			Oid *array_types = static_cast<Oid *>(palloc(sizeof(Oid) * s->nkeys));
			Datum *arrays = key_arrays(s, rows, nu, array_types);
			char *vsql = versions_sql(s, s->replica_table, array_types);
			SPI_connect();
			int n3 = replica_query(s, vsql, s->nkeys, array_types, arrays, nullptr);
			MemoryContextSwitchTo(s->cxt);
			Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * s->ncols));
			bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * s->ncols));
			for (int r = 0; r < n3; r++) {
				for (int i = 0; i < s->ncols; i++)
					nulls[i] = true;
				for (int k = 0; k < s->nkeys; k++) {
					bool isnull;
					values[s->keys[k]] =
						SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, k + 1, &isnull);
					nulls[s->keys[k]] = isnull;
				}
				bool vnull;
				Datum v = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, s->nkeys + 1,
										&vnull);
				char *key = key_text(s, values, nulls);
				KeyEntry *e = static_cast<KeyEntry *>(hash_search(keys, &key, HASH_FIND, nullptr));
				if (e != nullptr) {
					e->replica_known = true;
					e->replica_version = vnull ? 0 : DatumGetInt64(v);
				}
			}
			SPI_finish();
			MemoryContextSwitchTo(s->cxt);
		}

		foreach (lc, live_rows) {
			Row *row = static_cast<Row *>(lfirst(lc));
			KeyEntry *e = row->entry;
			if (!e->replica_known || e->live_version >= e->replica_version)
				out = lappend(out, output_tuple(s, row, s->hospital_text));
		}
		foreach (lc, replica_rows) {
			Row *row = static_cast<Row *>(lfirst(lc));
			KeyEntry *e = row->entry;
			if (e->live_known && e->replica_version > e->live_version)
				out = lappend(out, output_tuple(s, row, s->replica_text));
			else if (!e->live_known && s->rows_hidden)
				/* Hidden from the role, or deleted: the hospital cannot tell which. */
				out = lappend(out, output_tuple(s, row, s->unverified_text));
		}
	}

	s->ntuples = list_length(out);
	s->tuples = static_cast<HeapTuple *>(palloc(sizeof(HeapTuple) * (s->ntuples + 1)));
	int t = 0;
	foreach (lc, out)
		s->tuples[t++] = static_cast<HeapTuple>(lfirst(lc));
	s->next = 0;
	s->built = true;
	MemoryContextSwitchTo(old);
}

} // namespace edgesync::federate
