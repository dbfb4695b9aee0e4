/*
 * deparse.hpp — which filters of a federated query reach the hospital, as SQL.
 *
 * A filter on a federated view is sent to the hospital (and used on the
 * replica) when it is a simple comparison of one column with a value known
 * at execution: `col op const`, `col op $param`, `col op ANY (array)`,
 * `col IS [NOT] NULL`, and join clauses `col op other.col` (a parameter set by
 * the outer side of a nested loop), with a built-in operator on built-in types (so both
 * servers agree on what it means).  For collatable types only equality is
 * sent, since the two servers may sort text differently.  Other filters stay
 * local; every filter is also checked locally on the merged rows.
 *
 * The SQL names columns without a table alias, so the same WHERE clause
 * serves the remote table and the local replica.  Parameters are numbered
 * $1, $2, ... in the order of the expressions appended to *params.
 *
 * C-style code (no C++ objects): PostgreSQL errors may pass through it.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
}

namespace edgesync::federate {

/*
 * Can clause, a filter on range table entry relid, be sent to the hospital?
 * source_attno is the _source column (never sent).
 */
bool is_pushable(Expr *clause, Index relid, AttrNumber source_attno);

/*
 * Appends the SQL of a pushable clause on range table entry relid to buf
 * (other relations' columns become parameters).  colnames[attno - 1] is the
 * remote name of each column of the federated table.
 */
void deparse_clause(StringInfo buf, Expr *clause, Index relid, char **colnames, List **params);

/*
 * Values written for the hospital (constants, parameters, key arrays) use
 * formats that do not depend on the session's settings: DateStyle ISO,
 * IntervalStyle postgres, extra_float_digits 3, the formats the hospital's
 * connection reads them in.  Call set_transmission_modes() before calling
 * output functions for it, and reset_transmission_modes() with its result
 * after (an error unwinds them with the transaction).
 */
int set_transmission_modes();
void reset_transmission_modes(int nestlevel);

} // namespace edgesync::federate
