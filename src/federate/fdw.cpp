/*
 * fdw.cpp — the foreign-data wrapper edgesync_federate: a federated table
 * that merges a hospital's live table with its replica on the cloud.
 *
 * edgesync.federate() (federate.sql) creates one foreign table per replica,
 * with the replica's columns plus _source and _version, and a view over it.
 * Its options name the postgres_fdw server whose connection settings and
 * user mappings reach the hospital, the remote table, and the replica.
 *
 *   planner   filters that both servers understand (deparse.hpp) become one
 *             WHERE clause, sent to the hospital and used on the replica;
 *             every filter is also checked on the merged rows.  Only the
 *             columns the query uses are fetched (and the key and version).
 *             count(*) of the view alone is answered by one statement at
 *             the hospital (aggregate.cpp).
 *   executor  at the first fetch, merge.cpp builds the whole answer in
 *             memory, or, for a scan without filter, stream.cpp starts a
 *             merge in key order; rows are then returned one by one.  A
 *             rescan (new parameters) starts again.
 *   EXPLAIN   VERBOSE shows the hospital's and the replica's SQL and how they
 *             are merged; ANALYZE also shows who answered.
 *
 * The callbacks are C-style code run under pg_call(): they own no C++
 * objects.
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "federate/deparse.hpp"
#include "federate/remote.hpp"
#include "federate/scan.hpp"

#include <cstring>

extern "C" {
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_foreign_table.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/paths.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(edgesync_federate_handler);
PG_FUNCTION_INFO_V1(edgesync_federate_validator);
}

namespace edgesync::federate {

namespace {

/* The foreign table's options. */
struct TableOptions {
	char *server;
	char *schema_name;
	char *table_name;
	char *replica_schema;
	char *replica_table;
	bool visible_rows_only; /* optional */
};

const char *const table_option_names[] = {"server",			"schema_name",	 "table_name",
										  "replica_schema", "replica_table", "visible_rows_only"};

TableOptions
table_options(Oid relid)
{
	TableOptions o{};
	ForeignTable *ft = GetForeignTable(relid);
	ListCell *lc;
	foreach (lc, ft->options) {
		DefElem *d = lfirst_node(DefElem, lc);
		char *v = defGetString(d);
		if (strcmp(d->defname, "server") == 0)
			o.server = v;
		else if (strcmp(d->defname, "schema_name") == 0)
			o.schema_name = v;
		else if (strcmp(d->defname, "table_name") == 0)
			o.table_name = v;
		else if (strcmp(d->defname, "replica_schema") == 0)
			o.replica_schema = v;
		else if (strcmp(d->defname, "replica_table") == 0)
			o.replica_table = v;
		else if (strcmp(d->defname, "visible_rows_only") == 0)
			o.visible_rows_only = defGetBoolean(d);
	}
	if (!o.server || !o.schema_name || !o.table_name || !o.replica_schema || !o.replica_table)
		ereport(ERROR, (errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						errmsg("federated table \"%s\" lacks an option", get_rel_name(relid)),
						errhint("Create federated tables with edgesync.federate().")));
	return o;
}

Oid
replica_relid(const TableOptions &o)
{
	return get_relname_relid(o.replica_table, get_namespace_oid(o.replica_schema, false));
}

/*
 * What a scan needs to know about a federated table and its replica, cached
 * per backend and dropped when either relation changes (relcache
 * invalidation): options, the replica and its primary key.
 */
struct RelInfo {
	Oid relid; /* hash key: the foreign table */
	bool valid;
	MemoryContext cxt; /* everything below */
	char *server;
	char *remote_table;	 /* quoted */
	char *replica_table; /* quoted */
	bool visible_rows_only;
	Oid replica;	 /* InvalidOid: it does not exist */
	List *key_names; /* the replica's primary key columns */
};
HTAB *rel_infos = nullptr;

