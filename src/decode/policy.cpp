/*
 * policy.cpp — PHI column policies: the hash key setting, HMAC, and
 * edgesync.set_column_policy().
 *
 *   edgesync.hash_key   superuser-only setting (PGC_SUSET, hidden from SHOW
 *                       ALL and from non-superusers); the HMAC-SHA256 key
 *                       of the "hash" policy.  Never printed: errors about
 *                       it say only whether it is set.
 *
 *   edgesync.set_column_policy(tbl regclass, col name, policy text)
 *       Writes edgesync.column_policies (a user catalog table, so the plugin
 *       reads it with each change's historic snapshot: a policy applies from
 *       the commit that set it on) and sends a relcache invalidation for the
 *       table, which the plugin replays at that point of the stream.  It
 *       takes a SHARE lock on the table and on each of its partitions
 *       first, like CREATE INDEX: it waits for the transactions writing any
 *       of them, so none of them straddles the policy's commit; and it
 *       refuses a table the calling transaction has already written.  The caller must own the
 * table; the write runs as the catalog's owner.
 */
#include "core/catalog_owner.hpp"
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "decode/decode.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "commands/event_trigger.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_class.h"
#include "common/hmac.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(edgesync_set_column_policy);
PG_FUNCTION_INFO_V1(edgesync_on_rename_column);
}

namespace edgesync::decode {

namespace {

char *hash_key = nullptr;

} // namespace

void
register_policy_settings()
{
	DefineCustomStringVariable(
		"edgesync.hash_key", "Key of the HMAC-SHA256 that the \"hash\" column policy applies.",
		"Set it in postgresql.conf or with ALTER SYSTEM; only superusers can see it.", &hash_key,
		"", PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, nullptr, nullptr,
		nullptr);
}

void
append_hmac_hex(StringInfo out, const char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint8 digest[PG_SHA256_DIGEST_LENGTH];

	if (hash_key == nullptr || hash_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("edgesync.hash_key is not set"),
				 errdetail("A column with the \"hash\" policy cannot be streamed without the key."),
				 errhint("A superuser sets it in postgresql.conf or with ALTER SYSTEM SET "
						 "edgesync.hash_key, then reloads the configuration.")));

	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	if (ctx == nullptr)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (pg_hmac_init(ctx, reinterpret_cast<const uint8 *>(hash_key), strlen(hash_key)) < 0 ||
		pg_hmac_update(ctx, reinterpret_cast<const uint8 *>(data), len) < 0 ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0) {
		const char *why = pg_hmac_error(ctx);
		pg_hmac_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not compute HMAC: %s", why)));
	}
	pg_hmac_free(ctx);

	char text[PG_SHA256_DIGEST_LENGTH * 2];
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++) {
		text[2 * i] = hex[digest[i] >> 4];
		text[2 * i + 1] = hex[digest[i] & 0xf];
	}
	appendBinaryStringInfo(out, text, sizeof(text));
}

