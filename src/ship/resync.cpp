/*
 * resync.cpp — the full re-send behind edgesync.resync(target).
 *
 * resync() gives the target a new slot and sets target_state.resync_pending;
 * the next shipping attempt first sends the current rows of every tracked
 * table, then streams from the new slot.  The rows are written by the output
 * plugin's own writers (src/decode), as inserts, under the same column
 * policy as the stream (columns=policy unless the target says raw), so a
 * re-send never shows more than the stream would: the scan feeds them
 * through a decoding context that collects the plugin's output instead of
 * handing it to a slot.
 *
 * Each batch is one transaction in the target's format: for a replica an
 * apply_begin() under the source name "<source>/resync" with a made-up,
 * increasing commit LSN, then version-guarded upserts, so rows the replica
 * already has in the same or a newer version are left alone; over HTTP,
 * json insert lines framed by begin/commit.  Rows changed after the new slot
 * was created arrive again through the stream: the version guard makes the
 * overlap harmless.  Rows deleted while the slot was lost are not deleted on
 * the receiver (docs/shipping.md says how to handle that).
 *
 * The scan runs in one snapshot; a failed delivery leaves resync_pending
 * set, and the next attempt starts the re-send again.
 */
#include "core/guard.hpp"
#include "decode/decode.hpp"
#include "decode/options.hpp"
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
}

