/*
 * plugin.cpp — the `edgesync` logical decoding output plugin: its callbacks.
 *
 * pg_create_logical_replication_slot('s', 'edgesync') and pg_recvlogical
 * --plugin=edgesync load edgesync.so and call _PG_output_plugin_init.  The
 * callbacks here decide *what* is streamed (changes of tables the database's
 * edgesync catalog tracks, read with each change's historic snapshot; a
 * partition's change under its tracked root), and hand each change to the
 * json or sql writer.  The output format is specified in
 * docs/output-format.md.
 *
 * A transaction's BEGIN is written only with its first streamed change, so a
 * transaction that touches no tracked table produces nothing; the commit
 * callback still reports progress (skipped_xact) so the slot moves on.
 *
 * Every callback allocates in state->change_context, reset after each
 * change.  The callbacks are plain C-style code (no C++ objects), except the
 * option parsing at startup, which runs under edgesync::guarded().
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "decode/decode.hpp"
#include "decode/options.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "replication/origin.h"
#include "replication/slot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"

void _PG_output_plugin_init(OutputPluginCallbacks *cb);
}

namespace edgesync::decode {

namespace {

/* Copies the parsed options into state (palloc'd, in the plugin's context). */
void
store_options(DecodeState *state, const Options &opts)
{
	state->format = static_cast<int>(opts.format);
	state->include_transaction = opts.include_transaction;
	state->skip_origins = opts.skip_origins;
	state->raw_columns = opts.columns == ColumnsMode::kRaw;
	state->ntables = opts.has_tables ? static_cast<int>(opts.tables.size()) : -1;
	if (opts.has_tables) {
		pg_call([&] {
			state->table_schemas =
				static_cast<char **>(palloc0(sizeof(char *) * (state->ntables + 1)));
			state->table_names =
				static_cast<char **>(palloc0(sizeof(char *) * (state->ntables + 1)));
		});
		for (int i = 0; i < state->ntables; i++) {
			const QualifiedName &n = opts.tables[static_cast<size_t>(i)];
			pg_call([&] {
				state->table_schemas[i] = pstrdup(n.schema.c_str());
				state->table_names[i] = pstrdup(n.table.c_str());
			});
		}
	}
	state->batch_rows = opts.batch_rows;
	state->batch_bytes = opts.batch_bytes;
	if (opts.source)
		pg_call([&] { state->source = pstrdup(opts.source->c_str()); });
	if (opts.replica_schema)
		pg_call([&] { state->replica_schema = pstrdup(opts.replica_schema->c_str()); });
	state->schema_check = opts.schema_changes == SchemaChanges::kCheck;
}

void
parse_plugin_options(DecodeState *state, List *options)
{
	/* Collect the DefElems first: plain C, before any C++ object exists. */
	int n = list_length(options);
	const char **names = static_cast<const char **>(palloc0(sizeof(char *) * (n + 1)));
	const char **values = static_cast<const char **>(palloc0(sizeof(char *) * (n + 1)));
	int i = 0;
	ListCell *lc;
	foreach (lc, options) {
		DefElem *elem = lfirst_node(DefElem, lc);
		names[i] = elem->defname;
		values[i] = (elem->arg != nullptr && IsA(elem->arg, String)) ? strVal(elem->arg) : nullptr;
		i++;
	}

	guarded([&] {
		std::vector<RawOption> raw;
		for (int j = 0; j < n; j++)
			raw.emplace_back(names[j], values[j] != nullptr ? std::optional<std::string>(values[j])
															: std::nullopt);
		store_options(state, parse_options(raw));
	});
}

/*
 * Checks that need the catalogs: the extension exists here, and columns=raw
 * is for members of edgesync_phi_reader.  In a walsender there is no
 * transaction at startup, so one is started for the lookups.
 */
void
check_database(DecodeState *state, bool is_init)
{
	bool started = false;
	if (!IsTransactionState()) {
		StartTransactionCommand();
		started = true;
	}

	if (!OidIsValid(get_extension_oid("edgesync", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"edgesync\" is not installed in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("The edgesync output plugin streams the tables tracked by the edgesync "
						   "catalog of the slot's database."),
				 errhint("Run CREATE EXTENSION edgesync in this database first.")));

	if (!is_init && state->raw_columns) {
		Oid reader = get_role_oid("edgesync_phi_reader", true);
		if (!OidIsValid(reader) || !is_member_of_role(GetUserId(), reader))
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							errmsg("permission denied for option \"columns\" = \"raw\""),
							errdetail("Only members of role edgesync_phi_reader may read columns "
									  "unmasked by their column policy."),
							errhint("Use columns=policy, or have an administrator grant "
									"edgesync_phi_reader.")));
	}

	if (state->source == nullptr) {
		/* Unique across hospitals: system identifier, database, slot. */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(state));
		state->source =
			psprintf(UINT64_FORMAT "/%s/%s", GetSystemIdentifier(), get_database_name(MyDatabaseId),
					 MyReplicationSlot != nullptr ? NameStr(MyReplicationSlot->data.name) : "");
		MemoryContextSwitchTo(old);
	}

	if (started)
		CommitTransactionCommand();
}

