/*
 * transport.hpp — what the shipper needs to know about a target, and the two
 * ways of delivering a batch to it.
 *
 *   http_transport.cpp   POST of NDJSON (json format) with libcurl
 *   pg_transport.cpp     the sql format applied on a replica with libpq
 *
 * deliver() returns true only when the receiver acknowledged the batch (an
 * HTTP 2xx; the replica's COMMIT), false with a message otherwise: one that
 * edgesync_reader may read (target_status.last_error), without what the
 * receiver said that may hold row values, which failure_detail() keeps for
 * edgesync_admin (target_state.last_error_detail; remote_error.hpp).  It is
 * start() then finish(): start() hands the batch over, finish() waits for the
 * acknowledgement, and the shipper decodes the next batch in between.  The
 * replica transport returns from start() once the batch is on the wire, so
 * the replica applies it meanwhile; the HTTP transport does the whole
 * exchange in start().  Waiting is interruptible: it checks for interrupts
 * (query cancel, SIGTERM) at least every 100 ms, and an interrupt leaves as a
 * PgException.
 */
#pragma once

#include "core/postgres.hpp"
#include "ship/batch.hpp"

#include <memory>
#include <string>
#include <vector>

namespace edgesync::ship {

struct TargetConfig {
	std::string name;
	std::string kind; /* http | postgresql */
	std::string url;  /* as stored: without password */
	std::string slot;
	std::string columns;
	std::string ca_file;
	std::string bearer_token;
	std::string password;
	std::vector<std::string> headers; /* "Name: value" */
	std::string replica_schema; /* postgresql: the replica schema, or empty (docs/replica.md) */
	std::string schema_changes = "apply"; /* postgresql: apply | check */
	/*
	 * add_target()'s check, without a replica schema: the tracked tables
	 * (schema, name) the stream will create on the replica where missing.
	 */
	std::vector<std::pair<std::string, std::string>> replica_tables;
	std::string owner;			  /* the role the target belongs to (owner.hpp) */
	bool owner_superuser = false; /* ... as it is now */
	int batch_changes = 1000;
	int64_t batch_bytes = 4 << 20;
	int timeout_ms = 30000;
	int failures = 0;		  /* consecutive, before this attempt */
	uint64_t pending_end = 0; /* end of a batch that failed: retry exactly it */
	uint64_t acked_lsn = 0;	  /* end of the last acknowledged batch */
	bool resync_pending = false;

	/* Every secret of the target, for redact(). */
	std::vector<std::string> secrets() const;
};

/* What was delivered: batches the receiver acknowledged, their changes and bytes. */
struct Delivered {
	int64_t batches = 0;
	int64_t changes = 0;
	int64_t bytes = 0; /* of the batches' bodies (batch.hpp), as built */

	void add(int64_t batch_changes, int64_t batch_bytes)
	{
		batches++;
		changes += batch_changes;
		bytes += batch_bytes;
	}
};

class Transport {
  public:
	virtual ~Transport() = default;

	/*
	 * Sends the batch; false (with error) when that already failed.  Spilled
	 * pieces of the body are read back while it is sent, all within start():
	 * the spill file may be reused once start() returns.
	 */
	virtual bool start(const Body &body, const std::string &idempotency_key,
					   std::string &error) = 0;
	/* Waits for the acknowledgement of the batch start() sent. */
	virtual bool finish(std::string &error) = 0;
	/*
	 * Called while the next batch is decoded, between start() and finish():
	 * sends what of the batch the receiver has room for, without waiting.
	 * Never throws.
	 */
	virtual void pump() noexcept {}

	/*
	 * A replica's recorded position for the source of the batch in rows[0, n)
	 * (its guard says which), asked once per connection: the batch leaves out
	 * the transactions at or below it (batch.hpp, replica_batch_body).  0 when
	 * unknown, or for a receiver that is no replica.
	 */
	virtual uint64_t replica_position(const std::vector<Row> &rows, size_t n) { return 0; }

	/* The receiver's whole answer to the last failed batch; empty when error says all. */
	const std::string &failure_detail() const { return detail_; }

	bool deliver(std::string &&body, const std::string &idempotency_key, std::string &error)
	{
		Body b;
		b.pieces.push_back(BodyPiece{std::move(body)});
		return start(b, idempotency_key, error) && finish(error);
	}

  protected:
	std::string detail_;
};

std::unique_ptr<Transport> make_http_transport(const TargetConfig &config);
std::unique_ptr<Transport> make_pg_transport(const TargetConfig &config);

/*
 * add_target()'s and alter_target()'s check of a postgresql target: connects
 * once, within config.timeout_ms, as the shipper would (the owner's rules of
 * owner.hpp included), and asks the replica what applying needs there.
 * Throws edgesync::Error with the replica's own SQLSTATE when it refused the
 * connection (28P01 wrong password, 3D000 unknown database, 28000 unknown
 * role or pg_hba.conf), 08001 when no server answered, and 42501 naming the
 * privileges the role lacks.
 */
void check_replica_connection(const TargetConfig &config);

/* Interrupt check for transports' wait loops (see above). */
void check_for_interrupts();

} // namespace edgesync::ship
