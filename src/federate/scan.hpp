/*
 * scan.hpp — the state of one federated scan, shared by fdw.cpp (planner and
 * executor callbacks) and merge.cpp (what the scan returns).
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/relcache.h"
}

namespace edgesync::federate {

struct FederatedScan {
	/* From the foreign table's options. */
	char *server;		 /* the postgres_fdw server's name */
	char *remote_table;	 /* schema-qualified and quoted */
	char *replica_table; /* schema-qualified and quoted */
	bool visible_rows_only; /* federate(visible_rows_only => true) */

	Oid userid; /* whose user mapping and privileges (the view's owner) */
	TupleDesc tupdesc;

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

	/* The answer, built at the first fetch in cxt and returned row by row. */
	MemoryContext cxt;
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

/* Builds s->tuples: the merge of the hospital's rows and the replica's. */
void build_answer(FederatedScan *s, Datum *param_values, bool *param_nulls);

} // namespace edgesync::federate
