/*
 * pg_transport.cpp — applying a batch on a cloud replica with libpq.
 *
 * The batch is the sql format of its transactions without their own BEGIN;
 * and COMMIT; (batch.hpp), sent as one simple query: PostgreSQL runs a
 * multi-statement query string as one transaction, so the batch, including
 * each transaction's statement that records the source's applied commit LSN,
 * commits on the replica as a whole or not at all.  A batch with a spilled
 * transaction in it goes as several query strings within BEGIN and COMMIT
 * (send_in_chunks), with the same effect.  start() returns once the
 * query string is sent, and the replica executes it while the shipper decodes
 * the next batch; finish() reads the results.  The batch counts as
 * acknowledged once every result is good and the query string is done: the
 * replica has committed it.
 *
 * The connection is opened and used without blocking (PQconnectStartParams,
 * PQsendQuery, nonblocking flush), waiting on its socket and the process
 * latch 100 ms at a time so that interrupts are seen promptly; it is kept for
 * the next batch and dropped after any failure.  The password is passed apart
 * from the URL.  A target of a non-superuser is checked before and after
 * connecting (owner.hpp); a refusal is an edgesync::Error (an ERROR in
 * ship(), a recorded failure in the worker), not a failed delivery.
 * SIGTERM in a wait ends the process with ereport(FATAL),
 * which unwinds no C++ frame: an exit callback closes the open connection
 * (Terminate), so the replica sees a clean disconnect, not a lost client.
 */
#include "core/guard.hpp"
#include "ship/owner.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"

#include <chrono>

