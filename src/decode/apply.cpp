/*
 * apply.cpp — what is left in C of the replica's apply functions of 0.1.0.
 *
 * The sql format applies in plain SQL now (replica_sql.hpp): a replica needs
 * nothing of edgesync.  Where edgesync is installed on a replica, the apply
 * functions that streams of 0.1.0 call (apply_begin(), apply_resync(),
 * applying(), apply_truncate()) are PL/pgSQL wrappers of that same SQL
 * (decode.sql).  0.1.0's script declared apply_begin() and apply_resync() in
 * C: their symbols stay, for a database whose extension was not updated
 * yet, and say so.
 *
 * Plain PostgreSQL code, no C++ objects.
 */
#include "core/postgres.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(edgesync_apply_begin);
PG_FUNCTION_INFO_V1(edgesync_apply_resync);
}

namespace {

[[noreturn]] void
moved(const char *function)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s of edgesync 0.1.0 is no longer in the library", function),
			 errdetail("The function is a PL/pgSQL wrapper of the plain-SQL apply since 0.2.0."),
			 errhint("Run ALTER EXTENSION edgesync UPDATE in this database.")));
}

} // namespace

extern "C" Datum
edgesync_apply_begin(PG_FUNCTION_ARGS)
{
	moved("edgesync.apply_begin()");
}

extern "C" Datum
edgesync_apply_resync(PG_FUNCTION_ARGS)
{
	moved("edgesync.apply_resync()");
}
