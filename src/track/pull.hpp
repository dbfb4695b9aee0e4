/*
 * pull.hpp — what the files of pull() share (private to src/track/pull*.cpp).
 *
 * pull.cpp         the page of one call: where the caller is, the change
 *                  pages, then the initial load, each row handed to a sink
 * pull_changes.cpp the log's window read in rounds, each key's current row
 *                  or tombstone as the caller may see it
 * pull_rel.cpp     the statements pull() runs against one table, prepared
 *                  once per backend, and the keys of the log as typed values
 * pull_output.cpp  the sinks (pull()'s rows, rxdb_pull()'s document) and the
 *                  two SQL entry points
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#pragma once

#include "core/postgres.hpp"
#include "track/key_json.hpp"
#include "track/row_json.hpp"

extern "C" {
#include "access/attnum.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "tcop/dest.h"
#include "utils/hsearch.h"
#include "utils/relcache.h"
}

namespace edgesync::track::pull {

/*
 * What pull() runs against one tracked table, per backend: its key columns
 * and four statements, prepared at first use.  Marked stale by any relcache
 * invalidation of the table (a new primary key, ALTER TABLE, a rename) and
 * rebuilt at the next call; the plans it held are freed at the end of the
 * transaction, when no call can be using them.
 */
struct PullKey {
	AttrNumber attnum;
	Oid type;
	int32 typmod;
	Oid array_type;
	int16 typlen;
	bool typbyval;
	char typalign;
	Oid ioparam;
	FmgrInfo input;
	char *name;
};

struct PullRel {
	Oid relid; /* hash key */
	bool valid;
	MemoryContext context;
	int nkeys;
	PullKey keys[INDEX_MAX_KEYS];
	int natts;			  /* attributes of the table, dropped ones included */
	AttrNumber *selected; /* the attribute of each column the statements return */
	int nselected;
	SPIPlanPtr load_first;	/* the columns of $1 rows in key order */
	SPIPlanPtr load_after;	/* ... after the key ($2, ...) */
	SPIPlanPtr rows;		/* n, then the columns of the row of the n-th key given, or NULLs */
	SPIPlanPtr rows_loaded; /* ... of the keys up to (and including) ($k + 1, ...) */
};

/*
 * The statements for rel, from the cache (built on first use or after a
 * change); SPI connected, search_path pinned.
 */
PullRel *pull_rel_for(Relation rel);

/*
 * The values of the key columns in a key's JSON text (as the log writes
 * keys, or as a cursor carries the last key loaded), read under the
 * settings keys are written under.  False if the text does not name every
 * key column with a value (a key logged before the primary key changed).
 */
bool decode_key(PullRel *pr, const char *json, Datum *values);

/*
 * The members of a key's JSON text (at most INDEX_MAX_KEYS), their text in
 * palloc'd scratch; -1 if it is not a flat object (parse_key_json()).
 */
int key_members(const char *json, KeyMember *members);

/*
 * Runs a kept plan as the caller (read-only, in the statement's snapshot),
 * handing each row to receiver as the executor makes it: no copy of it is
 * kept anywhere.
 */
void run_as_caller(SPIPlanPtr plan, int nargs, const Datum *args, DestReceiver *receiver);

/* A DestReceiver's startup and shutdown that do nothing. */
void receiver_startup(DestReceiver *, int, TupleDesc);
void receiver_shutdown(DestReceiver *);

/* Where a page goes: pull()'s rows, or rxdb_pull()'s documents. */
struct PageSink {
	/*
	 * A row (tombstone: row nullptr); pk_jsonb its key as jsonb if at hand
	 * (else 0: from pk); cursor nullptr where the sink wants none.
	 */
	void (*row)(PageSink *sink, const char *pk, Datum pk_jsonb, ::text *row, int64 version,
				bool deleted, ::text *cursor);
	/* Nothing to show, but the cursor moved past rows the caller cannot see. */
	void (*moved)(PageSink *sink, ::text *cursor);
	bool row_cursors; /* wants a cursor on every row, not only the last */
	bool key_jsonb;	  /* wants each row's key as jsonb */
};

/*
 * The key of a row read by the load (the table's layout), as jsonb: what
 * jsonb_in() makes of its JSON (append_key_json), built from the values of
 * integer and text key columns without writing and parsing that JSON; 0 for
 * keys of other types (the sink then reads the JSON).
 */
Datum key_jsonb_of_row(const PullRel *pr, const Datum *values, const bool *nulls);

/*
 * A position in the log: every change up to (last_xid, last_id) of window
 * delivered, on top of seen; window NULL: every transaction visible in seen
 * delivered.  head is format_cursor_head() of the position.
 */
struct Position {
	const char *seen;
	const char *window;
	int64 last_xid;
	int64 last_id;
	const char *head;
};

/* One row of the page being built from the log. */
struct PageRow {
	const char *pk; /* the key's JSON as logged */
	::text *row;	/* nullptr: a tombstone */
	int64 version;
	Position at;  /* resumes after this row */
	bool removed; /* the key came again later in the page */
};

/* The whole call: what it pulls, where it stands, the page it builds. */
struct Pull {
	FunctionCallInfo fcinfo; /* the entry point's: tracked_rel_for() keeps its cache there */
	Oid relid;
	Relation rel;
	int max;
	const char *incoming; /* the cursor passed, nullptr for NULL */
	char *database;
	char *scope;
	char *now;			/* this call's snapshot */
	MemoryContext cxt;	/* the call's: the page */
	MemoryContext temp; /* reset per round or row */
	PageSink *sink;
	int search_path_level;
	edgesync::track::RowJson writer; /* the table's rows as JSON */
	AttrNumber version_attnum;
	Datum *values; /* a row read, in the table's layout */
	bool *nulls;
	StringInfoData scratch; /* row_json()'s buffer, in cxt */

	/* Where the caller is. */
	bool has_position; /* false: a NULL cursor, the load starts now */
	Position at;
	bool loading;
	char *load; /* the last key loaded (JSON), nullptr before the first */

	PageRow *rows;
	int count, capacity, live;
	HTAB *keys;
};

/* The pull's table of keys (KeyEntry by the key's JSON text), in cxt. */
HTAB *key_table(const char *name, MemoryContext cxt);

/* format_cursor_head() of a position, in the call's memory. */
const char *head_of(Pull *p, const char *seen, const char *window);

/* The cursor that resumes at position at, with load as its load position (nullptr: none). */
::text *cursor_text(const Position *at, const char *load);

/* The columns of a row as the statements return them, from slot column first on, into p->values. */
void unpack_row(Pull *p, const PullRel *pr, TupleTableSlot *slot, int first);

/* The row in p->values as JSON (as row_to_json() writes it), a text datum. */
::text *row_json(Pull *p);

/* The version column of the row in p->values. */
int64 row_version(Pull *p);

/*
 * One round: up to round changes after p->at from the log's window, as the
 * log's owner; the rows and tombstones of their keys as the caller, added
 * to the page.  Returns false when the page is full (p->at: after the last
 * row taken) or when there was nothing left to read; *count: changes read.
 */
bool read_round(Pull *p, int round, int *count, bool *done);

/* Checks pull()'s arguments (max_name: the third one's name); fills p. */
void start_pull(Pull *p, FunctionCallInfo fcinfo, const char *max_name);

/* pull()'s work for both entry points: the page after p->incoming, into p->sink. */
void run_pull(Pull *p);

} // namespace edgesync::track::pull
