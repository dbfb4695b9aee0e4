/*
 * restore.cpp — rows a restore loads keep what they were (see restore.hpp).
 */
#include "track/restore.hpp"
#include "core/pg_compat.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/portal.h"
}

#include <cstring>

namespace edgesync::track {

namespace {

/*
 * The answer for the last statement and relation asked about: a COPY asks
 * once per row.  A statement is its parse tree node (every statement of a
 * query string is parsed before the first runs, so two have two nodes) and
 * the time its portal was made (a later query string may reuse the memory).
 */
struct Answer {
	const CopyStmt *copy;
	TimestampTz portal_created;
	Oid relid;
	bool loading;
};
Answer last = {};

/* True if the column list names version, created_at and updated_at. */
bool
names_managed_columns(List *columns)
{
	static const char *const managed[] = {"version", "created_at", "updated_at"};
	bool named[3] = {false, false, false};
	ListCell *lc;
	foreach (lc, columns) {
		const char *name = strVal(lfirst(lc));
		for (int i = 0; i < 3; i++)
			if (strcmp(name, managed[i]) == 0)
				named[i] = true;
	}
	return named[0] && named[1] && named[2];
}

/* True if rel is target, or a partition of it at any depth. */
bool
belongs_to(Relation rel, Oid target)
{
	Oid relid = RelationGetRelid(rel);
	if (relid == target)
		return true;
	return rel->rd_rel->relispartition && list_member_oid(get_partition_ancestors(relid), target);
}

} // namespace

bool
loading_rows_as_they_were(Relation rel)
{
	Portal portal = ActivePortal;
	if (portal == nullptr || list_length(portal->stmts) != 1 ||
		!IsA(linitial(portal->stmts), PlannedStmt))
		return false;
	PlannedStmt *stmt = static_cast<PlannedStmt *>(linitial(portal->stmts));
	if (stmt->commandType != CMD_UTILITY || stmt->utilityStmt == nullptr ||
		!IsA(stmt->utilityStmt, CopyStmt))
		return false;
	const CopyStmt *copy = reinterpret_cast<const CopyStmt *>(stmt->utilityStmt);
	if (!copy->is_from || copy->relation == nullptr)
		return false;

	Oid relid = RelationGetRelid(rel);
	if (last.copy == copy && last.portal_created == portal->creation_time && last.relid == relid)
		return last.loading;
	bool loading = false;
	if (names_managed_columns(copy->attlist)) {
		Oid target = RangeVarGetRelid(copy->relation, NoLock, true);
		loading = OidIsValid(target) && belongs_to(rel, target) &&
				  edgesync::owns_relation(target, GetUserId());
	}
	last = {copy, portal->creation_time, relid, loading};
	return loading;
}

} // namespace edgesync::track