int
read_column_policies(Oid relid, Snapshot snapshot, StoredPolicy **out)
{
	*out = nullptr;
	Oid nsp = get_namespace_oid("edgesync", true);
	Oid catalog = OidIsValid(nsp) ? get_relname_relid("column_policies", nsp) : InvalidOid;
	if (!OidIsValid(catalog))
		return 0;
	Relation r = table_open(catalog, AccessShareLock);
	TupleDesc desc = RelationGetDescr(r);
	/* 0.2.0 keeps the column's name; 0.1.0 its number (read while a slot decodes older WAL). */
	int by_name = 0, by_number = 0, policy_col = 0;
	for (int i = 0; i < desc->natts; i++) {
		const char *name = NameStr(TupleDescAttr(desc, i)->attname);
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		if (strcmp(name, "attname") == 0)
			by_name = i + 1;
		else if (strcmp(name, "attnum") == 0)
			by_number = i + 1;
		else if (strcmp(name, "policy") == 0)
			policy_col = i + 1;
	}
	ScanKeyData key;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	SysScanDesc scan = systable_beginscan(r, InvalidOid, false, snapshot, 1, &key);
	int n = 0, size = 0;
	for (HeapTuple tuple; HeapTupleIsValid(tuple = systable_getnext(scan));) {
		bool null_name = true, null_number = true, null_policy = true;
		Datum name_d = by_name > 0 ? heap_getattr(tuple, by_name, desc, &null_name) : 0;
		Datum number = by_number > 0 ? heap_getattr(tuple, by_number, desc, &null_number) : 0;
		Datum policy = policy_col > 0 ? heap_getattr(tuple, policy_col, desc, &null_policy) : 0;
		if (null_policy || (null_name && null_number))
			continue;
		/* (Both, in the update's own transaction: the name once it is filled in.) */
		char *name = !null_name ? pstrdup(NameStr(*DatumGetName(name_d)))
								: get_attname(relid, DatumGetInt16(number), true);
		if (name == nullptr)
			continue; /* 0.1.0: the number of a dropped column */
		/* (::text: inside edgesync, "text" names the text_writer namespace) */
		char *text = text_to_cstring(reinterpret_cast<::text *>(PG_DETOAST_DATUM_PACKED(policy)));
		if (n == size) {
			size = size == 0 ? 8 : 2 * size;
			*out = static_cast<StoredPolicy *>(*out == nullptr
												   ? palloc(sizeof(StoredPolicy) * size)
												   : repalloc(*out, sizeof(StoredPolicy) * size));
		}
		(*out)[n].column = name;
		(*out)[n].policy = strcmp(text, "hash") == 0	 ? Policy::kHash
						   : strcmp(text, "redact") == 0 ? Policy::kRedact
														 : Policy::kReplicate;
		n++;
	}
	systable_endscan(scan);
	table_close(r, AccessShareLock);
	return n;
}

} // namespace edgesync::decode

using namespace edgesync::decode;

namespace {

/* The type of column name of edgesync.column_policies; InvalidOid if it has none. */
Oid
get_catalog_column(const char *name)
{
	Oid catalog = get_relname_relid("column_policies", get_namespace_oid("edgesync", false));
	AttrNumber attnum = get_attnum(catalog, name);
	return attnum == InvalidAttrNumber ? InvalidOid : get_atttype(catalog, attnum);
}

/* The write of 0.1.0's catalog (by column number), until ALTER EXTENSION UPDATE. */
void
set_policy_by_number(Oid relid, AttrNumber attnum, const char *policy)
{
	Oid types[3] = {OIDOID, INT2OID, TEXTOID};
	Datum values[3] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum), CStringGetTextDatum(policy)};
	if (strcmp(policy, "replicate") == 0)
		edgesync::run_as_catalog_owner("column_policies",
									   "DELETE FROM edgesync.column_policies"
									   " WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
									   "   AND attnum OPERATOR(pg_catalog.=) $2",
									   2, types, values);
	else
		edgesync::run_as_catalog_owner(
			"column_policies",
			"WITH updated AS ("
			"  UPDATE edgesync.column_policies SET policy = $3, set_at = pg_catalog.now()"
			"   WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
			"     AND attnum OPERATOR(pg_catalog.=) $2 RETURNING 1)"
			" INSERT INTO edgesync.column_policies (relid, attnum, policy)"
			" SELECT $1::pg_catalog.regclass, $2, $3 WHERE NOT EXISTS (SELECT FROM updated)",
			3, types, values);
}

/* True if a policy is stored for column name col of relid. */
bool
has_stored_policy(Oid relid, const char *col)
{
	StoredPolicy *rows;
	int n = read_column_policies(relid, GetLatestSnapshot(), &rows);
	for (int r = 0; r < n; r++)
		if (strcmp(rows[r].column, col) == 0)
			return true;
	return false;
}

/*
 * Removes the stored policy of col, a name relid no longer has: the owner's
 * way out of the error the plugin stops with (relinfo.cpp).
 */
void
remove_stale_policy(Oid relid, const char *col)
{
	LockRelationOid(relid, ShareLock);
	(void) find_all_inheritors(relid, ShareLock, nullptr);
	Oid types[2] = {OIDOID, NAMEOID};
	NameData name;
	namestrcpy(&name, col);
	Datum values[2] = {ObjectIdGetDatum(relid), NameGetDatum(&name)};
	edgesync::run_as_catalog_owner("column_policies",
								   "DELETE FROM edgesync.column_policies"
								   " WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
								   "   AND attname OPERATOR(pg_catalog.=) $2",
								   2, types, values);
	CacheInvalidateRelcacheByRelid(relid);
}

