/*
 * slot_reader.cpp — a target's slot decoded in the shipper's own process
 * (slot_reader.hpp).
 *
 * This is what pg_logical_slot_peek_changes() does, kept open across
 * batches: acquire the slot, create a decoding context for the edgesync
 * plugin, read WAL from restart_lsn with read_local_xlog_page, and collect
 * the plugin's writes.  Catalog caches filled while decoding hold entries read
 * under historic snapshots, and the shipper runs ordinary queries between
 * fills, so every fill starts and ends with InvalidateSystemCaches(), as the
 * SQL functions do around their decoding.  The caller runs each fill inside a
 * transaction (the plugin's commit callbacks then use subtransactions).
 *
 * Nothing here owns C++ resources across a PostgreSQL call: errors leave
 * fill() and confirm() as PgException, and the destructor frees the decoding
 * context, releases the slot and clears the caches on every path.
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "core/statement_unit.hpp"
#include "decode/decode.hpp"
#include "ship/shipper.hpp"
#include "ship/slot_reader.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogutils.h"
#include "nodes/makefuncs.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/buffile.h"
#include "utils/inval.h"
#include "utils/memutils.h"
}

namespace edgesync::ship {

namespace {

/* Runs a cleanup step that may raise a PostgreSQL error, dropping the error. */
void
cleanup_step(void (*step)(void *), void *arg) noexcept
{
	guard_detail::free_error(guard_detail::run_catching_pg_error(step, arg));
}

/*
 * Where WAL ends now, flushed.  The flush position alone will not do: it may
 * lie inside a record (the WAL writer flushes whole pages), and reading that
 * record would wait until someone flushes the rest, which may be a long time
 * when the record is this transaction's own.  The insert position is where
 * the next record will start, so every record that starts before it ends at
 * or before it; it is flushed, and moved back over a page header so that it
 * is where the last record ends.
 */
XLogRecPtr
end_of_complete_wal()
{
	XLogRecPtr end = GetXLogInsertRecPtr();
	if (XLogSegmentOffset(end, wal_segment_size) == SizeOfXLogLongPHD)
		end -= SizeOfXLogLongPHD;
	else if (end % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		end -= SizeOfXLogShortPHD;
	XLogFlush(end);
	return end;
}

} // namespace

SlotReader::SlotReader(const std::string &slot, const std::string &format,
					   const std::string &columns, const std::string &replica_schema,
					   const std::string &schema_changes)
{
	try {
		pg_call([&] {
			CheckSlotPermissions();
			CheckLogicalDecodingRequirements();
			acquire_replication_slot(slot.c_str(), true);
		});
		acquired_ = true;
		/* The plugin's state is ours to reach into (hold_runs_across_commits). */
		pg_call([&] {
			const char *plugin = NameStr(MyReplicationSlot->data.plugin);
			if (strcmp(plugin, "edgesync") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("replication slot \"%s\" uses output plugin \"%s\", not edgesync",
								slot.c_str(), plugin),
						 errhint("A target's slot is made by edgesync.add_target() or "
								 "edgesync.resync().")));
		});
		context_ = pg_call([] {
			return AllocSetContextCreate(TopMemoryContext, "edgesync slot reader",
										 ALLOCSET_DEFAULT_SIZES);
		});
		pg_call([&] {
			MemoryContext caller = MemoryContextSwitchTo(context_);
			List *options = list_make3(
				makeDefElem(pstrdup("format"), (Node *) makeString(pstrdup(format.c_str())), -1),
				makeDefElem(pstrdup("include-transaction"), (Node *) makeString(pstrdup("on")), -1),
				makeDefElem(pstrdup("columns"), (Node *) makeString(pstrdup(columns.c_str())), -1));
			if (format == "sql" && !replica_schema.empty())
				options = lappend(
					options, makeDefElem(pstrdup("replica-schema"),
										 (Node *) makeString(pstrdup(replica_schema.c_str())), -1));
			if (format == "sql" && !schema_changes.empty())
				options = lappend(
					options, makeDefElem(pstrdup("schema-changes"),
										 (Node *) makeString(pstrdup(schema_changes.c_str())), -1));
			XLogReaderRoutine wal_reading = {};
			wal_reading.page_read = read_local_xlog_page;
			wal_reading.segment_open = wal_segment_open;
			wal_reading.segment_close = wal_segment_close;
			ctx_ = CreateDecodingContext(InvalidXLogRecPtr, options, false, &wal_reading,
										 prepare_write, write, nullptr);
			MemoryContextSwitchTo(caller);
			ctx_->output_writer_private = this;
			if (format == "sql") {
				decode::hold_runs_across_commits(ctx_);
				if (binary_runs)
					decode::send_runs_binary(ctx_);
				decode::omit_session_setup(ctx_);
			}
			/* Every transaction committed after confirmed_flush is decoded from here. */
			XLogBeginRead(ctx_->reader, MyReplicationSlot->data.restart_lsn);
		});
	} catch (...) {
		release();
		throw;
	}
}

