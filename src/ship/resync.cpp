/*
 * resync.cpp — the full re-send behind edgesync.resync(target).
 *
 * resync() gives the target a new slot and sets target_state.resync_pending;
 * the next shipping attempt first sends the current rows of every tracked
 * table, then streams from the new slot.  The rows are written by the output
 * plugin's own writers (src/decode), as inserts, under the same column
 * policy as the stream (columns=policy unless the target says raw), so a
 * re-send never shows more than the stream would: the scan feeds them to
 * the format's writers (decode::format_writer) with an output of its own
 * (decode::WriterOutput) that collects their messages instead of handing
 * them to a slot; no decoding structure of PostgreSQL's is made up here.
 *
 * Each batch is one transaction in the target's format: for a replica the
 * re-send's start (decode/replica_sql.hpp: every statement applies, no
 * applied LSN read or recorded), each table's table block (the replica's
 * table created or brought to the hospital's shape, as the stream's own
 * blocks do), then version-guarded upserts, so rows the replica already has
 * in the same or a newer version are left alone; over HTTP, json insert
 * lines framed by begin/commit.  Rows changed after the new slot was created arrive again
 * through the stream: the version guard makes the overlap harmless.
 *
 * Commit LSNs: the stream from the new slot carries every transaction whose
 * commit record starts at or after the slot's confirmed position (its
 * consistent point S, where resync() created it); transactions the receiver
 * got from the old slot committed before S.  So the re-send must not claim
 * an LSN at or beyond S, or a receiver that skips transactions not newer
 * than the last one it applied would skip streamed ones (the replica's
 * guard does exactly that).  Every line of a re-send carries
 * commit_lsn S - 1 and xid 0; on a replica nothing is recorded at all, so a
 * later re-send (a retry, or another resync) is never taken for a replay.
 * Idempotency-Keys name the slot, the attempt (its start time) and the
 * batch: "resync-<S>-<attempt>-<batch>", never reused by another attempt.
 *
 * Rows deleted while the slot was lost: the rows of one tracked table (a
 * partitioned one with all its leaves) are sent as a whole, and the receiver
 * learns where that whole begins and ends.
 *
 *   - Replica ("mark and sweep"): the first batch of a table creates a
 *     temporary table on the replica, named for this resync and table, with
 *     the replica's key columns; each batch also inserts the keys of its rows
 *     there (as the plugin writes them: a hashed key as its hash).  The batch
 *     with the table's last rows then checks that the temporary table holds
 *     exactly as many keys as were sent, deletes the replica's rows whose key
 *     is not among them, and drops it, all in that batch's transaction.  The
 *     keys travel with the rows, so memory stays bounded by a batch.  A
 *     failure before that batch commits deletes nothing: the temporary table
 *     goes with the failed session (the transport reconnects after any
 *     failure), and the next attempt starts over under another name.  A key
 *     count that does not match (another session, a lost batch) fails the
 *     batch rather than delete.
 *   - HTTP: a {"op":"resync_begin"} line before the table's first row and a
 *     {"op":"resync_end","rows":N} line after its last one; a receiver may
 *     drop, on resync_end, the rows of that table it did not get in between
 *     (docs/shipping.md).
 *
 * Deleting what the snapshot lacks is right because the stream from the new
 * slot (everything committed after it) is delivered only after the re-send:
 * a row the replica has but the snapshot lacks was deleted at the source.
 *
 * The scan runs in one snapshot; a failed delivery leaves resync_pending
 * set, and the next attempt starts the re-send again.
 */
#include "core/guard.hpp"
#include "decode/decode.hpp"
#include "decode/options.hpp"
#include "decode/replica_sql.hpp"
#include "ship/activity.hpp"
#include "ship/batch.hpp"
#include "ship/resync.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace edgesync::ship {