/* The plugin's WriterOutput: each message to the slot's consumer. */
struct PluginOutput {
	WriterOutput base;
	LogicalDecodingContext *ctx;
	XLogRecPtr decoding_at; /* ctx->write_location while a message is written at another */
	bool moved;
};

void
plugin_begin(WriterOutput *self, XLogRecPtr lsn)
{
	PluginOutput *p = reinterpret_cast<PluginOutput *>(self);
	/* The consumer learns a message's position when it is prepared. */
	p->moved = lsn != InvalidXLogRecPtr;
	if (p->moved) {
		p->decoding_at = p->ctx->write_location;
		p->ctx->write_location = lsn;
	}
	OutputPluginPrepareWrite(p->ctx, true);
	self->buf = p->ctx->out;
}

void
plugin_emit(WriterOutput *self)
{
	PluginOutput *p = reinterpret_cast<PluginOutput *>(self);
	OutputPluginWrite(p->ctx, true);
	if (p->moved)
		p->ctx->write_location = p->decoding_at;
	p->moved = false;
}

XLogRecPtr
plugin_position(const WriterOutput *self)
{
	return reinterpret_cast<const PluginOutput *>(self)->ctx->write_location;
}

void
startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	MemoryContext old = MemoryContextSwitchTo(ctx->context);
	DecodeState *state = static_cast<DecodeState *>(palloc0(sizeof(DecodeState)));
	state->change_context =
		AllocSetContextCreate(ctx->context, "edgesync change", ALLOCSET_DEFAULT_SIZES);
	state->run_context =
		AllocSetContextCreate(ctx->context, "edgesync sql run", ALLOCSET_DEFAULT_SIZES);
	state->ntables = -1;
	parse_plugin_options(state, ctx->output_plugin_options);
	state->writer = format_writer(state->format);
	PluginOutput *output = static_cast<PluginOutput *>(palloc0(sizeof(PluginOutput)));
	output->base.begin = plugin_begin;
	output->base.emit = plugin_emit;
	output->base.position = plugin_position;
	output->ctx = ctx;
	state->output = &output->base;
	HASHCTL ensured;
	ensured.keysize = sizeof(Oid);
	ensured.entrysize = sizeof(EnsuredTable);
	ensured.hcxt = ctx->context;
	state->ensured =
		hash_create("edgesync ensured tables", 16, &ensured, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	MemoryContextSwitchTo(old);

	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
	ctx->output_plugin_private = state;

	check_database(state, is_init);
	/* Cached facts were read under other snapshots (peek decodes again). */
	relinfo_invalidate_all();
	relinfo_purge();
}

void
shutdown(LogicalDecodingContext *ctx)
{
	/* Everything lives in ctx->context, deleted by the caller. */
}

/*
 * Output settings every value is written under, for this transaction only
 * (GUC_ACTION_LOCAL: undone when the decoding's transaction ends, so the
 * reading session keeps its own).  Every setting an output function reads
 * is pinned, so two consumers with different session settings (PGTZ,
 * PGDATESTYLE, ALTER ROLE ... SET) get the same bytes: timestamptz depends
 * on TimeZone, dates on DateStyle, intervals on IntervalStyle, floats on
 * extra_float_digits, bytea on bytea_output, money on lc_monetary, and
 * regclass/regtype/regproc values on search_path (with only pg_catalog,
 * every other name is schema-qualified; see pin_search_path) and on
 * quote_all_identifiers, which also shapes the names the writers quote with
 * quote_identifier().  Each is set only when it would change the output (a zone with a fixed zero
 * offset such as Debian's default Etc/UTC prints as UTC does; C.UTF-8 formats money as C does):
 * setting one costs about a microsecond per transaction, which single-row transactions notice.
 */
void
pin_setting(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
							 false);
}

/* A zone that prints every instant as UTC does (Etc/UTC, GMT, ...). */
bool
is_utc(const pg_tz *tz)
{
	long offset;
	return pg_get_timezone_offset(tz, &offset) && offset == 0;
}