void
invalidate_rel_info(Datum, Oid relid)
{
	HASH_SEQ_STATUS seq;
	hash_seq_init(&seq, rel_infos);
	for (RelInfo *r; (r = static_cast<RelInfo *>(hash_seq_search(&seq))) != nullptr;)
		if (relid == InvalidOid || r->relid == relid || r->replica == relid)
			r->valid = false;
}

const RelInfo *
rel_info(Oid relid)
{
	if (rel_infos == nullptr) {
		HASHCTL ctl = {};
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelInfo);
		ctl.hcxt = CacheMemoryContext;
		rel_infos = hash_create("edgesync federated tables", 16, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(invalidate_rel_info, 0);
	}
	bool found;
	RelInfo *r = static_cast<RelInfo *>(hash_search(rel_infos, &relid, HASH_ENTER, &found));
	if (found && r->valid)
		return r;
	if (found && r->cxt != nullptr)
		MemoryContextDelete(r->cxt);
	r->valid = false;
	r->cxt = nullptr;
	r->replica = InvalidOid;

	MemoryContext cxt =
		AllocSetContextCreate(CacheMemoryContext, "edgesync federated table", ALLOCSET_SMALL_SIZES);
	r->cxt = cxt;
	/* Built in cxt: an error below leaves an invalid entry, rebuilt next time. */
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TableOptions o = table_options(relid);
	r->server = pstrdup(o.server);
	r->remote_table = pstrdup(quote_qualified_identifier(o.schema_name, o.table_name));
	r->replica_table = pstrdup(quote_qualified_identifier(o.replica_schema, o.replica_table));
	r->visible_rows_only = o.visible_rows_only;
	r->replica = replica_relid(o);
	r->key_names = NIL;
	if (OidIsValid(r->replica)) {
		Oid constraint;
		Bitmapset *pk = get_primary_key_attnos(r->replica, false, &constraint);
		int member = -1;
		while ((member = bms_next_member(pk, member)) >= 0)
			r->key_names = lappend(
				r->key_names,
				get_attname(r->replica, member + FirstLowInvalidHeapAttributeNumber, false));
	}
	MemoryContextSwitchTo(old);
	r->valid = true;
	return r;
}

/* Remote column names by attno - 1: _version is the hospital's "version". */
char **
remote_names(TupleDesc desc)
{
	char **names = static_cast<char **>(palloc0(sizeof(char *) * (desc->natts + 1)));
	for (int a = 0; a < desc->natts; a++) {
		const char *n = NameStr(TupleDescAttr(desc, a)->attname);
		names[a] = pstrdup(strcmp(n, "_version") == 0 ? "version" : n);
	}
	return names;
}

/* Planner: estimate rows from the replica's size and the filters. */
void
get_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Oid replica = rel_info(foreigntableid)->replica;
	double tuples = 1000;
	if (OidIsValid(replica)) {
		Relation r = table_open(replica, AccessShareLock);
		if (r->rd_rel->reltuples >= 0)
			tuples = Max(r->rd_rel->reltuples, 1);
		table_close(r, AccessShareLock);
	}
	baserel->tuples = tuples;
	Selectivity sel = clauselist_selectivity(root, baserel->baserestrictinfo, baserel->relid,
											 JOIN_INNER, nullptr);
	baserel->rows = clamp_row_est(tuples * sel);
}

/* A round trip to the hospital, then rows from memory. */
void
add_scan_path(PlannerInfo *root, RelOptInfo *baserel, double rows, Relids required_outer)
{
	Cost startup = 100.0;
	Cost total = startup + rows * cpu_tuple_cost * 4;
	add_path(baserel, reinterpret_cast<Path *>(edgesync::foreign_scan_path(
						  root, baserel, rows, startup, total, required_outer)));
}

/* Does an equivalence class member name one of our columns? */
bool
is_our_member(PlannerInfo *, RelOptInfo *baserel, EquivalenceClass *, EquivalenceMember *em, void *)
{
	Expr *e = em->em_expr;
	while (IsA(e, RelabelType))
		e = reinterpret_cast<RelabelType *>(e)->arg;
	return IsA(e, Var) && reinterpret_cast<Var *>(e)->varno == static_cast<int>(baserel->relid) &&
		   reinterpret_cast<Var *>(e)->varlevelsup == 0;
}