namespace {

using decode::DecodeState;

/*
 * The writers' output of a resync: each message becomes one row of the
 * batch (collected).  Called by the writers, under PostgreSQL frames: no
 * exception may leave them.
 */
std::vector<std::string> *collected = nullptr;

void
collect_begin(decode::WriterOutput *self, XLogRecPtr)
{
	resetStringInfo(self->buf);
}

void
collect_emit(decode::WriterOutput *self)
{
	if (collected != nullptr)
		guarded(
			[&] { collected->emplace_back(self->buf->data, static_cast<size_t>(self->buf->len)); });
}

/* A resync writes rows read from tables, at no position of the WAL. */
XLogRecPtr
collect_position(const decode::WriterOutput *)
{
	return InvalidXLogRecPtr;
}

/* A tracked table: its rows are in itself, or in the leaves of a partitioned one. */
struct TrackedTable {
	Oid root;
	std::vector<Oid> leaves;
};

/* The tracked tables, by oid. */
std::vector<TrackedTable>
tracked_tables()
{
	std::vector<TrackedTable> out;
	pg_call([] {
		if (SPI_execute("SELECT relid::pg_catalog.oid FROM edgesync.tracked_tables ORDER BY 1",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not list tracked tables");
	});
	std::vector<Oid> roots;
	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;
		roots.push_back(DatumGetObjectId(
			SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
	}
	for (Oid root : roots) {
		/*
		 * Only what track() accepts is scanned: a registered relation that is
		 * no longer a table (dropped, turned into a view, attached as a
		 * partition while the DDL event trigger was disabled) is skipped with
		 * a warning; it has no rows of its own to send.
		 */
		char kind = pg_call([&] { return get_rel_relkind(root); });
		bool partition = pg_call([&] { return get_rel_relispartition(root); });
		if ((kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) || partition) {
			pg_call([&] {
				ereport(WARNING,
						(errmsg("edgesync.tracked_tables lists relation %u, which is not a table "
								"edgesync can track: its rows are not re-sent",
								root),
						 errhint("Its owner untracks it with edgesync.untrack().")));
			});
			continue;
		}
		out.push_back(TrackedTable{root, {}});
		if (kind != RELKIND_PARTITIONED_TABLE) {
			out.back().leaves.push_back(root);
			continue;
		}
		List *all = pg_call([&] { return find_all_inheritors(root, AccessShareLock, nullptr); });
		ListCell *lc;
		foreach (lc, all) {
			Oid leaf = lfirst_oid(lc);
			if (pg_call([&] { return get_rel_relkind(leaf); }) == RELKIND_RELATION)
				out.back().leaves.push_back(leaf);
		}
	}
	return out;
}

/* What a table's markers and sweep need: copied, since a RelInfo may be rebuilt. */
struct TableFacts {
	bool selected = false;
	std::string json_names;							/* "schema":"s","table":"t" */
	std::string sql_name;							/* "s"."t" */
	std::vector<std::string> keys;					/* primary key columns, quoted */
	std::vector<std::string> key_equalities;		/* their OPERATOR(schema.=) */
	bool complete() const { return !keys.empty(); } /* rows can be told apart */
};

class Resender {
  public:
	Resender(const TargetConfig &config, Transport &transport)
		: config_(config), transport_(transport)
	{
		/* The settings the plugin writes every value under. */
		pg_call([] { decode::pin_output_settings_for_writers(); });
		started_ = pg_call([] { return GetCurrentTimestamp(); });

		pg_call([&] {
			context_ = AllocSetContextCreate(CurrentMemoryContext, "edgesync resync",
											 ALLOCSET_DEFAULT_SIZES);
			MemoryContext old = MemoryContextSwitchTo(context_);
			state_ = static_cast<DecodeState *>(palloc0(sizeof(DecodeState)));
			state_->change_context =
				AllocSetContextCreate(context_, "edgesync resync row", ALLOCSET_DEFAULT_SIZES);
			state_->format = config_.kind == "http" ? static_cast<int>(decode::Format::kJson)
													: static_cast<int>(decode::Format::kSql);
			state_->include_transaction = true;
			state_->raw_columns = config_.columns == "raw";
			state_->ntables = -1;
			if (!config_.replica_schema.empty())
				state_->replica_schema = pstrdup(config_.replica_schema.c_str());
			state_->schema_check = config_.schema_changes == "check";
			state_->writer = decode::format_writer(state_->format);
			output_.buf = makeStringInfo();
			output_.begin = collect_begin;
			output_.emit = collect_emit;
			output_.position = collect_position;
			state_->output = &output_;
			keys_ = makeStringInfo();
			MemoryContextSwitchTo(old);
		});
	}

	~Resender()
	{
		collected = nullptr;
		decode::relinfo_invalidate_all();
		if (context_ != nullptr)
			MemoryContextDelete(context_);
	}

	/*
	 * Sends every row; false (with error) when a delivery failed or the slot
	 * is gone.  delivered counts the batches acknowledged, also on failure.
	 */
	bool run(std::string &error, Delivered &delivered)
	{
		report_activity(Activity::kResyncing);
		if (!read_slot_start(error))
			return false;
		/* Facts cached by a peek in this backend were read under historic snapshots. */
		pg_call([] { decode::relinfo_invalidate_all(); });
		collected = &rows_;
		for (const TrackedTable &table : tracked_tables())
			if (!send_table(table, error, delivered))
				return false;
		return flush(error, delivered);
	}

  private:
	/*
	 * The new slot's confirmed position, where the stream after the re-send
	 * starts (it only moves forward: a lower bound of every commit streamed
	 * after the re-send).  False, with error, when the slot is gone.
	 */
	bool read_slot_start(std::string &error)
	{
		bool found = pg_call([&] {
			Oid types[1] = {TEXTOID};
			Datum values[1] = {CStringGetTextDatum(config_.slot.c_str())};
			if (SPI_execute_with_args(
					"SELECT confirmed_flush_lsn OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn"
					"  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
					1, types, values, nullptr, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read replication slot \"%s\"", config_.slot.c_str());
			return SPI_processed == 1;
		});
		char *start = nullptr;
		if (found)
			start = pg_call(
				[] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1); });
		if (start == nullptr || std::stoull(start) == 0) {
			error = "replication slot \"" + config_.slot + "\" of target \"" + config_.name +
					"\" does not exist; call edgesync.resync('" + config_.name + "')";
			return false;
		}
		slot_start_ = std::stoull(start);
		char lsn[32];
		snprintf(lsn, sizeof(lsn), "%X/%X", static_cast<uint32>(slot_start_ >> 32),
				 static_cast<uint32>(slot_start_));
		key_prefix_ = std::string("resync-") + lsn + "-" + std::to_string(started_) + "-";
		return true;
	}

	bool sql() const { return state_->format == static_cast<int>(decode::Format::kSql); }

	/* The rows of one tracked table, between its markers (sql: staged keys, then the sweep). */
	bool send_table(const TrackedTable &table, std::string &error, Delivered &delivered)
	{
		TableFacts facts = table_facts(table.root);
		if (!facts.selected)
			return true;
		pg_call([&] { resetStringInfo(keys_); });
		keys_table_.clear();
		sweeping_ = facts.complete();
		table_rows_ = 0;
		if (sql() && !write_table_block(table.root, error, delivered))
			return false;
		if (sweeping_ && !begin_table(facts, error, delivered))
			return false;
		for (Oid leaf : table.leaves)
			if (!send_rows(leaf, facts, error, delivered))
				return false;
		return !sweeping_ || end_table(facts, error, delivered);
	}

	/*
	 * sql: the replica's table of root, as the snapshot has it, before its
	 * rows (and its sweep's temporary table, made like it).
	 */
	bool write_table_block(Oid root, std::string &error, Delivered &delivered)
	{
		if (!make_room(error, delivered))
			return false;
		begin_batch();
		Relation rel = pg_call([&] { return table_open(root, AccessShareLock); });
		pg_call([&] {
			const decode::RelInfo *info = decode::relinfo_get(state_, rel);
			decode::sql_write_table(state_, rel, info);
			table_close(rel, NoLock);
		});
		batch_bytes_ += static_cast<int64_t>(rows_.back().size());
		batch_rows_++;
		return true;
	}

	/* The root's names and key, read once; the lock is kept until the end of the transaction. */
	TableFacts table_facts(Oid root)
	{
		TableFacts facts;
		Relation rel = pg_call([&] { return table_open(root, AccessShareLock); });
		const decode::RelInfo *info = pg_call([&] { return decode::relinfo_get(state_, rel); });
		facts.selected = info->selected;
		if (facts.selected) {
			facts.json_names = info->json_names;
			facts.sql_name = info->sql_name;
			for (int k = 0; k < info->nkeys; k++) {
				facts.keys.emplace_back(info->columns[info->keys[k] - 1].sql_ident);
				facts.key_equalities.emplace_back(
					decode::key_equality(state_, &info->columns[info->keys[k] - 1]));
			}
			/* A redacted key never leaves: its rows cannot be told apart, nothing is swept. */
			for (int k = 0; k < info->nkeys; k++)
				if (decode::effective_policy(state_, &info->columns[info->keys[k] - 1]) ==
					decode::Policy::kRedact)
					facts.keys.clear();
		}
		pg_call([&] { table_close(rel, NoLock); });
		return facts;
	}

	bool send_rows(Oid relid, const TableFacts &facts, std::string &error, Delivered &delivered)
	{
		Relation rel = pg_call([&] { return table_open(relid, AccessShareLock); });
		const decode::RelInfo *info = pg_call([&] { return decode::relinfo_get(state_, rel); });
		/* (A partition has its partitioned table's key: anything else, and nothing is swept.) */
		if (sweeping_ && static_cast<size_t>(info->nkeys) != facts.keys.size())
			sweeping_ = false;
		TableScanDesc scan =
			pg_call([&] { return table_beginscan(rel, GetActiveSnapshot(), 0, nullptr); });
		TupleTableSlot *slot = pg_call([&] { return table_slot_create(rel, nullptr); });
		bool ok = true;
		while (pg_call([&] { return table_scan_getnextslot(scan, ForwardScanDirection, slot); })) {
			ok = make_room(error, delivered);
			if (!ok)
				break;
			begin_batch();
			size_t keys_before = static_cast<size_t>(keys_->len);
			pg_call([&] { write_row(info, rel, slot); });
			batch_rows_++;
			batch_changes_++;
			table_rows_++;
			batch_bytes_ += static_cast<int64_t>(rows_.empty() ? 0 : rows_.back().size()) +
							static_cast<int64_t>(static_cast<size_t>(keys_->len) - keys_before);
		}
		pg_call([&] {
			ExecDropSingleTupleTableSlot(slot);
			table_endscan(scan);
			table_close(rel, NoLock);
		});
		return ok;
	}

	/* Flushes the open batch if the next row would not fit in it. */
	bool make_room(std::string &error, Delivered &delivered)
	{
		if (batch_rows_ >= config_.batch_changes - 2 || batch_bytes_ >= config_.batch_bytes)
			return flush(error, delivered);
		return true;
	}

	/*
	 * Opens a batch: a made-up transaction, the time of this resync, commit
	 * LSN just below the new slot's start (see the top of this file).  sql:
	 * the re-send's start instead of the stream's guard.
	 */
	void begin_batch()
	{
		if (begun_)
			return;
		pg_call([&] {
			decode::start_transaction_output(state_, InvalidTransactionId, slot_start_ - 1,
											 GetCurrentTransactionStartTimestamp());
			if (!sql())
				decode::json_write_begin(state_);
		});
		if (sql()) {
			rows_.emplace_back("BEGIN;");
			rows_.push_back(decode::replica::resync_start_statement());
		}
		begun_ = true;
	}

	/* A line of the open batch that is not a row: a marker or a statement of the sweep. */
	void add_line(std::string line)
	{
		batch_bytes_ += static_cast<int64_t>(line.size());
		batch_rows_++;
		rows_.push_back(std::move(line));
	}

	/* json: {"op":"resync_begin",...} or _end, with the transaction's tail. */
	std::string marker(const char *op, const TableFacts &facts, const std::string &extra)
	{
		state_->seq++;
		return std::string("{\"op\":\"") + op + "\"," + facts.json_names + extra +
			   ",\"seq\":" + std::to_string(state_->seq) +
			   std::string(state_->json_tail, static_cast<size_t>(state_->json_tail_len));
	}

	bool begin_table(const TableFacts &facts, std::string &error, Delivered &delivered)
	{
		if (!make_room(error, delivered))
			return false;
		begin_batch();
		if (!sql()) {
			add_line(marker("resync_begin", facts, ""));
			return true;
		}
		/* Named for this resync and table: never one left by an earlier attempt. */
		keys_table_ = "pg_temp.\"edgesync_resync_" + std::to_string(started_) + "_" +
					  std::to_string(tables_++) + "\"";
		std::string columns;
		for (const std::string &k : facts.keys)
			columns += (columns.empty() ? "" : ",") + k;
		add_line("CREATE TEMPORARY TABLE " + keys_table_ + " AS SELECT " + columns + " FROM " +
				 facts.sql_name + " WITH NO DATA;");
		return true;
	}

	bool end_table(const TableFacts &facts, std::string &error, Delivered &delivered)
	{
		if (!sql()) {
			if (!make_room(error, delivered))
				return false;
			begin_batch();
			add_line(marker("resync_end", facts, ",\"rows\":" + std::to_string(table_rows_)));
			return true;
		}
		/*
		 * In the transaction of the table's last rows (a table without rows:
		 * that of its CREATE).  The key count guards against a temporary
		 * table that missed a batch: then the batch fails and nothing is
		 * deleted.  The statements need no apply condition (every one holds
		 * after the re-send's start): deleting the keys the snapshot lacks is
		 * right whenever this batch arrives (see the top of this file), and
		 * the replica mode the start entered keeps the replica's triggers
		 * out of it.
		 */
		begin_batch();
		add_staged_keys();
		std::string match;
		for (size_t i = 0; i < facts.keys.size(); i++)
			match += (match.empty() ? "" : " AND ") + ("k." + facts.keys[i]) + " " +
					 facts.key_equalities[i] + " target." + facts.keys[i];
		std::string name;
		text::append_sql_literal(name, facts.sql_name);
		std::string body =
			"BEGIN IF (SELECT pg_catalog.count(*) FROM " + keys_table_ +
			") OPERATOR(pg_catalog.<>) " + std::to_string(table_rows_) +
			" THEN RAISE EXCEPTION 'resync of table % is incomplete on the replica', " + name +
			" USING DETAIL = 'Not every key sent reached this session.', " +
			"ERRCODE = 'object_not_in_prerequisite_state'; END IF; END";
		std::string tag = "$edgesync$";
		for (int i = 0; body.find(tag) != std::string::npos; i++)
			tag = "$edgesync" + std::to_string(i) + "$";
		add_line("DO " + tag + body + tag + ";");
		add_line("ANALYZE " + keys_table_ + ";");
		add_line("DELETE FROM " + facts.sql_name + " AS target WHERE NOT EXISTS (SELECT FROM " +
				 keys_table_ + " AS k WHERE " + match + ");");
		add_line("DROP TABLE " + keys_table_ + ";");
		keys_table_.clear();
		return true;
	}

	/* sql: the keys of this batch's rows of the current table, into its temporary table. */
	void add_staged_keys()
	{
		if (keys_->len == 0)
			return;
		std::string insert = "INSERT INTO " + keys_table_ + " VALUES ";
		insert.append(keys_->data, static_cast<size_t>(keys_->len));
		insert.push_back(';');
		pg_call([&] { resetStringInfo(keys_); });
		add_line(std::move(insert));
	}

	/*
	 * One row as the plugin writes an insert, and its key for the sweep
	 * (plain C-style: may ereport).
	 */
	void write_row(const decode::RelInfo *info, Relation rel, TupleTableSlot *slot)
	{
		MemoryContext old = MemoryContextSwitchTo(state_->change_context);
		slot_getallattrs(slot);
		TupleDesc desc = RelationGetDescr(rel);
		decode::Change c;
		memset(&c, 0, sizeof(c));
		c.rel = info;
		c.relation = rel;
		c.action = REORDER_BUFFER_CHANGE_INSERT;
		c.natts = desc->natts;
		c.new_values = static_cast<Datum *>(palloc(sizeof(Datum) * desc->natts));
		c.new_nulls = static_cast<bool *>(palloc(sizeof(bool) * desc->natts));
		c.unchanged = static_cast<bool *>(palloc0(sizeof(bool) * desc->natts));
		for (int i = 0; i < desc->natts; i++) {
			Datum v = slot->tts_values[i];
			c.new_nulls[i] = slot->tts_isnull[i];
			/* The writers expect in-line values, as decoding gives them. */
			if (!c.new_nulls[i] && TupleDescAttr(desc, i)->attlen == -1 &&
				VARATT_IS_EXTERNAL(DatumGetPointer(v)))
				v = PointerGetDatum(
					detoast_external_attr(reinterpret_cast<struct varlena *>(DatumGetPointer(v))));
			c.new_values[i] = v;
		}
		decode::limit_change_size(state_, &c);
		state_->seq++;
		state_->writer->change(state_, &c);
		if (sweeping_ && sql()) {
			appendStringInfoString(keys_, keys_->len == 0 ? "(" : ", (");
			for (int k = 0; k < info->nkeys; k++) {
				int i = info->keys[k] - 1;
				if (k > 0)
					appendStringInfoString(keys_, ", ");
				decode::append_sql_value(keys_, state_, &info->columns[i], c.new_values[i]);
			}
			appendStringInfoChar(keys_, ')');
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(state_->change_context);
	}

	/* Closes the open batch and delivers it. */
	bool flush(std::string &error, Delivered &delivered)
	{
		if (!begun_)
			return true;
		if (sweeping_ && !keys_table_.empty())
			add_staged_keys();
		pg_call([&] { state_->writer->commit(state_); });
		std::string body;
		for (const std::string &r : rows_) {
			body += r;
			body.push_back('\n');
		}
		/* A replica applies the batch as one query string: no BEGIN; / COMMIT; of its own. */
		if (sql())
			body = std::string(strip_transaction(body)) + "\n";
		std::string key = key_prefix_ + std::to_string(batches_ + 1);
		int64_t bytes = static_cast<int64_t>(body.size());
		if (!transport_.deliver(std::move(body), key, error))
			return false;
		delivered.add(batch_changes_, bytes);
		report_activity(Activity::kResyncing);
		rows_.clear();
		begun_ = false;
		batch_rows_ = 0;
		batch_changes_ = 0;
		batch_bytes_ = 0;
		batches_++;
		return true;
	}

	const TargetConfig &config_;
	Transport &transport_;
	MemoryContext context_ = nullptr;
	DecodeState *state_ = nullptr;
	decode::WriterOutput output_ = {};
	std::vector<std::string> rows_;
	bool begun_ = false;
	int64_t batch_rows_ = 0;	/* lines, framing aside */
	int64_t batch_changes_ = 0; /* rows */
	int64_t batch_bytes_ = 0;
	uint64_t batches_ = 0;
	uint64_t slot_start_ = 0;	/* the new slot's confirmed position */
	std::string key_prefix_;	/* "resync-<slot start>-<attempt>-" */
	TimestampTz started_ = 0;	/* this attempt */
	StringInfo keys_ = nullptr; /* sql: keys of this batch's rows of the current table */
	std::string keys_table_;	/* sql: the current table's temporary table on the replica */
	int tables_ = 0;			/* tables begun, for keys_table_ */
	bool sweeping_ = false;		/* the current table's rows are marked: it ends with a sweep */
	int64_t table_rows_ = 0;	/* rows of the current table sent */
};

} // namespace

bool
resend_current_rows(const TargetConfig &config, Transport &transport, std::string &error,
					Delivered &delivered)
{
	Resender resender(config, transport);
	return resender.run(error, delivered);
}

} // namespace edgesync::ship
