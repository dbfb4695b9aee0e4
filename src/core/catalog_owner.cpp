/*
 * catalog_owner.cpp — see catalog_owner.hpp.
 */
#include "core/catalog_owner.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace edgesync {

namespace {

/*
 * Runs sql as the owner of edgesync.<catalog>; with result, copies its rows
 * into the memory context current at the call.  With plan, through the plan
 * *plan holds, prepared and kept first if there is none.
 */
void
execute_as_owner(const char *catalog, const char *sql, int nargs, Oid *types, Datum *values,
				 const char *nulls, bool read_only, OwnerRows *result, SPIPlanPtr *plan = nullptr)
{
	Oid relid = get_relname_relid(catalog, get_namespace_oid("edgesync", false));
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	MemoryContext caller = CurrentMemoryContext;

	Oid saved_user;
	int saved_context;
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE |
									  SECURITY_RESTRICTED_OPERATION);
	int nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	if (plan != nullptr && *plan == nullptr) {
		SPIPlanPtr prepared = SPI_prepare(sql, nargs, types);
		if (prepared == nullptr || SPI_keepplan(prepared) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		*plan = prepared;
	}
	int rc = plan != nullptr
				 ? SPI_execute_plan(*plan, values, nulls, read_only, 0)
				 : SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	if (result != nullptr) {
		MemoryContext spi = MemoryContextSwitchTo(caller);
		result->desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		result->count = SPI_processed;
		result->rows = static_cast<HeapTuple *>(palloc(sizeof(HeapTuple) * (SPI_processed + 1)));
		for (uint64 i = 0; i < SPI_processed; i++)
			result->rows[i] = heap_copytuple(SPI_tuptable->vals[i]);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	AtEOXact_GUC(true, nest_level);
	SetUserIdAndSecContext(saved_user, saved_context);
}

} // namespace

void
run_as_catalog_owner(const char *catalog, const char *sql, int nargs, Oid *types, Datum *values)
{
	execute_as_owner(catalog, sql, nargs, types, values, nullptr, false, nullptr);
}

OwnerRows
query_as_catalog_owner(const char *catalog, const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls)
{
	OwnerRows result{};
	execute_as_owner(catalog, sql, nargs, types, values, nulls, true, &result);
	return result;
}

OwnerRows
query_as_catalog_owner(const char *catalog, SPIPlanPtr *plan, const char *sql, int nargs,
					   Oid *types, Datum *values, const char *nulls)
{
	OwnerRows result{};
	execute_as_owner(catalog, sql, nargs, types, values, nulls, true, &result, plan);
	return result;
}

} // namespace edgesync