/*
 * The plain path, and one parameterized path per join clause that can be
 * sent to the hospital: `p.id = v.patient_id` in a nested loop asks for one
 * patient per outer row instead of reading the whole table.
 */
void
get_paths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	add_scan_path(root, baserel, baserel->rows, nullptr);

	AttrNumber source = get_attnum(foreigntableid, "_source");

	List *clauses = NIL;
	ListCell *lc;
	foreach (lc, baserel->joininfo)
		clauses = lappend(clauses, lfirst(lc));
	if (baserel->has_eclass_joins)
		clauses = list_concat(
			clauses, generate_implied_equalities_for_column(root, baserel, is_our_member, nullptr,
															baserel->lateral_referencers));
	List *done = NIL;
	foreach (lc, clauses) {
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		if (!join_clause_is_movable_to(ri, baserel) ||
			!is_pushable(ri->clause, baserel->relid, source))
			continue;
		Relids outer = bms_union(ri->clause_relids, baserel->lateral_relids);
		outer = bms_del_member(outer, baserel->relid);
		if (bms_is_empty(outer))
			continue;
		bool seen = false;
		ListCell *dc;
		foreach (dc, done)
			seen = seen || bms_equal(static_cast<Relids>(lfirst(dc)), outer);
		if (seen)
			continue;
		done = lappend(done, outer);
		ParamPathInfo *ppi = get_baserel_parampathinfo(root, baserel, outer);
		add_scan_path(root, baserel, ppi->ppi_rows, outer);
	}
}

/* count(*) of the view alone, pushed down when the answer is the same (aggregate.cpp). */
void
get_upper_paths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel,
				RelOptInfo *output_rel)
{
	if (stage != UPPERREL_GROUP_AGG || input_rel->reloptkind != RELOPT_BASEREL)
		return;
	Oid relid = planner_rt_fetch(input_rel->relid, root)->relid;
	add_count_path(root, input_rel, output_rel, rel_info(relid)->visible_rows_only);
}

ForeignScan *
get_plan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid, ForeignPath *best_path,
		 List *tlist, List *scan_clauses, Plan *outer_plan)
{
	if (baserel->reloptkind == RELOPT_UPPER_REL)
		return count_plan(tlist, outer_plan);

	Relation rel = table_open(foreigntableid, NoLock);
	TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(rel));
	AttrNumber source = get_attnum(foreigntableid, "_source");
	char **names = remote_names(desc);
	table_close(rel, NoLock);

	StringInfoData where;
	initStringInfo(&where);
	List *params = NIL;
	ListCell *lc;
	int nestlevel = set_transmission_modes();
	foreach (lc, scan_clauses) {
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		if (ri->pseudoconstant || !is_pushable(ri->clause, baserel->relid, source))
			continue;
		appendStringInfoString(&where, where.len == 0 ? " WHERE " : " AND ");
		deparse_clause(&where, ri->clause, baserel->relid, names, &params);
	}
	reset_transmission_modes(nestlevel);
	/*
	 * The columns the query uses (output and filters); the scan also fetches
	 * the key and version, and returns NULL in the others.
	 */
	Bitmapset *used = nullptr;
	pull_varattnos(reinterpret_cast<Node *>(baserel->reltarget->exprs), baserel->relid, &used);
	foreach (lc, scan_clauses)
		pull_varattnos(reinterpret_cast<Node *>(lfirst_node(RestrictInfo, lc)->clause),
					   baserel->relid, &used);
	bool whole_row = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, used);
	List *columns = NIL;
	for (int a = 1; a <= desc->natts; a++)
		if (whole_row || bms_is_member(a - FirstLowInvalidHeapAttributeNumber, used))
			columns = lappend_int(columns, a);

	/* Every filter is checked again on the merged rows. */
	List *local = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, local, baserel->relid, params,
							list_make2(makeString(where.data), columns), NIL, NIL, outer_plan);
}

