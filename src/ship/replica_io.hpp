/*
 * replica_io.hpp — a batch's statements sent to a replica, and its answers
 * read, without blocking, for pg_transport.cpp (which opens the connection
 * and keeps the target's rules).
 *
 * A batch goes one of three ways: as one query string (send), which the
 * replica runs as one transaction; a body with spilled pieces as several
 * query strings of about 4 MB within BEGIN and COMMIT (send_in_chunks); a
 * body with units, the binary runs of core/statement_unit.hpp, as a pipeline
 * of the extended protocol within BEGIN and COMMIT (send_pipelined).  The
 * first two return once the batch is on the wire (but for the chunks before
 * the last), the pipeline once it is queued, its rest sent by pump() while the
 * shipper decodes the next batch; so the replica applies a batch while the
 * next one is decoded.  read_results() then reads the answers.
 *
 * What the replica sends back is bounded: results are read in single-row
 * mode, one row at a time, and a statement answered with more than
 * kMaxResultRows rows or kMaxResultBytes bytes (or with COPY) fails the batch
 * at once, so that the caller closes the connection, which rolls the
 * replica's transaction back and stops it sending.  libpq still holds one
 * whole protocol message (a row, a notice, an error) in its input buffer, up
 * to 1 GB from a PostgreSQL server.  Every wait is on the socket and the
 * process latch with the deadline (core/remote_wait.hpp): interrupts leave as
 * a PgException.
 */
#pragma once

#include "core/postgres.hpp"
#include "ship/batch.hpp"
#include "ship/remote_error.hpp"
#include "ship/replica_notices.hpp"

#include <chrono>
#include <functional>
#include <string>

extern "C" {
#include "datatype/timestamp.h"
#include "libpq-fe.h"
}

namespace edgesync::ship {

class ReplicaIo {
  public:
	/* notices and detail are the transport's: its notice log, and failure_detail(). */
	ReplicaIo(const std::string &target, int timeout_ms, ReplicaNotices &notices,
			  std::string &detail)
		: target_(target), timeout_ms_(timeout_ms), notices_(notices), detail_(detail)
	{}

	PGconn *conn = nullptr; /* set and closed by the transport */

	/* Every wait from now on ends timeout_ms from now. */
	void restart_deadline();
	/* The deadline as the server's clock reads it. */
	TimestampTz pg_deadline() const;
	/*
	 * Waits until the socket is ready for what is asked, the deadline, or an
	 * interrupt (raised from here, as an exception).
	 */
	bool wait_socket(bool for_read, std::string &error);
	/* libpq's last error, on one line. */
	std::string conn_error();

	bool send(const std::string &query, std::string &error);
	bool send_in_chunks(const Body &body, std::string &error);
	bool send_pipelined(const Body &body, std::string &error);
	/*
	 * Between send_pipelined() and read_results(): sends what the socket
	 * takes, without waiting, and reads what arrived.  A pipeline's
	 * statements are read by the replica one after the other as it runs
	 * them, so a batch larger than the socket's buffers would otherwise hold
	 * up the shipper until the replica had nearly applied it, instead of
	 * leaving it to decode the next batch meanwhile.
	 */
	void pump() noexcept;

	/* Reads every result of what was sent: all good means the replica committed it. */
	bool collect_results(std::string &error) { return read_results(nullptr, error); }
	/*
	 * Reads the results of what was sent, row by row, passing each row to
	 * on_row if given; false, with the first error, when any statement
	 * failed, or at once when an answer is too large (see above).
	 */
	bool read_results(const std::function<void(const PGresult *)> &on_row, std::string &error);
	/* After the results of a pipelined batch: back to the simple protocol. */
	bool end_pipeline(std::string &error);
	/* The connection is gone. */
	void forget() { pipelined_ = false; }

  private:
	using Clock = std::chrono::steady_clock;

	/* Rows of the statement being read, and their bytes (read_results()). */
	struct Answer {
		long rows = 0;
		size_t bytes = 0;
	};

	bool sync(std::string &error);
	bool send_some(std::string &error); /* without waiting */
	bool flush(std::string &error);		/* all, waiting */
	static RemoteError remote_error(const PGresult *res);

	const std::string target_;
	const int timeout_ms_;
	ReplicaNotices &notices_;
	std::string &detail_;
	Clock::time_point deadline_;
	bool pipelined_ = false; /* the batch in flight went in a pipeline (send_pipelined) */
};

} // namespace edgesync::ship
