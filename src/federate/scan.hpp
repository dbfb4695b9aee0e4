/*
 * scan.hpp — the state of one federated scan, shared by fdw.cpp (planner and
 * executor callbacks), merge.cpp (the merge in memory), stream.cpp (the merge
 * in key order) and aggregate.cpp (count(*) pushed down).
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "utils/relcache.h"
}

namespace edgesync::federate {

struct StreamState; /* stream.cpp */

struct FederatedScan {
	/* From the foreign table's options. */
	char *server;			/* the postgres_fdw server's name */
	char *remote_table;		/* schema-qualified and quoted */
	char *replica_table;	/* schema-qualified and quoted */
	bool visible_rows_only; /* federate(visible_rows_only => true) */

	Oid userid; /* whose user mapping and privileges (the view's owner) */
	TupleDesc tupdesc;

	bool aggregate;	 /* a count(*) pushed down (aggregate.cpp): only the fields above */
	char *scan_name; /* ... and the federated table's name, for EXPLAIN */

	/* The data columns (the replica's), by their index i in cols. */
	int ncols;
	AttrNumber *cols; /* attno in the federated table */
	char **names;	  /* quoted column names */
	FmgrInfo *input;  /* type input functions for the hospital's text */
	FmgrInfo *output; /* type output functions, for keys */
	Oid *ioparams;
	int nkeys;
	int *keys;	 /* the primary key, as indexes into cols */
	int version; /* index of "version" in cols */
	AttrNumber source_attno;
	AttrNumber version_attno;

	/* From the plan: the pushed-down filter and its parameters. */
	char *where; /* "" or " WHERE ..." */
	int nparams;
	List *param_states; /* ExprState per $n */
	Oid *param_types;

	/*
	 * The answer, made at the first fetch: merged in memory (tuples, built in
	 * cxt), or streamed in key order (stream_state).
	 */
	MemoryContext cxt;
	bool stream; /* merge in key order (can_stream()) */
	StreamState *stream_state;
	bool built;
	HeapTuple *tuples;
	int ntuples;
	int next;
	bool reachable;		 /* did the hospital answer? */
	bool rows_hidden;	 /* ... with row level security limiting the mapped role */
	Datum hospital_text; /* the values of _source */
	Datum replica_text;
	Datum unverified_text;
};

/* merge.cpp: builds s->tuples, the merge of the hospital's rows and the replica's. */
void build_answer(FederatedScan *s, Datum *param_values, bool *param_nulls);

/* merge.cpp: the WARNINGs of an answer from the replica alone. */
void warn_unreachable(FederatedScan *s, const char *why);
void warn_rows_hidden(FederatedScan *s);

/* merge.cpp: runs sql on the replica as the view's owner; returns SPI_processed. */
int replica_query(FederatedScan *s, const char *sql, int nargs, Oid *types, Datum *values,
				  const char *nulls);

/* stream.cpp: edgesync.federate_streaming. */
extern bool streaming;

/*
 * stream.cpp: can s be merged in key order?  An unfiltered scan whose
 * primary key both servers sort alike.
 */
bool can_stream(const FederatedScan *s);

/*
 * stream.cpp: asks both sides for their rows in key order.  False if the
 * merge cannot stream after all (the hospital's encoding differs for a text
 * key, or its rows did not arrive in our key order): the caller then builds
 * the answer in memory.
 */
bool stream_start(FederatedScan *s);

/* stream.cpp: appends " ORDER BY" the key, in the order both servers share. */
void append_order_by(StringInfo sql, const FederatedScan *s);

/* stream.cpp: the next row of the answer into slot; false at its end. */
bool stream_next(FederatedScan *s, TupleTableSlot *slot);

/* stream.cpp: closes the replica's cursor and drops the hospital's rows. */
void stream_stop(FederatedScan *s);

/*
 * aggregate.cpp: adds to output_rel the path of a count(*) answered by one
 * statement, when the view's answer is provably the hospital's count(*).
 */
void add_count_path(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
					bool visible_rows_only);

/* aggregate.cpp: the plan of that path (tlist: the query's, made of count(*)s). */
ForeignScan *count_plan(List *tlist, Plan *outer_plan);

/* aggregate.cpp: "SELECT count(*) FROM table". */
char *count_sql(const char *table);

/* aggregate.cpp: the one row of a pushed-down count(*) into slot; false after it. */
bool count_next(FederatedScan *s, TupleTableSlot *slot);

} // namespace edgesync::federate
