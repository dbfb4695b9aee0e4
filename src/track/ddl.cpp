/*
 * ddl.cpp — what the DDL event triggers of track.sql need from C: the parse
 * trees, which PL/pgSQL cannot read.
 *
 *   edgesync._ddl_changes(pg_ddl_command) -> (change text, relid regclass)
 *       For the ddl_command_end trigger (_on_ddl): the partitions an ALTER
 *       TABLE attached ('attach') or detached ('detach'), and the table an
 *       ALTER TABLE ... SET SCHEMA moved ('set schema').  It acts on exactly
 *       these, not on every command that touches a partitioned table: a
 *       restore adds primary keys, indexes and edgesync's own triggers to
 *       partitions after loading the catalog of tracked tables, in whatever
 *       order pg_restore -j picks, and must find nothing done behind its back.
 *
 *   edgesync._on_ddl_start()  (ddl_command_start, ALTER TABLE)
 *       Resolves the partitions an ATTACH or DETACH names, for _ddl_changes
 *       (see NamedPartition).  And before ATTACH PARTITION of a table into a
 *       tracked partitioned table: a tracked table is untracked (its rows
 *       are tracked as part of the partitioned table from then on; its own
 *       triggers would collide with the ones PostgreSQL clones onto a new
 *       partition), an untracked one gets the columns it lacks (version,
 *       created_at, updated_at, as track() adds them), which ATTACH
 *       requires.  Both run as the user attaching, who owns the two tables,
 *       in the same transaction: if ATTACH fails, they are undone with it.
 *
 *   edgesync._track_as_owner(tbl regclass)
 *       track(tbl) as the table's owner, for a caller who owns it (or is a
 *       superuser): the DDL trigger tracks a new table of a tracked schema
 *       with its owner's rights, not the extension owner's.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/pg_compat.hpp"
#include "track/tracked_rel.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/deparse_utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(edgesync_ddl_changes);
PG_FUNCTION_INFO_V1(edgesync_on_ddl_start);
PG_FUNCTION_INFO_V1(edgesync_track_as_owner);
}

namespace {

/*
 * The partitions named by the ATTACH and DETACH subcommands of recent ALTER
 * TABLE statements, as the ddl_command_start trigger resolved them under the
 * user's search_path.  PostgreSQL 15 does not record the partition in the
 * collected subcommand, and the ddl_command_end trigger runs with its own
 * search_path (pg_catalog), under which an unqualified name may not resolve,
 * or resolve to another table.  The newest entry for a name is the one of
 * the statement being run: its start trigger fired just before its end.
 */
struct NamedPartition {
	char schema[NAMEDATALEN]; /* "" when the name was not qualified */
	char name[NAMEDATALEN];
	Oid relid;
};
constexpr int kNamedPartitions = 16;
NamedPartition named[kNamedPartitions];
int next_named = 0;

void
remember_partition(const RangeVar *rv, Oid relid)
{
	NamedPartition *e = &named[next_named];
	next_named = (next_named + 1) % kNamedPartitions;
	strlcpy(e->schema, rv->schemaname != nullptr ? rv->schemaname : "", NAMEDATALEN);
	strlcpy(e->name, rv->relname, NAMEDATALEN);
	e->relid = relid;
}