/* The C locale's monetary conventions, under any of its names. */
bool
is_c_locale(const char *name)
{
	return strcmp(name, "C") == 0 || strcmp(name, "POSIX") == 0 || strncmp(name, "C.", 2) == 0;
}

void
pin_output_settings()
{
	if (DateStyle != USE_ISO_DATES)
		pin_setting("datestyle", "ISO");
	if (IntervalStyle != INTSTYLE_POSTGRES)
		pin_setting("intervalstyle", "postgres");
	if (extra_float_digits < 1)
		pin_setting("extra_float_digits", "1");
	if (bytea_output != BYTEA_OUTPUT_HEX)
		pin_setting("bytea_output", "hex");
	if (!is_utc(session_timezone))
		pin_setting("timezone", "UTC");
	if (!is_c_locale(locale_monetary))
		pin_setting("lc_monetary", "C");
	if (quote_all_identifiers)
		pin_setting("quote_all_identifiers", "off");
}

/*
 * search_path shapes only regclass, regtype, ... values, and the default
 * ("$user", public) differs from what is pinned: set it only in transactions
 * that write a relation with such a column, not in every one.
 */
void
pin_search_path(DecodeState *state)
{
	if (state->search_path_pinned)
		return;
	state->search_path_pinned = true;
	if (strcmp(namespace_search_path, "pg_catalog") != 0)
		pin_setting("search_path", "pg_catalog");
}

} // namespace

void
pin_output_settings_for_writers()
{
	pin_output_settings();
	if (strcmp(namespace_search_path, "pg_catalog") != 0)
		pin_setting("search_path", "pg_catalog");
}

namespace {

/* ISO 8601 with zone offset: 2026-11-28T20:13:08.123456+00:00 */
void
format_iso8601(TimestampTz ts, char *buf)
{
	struct pg_tm tm;
	fsec_t fsec;
	int tz;
	const char *tzn;

	if (TIMESTAMP_NOT_FINITE(ts))
		EncodeSpecialTimestamp(ts, buf);
	else if (timestamp2tm(ts, &tz, &tm, &fsec, &tzn, nullptr) == 0)
		EncodeDateTime(&tm, fsec, true, tz, tzn, USE_XSD_DATES, buf);
	else
		strlcpy(buf, "invalid", MAXDATELEN + 1);
}

} // namespace

void
start_transaction_output(DecodeState *state, TransactionId xid, XLogRecPtr commit_lsn,
						 TimestampTz commit_time)
{
	state->seq = 0;
	/* Before commit_time is formatted: it is written in UTC too. */
	pin_output_settings();
	snprintf(state->commit_lsn, sizeof(state->commit_lsn), "%X/%X",
			 static_cast<uint32>(commit_lsn >> 32), static_cast<uint32>(commit_lsn));
	char buf[MAXDATELEN + 1];
	format_iso8601(commit_time, buf);
	strlcpy(state->commit_time, buf, sizeof(state->commit_time));
	state->json_tail_len = snprintf(state->json_tail, sizeof(state->json_tail),
									",\"xid\":%u,\"commit_lsn\":\"%s\",\"commit_time\":\"%s\"}",
									xid, state->commit_lsn, state->commit_time);
}

namespace {

void
begin_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	relinfo_purge();
	state->begin_written = false;
	state->search_path_pinned = false;
	start_transaction_output(state, txn->xid, txn->final_lsn, txn->xact_time.commit_time);
}

/* Writes the deferred BEGIN before the transaction's first output. */
void
ensure_begin(DecodeState *state)
{
	if (state->begin_written)
		return;
	state->begin_written = true;
	state->writer->begin(state);
}

void
commit_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	bool skipped = !state->begin_written;

	OutputPluginUpdateProgress(ctx, skipped);
	if (!skipped)
		state->writer->commit(state);
	MemoryContextReset(state->change_context);
}

/* True if an attribute's values of two tuples hold the same bytes. */
bool
same_value(Form_pg_attribute att, bool a_null, Datum a, bool b_null, Datum b)
{
	if (a_null != b_null)
		return false;
	return a_null || datum_image_eq(a, b, att->attbyval, att->attlen);
}

/* Whether relation is edgesync.schema_changes (decode.sql), where schema changes are recorded. */
bool
is_schema_changes(Relation relation)
{
	if (strcmp(RelationGetRelationName(relation), "schema_changes") != 0)
		return false;
	char *schema = get_namespace_name(RelationGetNamespace(relation));
	return schema != nullptr && strcmp(schema, "edgesync") == 0;
}

