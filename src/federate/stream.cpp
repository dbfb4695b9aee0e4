/*
 * stream.cpp — the merge of an unfiltered federated scan, in one pass in key
 * order, in memory that does not grow with the table.
 *
 * A scan with no filter sent to the hospital reads both sides whole.  When
 * both servers sort its primary key alike (can_stream()), the two sides are
 * read in key order and merged like a merge join, instead of being held in
 * memory and matched by hash (merge.cpp):
 *
 *   hospital: SELECT cols, (row_security_active) FROM remote ORDER BY keys,
 *             read row by row (libpq's single-row mode; built-in types in
 *             their binary formats) into a tuplestore (memory up to
 *             work_mem, then a temporary file), its key order checked as it
 *             arrives.  The answer is still all or nothing: no row is
 *             returned before the hospital's last one arrived.
 *   replica:  a cursor on SELECT cols FROM replica ORDER BY keys, read a
 *             batch at a time, with the statement's snapshot (older than the
 *             hospital's, as in merge.cpp: a key the replica has and the
 *             hospital lacks was deleted there).
 *
 * then per key, comparing keys with the type's btree order: the hospital's
 * row if it alone has the key or its version is at least the replica's, the
 * replica's row if its version is higher, nothing for a key only the replica
 * has (or that row as 'replica_unverified' when row level security hides
 * rows from the mapped role of a visible_rows_only view).
 *
 * "Sort alike" is decided per key column: built-in types whose order does not
 * depend on the server (integers, numeric, dates and times, uuid, boolean),
 * and text types compared byte by byte (COLLATE "C" on both sides) when both
 * databases have the same encoding.  Anything else, or rows that arrive out
 * of order after all, is merged in memory.
 *
 * C-style code (no C++ objects): PostgreSQL errors may pass through it.
 */
#include "federate/remote.hpp"
#include "federate/scan.hpp"

#include <cstring>

extern "C" {
#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/sortsupport.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
}

namespace edgesync::federate {

bool streaming = true;

struct StreamState {
	SortSupport keys; /* one comparator per key column */
	bool merge;		  /* false: the replica's rows alone */
	TupleDesc desc;	  /* the data columns, as both sides return them */
	char *cursor;	  /* the replica's cursor (a portal's name), or nullptr */

	/* The hospital's rows, spooled in key order. */
	bool binary;	   /* in the types' binary formats (built-in types only) */
	FmgrInfo *receive; /* their receive functions, by column */
	Oid *recv_ioparams;
	Tuplestorestate *live;
	TupleTableSlot *live_slot;
	bool live_valid;
	bool advance_live;
	/* While spooling: the row before, to check the order. */
	MemoryContext row_cxt[2];
	Datum *row_values[2];
	bool *row_nulls[2];
	int row;
	int64 nlive;
	bool in_order;
	bool hidden; /* the hospital said row level security limits the role */