SlotReader::~SlotReader()
{
	release();
}

void
SlotReader::release() noexcept
{
	if (spill_ != nullptr)
		cleanup_step([](void *file) { BufFileClose(static_cast<BufFile *>(file)); }, spill_);
	spill_ = nullptr;
	if (ctx_ != nullptr)
		cleanup_step(
			[](void *ctx) { FreeDecodingContext(static_cast<LogicalDecodingContext *>(ctx)); },
			ctx_);
	ctx_ = nullptr;
	if (context_ != nullptr)
		MemoryContextDelete(context_);
	context_ = nullptr;
	if (acquired_ && MyReplicationSlot != nullptr)
		cleanup_step([](void *) { ReplicationSlotRelease(); }, nullptr);
	acquired_ = false;
	/* Drop what was read under historic snapshots (in a transaction, as the caches need). */
	if (IsTransactionState())
		cleanup_step([](void *) { InvalidateSystemCaches(); }, nullptr);
}

void
SlotReader::prepare_write(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool)
{
	resetStringInfo(ctx->out);
}

void
SlotReader::write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool)
{
	SlotReader *self = static_cast<SlotReader *>(ctx->output_writer_private);
	std::string_view text(ctx->out->data, ctx->out->len);
	if (xid != self->writing_xid_) {
		self->writing_xid_ = xid;
		self->writing_bytes_ = 0;
		self->writing_messages_ = 0;
	}
	self->writing_bytes_ += ctx->out->len;
	if (is_transactional_message(text))
		self->writing_messages_++;
	/*
	 * The changes of a transaction are counted where they are decoded, the
	 * same for both formats: the plugin's seq counts its row changes,
	 * truncates and (json) transactional messages, and stands at their total
	 * when the commit is written.  Counting rows of output would count a
	 * key-changing update twice in the sql format (a delete and an upsert)
	 * and once in json.
	 */
	int64_t changes = 0;
	if (is_commit_row(text))
		changes = static_cast<int64_t>(
					  static_cast<const decode::DecodeState *>(ctx->output_plugin_private)->seq) -
				  self->writing_messages_;
	if (self->writing_bytes_ > static_cast<int64_t>(transaction_memory_kb) * 1024 &&
		!is_frame_row(text)) {
		spill(self, ctx, lsn, xid);
		return;
	}
	guarded([&] {
		Row row{lsn, xid, std::string(text)};
		row.changes = changes;
		row.unit = !text.empty() && text[0] == unit::kMarker;
		self->rows_.push_back(std::move(row));
		self->buffered_bytes_ += ctx->out->len;
	});
}

/*
 * Appends the row being written to the spill file, and to the spilled
 * stretch that ends the rows if it is this transaction's, or else as a new
 * one.  (A frame row in between, like a commit, ends a stretch.)
 */
