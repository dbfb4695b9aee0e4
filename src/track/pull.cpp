/*
 * pull.cpp — edgesync.pull(tbl, cursor, max): every row of a table the
 * caller may see (the initial load), then the rows changed after it, with
 * tombstones for deleted keys, by cursor.
 *
 * One snapshot per call.  Everything a call reads, the log's window and the
 * rows, it reads in the snapshot of the statement that called it (the SPI
 * queries are read-only and the helpers stable), so the rows it returns are
 * the state of the table in that snapshot, and the cursor it returns says
 * which transactions that state includes.
 *
 * The initial load pages through the table in key order under a cursor whose
 * "seen" snapshot is the snapshot of the page that read the rows, with the
 * last key loaded.  Before each page of the load, the changes committed since
 * the previous page (the log's window between the two snapshots) are
 * delivered for the keys already loaded; keys after the last one loaded are
 * left to the load itself, which reads them as they are now.  So when the
 * table is read to its end, the caller holds every row as of one snapshot,
 * and the stream goes on from exactly that snapshot: no change is missed,
 * none is delivered twice, whatever was written during the load.
 *
 * A page is filled: the log's window is read in rounds (of max, then twice
 * as many log rows, ...) until the page holds max rows or the caller is up
 * to date, so a page shorter than max means "up to date", as sync engines
 * (RxDB) take it, even when the log holds many changes the caller cannot see.
 * Each key comes once per page, at its last change.
 *
 * Two privileges meet here.  The change log's keys (and the images of
 * deleted rows, see sync_log.cpp) are read by nobody but the extension's
 * owner, so the window of log rows (edgesync._window) runs as the log's
 * owner.  The rows themselves are read as the caller (edgesync._pull_page,
 * _pull_load), so that table privileges and row level security decide what
 * comes back: a live row the caller cannot see is left out, and a tombstone
 * is handed out only if the caller could have seen the deleted row (under
 * row level security: its SELECT policies, evaluated against the row's
 * image).  _pull_page gets the window as arrays; called directly with
 * made-up arrays it can tell nothing its caller could not SELECT.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects;
 * cursors are parsed and formatted by cursor.cpp inside guarded().
 */
#include "core/catalog_owner.hpp"
#include "core/guard.hpp"
#include "track/cursor.hpp"
#include "track/tracked_rel.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(edgesync_pull);
PG_FUNCTION_INFO_V1(edgesync_row_key);
}

