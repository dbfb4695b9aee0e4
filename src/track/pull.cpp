/*
 * pull.cpp — edgesync.pull(tbl, cursor, max) and edgesync.rxdb_pull(tbl,
 * checkpoint, batch_size): every row of a table the caller may see (the
 * initial load), then the rows changed after it, with tombstones for
 * deleted keys, by cursor.
 *
 * One snapshot per call.  Everything a call reads, the log's window and the
 * rows, it reads in the snapshot of the statement that called it (the SPI
 * queries are read-only), so the rows it returns are the state of the table
 * in that snapshot, and the cursor it returns says which transactions that
 * state includes.
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
 * owner, so the window of log rows is read as the log's owner.  The rows
 * themselves are read as the caller, so that table privileges and row level
 * security decide what comes back: a live row the caller cannot see is left
 * out, and a tombstone is handed out only if the caller could have seen the
 * deleted row (under row level security: its SELECT policies, evaluated
 * against the row's image).
 *
 * The work is split by job (pull.hpp lists the files); this one builds the
 * page of one call: where the caller is, the change pages (pull_changes.cpp),
 * then the load's rows, each handed to the call's sink (pull_output.cpp).
 * Each row's JSON is row_to_json()'s, in the caller's session settings
 * (row_json.hpp); each key's is the change log's (append_key_json), in the
 * load as in the changes (the load builds the key's jsonb from its values,
 * the same value as the JSON's: key_jsonb_of_row()).
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects;
 * cursors are parsed and formatted by cursor.cpp inside guarded().
 */
#include "core/guard.hpp"
#include "track/catalog.hpp"
#include "track/pull.hpp"
#include "track/tracked_rel.hpp"

