/*
 * deparse.cpp — filters of a federated query as SQL for the hospital.
 *
 * See deparse.hpp for which filters qualify.  Constants are written as
 * quoted literals with an explicit type (EXPLAIN VERBOSE shows them);
 * parameters (PL/pgSQL variables, prepared statements, the outer side of a
 * nested loop) become $n with an explicit type.
 */
#include "federate/deparse.hpp"

extern "C" {
#include "access/transam.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace edgesync::federate {

namespace {

bool
is_builtin(Oid oid)
{
	return oid < FirstGenbkiObjectId;
}

Expr *
strip_relabel(Expr *e)
{
	while (e != nullptr && IsA(e, RelabelType))
		e = reinterpret_cast<RelabelType *>(e)->arg;
	return e;
}

/* A plain column of our relation that may be named in the remote WHERE. */
bool
is_our_column(Expr *e, Index relid, AttrNumber source_attno)
{
	e = strip_relabel(e);
	if (e == nullptr || !IsA(e, Var))
		return false;
	Var *v = reinterpret_cast<Var *>(e);
	return v->varno == static_cast<int>(relid) && v->varlevelsup == 0 && v->varattno > 0 &&
		   v->varattno != source_attno && is_builtin(v->vartype);
}

/*
 * A value known when the scan starts: a constant, a parameter, or a column of
 * another relation (in a join clause of a parameterized path, which the
 * planner turns into a parameter set by the outer side of a nested loop).
 */
bool
is_value(Expr *e, Index relid)
{
	e = strip_relabel(e);
	if (e == nullptr || !is_builtin(exprType(reinterpret_cast<Node *>(e))))
		return false;
	if (IsA(e, Const))
		return true;
	if (IsA(e, Var)) {
		Var *v = reinterpret_cast<Var *>(e);
		return v->varno != static_cast<int>(relid) && v->varlevelsup == 0;
	}
	if (IsA(e, Param)) {
		Param *p = reinterpret_cast<Param *>(e);
		return p->paramkind == PARAM_EXTERN || p->paramkind == PARAM_EXEC;
	}
	return false;
}

/* Is the operator built in, and safe for the collation it compares with? */
bool
operator_ok(Oid opno, Oid inputcollid)
{
	if (!is_builtin(opno))
		return false;
	if (inputcollid == InvalidOid)
		return true;
	if (inputcollid != DEFAULT_COLLATION_OID && inputcollid != C_COLLATION_OID)
		return false;
	/* Text sorts differently on different servers; equality does not. */
	char *name = get_opname(opno);
	return name != nullptr && (strcmp(name, "=") == 0 || strcmp(name, "<>") == 0);
}

void
deparse_operand(StringInfo buf, Expr *e, Index relid, char **colnames, List **params)
{
	Expr *bare = strip_relabel(e);
	if (IsA(bare, Var) && reinterpret_cast<Var *>(bare)->varno == static_cast<int>(relid)) {
		appendStringInfoString(
			buf, quote_identifier(colnames[reinterpret_cast<Var *>(bare)->varattno - 1]));
		return;
	}
	Oid type = exprType(reinterpret_cast<Node *>(e));
	if (IsA(bare, Const) && !reinterpret_cast<Const *>(bare)->constisnull) {
		Const *c = reinterpret_cast<Const *>(bare);
		Oid out;
		bool varlena;
		getTypeOutputInfo(c->consttype, &out, &varlena);
		char *text = OidOutputFunctionCall(out, c->constvalue);
		appendStringInfo(buf, "%s::%s", quote_literal_cstr(text), format_type_be_qualified(type));
		return;
	}
	if (IsA(bare, Const)) {
		appendStringInfo(buf, "NULL::%s", format_type_be_qualified(type));
		return;
	}
	*params = lappend(*params, e);
	appendStringInfo(buf, "$%d::%s", list_length(*params), format_type_be_qualified(type));
}

} // namespace

int
set_transmission_modes()
{
	int nestlevel = NewGUCNestLevel();
	/* Only if different: setting a GUC is not free. */
	if (DateStyle != USE_ISO_DATES)
		(void) set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	if (IntervalStyle != INTSTYLE_POSTGRES)
		(void) set_config_option("intervalstyle", "postgres", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (extra_float_digits < 3)
		(void) set_config_option("extra_float_digits", "3", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
reset_transmission_modes(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

bool
is_pushable(Expr *clause, Index relid, AttrNumber source_attno)
{
	if (IsA(clause, OpExpr)) {
		OpExpr *op = reinterpret_cast<OpExpr *>(clause);
		if (list_length(op->args) != 2 || !operator_ok(op->opno, op->inputcollid))
			return false;
		Expr *l = static_cast<Expr *>(linitial(op->args));
		Expr *r = static_cast<Expr *>(lsecond(op->args));
		return (is_our_column(l, relid, source_attno) && is_value(r, relid)) ||
			   (is_value(l, relid) && is_our_column(r, relid, source_attno));
	}
	if (IsA(clause, ScalarArrayOpExpr)) {
		ScalarArrayOpExpr *op = reinterpret_cast<ScalarArrayOpExpr *>(clause);
		return list_length(op->args) == 2 && operator_ok(op->opno, op->inputcollid) &&
			   is_our_column(static_cast<Expr *>(linitial(op->args)), relid, source_attno) &&
			   is_value(static_cast<Expr *>(lsecond(op->args)), relid);
	}
	if (IsA(clause, NullTest)) {
		NullTest *t = reinterpret_cast<NullTest *>(clause);
		return !t->argisrow && is_our_column(t->arg, relid, source_attno);
	}
	return false;
}

void
deparse_clause(StringInfo buf, Expr *clause, Index relid, char **colnames, List **params)
{
	appendStringInfoChar(buf, '(');
	if (IsA(clause, OpExpr)) {
		OpExpr *op = reinterpret_cast<OpExpr *>(clause);
		deparse_operand(buf, static_cast<Expr *>(linitial(op->args)), relid, colnames, params);
		appendStringInfo(buf, " OPERATOR(pg_catalog.%s) ", get_opname(op->opno));
		deparse_operand(buf, static_cast<Expr *>(lsecond(op->args)), relid, colnames, params);
	} else if (IsA(clause, ScalarArrayOpExpr)) {
		ScalarArrayOpExpr *op = reinterpret_cast<ScalarArrayOpExpr *>(clause);
		deparse_operand(buf, static_cast<Expr *>(linitial(op->args)), relid, colnames, params);
		appendStringInfo(buf, " OPERATOR(pg_catalog.%s) %s (", get_opname(op->opno),
						 op->useOr ? "ANY" : "ALL");
		deparse_operand(buf, static_cast<Expr *>(lsecond(op->args)), relid, colnames, params);
		appendStringInfoChar(buf, ')');
	} else {
		NullTest *t = reinterpret_cast<NullTest *>(clause);
		deparse_operand(buf, t->arg, relid, colnames, params);
		appendStringInfoString(buf, t->nulltesttype == IS_NULL ? " IS NULL" : " IS NOT NULL");
	}
	appendStringInfoChar(buf, ')');
}

} // namespace edgesync::federate
