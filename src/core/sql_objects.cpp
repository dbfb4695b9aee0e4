/*
 * sql_objects.cpp — see sql_objects.hpp.
 */
#include "core/sql_objects.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace edgesync {

char *
installed_sql_version()
{
	ScanKeyData key;
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("edgesync"));
	Relation rel = table_open(ExtensionRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
	HeapTuple tuple = systable_getnext(scan);
	char *version = nullptr;
	if (HeapTupleIsValid(tuple)) {
		bool isnull;
		Datum d = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

void
require_current_sql_objects(const char *what)
{
	char *version = installed_sql_version();
	if (version == nullptr || strcmp(version, EDGESYNC_VERSION) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("edgesync's SQL objects in database \"%s\" are version %s, its library %s",
					get_database_name(MyDatabaseId), version, EDGESYNC_VERSION),
			 errdetail("%s needs the SQL objects of version %s.", what, EDGESYNC_VERSION),
			 errhint("Run ALTER EXTENSION edgesync UPDATE in that database.")));
}

} // namespace edgesync