/* Errors out if col is in the replica identity index of one of rels (a table and its inheritors).
 */
void
refuse_identity_column(List *rels, const char *relname, const char *col)
{
	ListCell *lc;
	foreach (lc, rels) {
		Oid part = lfirst_oid(lc);
		AttrNumber attnum = get_attnum(part, col);
		if (attnum <= 0)
			continue;
		Relation rel = RelationIdGetRelation(part);
		Bitmapset *identity = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
		Oid index = RelationGetReplicaIndex(rel);
		bool is_pkey = OidIsValid(index) && index == edgesync::primary_key_index(rel);
		RelationClose(rel);
		if (!OidIsValid(index) || is_pkey ||
			!bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, identity))
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"%s\" of relation \"%s\" cannot be redacted", col, relname),
				 errdetail("It is in index \"%s\", the replica identity of \"%s\": deletes find "
						   "their rows by it in the stream.",
						   get_rel_name(index), get_rel_name(part)),
				 errhint("Use the \"hash\" policy to hide its values, or set another replica "
						 "identity first.")));
	}
}

} // namespace

/*
 * edgesync.set_column_policy(tbl regclass, col name, policy text) -> void
 * Plain C-style: checks, one SPI write, one invalidation.
 */
Datum
edgesync_set_column_policy(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("edgesync.set_column_policy() arguments must not be null")));
	Oid relid = PG_GETARG_OID(0);
	char *col = NameStr(*PG_GETARG_NAME(1));
	char *policy = text_to_cstring(PG_GETARG_TEXT_PP(2));

	char *relname = get_rel_name(relid);
	if (relname == nullptr)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation with OID %u does not exist", relid)));
	if (!edgesync::owns_relation(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
	char relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
						errmsg("cannot set a column policy on \"%s\"", relname),
						errdetail("Column policies apply to tables.")));
	if (get_rel_relispartition(relid))
		ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
						errmsg("cannot set a column policy on partition \"%s\"", relname),
						errdetail("A partitioned table's policies cover all its partitions."),
						errhint("Set the policy on the partitioned table.")));

	AttrNumber attnum = get_attnum(relid, col);
	/* Until ALTER EXTENSION UPDATE, 0.1.0's catalog keeps a policy by column number. */
	bool by_number = !OidIsValid(get_catalog_column("attname"));
	/* A stale policy (its column renamed while the event triggers were off) can be removed. */
	if (attnum == InvalidAttrNumber && !by_number && strcmp(policy, "replicate") == 0 &&
		has_stored_policy(relid, col)) {
		remove_stale_policy(relid, col);
		PG_RETURN_VOID();
	}
	if (attnum == InvalidAttrNumber)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
						errmsg("column \"%s\" of relation \"%s\" does not exist", col, relname)));
	if (attnum < 0)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("cannot set a policy on system column \"%s\"", col)));

	if (strcmp(policy, "replicate") != 0 && strcmp(policy, "hash") != 0 &&
		strcmp(policy, "redact") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid column policy \"%s\"", policy),
						errdetail("Valid policies are \"replicate\", \"hash\" and \"redact\".")));
	if (strcmp(policy, "replicate") != 0 && strcmp(col, "version") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"version\" must be replicated"),
				 errdetail("Replicas compare versions to apply each change once and in order.")));
	if (strcmp(policy, "redact") == 0) {
		Relation rel = RelationIdGetRelation(relid);
		Bitmapset *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
		RelationClose(rel);
		if (bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, keys))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("primary key column \"%s\" cannot be redacted", col),
							errdetail("Rows are identified by their primary key in the stream."),
							errhint("Use the \"hash\" policy to hide key values.")));
	}

	/*
	 * Wait for the transactions writing the table or any of its partitions
	 * (a row may be inserted into a partition directly, which locks only the
	 * partition), and hold off new ones until this one commits.  No
	 * transaction then both wrote the table before the policy and commits
	 * after it, so every change committed after the policy is decoded with a
	 * snapshot that has it.
	 */
	LockRelationOid(relid, ShareLock);
	List *rels = find_all_inheritors(relid, ShareLock, nullptr);

	/*
	 * A column of a replica identity index (of the table or of one of its
	 * partitions) is what a delete finds its row by: redacted, the sql
	 * format could not apply those deletes.  (An identity set on it later
	 * does not make it leave: the plugin then writes such a change as a
	 * comment saying it cannot be applied.)
	 */
	if (strcmp(policy, "redact") == 0)
		refuse_identity_column(rels, relname, col);

	/*
	 * Rows this transaction already wrote would be decoded before the policy
	 * (the snapshot of their own position in the transaction): refuse rather
	 * than let them out under the old policy.
	 */
	ListCell *lc;
	foreach (lc, rels) {
		LOCKTAG tag;
		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		if (edgesync::lock_held_by_me(&tag, RowExclusiveLock))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot set a column policy on \"%s\" after writing to it in the same "
							"transaction",
							relname),
					 errdetail("The rows already written would be streamed under the old policy."),
					 errhint("Set the policy in its own transaction, before the rows it protects "
							 "are written.")));
	}

	/*
	 * Kept by the column's name, which dump and restore keep (its number
	 * changes when a dropped column is left behind); RENAME COLUMN follows
	 * it (edgesync_on_rename_column), DROP COLUMN removes it (decode.sql).
	 */
	if (by_number) {
		set_policy_by_number(relid, attnum, policy);
		CacheInvalidateRelcacheByRelid(relid);
		PG_RETURN_VOID();
	}
	Oid types[3] = {OIDOID, NAMEOID, TEXTOID};
	Datum values[3] = {ObjectIdGetDatum(relid), PG_GETARG_DATUM(1), CStringGetTextDatum(policy)};
	if (strcmp(policy, "replicate") == 0)
		edgesync::run_as_catalog_owner("column_policies",
									   "DELETE FROM edgesync.column_policies"
									   " WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
									   "   AND attname OPERATOR(pg_catalog.=) $2",
									   2, types, values);
	else
		/* No ON CONFLICT: PostgreSQL does not allow it on user catalog tables. */
		edgesync::run_as_catalog_owner(
			"column_policies",
			"WITH updated AS ("
			"  UPDATE edgesync.column_policies SET policy = $3, set_at = pg_catalog.now()"
			"   WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
			"     AND attname OPERATOR(pg_catalog.=) $2 RETURNING 1)"
			" INSERT INTO edgesync.column_policies (relid, attname, policy)"
			" SELECT $1::pg_catalog.regclass, $2, $3 WHERE NOT EXISTS (SELECT FROM updated)",
			3, types, values);
	/* The plugin's cache of this table (and its partitions) is stale from here on. */
	CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