extern "C" {
#include "datatype/timestamp.h"
#include "libpq-fe.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace edgesync::ship {

namespace {

using Clock = std::chrono::steady_clock;

PGconn *open_conn = nullptr; /* the process's replica connection, if any */

void
close_on_exit(int, Datum)
{
	if (open_conn != nullptr)
		PQfinish(open_conn);
	open_conn = nullptr;
}

/* Batches larger than this are sent on a connection closed afterwards. */
constexpr size_t kKeepConnectionUpTo = 64 << 20;
/* The size of the query strings a body with spilled pieces is sent in. */
constexpr size_t kChunkBytes = 4 << 20;
/* ... filled from the spill file this much at a time. */
constexpr size_t kReadBytes = 1 << 20;

class PgTransport : public Transport {
  public:
	explicit PgTransport(const TargetConfig &config) : config_(config) {}
	~PgTransport() override { disconnect(); }

	bool start(const Body &body, const std::string &, std::string &error) override
	{
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		if (conn_ == nullptr && !connect(error))
			return false;
		sent_bytes_ = body.size();
		const std::string *text = body.in_memory();
		bool ok = text != nullptr ? send(*text, error) : send_in_chunks(body, error);
		if (!ok)
			disconnect();
		return ok;
	}

	bool finish(std::string &error) override
	{
		if (conn_ == nullptr) {
			error = "no batch was sent to the replica";
			return false;
		}
		/* The timeout counts from here: the time spent decoding meanwhile is ours. */
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		bool ok = collect_results(error);
		/*
		 * libpq keeps its output buffer as large as the largest query string
		 * sent: after a batch of a huge transaction, a new connection gives
		 * that memory back.
		 */
		if (!ok || sent_bytes_ > kKeepConnectionUpTo)
			disconnect();
		return ok;
	}

  private:
	void disconnect()
	{
		if (conn_ != nullptr)
			PQfinish(conn_);
		if (open_conn == conn_)
			open_conn = nullptr;
		conn_ = nullptr;
	}

	std::string conn_error()
	{
		std::string text = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
		while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
			text.pop_back();
		for (char &c : text)
			if (c == '\n')
				c = ' ';
		return text;
	}

	/* Waits until the socket is ready for what is asked, the deadline, or an interrupt. */
	bool wait_socket(bool for_read, std::string &error)
	{
		for (;;) {
			auto left =
				std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
			if (left.count() <= 0) {
				error = format("no answer from replica within %d ms", config_.timeout_ms);
				return false;
			}
			int socket = PQsocket(conn_);
			int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH |
						 (for_read ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE);
			long timeout = std::min<long>(100, left.count());
			int rc = pg_call([&] {
				return WaitLatchOrSocket(MyLatch, events, socket, timeout, PG_WAIT_EXTENSION);
			});
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			check_for_interrupts();
			if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
				return true;
		}
	}

	/* Closes the connection, then raises a refusal. */
	[[noreturn]] void refuse(const Error &refusal)
	{
		disconnect();
		throw refusal;
	}

	bool connect(std::string &error)
	{
		TargetOwner owner{config_.owner, config_.owner_superuser};
		check_owner_params(config_.name, parse_target_url(config_.url), config_.password, owner);
		if (!open_connection(error))
			return false;
		if (!owner.superuser && !check_owner_connection(error)) {
			disconnect();
			return false;
		}
		return true;
	}

	/*
	 * After connecting for a target of a non-superuser (owner.hpp): the
	 * server must have asked for the password, and a connection that leads
	 * back to this very server must be as the owner itself.  This server is
	 * recognised by its postmaster's start time (microseconds) together with
	 * a backend of that pid in its process array: what a query on the far
	 * side reports, which needs no privilege there.
	 */
	bool check_owner_connection(std::string &error)
	{
		if (!PQconnectionUsedPassword(conn_))
			refuse(Error("2F003", "password is required")
					   .detail("Non-superuser cannot connect if the server does not request a "
							   "password.")
					   .hint(format("Target \"%s\" belongs to role \"%s\", which is not a "
									"superuser: the replica must ask for the password (as "
									"scram-sha-256 in its pg_hba.conf does), or a superuser "
									"must set the URL with edgesync.alter_target().",
									config_.name.c_str(), config_.owner.c_str())));
		std::vector<std::string> row;
		if (!query_row("SELECT pg_catalog.pg_backend_pid(),"
					   " (EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())"
					   "  OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
					   " SESSION_USER",
					   3, row, error))
			return false;
		int pid = std::atoi(row[0].c_str());
		long long started = std::atoll(row[1].c_str());
		long long here_started =
			PgStartTime + static_cast<long long>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
							  SECS_PER_DAY * USECS_PER_SEC;
		bool here =
			started == here_started && pg_call([&] { return BackendPidGetProc(pid) != nullptr; });
		if (here && row[2] != config_.owner)
			refuse(Error("28000", "a target of a non-superuser cannot connect back to this server "
								  "as another role")
					   .detail(format("Target \"%s\" belongs to role \"%s\"; its URL leads "
									  "back to this server as role \"%s\".",
									  config_.name.c_str(), config_.owner.c_str(), row[2].c_str()))
					   .hint("Connect as the target's owner, or have a superuser set the URL "
							 "with edgesync.alter_target()."));
		return true;
	}

	/* Runs sql and reads its one row of ncolumns values. */
	bool query_row(const char *sql, int ncolumns, std::vector<std::string> &row, std::string &error)
	{
		if (!send(sql, error))
			return false;
		bool ok = true;
		for (;;) {
			while (PQisBusy(conn_)) {
				if (!wait_socket(true, error))
					return false;
				if (!PQconsumeInput(conn_)) {
					error = "lost connection to replica: " + conn_error();
					return false;
				}
			}
			PGresult *res = PQgetResult(conn_);
			if (res == nullptr)
				break;
			if (ok && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
				PQnfields(res) == ncolumns) {
				for (int i = 0; i < ncolumns; i++)
					row.emplace_back(PQgetvalue(res, 0, i));
			} else if (ok) {
				const char *msg = PQresultErrorMessage(res);
				error = std::string("replica could not answer a query of the shipper: ") +
						(msg != nullptr && msg[0] != '\0' ? msg : "unexpected result");
				ok = false;
			}
			PQclear(res);
		}
		return ok && static_cast<int>(row.size()) == ncolumns;
	}

	bool open_connection(std::string &error)
	{
		std::string timeout = std::to_string(std::max(1, config_.timeout_ms / 1000));
		const char *keys[] = {"dbname", "password", "fallback_application_name", "connect_timeout",
							  nullptr};
		const char *values[] = {config_.url.c_str(),
								config_.password.empty() ? nullptr : config_.password.c_str(),
								"edgesync shipper", timeout.c_str(), nullptr};
		static bool exit_callback = false;
		if (!exit_callback)
			pg_call([] { on_proc_exit(close_on_exit, 0); });
		exit_callback = true;
		conn_ = PQconnectStartParams(keys, values, 1);
		open_conn = conn_;
		if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
			error = "could not connect to replica: " + conn_error();
			disconnect();
			return false;
		}
		PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
		while (poll != PGRES_POLLING_OK) {
			if (poll == PGRES_POLLING_FAILED) {
				error = "could not connect to replica: " + conn_error();
				disconnect();
				return false;
			}
			if (!wait_socket(poll == PGRES_POLLING_READING, error)) {
				disconnect();
				return false;
			}
			poll = PQconnectPoll(conn_);
		}
		if (PQsetnonblocking(conn_, 1) != 0) {
			error = "could not set replica connection nonblocking: " + conn_error();
			disconnect();
			return false;
		}
		return true;
	}

	/* Sends the batch as one query string: the replica runs it while we go on. */
	bool send(const std::string &body, std::string &error)
	{
		if (!PQsendQuery(conn_, body.c_str())) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		for (;;) {
			int rc = PQflush(conn_);
			if (rc == 0)
				break;
			if (rc < 0) {
				error = "could not send batch to replica: " + conn_error();
				return false;
			}
			if (!wait_socket(false, error))
				return false;
			if (!PQconsumeInput(conn_)) {
				error = "lost connection to replica: " + conn_error();
				return false;
			}
		}
		return true;
	}

	/*
	 * A body with spilled pieces is sent as several query strings in one
	 * explicit transaction, each about kChunkBytes: every one but the last is
	 * sent and its results read here; the last, which ends with COMMIT, is
	 * left for finish() as a whole batch is.  A chunk ends at a line end, and
	 * the sql format writes one statement per line, so no statement is cut.
	 */
	bool send_in_chunks(const Body &body, std::string &error)
	{
		std::string chunk = "BEGIN;\n";
		auto send_whole_lines = [&]() -> bool {
			size_t end = chunk.rfind('\n');
			if (chunk.size() < kChunkBytes || end == std::string::npos)
				return true;
			std::string rest = chunk.substr(end + 1);
			chunk.resize(end + 1);
			deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
			bool ok = send(chunk, error) && collect_results(error);
			chunk = std::move(rest);
			return ok;
		};
		for (const BodyPiece &piece : body.pieces) {
			if (piece.spill_bytes == 0) {
				chunk += piece.text;
				if (!send_whole_lines())
					return false;
				continue;
			}
			for (uint64_t done = 0; done < piece.spill_bytes;) {
				size_t n =
					static_cast<size_t>(std::min<uint64_t>(kReadBytes, piece.spill_bytes - done));
				size_t at = chunk.size();
				chunk.resize(at + n);
				body.spill->read(piece.spill_offset + done, chunk.data() + at, n);
				done += n;
				if (!send_whole_lines())
					return false;
			}
		}
		chunk += "COMMIT;\n";
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		return send(chunk, error);
	}

	/* Reads every result of the query string: all good means the replica committed it. */
	bool collect_results(std::string &error)
	{
		std::string first_error;
		for (;;) {
			while (PQisBusy(conn_)) {
				if (!wait_socket(true, error))
					return false;
				if (!PQconsumeInput(conn_)) {
					error = "lost connection to replica: " + conn_error();
					return false;
				}
			}
			PGresult *res = PQgetResult(conn_);
			if (res == nullptr)
				break;
			ExecStatusType status = PQresultStatus(res);
			if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && first_error.empty()) {
				const char *msg = PQresultErrorMessage(res);
				first_error =
					std::string("replica rejected batch: ") + (msg ? msg : "unknown error");
				while (!first_error.empty() && first_error.back() == '\n')
					first_error.pop_back();
			}
			PQclear(res);
		}
		if (!first_error.empty()) {
			error = first_error;
			return false;
		}
		return true;
	}

	const TargetConfig &config_;
	PGconn *conn_ = nullptr;
	Clock::time_point deadline_;
	size_t sent_bytes_ = 0; /* of the batch in flight */
};

} // namespace

std::unique_ptr<Transport>
make_pg_transport(const TargetConfig &config)
{
	return std::make_unique<PgTransport>(config);
}

} // namespace edgesync::ship