void
SlotReader::spill(SlotReader *self, LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid)
{
	if (self->spill_ == nullptr) {
		MemoryContext caller = MemoryContextSwitchTo(self->context_);
		self->spill_ = BufFileCreateTemp(true); /* read after this transaction ends */
		MemoryContextSwitchTo(caller);
		self->spill_end_ = 0;
	}
	uint64_t offset = self->spill_end_;
	if (BufFileSeek(self->spill_, 0, static_cast<off_t>(offset), SEEK_SET) != 0)
		elog(ERROR, "could not seek to offset " UINT64_FORMAT " of the shipper's spill file",
			 offset);
	BufFileWrite(self->spill_, ctx->out->data, ctx->out->len);
	BufFileWrite(self->spill_, const_cast<char *>("\n"), 1);
	uint64_t bytes = static_cast<uint64_t>(ctx->out->len) + 1;
	self->spill_end_ += bytes;
	self->buffered_bytes_ += static_cast<int64_t>(bytes);
	guarded([&] {
		std::string_view text(ctx->out->data, ctx->out->len);
		std::vector<Row> &rows = self->rows_;
		if (rows.empty() || !rows.back().spilled() || rows.back().xid != xid ||
			rows.back().spill_offset + rows.back().spill_bytes != offset)
			rows.push_back(Row{lsn, xid, std::string(), offset, 0});
		Row &stretch = rows.back();
		stretch.lsn = lsn;
		stretch.data.assign(text); /* its last row, for the Idempotency-Key */
		stretch.spill_bytes += bytes;
		stretch.unit |= !text.empty() && text[0] == unit::kMarker;
	});
}

void
SlotReader::read(uint64_t offset, char *buf, size_t len)
{
	pg_call([&] {
		/* (BufFileRead reports I/O errors itself; this is a file shorter than its rows.) */
		if (spill_ == nullptr ||
			BufFileSeek(spill_, 0, static_cast<off_t>(offset), SEEK_SET) != 0 ||
			BufFileRead(spill_, buf, len) != len)
			elog(ERROR,
				 "could not read %zu bytes at offset " UINT64_FORMAT " of the shipper's spill file",
				 len, offset);
	});
}

bool
SlotReader::fill(size_t min_rows, int64_t min_bytes, uint64_t stop_at,
				 const std::function<void()> &between)
{
	return pg_call([&] {
		XLogRecPtr end_of_wal = end_of_complete_wal();
		wait_for_failover_standbys(end_of_wal);
		XLogReaderState *reader = ctx_->reader;
		/* The WAL reader keeps buffers it allocates here: the reader's lifetime. */
		MemoryContext caller = MemoryContextSwitchTo(context_);
		InvalidateSystemCaches();
		for (uint32 records = 1;
			 reader->EndRecPtr < end_of_wal && rows_.size() < min_rows &&
			 buffered_bytes_ < min_bytes && (stop_at == 0 || reader->EndRecPtr < stop_at);
			 records++) {
			char *message = nullptr;
			XLogRecord *record = XLogReadRecord(reader, &message);
			if (message != nullptr)
				elog(ERROR, "could not find record for logical decoding: %s", message);
			if (record != nullptr)
				LogicalDecodingProcessRecord(ctx_, reader);
			CHECK_FOR_INTERRUPTS();
			if (between && records % 64 == 0)
				between();
		}
		InvalidateSystemCaches();
		MemoryContextSwitchTo(caller);
		return reader->EndRecPtr < end_of_wal;
	});
}

void
SlotReader::take(size_t n)
{
	/* The taken rows' text may have been moved into a batch already: count what stays. */
	rows_.erase(rows_.begin(), rows_.begin() + static_cast<std::ptrdiff_t>(n));
	buffered_bytes_ = 0;
	bool spilled = false;
	for (const Row &row : rows_) {
		buffered_bytes_ += static_cast<int64_t>(row.spilled() ? row.spill_bytes : row.data.size());
		spilled |= row.spilled();
	}
	/* Nothing left refers to the spill file: give its space back. */
	if (spill_ != nullptr && !spilled) {
		BufFile *file = spill_;
		spill_ = nullptr;
		pg_call([&] { BufFileClose(file); });
	}
}

void
SlotReader::take_held_run()
{
	size_t before = rows_.size();
	pg_call([&] { decode::flush_open_run(ctx_); });
	if (rows_.size() > before && before > 0) {
		rows_.back().lsn = rows_[before - 1].lsn;
		rows_.back().xid = rows_[before - 1].xid;
	}
}

uint64_t
SlotReader::decoded_up_to() const
{
	return ctx_->reader->EndRecPtr;
}

void
SlotReader::confirm(uint64_t lsn)
{
	pg_call([&] {
		if (lsn <= MyReplicationSlot->data.confirmed_flush)
			return;
		LogicalConfirmReceivedLocation(lsn);
		/* Written out at the next checkpoint; target_state.acked_lsn covers a crash before. */
		ReplicationSlotMarkDirty();
	});
}

} // namespace edgesync::ship