namespace {

/*
 * Records one schema change of relid in edgesync.schema_changes, if relid
 * is a tracked table, as the catalog's owner (the caller may not read
 * tracked_tables).  The output plugin follows it on the replica.
 */
void
record_schema_change(Oid relid, const char *change, const char *old_name, const char *new_name,
					 const char *old_schema)
{
	/* run_as_catalog_owner takes no null flags: an absent name is '' and stored as NULL. */
	Oid types[5] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum values[5] = {ObjectIdGetDatum(relid), CStringGetTextDatum(change),
					   CStringGetTextDatum(old_name),
					   CStringGetTextDatum(new_name != nullptr ? new_name : ""),
					   CStringGetTextDatum(old_schema != nullptr ? old_schema : "")};
	edgesync::run_as_catalog_owner(
		"schema_changes",
		"INSERT INTO edgesync.schema_changes (relid, change, old_name, new_name, old_schema)"
		" SELECT $1, $2, $3, NULLIF($4, ''), NULLIF($5, '')"
		"  WHERE EXISTS (SELECT FROM edgesync.tracked_tables t"
		"                 WHERE t.relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1)",
		5, types, values);
}

/*
 * The schema changes of an ALTER TABLE statement that a replica's table
 * must follow (docs/replica.md): columns renamed, dropped, retyped; the
 * table renamed.  Columns added need no record: the plugin sees them in the
 * next change's columns.  Called at ddl_command_end: the change is done,
 * the names resolve as the statement left them.
 */
void
record_schema_changes(Node *parsetree)
{
	if (IsA(parsetree, RenameStmt)) {
		RenameStmt *stmt = reinterpret_cast<RenameStmt *>(parsetree);
		if (stmt->relation == nullptr)
			return;
		if (stmt->renameType == OBJECT_COLUMN) {
			Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
			if (OidIsValid(relid))
				record_schema_change(relid, "rename_column", stmt->subname, stmt->newname, nullptr);
		} else if (stmt->renameType == OBJECT_TABLE) {
			/* The table is found by its new name, in the schema the old one named. */
			RangeVar *now = makeRangeVar(stmt->relation->schemaname, stmt->newname, -1);
			Oid relid = RangeVarGetRelid(now, NoLock, true);
			if (OidIsValid(relid))
				record_schema_change(relid, "rename_table", stmt->relation->relname, nullptr,
									 get_namespace_name(get_rel_namespace(relid)));
		}
		return;
	}
	if (IsA(parsetree, AlterTableStmt)) {
		AlterTableStmt *stmt = reinterpret_cast<AlterTableStmt *>(parsetree);
		if (stmt->relation == nullptr || stmt->objtype != OBJECT_TABLE)
			return;
		Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		ListCell *lc;
		foreach (lc, stmt->cmds) {
			AlterTableCmd *cmd = static_cast<AlterTableCmd *>(lfirst(lc));
			if (cmd->subtype == AT_DropColumn && cmd->name != nullptr)
				record_schema_change(relid, "drop_column", cmd->name, nullptr, nullptr);
			else if (cmd->subtype == AT_AlterColumnType && cmd->name != nullptr)
				record_schema_change(relid, "alter_type", cmd->name, nullptr, nullptr);
		}
	}
}

/*
 * ALTER TABLE ... RENAME COLUMN a TO b: the policies of the table and of the
 * tables it recurses to follow the column.
 */
void
rename_policies(Node *parsetree)
{
	if (!IsA(parsetree, RenameStmt))
		return;
	RenameStmt *stmt = reinterpret_cast<RenameStmt *>(parsetree);
	if (stmt->renameType != OBJECT_COLUMN || stmt->relation == nullptr)
		return;
	/* (The rename is done: the name resolves as the statement's did, and the table is locked.) */
	Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	NameData from, to;
	namestrcpy(&from, stmt->subname);
	namestrcpy(&to, stmt->newname);
	List *rels = find_all_inheritors(relid, NoLock, nullptr);
	ListCell *lc;
	foreach (lc, rels) {
		Oid rel = lfirst_oid(lc);
		StoredPolicy *rows;
		bool stored = false;
		int n = read_column_policies(rel, GetLatestSnapshot(), &rows);
		for (int r = 0; r < n; r++)
			stored |= strcmp(rows[r].column, NameStr(from)) == 0;
		if (!stored)
			continue;
		Oid types[3] = {OIDOID, NAMEOID, NAMEOID};
		Datum values[3] = {ObjectIdGetDatum(rel), NameGetDatum(&from), NameGetDatum(&to)};
		edgesync::run_as_catalog_owner("column_policies",
									   "UPDATE edgesync.column_policies SET attname = $3"
									   " WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
									   "   AND attname OPERATOR(pg_catalog.=) $2",
									   3, types, values);
	}
}

} // namespace

/*
 * edgesync._on_rename_column(): event trigger at the end of ALTER TABLE
 * (edgesync_rename_policies, decode.sql).  A policy is kept by its column's
 * name: a renamed column's policy follows it (rename_policies).  Then a
 * schema change of a tracked table that a replica must follow is recorded
 * in edgesync.schema_changes (record_schema_changes): after the policies,
 * because the plugin reads the table, policies included, where it decodes
 * that record.  Runs as whoever alters (the table's owner); writes the
 * catalogs as their owner.  Plain C-style.
 */
Datum
edgesync_on_rename_column(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("edgesync._on_rename_column() must be called as an event trigger")));
	EventTriggerData *trigger = reinterpret_cast<EventTriggerData *>(fcinfo->context);
	rename_policies(trigger->parsetree);
	/* (A database updated from 0.1.0 has the catalog only after the update.) */
	if (OidIsValid(get_relname_relid("schema_changes", get_namespace_oid("edgesync", false))))
		record_schema_changes(trigger->parsetree);
	PG_RETURN_VOID();
}