namespace edgesync::ship {

namespace {

using decode::DecodeState;

/* Where the collecting context's writes go: one row per plugin write. */
std::vector<std::string> *collected = nullptr;

void
collect_prepare(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last)
{
	resetStringInfo(ctx->out);
}

void
collect_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last)
{
	if (collected != nullptr)
		collected->emplace_back(ctx->out->data, static_cast<size_t>(ctx->out->len));
}

/* The relations to scan: tracked tables, or the leaves of partitioned ones. */
std::vector<Oid>
tables_to_scan()
{
	std::vector<Oid> out;
	pg_call([] {
		if (SPI_execute("SELECT relid::oid FROM edgesync.tracked_tables ORDER BY relid::oid", true,
						0) != SPI_OK_SELECT)
			elog(ERROR, "could not list tracked tables");
	});
	std::vector<Oid> roots;
	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;
		roots.push_back(DatumGetObjectId(
			SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
	}
	for (Oid root : roots) {
		char kind = pg_call([&] { return get_rel_relkind(root); });
		if (kind != RELKIND_PARTITIONED_TABLE) {
			out.push_back(root);
			continue;
		}
		List *all = pg_call([&] { return find_all_inheritors(root, AccessShareLock, nullptr); });
		ListCell *lc;
		foreach (lc, all) {
			Oid leaf = lfirst_oid(lc);
			if (pg_call([&] { return get_rel_relkind(leaf); }) == RELKIND_RELATION)
				out.push_back(leaf);
		}
	}
	return out;
}

class Resender {
  public:
	Resender(const TargetConfig &config, Transport &transport)
		: config_(config), transport_(transport)
	{
		pg_call([&] {
			/* The settings the plugin writes every value under. */
			decode::pin_output_settings_for_writers();
			SPI_execute("SELECT pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_catalog.pg_lsn",
						true, 0);
		});
		std::string source;
		{
			char *l = pg_call(
				[] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1); });
			first_lsn_ = std::stoull(l);
		}
		pg_call([&] {
			Oid types[1] = {TEXTOID};
			Datum values[1] = {CStringGetTextDatum(config_.slot.c_str())};
			SPI_execute_with_args("SELECT pg_catalog.format('%s/%s/%s/resync', system_identifier,"
								  " pg_catalog.current_database(), $1)"
								  "  FROM pg_catalog.pg_control_system()",
								  1, types, values, nullptr, true, 0);
		});
		source =
			pg_call([] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1); });

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
			state_->source = pstrdup(source.c_str());
			state_->txn = static_cast<ReorderBufferTXN *>(palloc0(sizeof(ReorderBufferTXN)));
			ctx_ = static_cast<LogicalDecodingContext *>(palloc0(sizeof(LogicalDecodingContext)));
			ctx_->context = context_;
			ctx_->out = makeStringInfo();
			ctx_->prepare_write = collect_prepare;
			ctx_->write = collect_write;
			ctx_->accept_writes = true;
			ctx_->output_plugin_private = state_;
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

	/* Sends every row; false (with error) when a delivery failed. */
	bool run(std::string &error, int64_t &changes)
	{
		/* Facts cached by a peek in this backend were read under historic snapshots. */
		pg_call([] { decode::relinfo_invalidate_all(); });
		collected = &rows_;
		for (Oid relid : tables_to_scan())
			if (!send_table(relid, error, changes))
				return false;
		return flush(error, changes);
	}

  private:
	bool send_table(Oid relid, std::string &error, int64_t &changes)
	{
		Relation rel = pg_call([&] { return table_open(relid, AccessShareLock); });
		const decode::RelInfo *info = pg_call([&] { return decode::relinfo_get(state_, rel); });
		if (!info->selected) {
			pg_call([&] { table_close(rel, AccessShareLock); });
			return true;
		}
		TableScanDesc scan =
			pg_call([&] { return table_beginscan(rel, GetActiveSnapshot(), 0, nullptr); });
		TupleTableSlot *slot = pg_call([&] { return table_slot_create(rel, nullptr); });
		bool ok = true;
		while (pg_call([&] { return table_scan_getnextslot(scan, ForwardScanDirection, slot); })) {
			if (batch_rows_ >= config_.batch_changes - 2 || batch_bytes_ >= config_.batch_bytes) {
				ok = flush(error, changes);
				if (!ok)
					break;
			}
			pg_call([&] { write_row(info, rel, slot); });
			batch_rows_++;
			batch_bytes_ += static_cast<int64_t>(rows_.empty() ? 0 : rows_.back().size());
		}
		pg_call([&] {
			ExecDropSingleTupleTableSlot(slot);
			table_endscan(scan);
			table_close(rel, AccessShareLock);
		});
		return ok;
	}

	/* One row as the plugin writes an insert (plain C-style: may ereport). */
	void write_row(const decode::RelInfo *info, Relation rel, TupleTableSlot *slot)
	{
		MemoryContext old = MemoryContextSwitchTo(state_->change_context);
		if (!begun_) {
			/* A made-up transaction: the time of this resync, an increasing LSN. */
			decode::start_transaction_output(state_, InvalidTransactionId, next_lsn(),
											 GetCurrentTransactionStartTimestamp());
			if (state_->format == static_cast<int>(decode::Format::kSql))
				decode::sql_write_begin(ctx_, state_);
			else
				decode::json_write_begin(ctx_, state_);
			begun_ = true;
		}
		slot_getallattrs(slot);
		TupleDesc desc = RelationGetDescr(rel);
		decode::Change c;
		memset(&c, 0, sizeof(c));
		c.rel = info;
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
		state_->seq++;
		if (state_->format == static_cast<int>(decode::Format::kSql))
			decode::sql_write_change(ctx_, state_, &c);
		else
			decode::json_write_change(ctx_, state_, &c);
		MemoryContextSwitchTo(old);
		MemoryContextReset(state_->change_context);
	}

	uint64_t next_lsn() const { return first_lsn_ + batches_; }

	/* Closes the open batch and delivers it. */
	bool flush(std::string &error, int64_t &changes)
	{
		if (!begun_)
			return true;
		pg_call([&] {
			if (state_->format == static_cast<int>(decode::Format::kSql))
				decode::sql_write_commit(ctx_, state_);
			else
				decode::json_write_commit(ctx_, state_);
		});
		std::string body;
		if (config_.kind == "http") {
			for (const std::string &r : rows_) {
				body += r;
				body.push_back('\n');
			}
		} else {
			std::string txn;
			for (const std::string &r : rows_) {
				txn += r;
				txn.push_back('\n');
			}
			body = std::string(strip_transaction(txn)) + "\n";
		}
		std::vector<Row> framed;
		for (const std::string &r : rows_)
			framed.push_back(Row{next_lsn(), 0, r});
		std::string key = "resync-" + idempotency_key(framed, framed.size());
		int64_t n = count_changes(framed, framed.size());
		if (!transport_.deliver(body, key, error))
			return false;
		changes += n;
		rows_.clear();
		begun_ = false;
		batch_rows_ = 0;
		batch_bytes_ = 0;
		batches_++;
		return true;
	}

	const TargetConfig &config_;
	Transport &transport_;
	MemoryContext context_ = nullptr;
	DecodeState *state_ = nullptr;
	LogicalDecodingContext *ctx_ = nullptr;
	std::vector<std::string> rows_;
	bool begun_ = false;
	int64_t batch_rows_ = 0;
	int64_t batch_bytes_ = 0;
	uint64_t batches_ = 0;
	uint64_t first_lsn_ = 0;
};

} // namespace

bool
resend_current_rows(const TargetConfig &config, Transport &transport, std::string &error,
					int64_t &changes)
{
	Resender resender(config, transport);
	return resender.run(error, changes);
}

} // namespace edgesync::ship
