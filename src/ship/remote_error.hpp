/*
 * remote_error.hpp — what of a replica's error a reader of target_status sees.
 *
 * A replica that rejects a batch says why, and its words may carry row
 * values: DETAIL ("Failing row contains (...)", "Key (mrn)=(...) already
 * exists"), CONTEXT and the statement excerpt (the batch's own text), and
 * some primary messages (invalid input syntax for type integer: "...").
 * edgesync_reader, who may not SELECT those rows, sees only the SQLSTATE and
 * the primary message without values (reader_message); the whole text goes
 * to target_state.last_error_detail, which only edgesync_admin reads.
 *
 * In the primary message, the text in double quotes is the error's object
 * names or its values.  Names the replica reports in the error's fields
 * (schema, table, column, data type, constraint) are kept; from the first
 * other quoted text to the last quote, all is replaced by "..." (a value may
 * itself contain quotes).  Data exceptions (class 22) are cut at their first
 * ": ", after which PostgreSQL puts the value.  Errors of class 42 but syntax
 * errors (42601) are about the statement's names, not its values, and keep
 * their quoted names.  A message raised by a function on the replica
 * (PL/pgSQL's RAISE, class P0) is its author's text and is not shown.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include <string>

namespace edgesync::ship {

struct RemoteError {
	std::string sqlstate;
	std::string primary;
	std::string schema, table, column, datatype, constraint; /* the error's object names */
	std::string source_function;							 /* where the replica raised it */
};

/* "<primary without values> (SQLSTATE xxxxx)" */
std::string reader_message(const RemoteError &error);

} // namespace edgesync::ship