void
begin_scan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = reinterpret_cast<ForeignScan *>(node->ss.ps.plan);
	EState *estate = node->ss.ps.state;
	Relation rel = node->ss.ss_currentRelation;
	FederatedScan *s = static_cast<FederatedScan *>(palloc0(sizeof(FederatedScan)));

	/* A pushed-down count(*) scans no relation: the federated table is its one base relation. */
	s->aggregate = plan->scan.scanrelid == 0;
	Index rti = s->aggregate ? bms_next_member(plan->fs_relids, -1) : plan->scan.scanrelid;
	RangeTblEntry *rte = exec_rt_fetch(rti, estate);
	s->userid = edgesync::foreign_scan_user(node);
	const RelInfo *info = rel_info(rte->relid);
	s->server = pstrdup(info->server);
	s->remote_table = pstrdup(info->remote_table);
	s->replica_table = pstrdup(info->replica_table);
	s->visible_rows_only = info->visible_rows_only;
	if (s->aggregate) {
		s->tupdesc = node->ss.ss_ScanTupleSlot->tts_tupleDescriptor;
		s->scan_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rte->relid)),
												  get_rel_name(rte->relid));
		node->fdw_state = s;
		return;
	}
	s->tupdesc = RelationGetDescr(rel);

	/* The primary key is the replica's. */
	if (!OidIsValid(info->replica))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("replica table %s of federated table \"%s\" does not exist",
							   s->replica_table, RelationGetRelationName(rel))));
	List *key_names = NIL;
	ListCell *kn;
	foreach (kn, info->key_names)
		key_names = lappend(key_names, pstrdup(static_cast<char *>(lfirst(kn))));

	/* The data columns: those the query uses, the key and the version. */
	List *used = static_cast<List *>(lsecond(plan->fdw_private));
	int natts = s->tupdesc->natts;
	s->cols = static_cast<AttrNumber *>(palloc(sizeof(AttrNumber) * natts));
	s->names = static_cast<char **>(palloc(sizeof(char *) * natts));
	s->input = static_cast<FmgrInfo *>(palloc(sizeof(FmgrInfo) * natts));
	s->output = static_cast<FmgrInfo *>(palloc(sizeof(FmgrInfo) * natts));
	s->ioparams = static_cast<Oid *>(palloc(sizeof(Oid) * natts));
	s->keys = static_cast<int *>(palloc(sizeof(int) * (list_length(key_names) + 1)));
	s->version = -1;
	for (int a = 0; a < natts; a++) {
		Form_pg_attribute att = TupleDescAttr(s->tupdesc, a);
		const char *name = NameStr(att->attname);
		if (att->attisdropped)
			continue;
		if (strcmp(name, "_source") == 0) {
			s->source_attno = att->attnum;
			continue;
		}
		if (strcmp(name, "_version") == 0) {
			s->version_attno = att->attnum;
			continue;
		}
		bool is_key = false;
		ListCell *kc;
		foreach (kc, key_names)
			is_key = is_key || strcmp(static_cast<char *>(lfirst(kc)), name) == 0;
		bool is_version = strcmp(name, "version") == 0;
		if (!is_key && !is_version && !list_member_int(used, att->attnum))
			continue;
		int i = s->ncols++;
		s->cols[i] = att->attnum;
		s->names[i] = pstrdup(quote_identifier(name));
		Oid input;
		getTypeInputInfo(att->atttypid, &input, &s->ioparams[i]);
		fmgr_info(input, &s->input[i]);
		Oid output;
		bool varlena;
		getTypeOutputInfo(att->atttypid, &output, &varlena);
		fmgr_info(output, &s->output[i]);
		if (is_version)
			s->version = i;
		if (is_key)
			s->keys[s->nkeys++] = i;
	}
	if (s->source_attno == 0 || s->version_attno == 0 || s->version < 0)
		ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
						errmsg("federated table \"%s\" lacks column _source, _version or version",
							   RelationGetRelationName(rel)),
						errhint("Create federated tables with edgesync.federate().")));
	if (s->nkeys == 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("replica table %s has no primary key", s->replica_table)));

	s->where = strVal(linitial(plan->fdw_private));
	s->nparams = list_length(plan->fdw_exprs);
	s->param_states = ExecInitExprList(plan->fdw_exprs, reinterpret_cast<PlanState *>(node));
	s->param_types = static_cast<Oid *>(palloc(sizeof(Oid) * (s->nparams + 1)));
	int p = 0;
	ListCell *lc;
	foreach (lc, plan->fdw_exprs)
		s->param_types[p++] = exprType(static_cast<Node *>(lfirst(lc)));

	s->hospital_text = CStringGetTextDatum("hospital");
	s->replica_text = CStringGetTextDatum("replica");
	s->unverified_text = CStringGetTextDatum("replica_unverified");
	s->stream = can_stream(s);
	s->cxt = AllocSetContextCreate(estate->es_query_cxt, "edgesync federated scan",
								   ALLOCSET_DEFAULT_SIZES);
	node->fdw_state = s;
}