namespace {

/* Log rows read as the owner, then handed to _pull_page: pks, ops, versions, cursors, images. */
constexpr int kWindowArrays = 5;
/* The most log rows one round reads (rounds start at max and double). */
constexpr int kMaxRound = 65536;

/* One row of the page being built. */
struct PageRow {
	Datum pk, row, version, deleted;
	bool pk_null, row_null, version_null;
	char *cursor; /* resumes after this row (without the load position) */
	char *load;	  /* the load position to resume with (nullptr: none) */
	bool removed; /* the key came again later in the page */
};

struct KeyEntry {
	char *key; /* the key's jsonb text: hash key */
	int index; /* into PulledPage.rows */
};

struct PulledPage {
	PageRow *rows;
	int count;	  /* rows, removed ones included */
	int capacity; /* allocated */
	int live;	  /* rows not removed */
	HTAB *keys;
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

void
page_init(PulledPage *page, int max)
{
	page->capacity = max < 64 ? max + 1 : 64;
	page->rows = static_cast<PageRow *>(palloc(sizeof(PageRow) * page->capacity));
	page->count = 0;
	page->live = 0;
	HASHCTL ctl = {};
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hash = key_hash;
	ctl.match = key_match;
	ctl.hcxt = CurrentMemoryContext;
	page->keys = hash_create("edgesync pulled keys", 64, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * Adds a row of the SPI result (pk, row, version, deleted) to the page, in
 * the page's memory context, unless the page already holds max rows and the
 * key is new to it: then returns false.  A key already in the page moves to
 * the end (its later change is the one that counts).  key: the key's jsonb
 * text if the caller has it already.
 */
bool
page_add(PulledPage *page, int max, HeapTuple tuple, TupleDesc desc, MemoryContext cxt,
		 char *cursor, char *load, char *key = nullptr)
{
	Datum values[4];
	bool nulls[4];
	for (int i = 0; i < 4; i++)
		values[i] = SPI_getbinval(tuple, desc, i + 1, &nulls[i]);

	MemoryContext old = MemoryContextSwitchTo(cxt);
	if (key == nullptr)
		key = nulls[0] ? pstrdup("") : JsonbToCString(nullptr, &DatumGetJsonbP(values[0])->root, 0);
	bool found;
	KeyEntry *entry = static_cast<KeyEntry *>(hash_search(page->keys, &key, HASH_FIND, &found));
	if (!found && page->live >= max) {
		MemoryContextSwitchTo(old);
		return false;
	}
	if (found)
		page->rows[entry->index].removed = true;
	else {
		entry = static_cast<KeyEntry *>(hash_search(page->keys, &key, HASH_ENTER, &found));
		entry->key = key;
		page->live++;
	}
	if (page->count == page->capacity) {
		page->capacity *= 2;
		page->rows = static_cast<PageRow *>(repalloc(page->rows, sizeof(PageRow) * page->capacity));
	}
	entry->index = page->count;
	PageRow *r = &page->rows[page->count++];
	r->pk_null = nulls[0];
	r->row_null = nulls[1];
	r->version_null = nulls[2];
	r->pk = nulls[0] ? Datum(0) : datumCopy(values[0], false, -1);
	r->row = nulls[1] ? Datum(0) : datumCopy(values[1], false, -1);
	r->version = nulls[2] ? Datum(0) : values[2];
	r->deleted = nulls[3] ? BoolGetDatum(false) : values[3];
	r->cursor = cursor;
	r->load = load;
	r->removed = false;
	MemoryContextSwitchTo(old);
	return true;
}

/* A cursor's text without its load position, which goes to *load ("" before the first key). */
char *
split_cursor(const char *text, char **load, bool *loading)
{
	return edgesync::guarded([&] {
		edgesync::track::Cursor c = edgesync::track::parse_cursor(text);
		*loading = c.load.has_value();
		*load = c.load ? edgesync::pg_call([&] { return pstrdup(c.load->c_str()); }) : nullptr;
		c.load.reset();
		std::string base = edgesync::track::format_cursor(c);
		return edgesync::pg_call([&] { return pstrdup(base.c_str()); });
	});
}

/*
 * base (a cursor without load position) with load as its load position
 * (nullptr: none): format_cursor()'s eighth field, appended here without
 * parsing base again, once per row of a page.
 */
text *
cursor_with_load(const char *base, const char *load)
{
	if (load == nullptr)
		return cstring_to_text(base);
	size_t base_len = strlen(base), load_len = strlen(load);
	text *t = static_cast<text *>(palloc(VARHDRSZ + base_len + 2 + 2 * load_len));
	char *p = VARDATA(t);
	memcpy(p, base, base_len);
	memcpy(p + base_len, "/k", 2);
	hex_encode(load, load_len, p + base_len + 2);
	SET_VARSIZE(t, VARHDRSZ + base_len + 2 + 2 * load_len);
	return t;
}

/* True if cursor (without load position) has read every change up to the snapshot now. */
bool
read_up_to(const char *cursor, const char *now)
{
	return edgesync::guarded([&] {
		edgesync::track::Cursor c = edgesync::track::parse_cursor(cursor);
		return !c.window && c.seen && *c.seen == now;
	});
}

/* Runs a read-only query as the caller; returns SPI_processed (SPI left connected). */
uint64
query_as_caller(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	SPI_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "edgesync.pull(): could not run \"%s\"", sql);
	return SPI_processed;
}

/* A text result of a one-row query as the caller, copied into cxt. */
char *
text_as_caller(const char *sql, int nargs, Oid *types, Datum *values, MemoryContext cxt)
{
	query_as_caller(sql, nargs, types, values, nullptr);
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char *result = isnull ? nullptr : TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return result;
}

Datum
jsonb_datum(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

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
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max must be at least 1"),
						errdetail("Got %s.",
								  PG_ARGISNULL(2) ? "NULL" : psprintf("%d", PG_GETARG_INT32(2)))));
	Oid relid = PG_GETARG_OID(0);
	int max = PG_GETARG_INT32(2);
	char *incoming = PG_ARGISNULL(1) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(1));
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	MemoryContext cxt = CurrentMemoryContext;

	/* As the caller: the table must be tracked (the usual error otherwise). */
	Oid check_types[1] = {REGCLASSOID};
	Datum check_values[1] = {ObjectIdGetDatum(relid)};
	query_as_caller("SELECT edgesync._require_tracked($1)", 1, check_types, check_values, nullptr);
	SPI_finish();