/* A text column of a schema_changes row by name, or nullptr if NULL. */
const char *
schema_change_text(TupleDesc desc, HeapTuple tuple, const char *name)
{
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		bool isnull;
		Datum d = heap_getattr(tuple, att->attnum, desc, &isnull);
		if (isnull)
			return nullptr;
		return att->atttypid == OIDOID
				   ? psprintf("%u", DatumGetObjectId(d))
				   : text_to_cstring(reinterpret_cast<::text *>(DatumGetPointer(d)));
	}
	return nullptr;
}

/*
 * A row of edgesync.schema_changes: a schema change of a tracked table,
 * recorded in its transaction right after it (decode.sql).  The table as the
 * change left it is what the historic snapshot shows here; the sql format
 * writes its table block with what the hospital did (renames, drops,
 * retypes), which the table's shape alone does not tell; the json format a
 * "schema" line.
 */
void
schema_change(DecodeState *state, Relation catalog, ReorderBufferChange *rbchange)
{
	HeapTuple tuple = edgesync::change_new_tuple(rbchange);
	if (tuple == nullptr)
		return;
	MemoryContext old = MemoryContextSwitchTo(state->change_context);
	TupleDesc desc = RelationGetDescr(catalog);
	const char *relid_text = schema_change_text(desc, tuple, "relid");
	const char *kind = schema_change_text(desc, tuple, "change");
	const char *old_name = schema_change_text(desc, tuple, "old_name");
	Oid relid =
		relid_text != nullptr ? static_cast<Oid>(strtoul(relid_text, nullptr, 10)) : InvalidOid;
	Relation relation = OidIsValid(relid) ? RelationIdGetRelation(relid) : nullptr;
	if (relation != nullptr && kind != nullptr && old_name != nullptr) {
		const RelInfo *rel = relinfo_get(state, relation);
		if (rel->selected && rel->root == relid) {
			const char *new_name = schema_change_text(desc, tuple, "new_name");
			const char *old_schema = schema_change_text(desc, tuple, "old_schema");
			ensure_begin(state);
			state->seq++;
			SchemaChange change = {.relation = relation,
								   .rel = rel,
								   .change = kind,
								   .old_name = old_name,
								   .new_name = new_name,
								   .old_schema = old_schema};
			state->writer->schema_change(state, &change);
		}
	}
	if (relation != nullptr)
		RelationClose(relation);
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->change_context);
}

void
change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation relation,
	   ReorderBufferChange *rbchange)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	const RelInfo *rel = relinfo_get(state, relation);
	if (!rel->selected) {
		if (rbchange->action == REORDER_BUFFER_CHANGE_INSERT && is_schema_changes(relation))
			schema_change(state, relation, rbchange);
		return;
	}
	if (rel->names_objects)
		pin_search_path(state);

	MemoryContext old = MemoryContextSwitchTo(state->change_context);
	TupleDesc desc = RelationGetDescr(relation);
	Change c;
	memset(&c, 0, sizeof(c));
	c.rel = rel;
	c.relation = relation;
	c.action = rbchange->action;
	c.natts = desc->natts;

	HeapTuple newtuple = nullptr;
	HeapTuple oldtuple = nullptr;
	switch (rbchange->action) {
	case REORDER_BUFFER_CHANGE_INSERT:
		newtuple = edgesync::change_new_tuple(rbchange);
		break;
	case REORDER_BUFFER_CHANGE_UPDATE:
		newtuple = edgesync::change_new_tuple(rbchange);
		oldtuple = edgesync::change_old_tuple(rbchange);
		break;
	case REORDER_BUFFER_CHANGE_DELETE:
		oldtuple = edgesync::change_old_tuple(rbchange);
		break;
	default:
		MemoryContextSwitchTo(old);
		return;
	}
	if (newtuple != nullptr) {
		c.new_values = static_cast<Datum *>(palloc(sizeof(Datum) * desc->natts));
		c.new_nulls = static_cast<bool *>(palloc(sizeof(bool) * desc->natts));
		heap_deform_tuple(newtuple, desc, c.new_values, c.new_nulls);
	}
	if (oldtuple != nullptr) {
		c.old_values = static_cast<Datum *>(palloc(sizeof(Datum) * desc->natts));
		c.old_nulls = static_cast<bool *>(palloc(sizeof(bool) * desc->natts));
		heap_deform_tuple(oldtuple, desc, c.old_values, c.old_nulls);
	}
	if (c.new_values != nullptr) {
		c.unchanged = static_cast<bool *>(palloc0(sizeof(bool) * desc->natts));
		for (int i = 0; i < desc->natts; i++) {
			const ColumnInfo *col = &rel->columns[i];
			if (col->dropped || c.new_nulls[i] || !value_is_unchanged_toast(col, c.new_values[i]))
				continue;
			/* REPLICA IDENTITY FULL logs the old value inline: use it. */
			if (c.old_values != nullptr && !c.old_nulls[i] &&
				!value_is_unchanged_toast(col, c.old_values[i]))
				c.new_values[i] = c.old_values[i];
			else
				c.unchanged[i] = true;
		}
	}
	/* Values too large for the output are left out (and named), never a stuck slot. */
	limit_change_size(state, &c);
	if (c.new_values != nullptr && c.old_values != nullptr && rel->nkeys > 0) {
		bool complete = true;
		for (int k = 0; k < rel->nkeys; k++)
			complete &= !c.old_nulls[rel->keys[k] - 1];
		if (complete)
			for (int k = 0; k < rel->nkeys; k++) {
				int i = rel->keys[k] - 1;
				if (!same_value(TupleDescAttr(desc, i), c.old_nulls[i], c.old_values[i],
								c.new_nulls[i], c.new_values[i]))
					c.key_changed = true;
			}
	}

	ensure_begin(state);
	state->seq++;
	state->writer->change(state, &c);

	MemoryContextSwitchTo(old);
	MemoryContextReset(state->change_context);
}