extern "C" {
#include "access/table.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace edgesync::track::pull {

namespace {

/* The most log rows one round reads (rounds start at max and double). */
constexpr int kMaxRound = 65536;

/* Search path pinned for the caller's statements, as edgesync's SQL functions pin it. */
void
pin_search_path(Pull *p)
{
	p->search_path_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
unpin_search_path(Pull *p)
{
	AtEOXact_GUC(true, p->search_path_level);
}

/*
 * The row held back until the next one shows whether it is the page's last
 * (the last row's cursor resumes after everything the call read).
 */
struct Pending {
	enum { kNone, kPage, kLoaded } kind;
	int index;			  /* kPage: into p->rows */
	StringInfoData key;	  /* kLoaded: the key's JSON */
	StringInfoData jsonb; /* kLoaded: the key as jsonb if the sink wants it, else empty */
	StringInfoData row;	  /* kLoaded: room for a varlena header, then the row's JSON */
	int64 version;
};

/*
 * Emits the pending row, with final as its cursor, or (final nullptr) its
 * own if the sink wants one: a page row resumes after its change, a loaded
 * row after its key.
 */
void
emit_pending(Pull *p, Pending *pending, const Position *load_at, text *final)
{
	MemoryContext old = MemoryContextSwitchTo(p->temp);
	if (pending->kind == Pending::kPage) {
		PageRow *r = &p->rows[pending->index];
		text *cursor = final != nullptr		  ? final
					   : p->sink->row_cursors ? cursor_text(&r->at, p->loading ? p->load : nullptr)
											  : nullptr;
		p->sink->row(p->sink, r->pk, Datum(0), r->row, r->version, r->row == nullptr, cursor);
	} else if (pending->kind == Pending::kLoaded) {
		text *cursor = final != nullptr		  ? final
					   : p->sink->row_cursors ? cursor_text(load_at, pending->key.data)
											  : nullptr;
		text *row = reinterpret_cast<text *>(pending->row.data);
		SET_VARSIZE(row, pending->row.len);
		Datum pk_jsonb = pending->jsonb.len > 0 ? PointerGetDatum(pending->jsonb.data) : Datum(0);
		p->sink->row(p->sink, pending->key.data, pk_jsonb, row, pending->version, false, cursor);
	}
	pending->kind = Pending::kNone;
	MemoryContextSwitchTo(old);
	MemoryContextReset(p->temp);
}

/* The rows of the load: each emitted once the next one is read. */
struct LoadReceiver {
	DestReceiver base;
	Pull *p;
	PullRel *pr;
	Pending *pending;
	const Position *at;
	uint64 wanted;
	uint64 count;
};

bool
receive_load_row(TupleTableSlot *slot, DestReceiver *self)
{
	LoadReceiver *r = reinterpret_cast<LoadReceiver *>(self);
	Pull *p = r->p;
	if (++r->count > r->wanted)
		return false; /* one more than wanted: the load goes on */
	emit_pending(p, r->pending, r->at, nullptr);
	MemoryContext old = MemoryContextSwitchTo(p->temp);
	unpack_row(p, r->pr, slot, 0);
	Pending *pending = r->pending;
	resetStringInfo(&pending->key);
	edgesync::track::append_key_json(
		&pending->key, edgesync::track::tracked_rel_for(p->fcinfo, p->rel), p->values, p->nulls);
	resetStringInfo(&pending->jsonb);
	if (p->sink->key_jsonb) {
		Datum jsonb = key_jsonb_of_row(r->pr, p->values, p->nulls);
		if (jsonb != Datum(0))
			appendBinaryStringInfo(&pending->jsonb, DatumGetPointer(jsonb),
								   static_cast<int>(VARSIZE(DatumGetPointer(jsonb))));
	}
	resetStringInfo(&pending->row);
	appendBinaryStringInfo(&pending->row, "    ", VARHDRSZ);
	edgesync::track::row_json_append(&p->writer, &pending->row, p->values, p->nulls);
	pending->version = row_version(p);
	pending->kind = Pending::kLoaded;
	MemoryContextSwitchTo(old);
	MemoryContextReset(p->temp);
	return true;
}

} // namespace

/* format_cursor_head() of a position, in the call's memory. */
const char *
head_of(Pull *p, const char *seen, const char *window)
{
	MemoryContext old = MemoryContextSwitchTo(p->cxt);
	char *head = edgesync::guarded([&] {
		edgesync::track::Cursor c;
		c.database = p->database;
		c.scope = p->scope;
		if (seen != nullptr)
			c.seen = seen;
		if (window != nullptr)
			c.window = window;
		std::string s = edgesync::track::format_cursor_head(c);
		return edgesync::pg_call([&] { return pstrdup(s.c_str()); });
	});
	MemoryContextSwitchTo(old);
	return head;
}

/*
 * The cursor that resumes at position at, with load as its load position
 * (nullptr: none).  One per row handed out: written into one allocation of
 * its size, not a StringInfo (whose first kilobyte would add up).
 */
text *
cursor_text(const Position *at, const char *load)
{
	size_t head_len = strlen(at->head);
	size_t load_len = load != nullptr ? strlen(load) : 0;
	char *t = static_cast<char *>(
		palloc(VARHDRSZ + head_len + 2 * (1 + MAXINT8LEN + 1) + 2 + load_len + 1));
	char *w = t + VARHDRSZ;
	memcpy(w, at->head, head_len);
	w += head_len;
	if (at->window != nullptr) {
		*w++ = '/';
		w += pg_lltoa(at->last_xid, w);
		*w++ = '/';
		w += pg_lltoa(at->last_id, w);
	} else {
		memcpy(w, "/-/-", 4);
		w += 4;
	}
	if (load != nullptr) {
		memcpy(w, "/k", 2);
		memcpy(w + 2, load, load_len);
		w += 2 + load_len;
	}
	SET_VARSIZE(t, w - t);
	return reinterpret_cast<text *>(t);
}

/* The columns of a row as the statements return them, from slot column first on, into p->values. */
void
unpack_row(Pull *p, const PullRel *pr, TupleTableSlot *slot, int first)
{
	slot_getallattrs(slot);
	for (int a = 0; a < pr->natts; a++)
		p->nulls[a] = true; /* dropped columns */
	for (int i = 0; i < pr->nselected; i++) {
		p->values[pr->selected[i] - 1] = slot->tts_values[first + i];
		p->nulls[pr->selected[i] - 1] = slot->tts_isnull[first + i];
	}
}

/*
 * The row in p->values as JSON (as row_to_json() writes it), a text datum:
 * written in the call's scratch buffer, then copied to an allocation of its
 * size.
 */
text *
row_json(Pull *p)
{
	resetStringInfo(&p->scratch);
	appendBinaryStringInfo(&p->scratch, "    ", VARHDRSZ); /* room for the varlena header */
	edgesync::track::row_json_append(&p->writer, &p->scratch, p->values, p->nulls);
	text *t = static_cast<text *>(palloc(p->scratch.len));
	memcpy(t, p->scratch.data, p->scratch.len);
	SET_VARSIZE(t, p->scratch.len);
	return t;
}

int64
row_version(Pull *p)
{
	return DatumGetInt64(p->values[p->version_attnum - 1]);
}

/* pull()'s work for both entry points: the page after cursor, into sink. */
void
run_pull(Pull *p)
{
	/* The table must be tracked (_require_tracked() says so as it always has). */
	if (!edgesync::track::is_tracked(p->relid)) {
		Oid types[1] = {REGCLASSOID};
		Datum args[1] = {ObjectIdGetDatum(p->relid)};
		SPI_connect();
		SPI_execute_with_args("SELECT edgesync._require_tracked($1)", 1, types, args, nullptr, true,
							  0);
		SPI_finish();
		elog(ERROR, "relation %u is not tracked", p->relid);
	}
	p->rel = table_open(p->relid, AccessShareLock);
	p->version_attnum = edgesync::track::tracked_rel_for(p->fcinfo, p->rel)->version_attnum;
	edgesync::track::row_json_init(&p->writer, RelationGetDescr(p->rel));
	initStringInfo(&p->scratch);
	p->values = static_cast<Datum *>(palloc(sizeof(Datum) * RelationGetDescr(p->rel)->natts));
	p->nulls = static_cast<bool *>(palloc(sizeof(bool) * RelationGetDescr(p->rel)->natts));
	p->scope = psprintf("rel%u", p->relid);
	p->database = edgesync::guarded([&] {
		std::string identity = edgesync::track::database_identity();
		return edgesync::pg_call([&] { return pstrdup(identity.c_str()); });
	});

	/* This call's snapshot, in which every query below reads. */
	p->now = DatumGetCString(
		DirectFunctionCall1(pg_snapshot_out, OidFunctionCall0(F_PG_CURRENT_SNAPSHOT)));

	/*
	 * Where the caller is: a position in the log, none for a NULL cursor,
	 * which starts the load now; loading with load (the last key loaded,
	 * nullptr none yet) while the initial load is under way.
	 */
	p->loading = true;
	p->load = nullptr;
	p->has_position = p->incoming != nullptr;
	if (p->has_position) {
		const char *seen = nullptr, *window = nullptr, *load = nullptr;
		int64 last_xid = 0, last_id = 0;
		bool loading = false;
		edgesync::guarded([&] {
			edgesync::track::Cursor c = edgesync::track::parse_cursor_for(p->incoming, p->scope);
			edgesync::pg_call([&] {
				seen = c.seen ? pstrdup(c.seen->c_str()) : nullptr;
				window = c.window ? pstrdup(c.window->c_str()) : nullptr;
				load = c.load && !c.load->empty() ? pstrdup(c.load->c_str()) : nullptr;
			});
			last_xid = c.last_xid;
			last_id = c.last_id;
			loading = c.load.has_value();
		});
		p->at.seen = seen;
		p->at.window = window;
		p->at.last_xid = last_xid;
		p->at.last_id = last_id;
		p->at.head = head_of(p, seen, window);
		p->loading = loading;
		p->load = const_cast<char *>(load);
	}

	p->capacity = p->max < 64 ? p->max + 1 : 64;
	p->rows = static_cast<PageRow *>(palloc(sizeof(PageRow) * p->capacity));
	p->count = p->live = 0;
	p->keys = key_table("edgesync pulled keys", p->cxt);
	/* Reset per round and per row: a row's work fits its first block, reused. */
	p->temp = AllocSetContextCreate(p->cxt, "edgesync pull round", 64 * 1024, 64 * 1024,
									ALLOCSET_DEFAULT_MAXSIZE);

	SPI_connect();
	pin_search_path(p);
	bool full = false;
	int round = p->max;
	while (p->has_position && !full) {
		MemoryContext old = MemoryContextSwitchTo(p->temp);
		int count;
		bool done = false;
		bool more = read_round(p, round, &count, &done);
		MemoryContextSwitchTo(old);
		MemoryContextReset(p->temp);
		if (!more) {
			full = count > 0; /* stopped on a full page; else nothing after the position */
			break;
		}
		if (p->live >= p->max) {
			full = true;
			break;
		}
		/* A window read to its end whose snapshot is this call's: up to date. */
		if (count < round && done && strcmp(p->at.seen, p->now) == 0)
			break;
		round = Min(round * 2, kMaxRound);
	}

	/*
	 * The initial load: once the changes up to now are delivered for the
	 * keys loaded so far (or from the start), the next rows after the last
	 * key, as they are now.  Fewer than asked for: the load is done.
	 */
	/* The rows from the log first, the last one held back. */
	Pending pending = {};
	initStringInfo(&pending.key);
	initStringInfo(&pending.jsonb);
	initStringInfo(&pending.row);
	for (int i = 0; i < p->count; i++) {
		if (p->rows[i].removed)
			continue;
		emit_pending(p, &pending, nullptr, nullptr);
		pending.kind = Pending::kPage;
		pending.index = i;
	}
	bool still_loading = p->loading;
	Position load_at;
	if (p->loading && !full) {
		load_at.seen = p->now;
		load_at.window = nullptr;
		load_at.last_xid = load_at.last_id = 0;
		load_at.head = head_of(p, p->now, nullptr); /* everything up to now read */
		p->at = load_at;
		PullRel *pr = pull_rel_for(p->rel);
		Datum args[1 + INDEX_MAX_KEYS];
		int64 wanted = p->max - p->live;
		args[0] = Int64GetDatum(wanted + 1);
		if (p->load != nullptr) {
			int level = edgesync::track::pin_output_settings();
			bool ok = decode_key(pr, p->load, args + 1);
			edgesync::track::unpin_output_settings(level);
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cursor's load position does not match the primary key of table "
								"\"%s\"",
								RelationGetRelationName(p->rel)),
						 errdetail("The primary key changed during the initial load."),
						 errhint("Start again with a NULL cursor and reload the current rows.")));
		}
		LoadReceiver receiver = {};
		receiver.base = {receive_load_row, receiver_startup, receiver_shutdown, nullptr, DestNone};
		receiver.p = p;
		receiver.pr = pr;
		receiver.pending = &pending;
		receiver.at = &load_at;
		receiver.wanted = static_cast<uint64>(wanted);
		run_as_caller(p->load != nullptr ? pr->load_after : pr->load_first,
					  p->load != nullptr ? 1 + pr->nkeys : 1, args, &receiver.base);
		/* Fewer rows than asked for: the table is read to its end, the load is done. */
		still_loading = receiver.count > receiver.wanted;
	}
	unpin_search_path(p);

	/* The last row resumes after everything read; with no row, say where the cursor went. */
	MemoryContext old = MemoryContextSwitchTo(p->cxt);
	text *final = pending.kind == Pending::kLoaded
					  ? cursor_text(&p->at, still_loading ? pending.key.data : nullptr)
					  : cursor_text(&p->at, still_loading ? p->load : nullptr);
	MemoryContextSwitchTo(old);
	if (pending.kind != Pending::kNone)
		emit_pending(p, &pending, &p->at, final);
	else if (p->incoming == nullptr || strcmp(text_to_cstring(final), p->incoming) != 0)
		/* Nothing to show, but the cursor moved (past rows the caller cannot see). */
		p->sink->moved(p->sink, final);
	SPI_finish();
	table_close(p->rel, NoLock);
}

/* Checks pull()'s arguments; fills p. */
void
start_pull(Pull *p, FunctionCallInfo fcinfo, const char *max_name)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("edgesync.pull() needs a table")));
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1)
		ereport(
			ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must be at least 1", max_name),
			 errdetail("Got %s.", PG_ARGISNULL(2) ? "NULL" : psprintf("%d", PG_GETARG_INT32(2)))));
	p->fcinfo = fcinfo;
	p->relid = PG_GETARG_OID(0);
	p->max = PG_GETARG_INT32(2);
	p->cxt = CurrentMemoryContext;
}

} // namespace edgesync::track::pull
