/*
 * aggregate.cpp — count(*) of a federated view without reading its rows.
 *
 * Without a filter, a federated scan returns one row per row of the
 * hospital's table: per key, the live row or the replica's fresher one; a
 * key only the replica has was deleted at the hospital and returns nothing.
 * So the view's count(*) is the hospital's count(*), one statement there,
 * when the hospital answers and shows the mapped role every row.  When it
 * does not (unreachable, failing, or row level security hiding rows), a scan
 * answers from the replica alone, and so does this: the replica's count(*),
 * after the same WARNING.
 *
 * Pushed down: a query on the federated view alone, without WHERE, GROUP BY
 * or HAVING, whose aggregates are all count(*) (plain, without FILTER or
 * DISTINCT; expressions over them are computed here).  Not pushed down: a
 * view made with visible_rows_only (it also returns replica rows the hospital
 * does not show), and any other aggregate (a value may come from either
 * side).
 *
 * C-style code (no C++ objects): PostgreSQL errors may pass through it.
 */
#include "core/pg_compat.hpp"
#include "federate/remote.hpp"
#include "federate/scan.hpp"

#include <cstring>

extern "C" {
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/tlist.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
}

namespace edgesync::federate {

namespace {

/* pull_var_clause(): every column, aggregate, window function and placeholder. */
constexpr int pull_everything =
	PVC_INCLUDE_AGGREGATES | PVC_INCLUDE_WINDOWFUNCS | PVC_INCLUDE_PLACEHOLDERS;

/* A plain count(*) of this query level. */
bool
is_count_star(Node *node)
{
	if (!IsA(node, Aggref))
		return false;
	Aggref *agg = reinterpret_cast<Aggref *>(node);
	return agg->aggfnoid == F_COUNT_ && agg->aggstar && agg->aggfilter == nullptr &&
		   agg->aggdistinct == NIL && agg->aggorder == NIL && agg->agglevelsup == 0 &&
		   agg->aggsplit == AGGSPLIT_SIMPLE;
}

} // namespace

void
add_count_path(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
			   bool visible_rows_only)
{
	Query *parse = root->parse;
	if (visible_rows_only || input_rel->reloptkind != RELOPT_BASEREL ||
		input_rel->baserestrictinfo != NIL || parse->groupClause != NIL ||
		parse->groupingSets != NIL || parse->havingQual != nullptr)
		return;
	PathTarget *target = root->upper_targets[UPPERREL_GROUP_AGG];
	ListCell *lc;
	foreach (lc, target->exprs) {
		/* Only count(*), bare or in an expression computed here; no column. */
		List *parts = pull_var_clause(static_cast<Node *>(lfirst(lc)), pull_everything);
		ListCell *pc;
		foreach (pc, parts)
			if (!is_count_star(static_cast<Node *>(lfirst(pc))))
				return;
	}
	/* One statement at the hospital, one row back. */
	Cost startup = 100.0;
	Cost total = startup + cpu_tuple_cost;
	add_path(output_rel, reinterpret_cast<Path *>(edgesync::foreign_upper_path(
							 root, output_rel, target, 1, startup, total)));
}

ForeignScan *
count_plan(List *tlist, Plan *outer_plan)
{
	/* The scan's own row is the aggregates; the tlist's expressions are made of them. */
	List *aggregates = NIL;
	ListCell *lc;
	foreach (lc, tlist) {
		List *parts = pull_var_clause(reinterpret_cast<Node *>(lfirst_node(TargetEntry, lc)->expr),
									  pull_everything);
		aggregates = add_to_flat_tlist(aggregates, parts);
	}
	return make_foreignscan(tlist, NIL, 0, NIL, NIL, aggregates, NIL, outer_plan);
}

char *
count_sql(const char *table)
{
	return psprintf("SELECT pg_catalog.count(*) FROM %s", table);
}

bool
count_next(FederatedScan *s, TupleTableSlot *slot)
{
	if (s->built)
		return false;
	s->built = true;
	char *why = nullptr;
	int64 count = 0;
	s->reachable = false;
	s->rows_hidden = false;
	PGconn *conn = nullptr;
	if (remote_failed_this_statement(s->server))
		why = pstrdup("It failed earlier in this statement.");
	else
		conn = remote_connect(s->server, s->userid, false, &why);
	if (conn != nullptr) {
		char *sql = psprintf("SELECT pg_catalog.count(*), "
							 "pg_catalog.row_security_active(%s::pg_catalog.regclass) FROM %s",
							 quote_literal_cstr(s->remote_table), s->remote_table);
		PGresult *res = remote_exec(conn, sql, 0, nullptr, &why);
		if (res != nullptr && PQntuples(res) == 1 && PQnfields(res) == 2) {
			s->reachable = true;
			s->rows_hidden = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
			/* Parsed before PQclear: an error here would leak the result. */
			char *text = pstrdup(PQgetvalue(res, 0, 0));
			PQclear(res);
			count = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(text)));
		} else if (res != nullptr) {
			PQclear(res);
			why = pstrdup("The hospital's answer has an unexpected shape.");
		}
	}
	if (s->rows_hidden)
		warn_rows_hidden(s); /* sets s->reachable = false */
	else if (!s->reachable)
		warn_unreachable(s, why);
	if (!s->reachable) {
		SPI_connect();
		replica_query(s, count_sql(s->replica_table), 0, nullptr, nullptr, nullptr);
		bool isnull;
		count =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	ExecClearTuple(slot);
	for (int a = 0; a < slot->tts_tupleDescriptor->natts; a++) {
		slot->tts_values[a] = Int64GetDatum(count);
		slot->tts_isnull[a] = false;
	}
	ExecStoreVirtualTuple(slot);
	return true;
}

} // namespace edgesync::federate