Oid
named_partition(const RangeVar *rv)
{
	const char *schema = rv->schemaname != nullptr ? rv->schemaname : "";
	for (int i = 1; i <= kNamedPartitions; i++) {
		const NamedPartition *e = &named[(next_named - i + kNamedPartitions) % kNamedPartitions];
		if (OidIsValid(e->relid) && strcmp(e->schema, schema) == 0 &&
			strcmp(e->name, rv->relname) == 0)
			return e->relid;
	}
	return rv->schemaname != nullptr ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

void
put_change(ReturnSetInfo *rsinfo, const char *change, Oid relid)
{
	Datum values[2] = {CStringGetTextDatum(change), ObjectIdGetDatum(relid)};
	bool nulls[2] = {false, false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* The partitioned table at the top of relid's tree (relid itself if it is none's partition). */
Oid
partition_root(Oid relid)
{
	return get_rel_relispartition(relid) ? llast_oid(get_partition_ancestors(relid)) : relid;
}

/* Runs "SELECT <call>($1)" for relid as the current user. */
void
call_for(const char *call, Oid relid)
{
	Oid types[1] = {REGCLASSOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};
	SPI_connect();
	char *sql = psprintf("SELECT %s($1)", call);
	int rc = SPI_execute_with_args(sql, 1, types, values, nullptr, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "%s failed: %s", call, SPI_result_code_string(rc));
	SPI_finish();
}

} // namespace

/*
 * edgesync._ddl_changes(cmd pg_ddl_command) -> SETOF (change text, relid regclass)
 */
Datum
edgesync_ddl_changes(PG_FUNCTION_ARGS)
{
	const CollectedCommand *cmd = reinterpret_cast<const CollectedCommand *>(PG_GETARG_POINTER(0));
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	if (cmd->type == SCT_AlterTable) {
		ListCell *lc;
		foreach (lc, cmd->d.alterTable.subcmds) {
			const CollectedATSubcmd *sub = static_cast<const CollectedATSubcmd *>(lfirst(lc));
			const AlterTableCmd *at = castNode(AlterTableCmd, sub->parsetree);
			const char *change = nullptr;
			if (at->subtype == AT_AttachPartition)
				change = "attach";
			else if (at->subtype == AT_DetachPartition || at->subtype == AT_DetachPartitionFinalize)
				change = "detach";
			if (change == nullptr)
				continue;
			/*
			 * The partition: the subcommand's address where the server records
			 * it (PostgreSQL 15 does not), else its name, as the start trigger
			 * resolved it.
			 */
			Oid partition =
				sub->address.classId == RelationRelationId ? sub->address.objectId : InvalidOid;
			if (!OidIsValid(partition))
				partition = named_partition(castNode(PartitionCmd, at->def)->name);
			if (OidIsValid(partition))
				put_change(rsinfo, change, partition);
		}
	} else if (cmd->type == SCT_Simple && cmd->parsetree != nullptr &&
			   IsA(cmd->parsetree, AlterObjectSchemaStmt) &&
			   cmd->d.simple.address.classId == RelationRelationId) {
		put_change(rsinfo, "set schema", cmd->d.simple.address.objectId);
	}
	return static_cast<Datum>(0);
}

/*
 * edgesync._on_ddl_start(): event trigger on ddl_command_start for ALTER
 * TABLE (see the file header).
 */
Datum
edgesync_on_ddl_start(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("edgesync._on_ddl_start() must be called as an event trigger")));
	const EventTriggerData *data = reinterpret_cast<const EventTriggerData *>(fcinfo->context);
	if (data->parsetree == nullptr || !IsA(data->parsetree, AlterTableStmt))
		PG_RETURN_VOID();
	const AlterTableStmt *stmt = castNode(AlterTableStmt, data->parsetree);
	if (stmt->objtype != OBJECT_TABLE)
		PG_RETURN_VOID();

	ListCell *lc;
	foreach (lc, stmt->cmds) {
		const AlterTableCmd *at = castNode(AlterTableCmd, lfirst(lc));
		if (at->subtype != AT_AttachPartition && at->subtype != AT_DetachPartition &&
			at->subtype != AT_DetachPartitionFinalize)
			continue;
		const PartitionCmd *part = castNode(PartitionCmd, at->def);
		/* Names as the command will resolve them; ALTER TABLE locks and checks them itself. */
		Oid child = RangeVarGetRelid(part->name, NoLock, true);
		if (OidIsValid(child))
			remember_partition(part->name, child);
		if (at->subtype != AT_AttachPartition)
			continue;
		Oid parent = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(parent) || !OidIsValid(child) ||
			get_rel_relkind(parent) != RELKIND_PARTITIONED_TABLE ||
			!edgesync::track::is_tracked(partition_root(parent)))
			continue; /* a tracked table under an untracked one: _on_ddl refuses it */
		if (edgesync::track::is_tracked(child))
			call_for("edgesync.untrack", child);
		else
			call_for("edgesync._add_managed_columns", child);
	}
	PG_RETURN_VOID();
}

/*
 * edgesync._track_as_owner(tbl regclass): see the file header.  The switch
 * is undone by the transaction's abort if track() fails.
 */
Datum
edgesync_track_as_owner(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation with OID %u does not exist", relid)));
	Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	if (!edgesync::owns_relation(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	Oid saved_user;
	int saved_context;
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE |
									  SECURITY_RESTRICTED_OPERATION);
	call_for("edgesync.track", relid);
	SetUserIdAndSecContext(saved_user, saved_context);
	PG_RETURN_VOID();
}