TupleTableSlot *
iterate_scan(ForeignScanState *node)
{
	FederatedScan *s = static_cast<FederatedScan *>(node->fdw_state);
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	if (s->aggregate) {
		if (!count_next(s, slot))
			ExecClearTuple(slot);
		return slot;
	}
	if (!s->built && s->stream) {
		s->stream = stream_start(s);
		s->built = s->stream;
	}
	if (s->stream) {
		if (!stream_next(s, slot))
			ExecClearTuple(slot);
		return slot;
	}
	if (!s->built) {
		ExprContext *econtext = node->ss.ps.ps_ExprContext;
		MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * (s->nparams + 1)));
		bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * (s->nparams + 1)));
		int p = 0;
		ListCell *lc;
		foreach (lc, s->param_states) {
			values[p] = ExecEvalExpr(static_cast<ExprState *>(lfirst(lc)), econtext, &nulls[p]);
			p++;
		}
		MemoryContextSwitchTo(old);
		build_answer(s, values, nulls);
	}
	ExecClearTuple(slot);
	if (s->next < s->ntuples)
		ExecStoreHeapTuple(s->tuples[s->next++], slot, false);
	return slot;
}

void
rescan(ForeignScanState *node)
{
	FederatedScan *s = static_cast<FederatedScan *>(node->fdw_state);
	s->built = false;
	if (s->aggregate)
		return;
	stream_stop(s);
	MemoryContextReset(s->cxt);
	s->tuples = nullptr;
	s->ntuples = s->next = 0;
}

void
end_scan(ForeignScanState *node)
{
	/* Memory is the query's and connections stay cached; a cursor is closed now. */
	FederatedScan *s = static_cast<FederatedScan *>(node->fdw_state);
	if (s != nullptr && !s->aggregate)
		stream_stop(s);
}

char *
select_sql(FederatedScan *s, const char *table)
{
	StringInfoData sql;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < s->ncols; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "", s->names[i]);
	appendStringInfo(&sql, " FROM %s%s", table, s->where);
	if (s->stream)
		append_order_by(&sql, s);
	return sql.data;
}

