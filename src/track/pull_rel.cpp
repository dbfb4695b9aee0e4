/*
 * pull_rel.cpp — the statements pull() runs against one tracked table: the
 * load's pages in key order, and the rows of a list of keys (the change
 * pages), prepared once per table and backend; and the keys of the change
 * log (JSON text) read back as typed values for them.
 *
 * Rows are looked up through the primary key's index with typed values: the
 * log's keys are read back under the settings they were written under, and
 * compared with the operators of the index's operator classes, named with
 * their schema, so no operator of the caller's search_path is ever called.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/pg_compat.hpp"
#include "track/key_json.hpp"
#include "track/pull.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/xact.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace edgesync::track::pull {

namespace {

HTAB *pull_rels = nullptr;
List *stale_plans = NIL; /* in TopMemoryContext, freed at the end of the transaction */

void
on_relcache_invalidation(Datum, Oid relid)
{
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, pull_rels);
	for (PullRel *e; (e = static_cast<PullRel *>(hash_seq_search(&status))) != nullptr;)
		if (relid == InvalidOid || e->relid == relid)
			e->valid = false;
}

void
on_transaction_end(XactEvent event, void *)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	ListCell *lc;
	foreach (lc, stale_plans)
		SPI_freeplan(static_cast<SPIPlanPtr>(lfirst(lc)));
	list_free(stale_plans);
	stale_plans = NIL;
}

void
retire(SPIPlanPtr *plan)
{
	if (*plan != nullptr) {
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		stale_plans = lappend(stale_plans, *plan);
		MemoryContextSwitchTo(old);
	}
	*plan = nullptr;
}

/* OPERATOR(schema.name) of the operator opno. */
void
append_operator(StringInfo sql, Oid opno)
{
	HeapTuple tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	Form_pg_operator op = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tuple));
	appendStringInfo(sql, "OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					 NameStr(op->oprname));
	ReleaseSysCache(tuple);
}

/* The operator of btree strategy of the primary key's i-th column. */
Oid
key_operator(Relation index, int i, int16 strategy)
{
	Oid opno = get_opfamily_member(index->rd_opfamily[i], index->rd_opcintype[i],
								   index->rd_opcintype[i], strategy);
	if (!OidIsValid(opno))
		elog(ERROR, "missing operator %d(%u,%u) in opfamily %u", strategy, index->rd_opcintype[i],
			 index->rd_opcintype[i], index->rd_opfamily[i]);
	return opno;
}

/*
 * Appends "(lhs...) op (rhs...)" in key order, op the strategy strict (less
 * or greater), or_equal adding equality: ROW(...) OPERATOR(x.op) ROW(...)
 * where one operator name serves every column, else spelled out column by
 * column.  lhs is "alias.column" (qualified by alias) or "k<i>" (alias
 * NULL: the unnest's columns); rhs the parameters $first, $first + 1, ...
 */
void
append_key_comparison(StringInfo sql, Relation index, PullRel *pr, const char *alias,
					  int16 strategy, bool or_equal, int first)
{
	int16 op_strategy = or_equal ? (strategy == BTLessStrategyNumber ? BTLessEqualStrategyNumber
																	 : BTGreaterEqualStrategyNumber)
								 : strategy;
	auto lhs = [&](int i) {
		if (alias != nullptr)
			appendStringInfo(sql, "%s.%s", alias, quote_identifier(pr->keys[i].name));
		else
			appendStringInfo(sql, "k.k%d", i + 1);
	};
	/* One operator name for all columns: a row comparison, which the index can start at. */
	StringInfoData first_op, op;
	initStringInfo(&first_op);
	initStringInfo(&op);
	bool same = true;
	for (int i = 0; i < pr->nkeys; i++) {
		resetStringInfo(&op);
		append_operator(&op, key_operator(index, i, op_strategy));
		if (i == 0)
			appendStringInfoString(&first_op, op.data);
		else
			same = same && strcmp(op.data, first_op.data) == 0;
	}
	if (same) {
		appendStringInfoString(sql, "ROW(");
		for (int i = 0; i < pr->nkeys; i++) {
			if (i > 0)
				appendStringInfoString(sql, ", ");
			lhs(i);
		}
		appendStringInfo(sql, ") %s ROW(", first_op.data);
		for (int i = 0; i < pr->nkeys; i++)
			appendStringInfo(sql, "%s$%d", i > 0 ? ", " : "", first + i);
		appendStringInfoChar(sql, ')');
		return;
	}
	/*
	 * Column by column: a1 >= $1 AND (a1 > $1 OR (a1 = $1 AND (a2 > $2 OR ...))),
	 * the last column compared with op_strategy; the first conjunct for the index.
	 */
	lhs(0);
	appendStringInfoChar(sql, ' ');
	append_operator(sql,
					key_operator(index, 0,
								 strategy == BTLessStrategyNumber ? BTLessEqualStrategyNumber
																  : BTGreaterEqualStrategyNumber));
	appendStringInfo(sql, " $%d AND ", first);
	for (int i = 0; i < pr->nkeys; i++) {
		bool last = i == pr->nkeys - 1;
		appendStringInfoChar(sql, '(');
		lhs(i);
		appendStringInfoChar(sql, ' ');
		append_operator(sql, key_operator(index, i, last ? op_strategy : strategy));
		appendStringInfo(sql, " $%d", first + i);
		if (last)
			break;
		appendStringInfoString(sql, " OR (");
		lhs(i);
		appendStringInfoChar(sql, ' ');
		append_operator(sql, key_operator(index, i, BTEqualStrategyNumber));
		appendStringInfo(sql, " $%d AND ", first + i);
	}
	for (int i = 0; i < pr->nkeys; i++)
		appendStringInfoString(sql, i == pr->nkeys - 1 ? ")" : "))");
}

SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr plan = SPI_prepare(sql, nargs, types);
	if (plan == nullptr || SPI_keepplan(plan) != 0)
		elog(ERROR, "edgesync.pull(): could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * Fills pr for rel (SPI connected, search_path pinned): the key columns of
 * its primary key, and the statements.
 */
void
build_pull_rel(PullRel *pr, Relation rel)
{
	pr->context =
		AllocSetContextCreate(CacheMemoryContext, "edgesync pull statements", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pr->context);
	/* tracked_rel_for() has checked that there is one. */
	Oid pk_index = edgesync::primary_key_index(rel);
	if (!OidIsValid(pk_index))
		elog(ERROR, "table \"%s\" has no primary key", RelationGetRelationName(rel));
	Relation index = index_open(pk_index, AccessShareLock);
	TupleDesc desc = RelationGetDescr(rel);
	pr->nkeys = index->rd_index->indnkeyatts;
	for (int i = 0; i < pr->nkeys; i++) {
		PullKey *key = &pr->keys[i];
		Oid input;
		key->attnum = index->rd_index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(desc, key->attnum - 1);
		key->name = pstrdup(NameStr(att->attname));
		key->type = att->atttypid;
		key->typmod = att->atttypmod;
		key->array_type = get_array_type(key->type);
		if (!OidIsValid(key->array_type))
			elog(ERROR, "type %s of primary key column \"%s\" has no array type",
				 format_type_be(key->type), key->name);
		get_typlenbyvalalign(key->type, &key->typlen, &key->typbyval, &key->typalign);
		getTypeInputInfo(key->type, &input, &key->ioparam);
		fmgr_info_cxt(input, &key->input, pr->context);
	}

	char *table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											 RelationGetRelationName(rel));
	/* The table's columns, each by name (t.* would need a whole-row value to be read back). */
	StringInfoData columns;
	initStringInfo(&columns);
	pr->natts = desc->natts;
	pr->selected = static_cast<AttrNumber *>(palloc(sizeof(AttrNumber) * desc->natts));
	pr->nselected = 0;
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		if (att->attisdropped)
			continue;
		appendStringInfo(&columns, "%st.%s", pr->nselected > 0 ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
		pr->selected[pr->nselected++] = att->attnum;
	}
	Oid types[2 * INDEX_MAX_KEYS + 1];
	StringInfoData order;
	initStringInfo(&order);
	for (int i = 0; i < pr->nkeys; i++) {
		appendStringInfo(&order, "%st.%s USING ", i > 0 ? ", " : "",
						 quote_identifier(pr->keys[i].name));
		append_operator(&order, key_operator(index, i, BTLessStrategyNumber));
	}

	/* The load: the first rows, and the rows after a key. */
	StringInfoData sql;
	initStringInfo(&sql);
	types[0] = INT8OID;
	appendStringInfo(&sql, "SELECT %s FROM %s AS t ORDER BY %s LIMIT $1", columns.data, table,
					 order.data);
	pr->load_first = prepare_kept(sql.data, 1, types);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s FROM %s AS t WHERE ", columns.data, table);
	append_key_comparison(&sql, index, pr, "t", BTGreaterStrategyNumber, false, 2);
	appendStringInfo(&sql, " ORDER BY %s LIMIT $1", order.data);
	for (int i = 0; i < pr->nkeys; i++)
		types[1 + i] = pr->keys[i].type;
	pr->load_after = prepare_kept(sql.data, 1 + pr->nkeys, types);

	/* The rows of keys changed: (n, row) for each key, row NULL if there is none to see. */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT k.n, %s FROM ROWS FROM (", columns.data);
	for (int i = 0; i < pr->nkeys; i++) {
		appendStringInfo(&sql, "%spg_catalog.unnest($%d)", i > 0 ? ", " : "", i + 1);
		types[i] = pr->keys[i].array_type;
	}
	appendStringInfoString(&sql, ") WITH ORDINALITY AS k(");
	for (int i = 0; i < pr->nkeys; i++)
		appendStringInfo(&sql, "k%d, ", i + 1);
	appendStringInfo(&sql, "n) LEFT JOIN %s AS t ON ", table);
	for (int i = 0; i < pr->nkeys; i++) {
		appendStringInfo(&sql, "%st.%s ", i > 0 ? " AND " : "", quote_identifier(pr->keys[i].name));
		append_operator(&sql, key_operator(index, i, BTEqualStrategyNumber));
		appendStringInfo(&sql, " k.k%d", i + 1);
	}
	pr->rows = prepare_kept(sql.data, pr->nkeys, types);
	/* ... while loading: only keys up to the last one loaded. */
	appendStringInfoString(&sql, " WHERE ");
	append_key_comparison(&sql, index, pr, nullptr, BTLessStrategyNumber, true, pr->nkeys + 1);
	for (int i = 0; i < pr->nkeys; i++)
		types[pr->nkeys + i] = pr->keys[i].type;
	pr->rows_loaded = prepare_kept(sql.data, 2 * pr->nkeys, types);

	index_close(index, AccessShareLock);
	MemoryContextSwitchTo(old);
}

} // namespace

