/*
 * slot_reader.hpp — decoding a target's slot in the shipper's own process.
 *
 * The shipper used to read its slot with pg_logical_slot_peek_changes().
 * Every such call decodes from the slot's restart_lsn again and returns only
 * when it has decoded everything it was asked for, so decoding and delivery
 * took turns.  A SlotReader keeps one decoding context (the edgesync plugin,
 * as a walsender would run it) open for a whole round: it decodes a batch
 * while the previous one is on the wire, never decodes the same WAL twice in
 * a round, and moves the slot's confirmed position only when told to, after
 * the receiver's acknowledgement.
 *
 * Rows are the plugin's output lines, as the SQL functions return them: the
 * LSN (just past the commit record for a commit line), the xid, and the text.
 * Decoding returns whole transactions, so after every fill() the buffered rows
 * end on a transaction boundary.  Past edgesync.ship_transaction_memory of
 * one transaction's output, its further change rows go to a temporary file
 * (the spill file) as spilled stretches (batch.hpp), read back while the
 * batch is sent: a bulk load is shipped whole without being held in memory.
 */
#pragma once

#include "core/postgres.hpp"
#include "ship/batch.hpp"

#include <functional>
#include <vector>

extern "C" {
#include "access/xlogdefs.h"
}
#include <string>

struct LogicalDecodingContext;
struct BufFile;

namespace edgesync::ship {

class SlotReader : public SpillSource {
  public:
	/*
	 * Acquires the slot and starts decoding at its restart_lsn.  For the sql
	 * format, runs of changes continue across transactions (decode.hpp:
	 * hold_runs_across_commits) until take_held_run(), the replica schema and
	 * schema_changes are the plugin's options of those names (empty: their
	 * defaults), and the replica's setup is left to the connection
	 * (decode.hpp: omit_session_setup).
	 */
	SlotReader(const std::string &slot, const std::string &format, const std::string &columns,
			   const std::string &replica_schema = std::string(),
			   const std::string &schema_changes = std::string());
	/* Frees the decoding context and releases the slot, also while unwinding an error. */
	~SlotReader() override;
	SlotReader(const SlotReader &) = delete;
	SlotReader &operator=(const SlotReader &) = delete;

	/*
	 * Decodes until the buffer holds at least min_rows rows or min_bytes
	 * bytes, the reader has passed stop_at (0: no such point), or it has
	 * reached the WAL flushed when the call began.  Returns whether WAL was
	 * left undecoded.  between, if given, is called every few records (it
	 * must not throw): the transport sends what it holds meanwhile.
	 */
	bool fill(size_t min_rows, int64_t min_bytes, uint64_t stop_at,
			  const std::function<void()> &between = {});

	/* Decoded rows not yet taken, oldest first. */
	std::vector<Row> &rows() { return rows_; }
	void take(size_t n);

	/*
	 * Writes the sql format's run still held, if any, as the last row, with
	 * the LSN and xid of the commit row before it: every change decoded so far
	 * is then in rows().
	 */
	void take_held_run();

	/* Where decoding stands: every transaction committed before it is in rows(). */
	uint64_t decoded_up_to() const;

	/* Moves the slot's confirmed position (the receiver has everything before lsn). */
	void confirm(uint64_t lsn);

	/* Reads back a spilled stretch (SpillSource). */
	void read(uint64_t offset, char *buf, size_t len) override;

  private:
	static void prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
							  bool last);
	static void write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last);
	static void spill(SlotReader *self, LogicalDecodingContext *ctx, XLogRecPtr lsn,
					  TransactionId xid);
	void release() noexcept;

	MemoryContext context_ = nullptr; /* the decoding context and the WAL reader's buffers */
	LogicalDecodingContext *ctx_ = nullptr;
	std::vector<Row> rows_;
	int64_t buffered_bytes_ = 0;
	/* Output of the transaction being written (edgesync.ship_transaction_memory). */
	uint32_t writing_xid_ = 0;
	int64_t writing_bytes_ = 0;
	int64_t writing_messages_ = 0; /* json: its transactional messages, which are no changes */
	BufFile *spill_ = nullptr;	   /* created when first needed, closed when emptied */
	uint64_t spill_end_ = 0;
	bool acquired_ = false;
};

} // namespace edgesync::ship
