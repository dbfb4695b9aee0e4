/*
 * apply.cpp — edgesync.apply_begin(source text, commit_lsn pg_lsn), run on a
 * replica as the first statement of every transaction of the sql format
 * (docs/output-format.md, "What the replica provides"), and
 * edgesync.apply_resync(source text), the first statement of every batch of
 * a shipper's full re-send (src/ship/resync.cpp).
 *
 * It records commit_lsn for source in edgesync.applied_lsn if it is beyond
 * the recorded one and returns true; otherwise the transaction was applied
 * before: it returns false and edgesync.applying() (decode.sql) turns false
 * for the rest of the transaction, so the statements change nothing.  Either
 * way the rest of the transaction runs with session_replication_role =
 * replica, as a logical replication worker does, if the caller may set that
 * itself.
 *
 * apply_resync() enters the same apply mode (applying() true, replica role)
 * and records nothing: a re-send's batches are not transactions of the
 * stream and have no commit LSN of their own.  Had they recorded one, the
 * stream's first transactions could be judged "applied before" against it,
 * and so could the batches of a later re-send (docs/shipping.md, "A target
 * that stays down").  Re-applying them is harmless: their upserts are
 * version-guarded.
 *
 * Both run with the caller's rights (search_path pinned to pg_catalog,
 * pg_temp, decode.sql): they grant nothing the caller does not have.  The
 * write to applied_lsn needs the INSERT and UPDATE that edgesync_applier is
 * granted; session_replication_role = replica (which switches off triggers,
 * the audit's included, and foreign key checks) is set only for a caller who
 * may set it: a superuser, or a role granted SET ON PARAMETER
 * session_replication_role.  Anyone else applies with triggers firing and
 * foreign keys checked as the statements come (docs/replica.md).  Until
 * 0.2.0 they were SECURITY DEFINER, and let any edgesync_applier or
 * edgesync_admin member switch off every trigger of the database.  It is C
 * because a replica calls it once per source transaction: with its SELECT,
 * about 60 µs a call where the PL/pgSQL body (the same upsert and two
 * PERFORM set_config) took about 80 µs, and a bare SELECT set_config() 15 µs
 * (bench/ship/apply.sh, variant begin).  What is left is mostly the executor
 * of the one-row upsert.  The upsert is prepared once per session; the plan
 * cache re-plans it if applied_lsn changes.
 *
 * Plain PostgreSQL code, no C++ objects: an error here is an ordinary
 * ereport.
 */
#include "core/postgres.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(edgesync_apply_begin);
PG_FUNCTION_INFO_V1(edgesync_apply_resync);
}

namespace {

/* The guarded upsert of the source's LSN; every operator named with its schema. */
constexpr const char *kRecordSql =
	"INSERT INTO edgesync.applied_lsn AS a (source, lsn) VALUES ($1, $2) "
	"ON CONFLICT (source) DO UPDATE SET lsn = EXCLUDED.lsn, applied_at = pg_catalog.now() "
	"WHERE a.lsn OPERATOR(pg_catalog.<) EXCLUDED.lsn RETURNING true";

SPIPlanPtr record_plan = nullptr;

/*
 * True if the calling role may set session_replication_role itself
 * (a PGC_SUSET setting): a superuser, or a role granted SET on it.
 */
bool
may_set_replication_role()
{
	return superuser() ||
		   pg_parameter_aclcheck("session_replication_role", GetUserId(), ACL_SET) == ACLCHECK_OK;
}

/*
 * The apply mode, for the rest of the transaction (GUC_ACTION_LOCAL outlives
 * the calling function: its own SET clause covers search_path only):
 * edgesync.applying() is !skip, and session_replication_role is replica
 * where the caller may set it.  The context is the one set_config() would
 * use for the caller, so PostgreSQL checks the same rights again.
 */
void
enter_apply_mode(bool skip)
{
	GucContext context = superuser() ? PGC_SUSET : PGC_USERSET;
	(void) set_config_option("edgesync_internal.apply_skip", skip ? "on" : "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	if (may_set_replication_role())
		(void) set_config_option("session_replication_role", "replica", context, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

} // namespace

extern "C" Datum
edgesync_apply_begin(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("edgesync.apply_begin() arguments must not be null")));
	Datum args[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};

	SPI_connect();
	if (record_plan == nullptr) {
		Oid types[2] = {TEXTOID, PG_LSNOID};
		SPIPlanPtr plan = SPI_prepare(kRecordSql, 2, types);
		if (plan == nullptr)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		record_plan = plan;
	}
	int rc = SPI_execute_plan(record_plan, args, nullptr, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	bool fresh = SPI_processed > 0;
	SPI_finish();

	enter_apply_mode(!fresh);
	PG_RETURN_BOOL(fresh);
}

/*
 * apply_resync(source): apply mode for a batch of a full re-send, whatever
 * edgesync.applied_lsn holds for source, which it neither reads nor moves.
 * source names the hospital stream being re-sent (for the statement's
 * readers: logs, pg_stat_activity); it must be given, as apply_begin's.
 */
extern "C" Datum
edgesync_apply_resync(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("edgesync.apply_resync() argument must not be null")));
	enter_apply_mode(false);
	PG_RETURN_VOID();
}