PullRel *
pull_rel_for(Relation rel)
{
	Oid relid = RelationGetRelid(rel);
	if (pull_rels == nullptr) {
		HASHCTL ctl;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(PullRel);
		ctl.hcxt = CacheMemoryContext;
		pull_rels = hash_create("edgesync pull statements", 16, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(on_relcache_invalidation, PointerGetDatum(nullptr));
		RegisterXactCallback(on_transaction_end, nullptr);
	}
	bool found;
	PullRel *pr = static_cast<PullRel *>(hash_search(pull_rels, &relid, HASH_ENTER, &found));
	if (!found) {
		pr->valid = false;
		pr->context = nullptr;
		pr->load_first = pr->load_after = pr->rows = pr->rows_loaded = nullptr;
	}
	if (pr->valid)
		return pr;
	retire(&pr->load_first);
	retire(&pr->load_after);
	retire(&pr->rows);
	retire(&pr->rows_loaded);
	if (pr->context != nullptr)
		MemoryContextSetParent(pr->context, TopTransactionContext); /* freed with the plans */
	pr->context = nullptr;
	pr->valid = true; /* an invalidation while building clears it again */
	PG_TRY();
	{
		build_pull_rel(pr, rel);
	}
	PG_CATCH();
	{
		pr->valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	return pr;
}

int
key_members(const char *json, KeyMember *members)
{
	size_t len = strlen(json);
	char *scratch = static_cast<char *>(palloc(len + 1));
	return parse_key_json(std::string_view(json, len), scratch, members, INDEX_MAX_KEYS);
}

bool
decode_key(PullRel *pr, const char *json, Datum *values)
{
	KeyMember members[INDEX_MAX_KEYS];
	int n = key_members(json, members);
	if (n < 0)
		return false;
	int found = 0;
	for (int i = 0; i < pr->nkeys; i++) {
		const KeyMember *m = nullptr;
		for (int j = 0; j < n && m == nullptr; j++)
			if (members[j].name == pr->keys[i].name)
				m = &members[j];
		if (m == nullptr || m->is_null)
			return false;
		char *value = pnstrdup(m->value.data(), m->value.size());
		values[i] =
			InputFunctionCall(&pr->keys[i].input, value, pr->keys[i].ioparam, pr->keys[i].typmod);
		found++;
	}
	return found == pr->nkeys;
}

void
run_as_caller(SPIPlanPtr plan, int nargs, const Datum *args, DestReceiver *receiver)
{
	ParamListInfo params = makeParamList(nargs);
	for (int i = 0; i < nargs; i++) {
		params->params[i].value = args[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = SPI_getargtypeid(plan, i);
	}
	SPIExecuteOptions options = {};
	options.params = params;
	options.read_only = true;
	options.dest = receiver;
	int rc = SPI_execute_plan_extended(plan, &options);
	if (rc < 0)
		elog(ERROR, "edgesync.pull(): query failed: %s", SPI_result_code_string(rc));
}

void
receiver_startup(DestReceiver *, int, TupleDesc)
{}

void
receiver_shutdown(DestReceiver *)
{}

} // namespace edgesync::track::pull
