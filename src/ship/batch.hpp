/*
 * batch.hpp — cutting the slot's output into batches, and naming them.
 *
 * The shipper decodes its slot (slot_reader.cpp) and gets rows of (lsn,
 * xid, data), every transaction framed by the plugin's begin and commit rows
 * (include-transaction): consecutive rows with the same xid are one
 * transaction, and the last row of each, the commit, carries the LSN just
 * past the commit record, which is where the slot may be advanced once the
 * transaction is delivered.  A batch is a run of whole transactions within
 * the target's limits (at least one transaction, however large).
 *
 * Also here: the Idempotency-Key of a batch, the retry delay, and turning a
 * run of "BEGIN; ...; COMMIT;" transactions into one transaction's body.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgesync::ship {

/*
 * One output row of the plugin, or a spilled stretch: consecutive rows of one
 * transaction that the slot reader wrote to its spill file instead of keeping
 * them in memory (edgesync.ship_transaction_memory), each followed by a
 * newline.  A spilled stretch holds change rows only, never a begin, commit
 * or guard row; its data is the text of its last row (for the
 * Idempotency-Key) and its lsn that row's.
 */
struct Row {
	uint64_t lsn;
	uint32_t xid;
	std::string data;
	uint64_t spill_offset = 0;
	uint64_t spill_bytes = 0; /* 0: an ordinary row */
	/*
	 * A commit row: the changes of its transaction, as the plugin decoded
	 * them (slot_reader.cpp), whatever the format wrote for them.
	 */
	int64_t changes = 0;
	/* It is a unit (core/statement_unit.hpp); a stretch: some of its rows are. */
	bool unit = false;

	bool spilled() const { return spill_bytes != 0; }
	/* What the row adds to a body: its text and a newline, or the stretch. */
	uint64_t body_bytes() const { return spilled() ? spill_bytes : data.size() + 1; }
};

/* Where a spilled stretch is read back from (the slot reader's spill file). */
class SpillSource {
  public:
	virtual ~SpillSource() = default;
	/* Copies len bytes at offset into buf; throws on failure. */
	virtual void read(uint64_t offset, char *buf, size_t len) = 0;
};

/*
 * A batch's body: text in memory and, between, stretches of the spill file,
 * in order.  Most bodies are one text piece.
 */
struct BodyPiece {
	std::string text;
	uint64_t spill_offset = 0;
	uint64_t spill_bytes = 0; /* > 0: this piece is in the spill file */
};
struct Body {
	std::vector<BodyPiece> pieces;
	SpillSource *spill = nullptr;
	uint64_t last_commit = 0; /* replica: the commit LSN its guard records, 0 if none */
	bool units = false;		  /* replica: some row is a unit, to send in the extended protocol */

	uint64_t size() const;
	/* The body as one string in memory, if it has no spilled piece. */
	const std::string *in_memory() const;
};

struct BatchLimits {
	int64_t max_changes; /* rows, begin/commit included */
	int64_t max_bytes;	 /* bytes of data, separators included */
};

/*
 * How many leading rows form whole transactions within limits: at least the
 * first transaction; 0 only when rows is empty.  A transaction ends where a
 * row of another transaction follows or the rows end (decoding returns whole
 * transactions).
 */
size_t cut_batch(const std::vector<Row> &rows, const BatchLimits &limits);

/*
 * The changes of the transactions in rows[0, n): what their commit rows
 * carry.  A change is one row inserted, updated (also when its key changes:
 * the sql format writes that as a delete and an upsert, the json format as
 * one update line) or deleted, or one truncate; the json format's messages
 * are not changes.
 */
int64_t count_changes(const std::vector<Row> &rows, size_t n);

/*
 * The Idempotency-Key of rows[0, n): "<commit_lsn>:<seq>-<commit_lsn>:<seq>"
 * of its first and last change (json format), or of the first and last row's
 * LSN when the rows carry no such keys.  The same rows give the same key.
 */
std::string idempotency_key(const std::vector<Row> &rows, size_t n);

/*
 * The statements of one sql-format transaction without its own BEGIN; and
 * COMMIT;, so that several transactions apply as one.
 */
std::string_view strip_transaction(std::string_view sql);

/*
 * The body of a replica batch made of the sql-format transactions in
 * rows[0, n): their statements, without each transaction's BEGIN;, COMMIT;
 * and guard rows, after one guard for the whole batch, the last
 * transaction's.  The replica applies the batch as one transaction, so one
 * guard records it; it reads the LSN recorded before, and each statement,
 * conditional on its own transaction's commit LSN, applies only if that is
 * beyond (docs/replica.md).  Rows without a guard keep none.  The rows of
 * transactions at or below applied_through (what the replica is known to
 * have) are left out: they would change nothing, and a statement of one
 * written before a schema change the replica has taken since (a column
 * renamed) would not even parse there.
 *
 * Both bodies take the rows' text: each row's data is moved into the body
 * and left empty, so that a large batch is not held in memory twice.
 * Spilled stretches become spill pieces.
 */
Body replica_batch_body(std::vector<Row> &rows, size_t n, uint64_t applied_through = 0);

/*
 * A replica's position as the guard row of a batch reads it: the SQL
 * expression (text) of the source's recorded commit LSN, '0/0' if none, or
 * empty if row is no guard.  The shipper asks the replica this on a new
 * connection, to leave out of its batches what the replica has.
 */
std::string guard_position_query(std::string_view row);
/* "16/B374D848" as a number; 0 if it is not an LSN. */
uint64_t parse_lsn(std::string_view text);

/* The body of an HTTP batch: the text of rows[0, n), one line each. */
Body http_batch_body(std::vector<Row> &rows, size_t n);

/* Whether a row is a begin, commit or guard row (never spilled). */
bool is_frame_row(std::string_view data);

/* Whether a row is a commit row (json or sql format). */
bool is_commit_row(std::string_view data);

/* Whether a row is a json message written in a transaction (not a change). */
bool is_transactional_message(std::string_view data);

/*
 * Milliseconds to wait after `failures` consecutive failures (>= 1):
 * min_ms * 2^(failures-1), capped at max_ms, then jittered into [d/2, d]
 * with random01 in [0, 1).
 */
int64_t retry_delay_ms(int failures, int64_t min_ms, int64_t max_ms, double random01);

} // namespace edgesync::ship