void
explain_scan(ForeignScanState *node, ExplainState *es)
{
	FederatedScan *s = static_cast<FederatedScan *>(node->fdw_state);
	if (s->aggregate)
		edgesync::explain_property_text("Relations", psprintf("Aggregate on (%s)", s->scan_name),
										es);
	if (s->aggregate && edgesync::explain_verbose(es)) {
		edgesync::explain_property_text("Hospital Server", s->server, es);
		edgesync::explain_property_text("Remote SQL", count_sql(s->remote_table), es);
		edgesync::explain_property_text("Replica SQL", count_sql(s->replica_table), es);
	}
	if (!s->aggregate && edgesync::explain_verbose(es)) {
		edgesync::explain_property_text("Hospital Server", s->server, es);
		edgesync::explain_property_text("Remote SQL", select_sql(s, s->remote_table), es);
		edgesync::explain_property_text("Replica SQL", select_sql(s, s->replica_table), es);
		edgesync::explain_property_text("Merge", s->stream ? "in key order" : "in memory", es);
	}
	if (edgesync::explain_analyze(es) && s->built)
		edgesync::explain_property_text("Answered By",
										!s->reachable ? "replica alone"
										: s->rows_hidden
											? "hospital (rows it hides: replica) and replica"
											: "hospital and replica",
										es);
}

} // namespace

} // namespace edgesync::federate

using namespace edgesync;

/* The wrapper's callbacks, each run under pg_call (PostgreSQL errors pass through). */
namespace {

void
cb_get_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid relid)
{
	guarded([&] { pg_call([&] { federate::get_rel_size(root, baserel, relid); }); });
}

void
cb_get_paths(PlannerInfo *root, RelOptInfo *baserel, Oid relid)
{
	guarded([&] { pg_call([&] { federate::get_paths(root, baserel, relid); }); });
}

ForeignScan *
cb_get_plan(PlannerInfo *root, RelOptInfo *baserel, Oid relid, ForeignPath *best_path, List *tlist,
			List *scan_clauses, Plan *outer_plan)
{
	return guarded([&] {
		return pg_call([&] {
			return federate::get_plan(root, baserel, relid, best_path, tlist, scan_clauses,
									  outer_plan);
		});
	});
}

void
cb_get_upper_paths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel,
				   RelOptInfo *output_rel, void *)
{
	guarded(
		[&] { pg_call([&] { federate::get_upper_paths(root, stage, input_rel, output_rel); }); });
}

void
cb_begin(ForeignScanState *node, int eflags)
{
	guarded([&] { pg_call([&] { federate::begin_scan(node, eflags); }); });
}

TupleTableSlot *
cb_iterate(ForeignScanState *node)
{
	return guarded([&] { return pg_call([&] { return federate::iterate_scan(node); }); });
}

void
cb_rescan(ForeignScanState *node)
{
	guarded([&] { pg_call([&] { federate::rescan(node); }); });
}

void
cb_end(ForeignScanState *node)
{
	guarded([&] { pg_call([&] { federate::end_scan(node); }); });
}

void
cb_explain(ForeignScanState *node, ExplainState *es)
{
	guarded([&] { pg_call([&] { federate::explain_scan(node, es); }); });
}

} // namespace

Datum
edgesync_federate_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);
	r->GetForeignRelSize = cb_get_rel_size;
	r->GetForeignPaths = cb_get_paths;
	r->GetForeignPlan = cb_get_plan;
	r->GetForeignUpperPaths = cb_get_upper_paths;
	r->BeginForeignScan = cb_begin;
	r->IterateForeignScan = cb_iterate;
	r->ReScanForeignScan = cb_rescan;
	r->EndForeignScan = cb_end;
	r->ExplainForeignScan = cb_explain;
	PG_RETURN_POINTER(r);
}

/* Options: only a foreign table's, and only those federate() sets. */
Datum
edgesync_federate_validator(PG_FUNCTION_ARGS)
{
	List *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid catalog = PG_GETARG_OID(1);
	ListCell *lc;
	foreach (lc, options) {
		DefElem *d = lfirst_node(DefElem, lc);
		bool known = false;
		if (catalog == ForeignTableRelationId)
			for (const char *name : federate::table_option_names)
				known = known || strcmp(d->defname, name) == 0;
		if (!known)
			ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
							errmsg("invalid option \"%s\"", d->defname),
							errhint("edgesync_federate takes only the options of foreign tables "
									"that edgesync.federate() creates.")));
	}
	PG_RETURN_VOID();
}