void
truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations, Relation relations[],
		 ReorderBufferChange *rbchange)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	MemoryContext old = MemoryContextSwitchTo(state->change_context);
	const char **schemas = static_cast<const char **>(palloc0(sizeof(char *) * (nrelations + 1)));
	const char **tables = static_cast<const char **>(palloc0(sizeof(char *) * (nrelations + 1)));
	const RelInfo **rels =
		static_cast<const RelInfo **>(palloc0(sizeof(RelInfo *) * (nrelations + 1)));
	Relation *truncated = static_cast<Relation *>(palloc0(sizeof(Relation) * (nrelations + 1)));
	bool *alone = static_cast<bool *>(palloc0(sizeof(bool) * (nrelations + 1)));
	int n = 0;

	for (int i = 0; i < nrelations; i++) {
		const RelInfo *rel = relinfo_get(state, relations[i]);
		if (!rel->selected)
			continue;
		if (rel->root == rel->relid) {
			schemas[n] = rel->schema;
			tables[n] = rel->table;
			rels[n] = rel;
			truncated[n] = relations[i];
			n++;
			continue;
		}
		/*
		 * A partition: its tracked root truncated with it covers it;
		 * otherwise only this partition was truncated, reported by its name.
		 */
		bool root_listed = false;
		for (int j = 0; j < nrelations; j++)
			root_listed |= RelationGetRelid(relations[j]) == rel->root;
		if (root_listed)
			continue;
		schemas[n] = get_namespace_name(RelationGetNamespace(relations[i]));
		tables[n] = RelationGetRelationName(relations[i]);
		rels[n] = rel;
		truncated[n] = relations[i];
		alone[n] = true;
		n++;
	}
	if (n > 0) {
		ensure_begin(state);
		state->seq++;
		bool cascade = rbchange->data.truncate.cascade;
		bool restart = rbchange->data.truncate.restart_seqs;
		TruncatedTables truncated_tables = {.n = n,
											.rels = rels,
											.relations = truncated,
											.alone = alone,
											.schemas = schemas,
											.tables = tables,
											.cascade = cascade,
											.restart_identity = restart};
		state->writer->truncate(state, &truncated_tables);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->change_context);
}

void
message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr lsn, bool transactional,
		const char *prefix, Size size, const char *content)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	if (state->writer->message == nullptr)
		return;
	MemoryContext old = MemoryContextSwitchTo(state->change_context);
	if (transactional) {
		ensure_begin(state);
		state->seq++;
	}
	state->writer->message(state, lsn, transactional, prefix, size, content);
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->change_context);
}

bool
filter_by_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	return state->skip_origins && origin_id != InvalidRepOriginId;
}

} // namespace

} // namespace edgesync::decode

/*
 * The plugin's entry point.  No two-phase or streaming callbacks: prepared
 * transactions are decoded at COMMIT PREPARED, and large transactions spill
 * to disk (logical_decoding_work_mem) instead of streaming.
 */
void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	using namespace edgesync::decode;
	cb->startup_cb = startup;
	cb->begin_cb = begin_txn;
	cb->change_cb = change;
	cb->truncate_cb = truncate;
	cb->commit_cb = commit_txn;
	cb->message_cb = message;
	cb->filter_by_origin_cb = filter_by_origin;
	cb->shutdown_cb = shutdown;
}