	/* The replica's rows, a batch at a time. */
	MemoryContext batch_cxt;
	HeapTuple *batch;
	TupleDesc batch_desc;
	int nbatch;
	int next;
	bool replica_done;
	Datum *r_values;
	bool *r_nulls;
	bool replica_valid;
	bool advance_replica;
};

namespace {

constexpr int batch_size = 1000;

/* Is a key column of this type sorted alike by any two servers? */
bool
type_sorts_alike(Oid type)
{
	switch (type) {
	case BOOLOID:
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case OIDOID:
	case NUMERICOID:
	case DATEOID:
	case TIMEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
	case UUIDOID:
		return true;
	case TEXTOID:
	case VARCHAROID:
	case BPCHAROID:
		return true; /* byte order ("C"), if the encodings match: stream_start() */
	default:
		return false;
	}
}

Oid
key_type(const FederatedScan *s, int k)
{
	return TupleDescAttr(s->tupdesc, s->cols[s->keys[k]] - 1)->atttypid;
}

int
compare_keys(const FederatedScan *s, const Datum *a, const bool *an, const Datum *b, const bool *bn)
{
	StreamState *st = s->stream_state;
	for (int k = 0; k < s->nkeys; k++) {
		int i = s->keys[k];
		int c = ApplySortComparator(a[i], an[i], b[i], bn[i], &st->keys[k]);
		if (c != 0)
			return c;
	}
	return 0;
}

int64
row_version(const FederatedScan *s, const Datum *values, const bool *nulls)
{
	return nulls[s->version] ? 0 : DatumGetInt64(values[s->version]);
}

/* One row of the hospital's answer, into the tuplestore (remote_stream's on_row). */
void
spool_row(const PGresult *res, void *arg)
{
	FederatedScan *s = static_cast<FederatedScan *>(arg);
	StreamState *st = s->stream_state;
	CHECK_FOR_INTERRUPTS();
	int r = st->row;
	MemoryContextReset(st->row_cxt[r]);
	MemoryContext old = MemoryContextSwitchTo(st->row_cxt[r]);
	Datum *values = st->row_values[r];
	bool *nulls = st->row_nulls[r];
	for (int i = 0; i < s->ncols; i++) {
		nulls[i] = PQgetisnull(res, 0, i);
		int32 typmod = TupleDescAttr(st->desc, i)->atttypmod;
		if (!st->binary)
			values[i] = InputFunctionCall(&s->input[i], nulls[i] ? nullptr : PQgetvalue(res, 0, i),
										  s->ioparams[i], typmod);
		else if (nulls[i])
			values[i] = ReceiveFunctionCall(&st->receive[i], nullptr, st->recv_ioparams[i], typmod);
		else {
			/* libpq's value, read in place (it ends with a zero byte, as receive functions expect).
			 */
			StringInfoData buf;
			buf.data = PQgetvalue(res, 0, i);
			buf.len = buf.maxlen = PQgetlength(res, 0, i);
			buf.cursor = 0;
			values[i] = ReceiveFunctionCall(&st->receive[i], &buf, st->recv_ioparams[i], typmod);
		}
	}
	const char *flag = PQgetvalue(res, 0, s->ncols);
	if (st->binary ? flag[0] == 1 : strcmp(flag, "t") == 0)
		st->hidden = true;
	if (st->nlive > 0 && st->in_order &&
		compare_keys(s, st->row_values[1 - r], st->row_nulls[1 - r], values, nulls) >= 0)
		st->in_order = false;
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(st->live, st->desc, values, nulls);
	st->nlive++;
	st->row = 1 - r;
}

/*
 * Asks the hospital for its rows in key order, into st->live.  True if it
 * answered whole; false (and *why) if it failed at any point.
 */
bool
spool_hospital(FederatedScan *s, PGconn *conn, char **why)
{
	StreamState *st = s->stream_state;
	char *table = quote_literal_cstr(s->remote_table);
	StringInfoData sql;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfo(&sql, "%s, ", s->names[i]);
	/* An InitPlan: computed once, not per row. */
	appendStringInfo(&sql,
					 "(SELECT pg_catalog.row_security_active(%s::pg_catalog.regclass)) FROM %s",
					 table, s->remote_table);
	append_order_by(&sql, s);

	st->live = tuplestore_begin_heap(false, false, work_mem);
	for (int r = 0; r < 2; r++) {
		st->row_cxt[r] =
			AllocSetContextCreate(s->cxt, "edgesync federated row", ALLOCSET_SMALL_SIZES);
		st->row_values[r] = static_cast<Datum *>(palloc(sizeof(Datum) * s->ncols));
		st->row_nulls[r] = static_cast<bool *>(palloc(sizeof(bool) * s->ncols));
	}
	st->in_order = true;
	if (!remote_stream(conn, sql.data, st->binary, spool_row, s, why))
		return false;
	if (st->nlive == 0) {
		/* No row to carry the answer: ask whether rows are hidden. */
		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT pg_catalog.row_security_active(%s::pg_catalog.regclass)",
						 table);
		PGresult *res = remote_exec(conn, sql.data, 0, nullptr, why);
		if (res == nullptr)
			return false;
		st->hidden = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
	}
	return true;
}

/* Opens the replica's cursor: its rows in key order, read as the view's owner. */
void
open_replica(FederatedScan *s)
{
	StreamState *st = s->stream_state;
	StringInfoData sql;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "", s->names[i]);
	appendStringInfo(&sql, " FROM %s", s->replica_table);
	append_order_by(&sql, s);

