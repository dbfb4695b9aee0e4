/*
 * decode.hpp — the output plugin's shared declarations.
 *
 * The plugin (plugin.cpp) keeps one DecodeState per decoding session and
 * one RelInfo per relation (relinfo.cpp, a cache invalidated by relcache
 * callbacks).  The writers (json_writer.cpp; sql_writer.cpp with its runs
 * in sql_runs.cpp) turn a Change into text; values.cpp writes one column
 * value under its policy.
 *
 * Functions here are plain C-style code: they may ereport(ERROR) and own no
 * C++ objects, so they are called from the callbacks directly.
 */
#pragma once

#include "core/string_info_sink.hpp"
#include "core/postgres.hpp"
#include "core/text_writer.hpp"
#include "core/value_kind.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "replication/reorderbuffer.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
}

namespace edgesync::decode {

/* The column policy (edgesync.set_column_policy). */
enum class Policy : char { kReplicate, kHash, kRedact };

struct RelInfo;
struct SqlRun;

struct ColumnInfo {
	const RelInfo *rel; /* the relation it belongs to (for messages) */
	bool dropped;		/* dropped column: skip */
	bool generated;		/* stored generated: json only */
	bool is_key;		/* primary key column */
	bool is_identity;	/* replica identity index column */
	bool not_null;		/* attnotnull */
	bool in_array;		/* sql: values can be sent as elements of an array of its type */
	ValueKind kind;
	Policy policy;
	Oid typid;
	int32 typmod;
	uint32 type_hash; /* typid's TYPEOID syscache hash: its invalidations */
	int16 typlen;
	const char *name;
	const char *json_key;	/* "name": pre-escaped */
	const char *sql_ident;	/* "name" quoted */
	const char *sql_type;	/* qualified type name for a cast */
	const char *sql_eq;		/* key and identity columns: OPERATOR(schema.=) of the type */
	const char *generation; /* stored generated: the expression, for a replica table block */
	FmgrInfo output;
};

struct RelInfo {
	Oid relid; /* hash key: the relation a change is for */
	bool valid;
	MemoryContext context; /* everything below */
	Oid root;			   /* the partition root, or relid */
	bool tracked;		   /* root is in edgesync.tracked_tables */
	bool selected;		   /* tracked and allowed by the "tables" option */
	bool has_policy;	   /* some column is hashed or redacted */
	bool names_objects;	   /* some column's text may name objects (regclass...) */
	const char *schema;	   /* the tracked table's names */
	const char *table;
	const char *json_names;		/* "schema":"s","table":"t" */
	const char *replica_schema; /* the table's schema on the replica (option replica-schema) */
	const char *sql_name;		/* "<replica schema>"."t" */
	int natts;
	ColumnInfo *columns; /* natts, by attnum - 1 */
	int nkeys;
	AttrNumber keys[INDEX_MAX_KEYS]; /* primary key attnums */
	int nidentity;
	AttrNumber identity[INDEX_MAX_KEYS]; /* replica identity index attnums */
	AttrNumber version_attnum;			 /* 0 if none */
	bool keys_text_exact;				 /* primary key values are equal iff their literals are */
	uint64 shape_hash; /* of what a replica table block says of it (names, types, NULLs, key) */
};

/* DecodeState.ensured: a tracked table whose replica table block this session wrote. */
struct EnsuredTable {
	Oid root;	  /* hash key */
	uint64 shape; /* RelInfo.shape_hash the block was written for */
};

/*
 * Where the writers' messages go, set once per session: the plugin's sends
 * each to the consumer of the slot (OutputPluginPrepareWrite/Write, in
 * plugin.cpp); a resync's collects them for the shipper (src/ship/resync.cpp).
 * A writer begins a message (buf is then empty), appends to buf, and emits it.
 */
struct WriterOutput {
	StringInfo buf;
	/* lsn: the message's position; InvalidXLogRecPtr for the change being decoded. */
	void (*begin)(WriterOutput *self, XLogRecPtr lsn);
	void (*emit)(WriterOutput *self);
	/* The position of the change being decoded (InvalidXLogRecPtr outside decoding). */
	XLogRecPtr (*position)(const WriterOutput *self);
};

struct DecodeState;
struct Change;
struct TruncatedTables;
struct SchemaChange;

/* A format's writers (json_writer.cpp, sql_writer.cpp), chosen once per session. */
struct FormatWriter {
	void (*begin)(DecodeState *state);
	void (*commit)(DecodeState *state);
	void (*change)(DecodeState *state, const Change *change);
	void (*truncate)(DecodeState *state, const TruncatedTables *tables);
	void (*schema_change)(DecodeState *state, const SchemaChange *change);
	/* A logical message (pg_logical_emit_message); nullptr: the format has none. */
	void (*message)(DecodeState *state, XLogRecPtr lsn, bool transactional, const char *prefix,
					Size size, const char *content);
};

/* Per-session plugin state (ctx->output_plugin_private). */
struct DecodeState {
	MemoryContext change_context; /* reset after every change */
	int format;					  /* Format */
	bool include_transaction;
	bool skip_origins;
	bool raw_columns;
	int ntables; /* "tables" option, or -1 for all */
	char **table_schemas;
	char **table_names;
	char *source;			   /* sql: this source's name on the replica */
	int batch_rows;			   /* sql: most changes in one statement */
	int batch_bytes;		   /* sql: statement size after which a run ends */
	MemoryContext run_context; /* sql: the run being buffered, reset per run */
	struct SqlRun *run;		   /* sql_runs.cpp */
	bool runs_span_commits;	   /* sql: hold_runs_across_commits() was called */
	bool binary_runs;		   /* sql: send_runs_binary() was called */
	char *replica_schema;	   /* sql: option replica-schema, or nullptr */
	bool schema_check;		   /* sql: schema-changes = check */
	bool setup_written;		   /* sql: the session's setup is written (or sent by the reader) */
	HTAB *ensured;			   /* sql: tracked roots this session wrote a table block for */