	/* This call's snapshot, in which every query below reads. */
	char *now = text_as_caller("SELECT pg_catalog.pg_current_snapshot()::pg_catalog.text", 0,
							   nullptr, nullptr, cxt);
	char *scope = psprintf("rel%u", relid);

	/*
	 * Where the caller is: cursor is the position in the log (without the
	 * load position), nullptr for a NULL cursor, which starts the load now;
	 * loading with load (the last key loaded, "" none yet) while the initial
	 * load is under way.
	 */
	char *cursor = nullptr;
	char *load = nullptr;
	bool loading = true;
	if (incoming != nullptr)
		cursor = split_cursor(incoming, &load, &loading);
	if (load != nullptr && load[0] == '\0')
		load = nullptr;

	PulledPage page;
	page_init(&page, max);
	bool full = false;
	int round = max;
	while (cursor != nullptr && !full) {
		/* As the log's owner: the next log rows of the window, as arrays. */
		Oid types[4] = {TEXTOID, TEXTOID, OIDOID, INT4OID};
		Datum args[4] = {CStringGetTextDatum(scope), CStringGetTextDatum(cursor),
						 ObjectIdGetDatum(relid), Int32GetDatum(round)};
		edgesync::OwnerRows window = edgesync::query_as_catalog_owner(
			"sync_log_data",
			"SELECT pg_catalog.count(*)::pg_catalog.int4,"
			"       (pg_catalog.array_agg(w.next_cursor ORDER BY w.ordinality DESC))[1],"
			"       pg_catalog.array_agg(w.log_pk ORDER BY w.ordinality),"
			"       pg_catalog.array_agg(w.log_op ORDER BY w.ordinality),"
			"       pg_catalog.array_agg(w.log_version ORDER BY w.ordinality),"
			"       pg_catalog.array_agg(w.next_cursor ORDER BY w.ordinality),"
			"       pg_catalog.array_agg(w.log_image ORDER BY w.ordinality)"
			"  FROM edgesync._window($1, $2, $3, $4) WITH ORDINALITY AS w",
			4, types, args, nullptr);
		Datum got[2 + kWindowArrays];
		bool got_nulls[2 + kWindowArrays];
		heap_deform_tuple(window.rows[0], window.desc, got, got_nulls);
		int count = DatumGetInt32(got[0]);
		if (count == 0)
			break; /* nothing after the cursor up to now */

		/*
		 * As the caller: the rows and tombstones it may see, keys at their
		 * last change.  While loading with no key loaded yet, none applies.
		 */
		bool stopped = false;
		if (!loading || load != nullptr) {
			Oid page_types[1 + kWindowArrays + 1] = {REGCLASSOID,  TEXTARRAYOID, CHARARRAYOID,
													 INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
													 JSONBOID};
			Datum page_args[1 + kWindowArrays + 1];
			char page_nulls[1 + kWindowArrays + 1 + 1];
			page_args[0] = ObjectIdGetDatum(relid);
			page_nulls[0] = ' ';
			for (int i = 0; i < kWindowArrays; i++) {
				page_args[1 + i] = got[2 + i];
				page_nulls[1 + i] = got_nulls[2 + i] ? 'n' : ' ';
			}
			page_args[1 + kWindowArrays] = load != nullptr ? jsonb_datum(load) : Datum(0);
			page_nulls[1 + kWindowArrays] = load != nullptr ? ' ' : 'n';
			page_nulls[2 + kWindowArrays] = '\0';
			uint64 n =
				query_as_caller("SELECT * FROM edgesync._pull_page($1, $2, $3, $4, $5, $6, $7)",
								1 + kWindowArrays + 1, page_types, page_args, page_nulls);
			for (uint64 i = 0; i < n; i++) {
				bool isnull;
				Datum next =
					SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5, &isnull);
				MemoryContext old = MemoryContextSwitchTo(cxt);
				char *row_cursor = TextDatumGetCString(next);
				MemoryContextSwitchTo(old);
				if (!page_add(&page, max, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, cxt,
							  row_cursor, load)) {
					/* Full: go on after the last row taken, its later rows come next time. */
					cursor = page.rows[page.count - 1].cursor;
					stopped = true;
					break;
				}
			}
			SPI_finish();
		}
		if (stopped) {
			full = true;
			break;
		}
		cursor = TextDatumGetCString(got[1]);
		if (page.live >= max) {
			full = true;
			break;
		}
		/* A window read to its end whose snapshot is this call's: up to date. */
		if (count < round && read_up_to(cursor, now))
			break;
		round = Min(round * 2, kMaxRound);
	}

	/*
	 * The initial load: once the changes up to now are delivered for the
	 * keys loaded so far (or from the start), the next rows after the last
	 * key, as they are now.  Fewer than asked for: the load is done.
	 */
	if (loading && !full) {
		Oid make_types[2] = {TEXTOID, TEXTOID};
		Datum make_args[2] = {CStringGetTextDatum(scope), CStringGetTextDatum(now)};
		cursor =
			text_as_caller("SELECT edgesync._cursor_make($1, $2, NULL, NULL, NULL)", 2, make_types,
						   make_args, cxt); /* everything up to now read: seen = now */
		int wanted = max - page.live;
		Oid load_types[3] = {REGCLASSOID, JSONBOID, INT4OID};
		Datum load_args[3] = {ObjectIdGetDatum(relid),
							  load != nullptr ? jsonb_datum(load) : Datum(0),
							  Int32GetDatum(wanted + 1)};
		char load_nulls[4] = {' ', load != nullptr ? ' ' : 'n', ' ', '\0'};
		uint64 n =
			query_as_caller("SELECT pk, \"row\", version, false FROM edgesync._pull_load($1, "
							"$2, $3)",
							3, load_types, load_args, load_nulls);
		for (uint64 i = 0; i < n && static_cast<int>(i) < wanted; i++) {
			bool isnull;
			Datum pk = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			MemoryContext old = MemoryContextSwitchTo(cxt);
			load = JsonbToCString(nullptr, &DatumGetJsonbP(pk)->root, 0);
			MemoryContextSwitchTo(old);
			page_add(&page, max, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, cxt, cursor, load,
					 load);
		}
		if (n <= static_cast<uint64>(wanted)) {
			/* The table is read to its end: the load is done. */
			loading = false;
			load = nullptr;
			if (page.count > 0)
				page.rows[page.count - 1].load = nullptr;
		}
		SPI_finish();
	}

	/* The page, in order; its last row resumes after everything read. */
	char *final_load = loading ? load : nullptr;
	text *final_cursor = cursor != nullptr ? cursor_with_load(cursor, final_load) : nullptr;
	int last = page.count - 1;
	while (last >= 0 && page.rows[last].removed)
		last--;
	for (int i = 0; i <= last; i++) {
		PageRow *r = &page.rows[i];
		if (r->removed)
			continue;
		Datum values[5] = {r->pk, r->row, r->version, r->deleted,
						   i == last ? PointerGetDatum(final_cursor)
									 : PointerGetDatum(cursor_with_load(r->cursor, r->load))};
		bool nulls[5] = {r->pk_null, r->row_null, r->version_null, false, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	/* Nothing to show, but the cursor moved (past rows the caller cannot see): say so. */
	if (last < 0 && final_cursor != nullptr &&
		(incoming == nullptr || strcmp(text_to_cstring(final_cursor), incoming) != 0)) {
		Datum values[5] = {0, 0, 0, 0, PointerGetDatum(final_cursor)};
		bool nulls[5] = {true, true, true, true, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return Datum(0);
}

/*
 * edgesync._row_key(tbl regclass, r record) -> jsonb
 * The primary key of row r of tracked table tbl, written exactly as the
 * change log writes keys (append_key_json: output settings pinned), so that
 * the initial load's keys and the stream's keys of one row are the same
 * JSON whatever the session's DateStyle or TimeZone.  It formats a row the
 * caller already holds: nothing to check beyond the row's type.
 */
Datum
edgesync_row_key(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	HeapTupleHeader header = PG_GETARG_HEAPTUPLEHEADER(1);
	Relation rel = table_open(relid, AccessShareLock);
	if (HeapTupleHeaderGetTypeId(header) != rel->rd_rel->reltype)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("row is not of the row type of table \"%s\"",
							   RelationGetRelationName(rel))));
	HeapTupleData tuple;
	tuple.t_len = HeapTupleHeaderGetDatumLength(header);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	tuple.t_data = header;

	const edgesync::track::TrackedRel *info = edgesync::track::tracked_rel_for(fcinfo, rel);
	StringInfoData key;
	initStringInfo(&key);
	edgesync::track::append_key_json(&key, info, &tuple, RelationGetDescr(rel));
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(key.data)));
}