	Oid saved_user;
	int saved_context;
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(s->userid, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	/* As in replica_query(): the owner's rights, no caller's operators. */
	int nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	/* read_only: the statement's snapshot, taken before the hospital was asked. */
	Portal portal = SPI_cursor_open_with_args(nullptr, sql.data, 0, nullptr, nullptr, nullptr, true,
											  CURSOR_OPT_NO_SCROLL);
	st->cursor = MemoryContextStrdup(s->cxt, portal->name);
	SPI_finish();
	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(saved_user, saved_context);
}

/* The next row of the replica's cursor into st->r_values; false at its end. */
bool
next_replica(FederatedScan *s)
{
	StreamState *st = s->stream_state;
	if (st->next >= st->nbatch) {
		if (st->replica_done)
			return false;
		MemoryContextReset(st->batch_cxt);
		Oid saved_user;
		int saved_context;
		GetUserIdAndSecContext(&saved_user, &saved_context);
		SetUserIdAndSecContext(s->userid, saved_context | SECURITY_LOCAL_USERID_CHANGE);
		SPI_connect();
		Portal portal = SPI_cursor_find(st->cursor);
		if (portal == nullptr)
			elog(ERROR, "cursor \"%s\" of a federated scan does not exist", st->cursor);
		SPI_cursor_fetch(portal, true, batch_size);
		MemoryContext old = MemoryContextSwitchTo(st->batch_cxt);
		st->nbatch = static_cast<int>(SPI_processed);
		st->batch = static_cast<HeapTuple *>(palloc(sizeof(HeapTuple) * (st->nbatch + 1)));
		for (int r = 0; r < st->nbatch; r++)
			st->batch[r] = heap_copytuple(SPI_tuptable->vals[r]);
		if (st->batch_desc == nullptr && SPI_tuptable != nullptr) {
			MemoryContextSwitchTo(s->cxt);
			st->batch_desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		}
		MemoryContextSwitchTo(old);
		SPI_finish();
		SetUserIdAndSecContext(saved_user, saved_context);
		st->next = 0;
		st->replica_done = st->nbatch < batch_size;
		if (st->nbatch == 0)
			return false;
	}
	heap_deform_tuple(st->batch[st->next++], st->batch_desc, st->r_values, st->r_nulls);
	return true;
}

bool
next_live(FederatedScan *s)
{
	StreamState *st = s->stream_state;
	/*
	 * A row read back from the tuplestore's file is allocated in the current
	 * context, and freed by the slot when the next row replaces it: not the
	 * executor's per-tuple memory, which is reset between rows.
	 */
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	bool found = tuplestore_gettupleslot(st->live, true, false, st->live_slot);
	MemoryContextSwitchTo(old);
	if (found)
		slot_getallattrs(st->live_slot);
	return found;
}

/* A row of the answer into the scan's slot (values stay where they are until the next call). */
void
emit(FederatedScan *s, TupleTableSlot *slot, const Datum *values, const bool *nulls, Datum source)
{
	ExecClearTuple(slot);
	int natts = s->tupdesc->natts;
	for (int a = 0; a < natts; a++)
		slot->tts_isnull[a] = true;
	for (int i = 0; i < s->ncols; i++) {
		slot->tts_values[s->cols[i] - 1] = values[i];
		slot->tts_isnull[s->cols[i] - 1] = nulls[i];
	}
	slot->tts_values[s->source_attno - 1] = source;
	slot->tts_isnull[s->source_attno - 1] = false;
	slot->tts_values[s->version_attno - 1] = Int64GetDatum(row_version(s, values, nulls));
	slot->tts_isnull[s->version_attno - 1] = false;
	ExecStoreVirtualTuple(slot);
}

} // namespace

void
append_order_by(StringInfo sql, const FederatedScan *s)
{
	for (int k = 0; k < s->nkeys; k++) {
		appendStringInfo(sql, "%s%s", k ? ", " : " ORDER BY ", s->names[s->keys[k]]);
		if (type_is_collatable(key_type(s, k)))
			appendStringInfoString(sql, " COLLATE pg_catalog.\"C\"");
	}
}

bool
can_stream(const FederatedScan *s)
{
	if (!streaming || s->where[0] != '\0' || s->nparams != 0)
		return false;
	for (int k = 0; k < s->nkeys; k++)
		if (!type_sorts_alike(key_type(s, k)))
			return false;
	return true;
}