	WriterOutput *output;
	const FormatWriter *writer; /* format_writer(format) */

	/* The transaction being decoded. */
	bool begin_written;
	bool search_path_pinned;
	uint64 seq;
	char commit_lsn[32];
	char commit_time[64];
	char json_tail[160]; /* ,"xid":N,"commit_lsn":"..","commit_time":".."} */
	int json_tail_len;
};

/* One row change, deformed. */
struct Change {
	const RelInfo *rel;
	Relation relation; /* the relation changed: the tracked table or one of its partitions */
	ReorderBufferChangeType action;
	int natts;
	Datum *new_values; /* nullptr if no new tuple */
	bool *new_nulls;
	Datum *old_values; /* nullptr if no old tuple */
	bool *old_nulls;
	bool *unchanged; /* new tuple: unchanged TOAST value not in WAL (natts) */
	bool *too_large; /* new tuple: value left out, over the output limit (natts); or nullptr */
	bool key_changed;
};

/*
 * The tracked tables a TRUNCATE names: each tracked table (rels[i],
 * relations[i], schemas[i].tables[i]) or a partition truncated alone
 * (alone[i], by its own name), whose rows the replica's table of the tracked
 * table holds.
 */
struct TruncatedTables {
	int n;
	const RelInfo **rels;
	Relation *relations;
	const bool *alone;
	const char **schemas;
	const char **tables;
	bool cascade;
	bool restart_identity;
};

/*
 * A schema change of the tracked table rel, a row of edgesync.schema_changes:
 * change is rename_column, drop_column, alter_type or rename_table.
 */
struct SchemaChange {
	Relation relation;
	const RelInfo *rel;
	const char *change;
	const char *old_name;
	const char *new_name;
	const char *old_schema;
};

/* The writers of a format (Format, options.hpp). */
const FormatWriter *format_writer(int format);

/* The steps of a message, on the session's output (WriterOutput). */
inline StringInfo
output_begin(DecodeState *state, XLogRecPtr lsn = InvalidXLogRecPtr)
{
	state->output->begin(state->output, lsn);
	return state->output->buf;
}

inline void
output_emit(DecodeState *state)
{
	state->output->emit(state->output);
}

inline XLogRecPtr
output_position(const DecodeState *state)
{
	return state->output->position(state->output);
}

/*
 * Output limits (docs/output-format.md, "Size limits").  One change is one
 * output message, which PostgreSQL allocates at once (at most 1 GB,
 * MaxAllocSize): a change whose values would take it past kMaxChangeOutput
 * has its largest values left out and named instead, so that no row stops
 * the slot.  A logical message's prefix and content over their limits are
 * left out the same way: anyone may emit one (pg_logical_emit_message).
 */
constexpr size_t kMaxChangeOutput = (size_t{1} << 30) - 1 - (size_t{1} << 20); /* 1 GB - 1 MB */
constexpr size_t kMaxMessagePrefix = 1024;
constexpr size_t kMaxMessageContent = size_t{16} << 20; /* 16 MB */

/* relinfo.cpp */
const RelInfo *relinfo_get(DecodeState *state, Relation rel);
void relinfo_invalidate_all();
void relinfo_purge();

/*
 * plugin.cpp: the output settings the plugin writes values under (UTC,
 * ISO dates, hex bytea, ... see docs/output-format.md), set LOCAL to the
 * current transaction.  The decoding callbacks set them themselves; code that
 * calls the writers outside decoding (a resync) calls this first, in a
 * transaction, so that its values read the same as the stream's.
 */
void pin_output_settings_for_writers();

/*
 * plugin.cpp: what every line of a transaction carries (commit LSN and time,
 * xid, the json tail), formatted under the pinned output settings; seq
 * restarts.  begin_txn calls it for each decoded transaction, a resync for
 * each transaction it makes up.
 */
void start_transaction_output(DecodeState *state, TransactionId xid, XLogRecPtr commit_lsn,
							  TimestampTz commit_time);

/*
 * sql_runs.cpp, for the shipper, which decodes in its own process and applies
 * a batch of transactions under one guard (src/ship/slot_reader.cpp): a run
 * no longer ends at commit, so consecutive transactions' changes of one table
 * share a statement, until flush_open_run() writes it (as one more message of
 * the last transaction decoded).  Not an output option: a consumer that
 * cannot flush would lose the last run, and one that applies each
 * transaction under its own guard would apply changes under the wrong one.
 */
void hold_runs_across_commits(LogicalDecodingContext *ctx);
void flush_open_run(LogicalDecodingContext *ctx);

/*
 * sql_runs.cpp, for the shipper's replica connection: a run of upserts whose
 * columns are all of types in_binary_array() is written as a unit
 * (core/statement_unit.hpp), its values as binary arrays in parameters,
 * which the replica reads without parsing a literal.  Not an output option:
 * a unit is not text, and only a consumer that sends it with the extended
 * protocol can apply it.
 */
void send_runs_binary(LogicalDecodingContext *ctx);

/*
 * sql_writer.cpp, for the shipper: the reader of this session sends the
 * replica's setup statement itself (on every new connection, which a
 * decoding session does not follow), so the stream leaves it out.
 */
void omit_session_setup(LogicalDecodingContext *ctx);

/*
 * The sql format's version guards, with their schema: every operator the
 * format writes is, so that an object in a schema on the applying role's
 * search_path cannot stand in for it.
 */
constexpr const char *kVersionLess = "OPERATOR(pg_catalog.<)";
constexpr const char *kVersionAtMost = "OPERATOR(pg_catalog.<=)";

/*
 * values.cpp: one value under its column's policy (raw_columns: none).  The
 * json writer's value sets *too_large instead, and writes null, if the value
 * would take the line past kMaxChangeOutput.
 */
void append_json_value(StringInfo out, const DecodeState *state, const ColumnInfo *col, Datum value,
					   bool *json_null, bool *too_large);
void append_sql_value(StringInfo out, const DecodeState *state, const ColumnInfo *col, Datum value);
void append_sql_array_element(StringInfo out, const DecodeState *state, const ColumnInfo *col,
							  bool isnull, Datum value);
Policy effective_policy(const DecodeState *state, const ColumnInfo *col);
/*
 * values.cpp, for the shipper's binary runs (sql_runs.cpp): whether col's
 * values can travel as elements of a binary array, of which element type,
 * and one element (its length, then its bytes; send is the element type's
 * send function).
 */
bool in_binary_array(const DecodeState *state, const ColumnInfo *col);
Oid binary_array_element_type(const DecodeState *state, const ColumnInfo *col);
void append_binary_array_element(StringInfo out, const DecodeState *state, const ColumnInfo *col,
								 bool isnull, Datum value, FmgrInfo *send);
/* The operator a key column is compared with on the replica: its type's, or text's when hashed. */
const char *key_equality(const DecodeState *state, const ColumnInfo *col);
bool value_is_unchanged_toast(const ColumnInfo *col, Datum value);
/*
 * Sets c->too_large for the values that cannot be written, or whose output
 * would take the change past kMaxChangeOutput (largest first); sizes only
 * large values exactly, after which the writers find them detoasted.
 */
void limit_change_size(const DecodeState *state, Change *c);

/* policy.cpp */
void register_policy_settings();
void append_hmac_hex(StringInfo out, const char *data, size_t len);

/* One row of edgesync.column_policies: the column it names and its policy. */
struct StoredPolicy {
	const char *column;
	Policy policy;
};

/*
 * The policies stored for relid (a tracked table, never a partition), read
 * with snapshot (nullptr: the catalog snapshot, the historic one while
 * decoding), allocated in the current memory context.  A policy names its
 * column; in the catalog of 0.1.0 (which a slot decodes until ALTER
 * EXTENSION UPDATE commits) it had the column's number, read as the name
 * that number has.
 */
int read_column_policies(Oid relid, Snapshot snapshot, StoredPolicy **out);

/* json_writer.cpp */
void json_write_begin(DecodeState *state);
void json_write_commit(DecodeState *state);
void json_write_change(DecodeState *state, const Change *change);
/* A schema change of the tracked table rel: a "schema" line (json_writer.cpp). */
void json_write_schema_change(DecodeState *state, const RelInfo *rel, const char *change,
							  const char *old_name, const char *new_name, const char *old_schema);
void json_write_truncate(DecodeState *state, int n, const char **schemas, const char **tables,
						 bool cascade, bool restart_identity);
void json_write_message(DecodeState *state, XLogRecPtr lsn, bool transactional, const char *prefix,
						Size size, const char *message);

/* sql_writer.cpp */
void sql_write_begin(DecodeState *state);
void sql_write_commit(DecodeState *state);
void sql_write_change(DecodeState *state, const Change *change);
/*
 * The tables a truncate names: the tracked tables (rels[i], relations[i])
 * and partitions truncated alone (alone[i]), whose rows the replica's table
 * of the tracked table holds.
 */
/*
 * The replica table block of rel as relation describes it now (sql_tables.cpp),
 * for the shipper's re-send, which writes a table's rows outside decoding.
 */
void sql_write_table(DecodeState *state, Relation relation, const RelInfo *rel);
/*
 * A schema change of the tracked table rel (a row of edgesync.schema_changes:
 * change is rename_column, drop_column, alter_type or rename_table), as its
 * table block with that edit (sql_tables.cpp).
 */
void sql_write_schema_change(DecodeState *state, Relation relation, const RelInfo *rel,
							 const char *change, const char *old_name, const char *new_name,
							 const char *old_schema);
void sql_write_truncate(DecodeState *state, int n, const RelInfo **rels, Relation *relations,
						const bool *alone, bool cascade, bool restart_identity);

} // namespace edgesync::decode