bool
stream_start(FederatedScan *s)
{
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	StreamState *st = static_cast<StreamState *>(palloc0(sizeof(StreamState)));
	s->stream_state = st;
	st->keys = static_cast<SortSupport>(palloc0(sizeof(SortSupportData) * s->nkeys));
	bool collatable = false;
	for (int k = 0; k < s->nkeys; k++) {
		Oid type = key_type(s, k);
		SortSupport ssup = &st->keys[k];
		ssup->ssup_cxt = s->cxt;
		ssup->ssup_collation = type_is_collatable(type) ? C_COLLATION_OID : InvalidOid;
		ssup->ssup_nulls_first = false;
		PrepareSortSupportFromOrderingOp(lookup_type_cache(type, TYPECACHE_LT_OPR)->lt_opr, ssup);
		collatable = collatable || type_is_collatable(type);
	}
	st->desc = CreateTemplateTupleDesc(s->ncols);
	for (int i = 0; i < s->ncols; i++) {
		Form_pg_attribute att = TupleDescAttr(s->tupdesc, s->cols[i] - 1);
		TupleDescInitEntry(st->desc, i + 1, NameStr(att->attname), att->atttypid, att->atttypmod,
						   0);
	}
	/*
	 * Built-in types travel in their binary formats, the same on every server
	 * version: no text to parse.  If a column has another type, all in text.
	 */
	st->binary = true;
	st->receive = static_cast<FmgrInfo *>(palloc(sizeof(FmgrInfo) * s->ncols));
	st->recv_ioparams = static_cast<Oid *>(palloc(sizeof(Oid) * s->ncols));
	for (int i = 0; i < s->ncols && st->binary; i++) {
		Oid type = TupleDescAttr(st->desc, i)->atttypid;
		st->binary = type < FirstGenbkiObjectId;
		if (st->binary) {
			Oid receive;
			getTypeBinaryInputInfo(type, &receive, &st->recv_ioparams[i]);
			fmgr_info(receive, &st->receive[i]);
		}
	}
	st->r_values = static_cast<Datum *>(palloc(sizeof(Datum) * s->ncols));
	st->r_nulls = static_cast<bool *>(palloc(sizeof(bool) * s->ncols));
	st->batch_cxt =
		AllocSetContextCreate(s->cxt, "edgesync federated replica rows", ALLOCSET_DEFAULT_SIZES);
	st->advance_live = st->advance_replica = true;

	char *why = nullptr;
	s->rows_hidden = false;
	s->reachable = false;
	PGconn *conn = nullptr;
	if (remote_failed_this_statement(s->server))
		why = pstrdup("It failed earlier in this statement.");
	else
		conn = remote_connect(s->server, s->userid, false, &why);
	const char *encoding = conn ? PQparameterStatus(conn, "server_encoding") : nullptr;
	if (conn != nullptr && collatable &&
		(encoding == nullptr || strcmp(encoding, GetDatabaseEncodingName()) != 0)) {
		/* Text sorts byte by byte alike only in the same encoding. */
		stream_stop(s);
		MemoryContextSwitchTo(old);
		return false;
	}
	if (conn != nullptr) {
		s->reachable = spool_hospital(s, conn, &why);
		if (s->reachable && !st->in_order) {
			/* Not our key order after all (a key that is not unique there?): in memory. */
			elog(DEBUG1, "rows of %s did not arrive in key order: merging in memory",
				 s->remote_table);
			stream_stop(s);
			MemoryContextSwitchTo(old);
			return false;
		}
	}
	s->rows_hidden = s->reachable && st->hidden;
	if (s->rows_hidden && !s->visible_rows_only)
		warn_rows_hidden(s); /* sets s->reachable = false */
	else if (!s->reachable)
		warn_unreachable(s, why);
	st->merge = s->reachable;
	if (st->merge)
		st->live_slot = MakeSingleTupleTableSlot(st->desc, &TTSOpsMinimalTuple);
	else if (st->live != nullptr) {
		/* Whatever the hospital said is dropped. */
		tuplestore_end(st->live);
		st->live = nullptr;
	}
	open_replica(s);
	MemoryContextSwitchTo(old);
	return true;
}

bool
stream_next(FederatedScan *s, TupleTableSlot *slot)
{
	StreamState *st = s->stream_state;
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (st->advance_live) {
			st->live_valid = st->merge && next_live(s);
			st->advance_live = false;
		}
		if (st->advance_replica) {
			st->replica_valid = next_replica(s);
			st->advance_replica = false;
		}
		if (!st->live_valid && !st->replica_valid)
			return false;
		const Datum *lv = st->live_valid ? st->live_slot->tts_values : nullptr;
		const bool *ln = st->live_valid ? st->live_slot->tts_isnull : nullptr;
		int c = !st->live_valid		 ? 1
				: !st->replica_valid ? -1
									 : compare_keys(s, lv, ln, st->r_values, st->r_nulls);
		if (!st->merge) {
			/* The replica alone. */
			st->advance_replica = true;
			emit(s, slot, st->r_values, st->r_nulls, s->replica_text);
			return true;
		}
		if (c < 0) {
			/* Only the hospital has it (not replicated yet). */
			st->advance_live = true;
			emit(s, slot, lv, ln, s->hospital_text);
			return true;
		}
		if (c == 0) {
			st->advance_live = st->advance_replica = true;
			if (row_version(s, lv, ln) >= row_version(s, st->r_values, st->r_nulls))
				emit(s, slot, lv, ln, s->hospital_text);
			else
				emit(s, slot, st->r_values, st->r_nulls, s->replica_text);
			return true;
		}
		/* Only the replica has it: deleted at the hospital, or hidden from the role. */
		st->advance_replica = true;
		if (s->rows_hidden) {
			emit(s, slot, st->r_values, st->r_nulls, s->unverified_text);
			return true;
		}
	}
}

void
stream_stop(FederatedScan *s)
{
	StreamState *st = s->stream_state;
	if (st == nullptr)
		return;
	if (st->cursor != nullptr) {
		Portal portal = GetPortalByName(st->cursor);
		if (PortalIsValid(portal))
			SPI_cursor_close(portal);
		st->cursor = nullptr;
	}
	if (st->live_slot != nullptr)
		ExecDropSingleTupleTableSlot(st->live_slot);
	st->live_slot = nullptr;
	if (st->live != nullptr)
		tuplestore_end(st->live);
	st->live = nullptr;
	s->stream_state = nullptr;
}

} // namespace edgesync::federate
