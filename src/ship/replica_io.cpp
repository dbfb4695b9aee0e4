/*
 * replica_io.cpp — a batch's statements sent to a replica, and its answers
 * read, without blocking (replica_io.hpp).
 */
#include "ship/replica_io.hpp"

#include "core/guard.hpp"
#include "core/remote_wait.hpp"
#include "core/statement_unit.hpp"
#include "ship/activity.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace edgesync::ship {

namespace {

/* The most a statement of a batch may answer with: rows, and bytes of their values. */
constexpr long kMaxResultRows = 1000;
constexpr size_t kMaxResultBytes = 1 << 20;

/* The most of a replica's error kept: for target_status, and for target_state. */
constexpr size_t kErrorBytes = 512;
constexpr size_t kErrorDetailBytes = 8192;

/* The size of the query strings a body with spilled pieces is sent in. */
constexpr size_t kChunkBytes = 4 << 20;
/* ... filled from the spill file this much at a time. */
constexpr size_t kReadBytes = 1 << 20;

/*
 * Appends body to buffer a piece at a time (a spilled one kReadBytes at a
 * time, read back from the spill file), calling consume after each append;
 * false as soon as consume is.
 */
bool
read_body(const Body &body, std::string &buffer, const std::function<bool()> &consume)
{
	for (const BodyPiece &piece : body.pieces) {
		if (piece.spill_bytes == 0) {
			buffer += piece.text;
			if (!consume())
				return false;
			continue;
		}
		for (uint64_t done = 0; done < piece.spill_bytes;) {
			size_t n =
				static_cast<size_t>(std::min<uint64_t>(kReadBytes, piece.spill_bytes - done));
			size_t at = buffer.size();
			buffer.resize(at + n);
			body.spill->read(piece.spill_offset + done, buffer.data() + at, n);
			done += n;
			if (!consume())
				return false;
		}
	}
	return true;
}

} // namespace

void
ReplicaIo::restart_deadline()
{
	deadline_ = Clock::now() + std::chrono::milliseconds(timeout_ms_);
}

/* deadline_ as the server's clock reads it. */
TimestampTz
ReplicaIo::pg_deadline() const
{
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), std::max<long>(0, left.count()));
}

/*
 * Waits until the socket is ready for what is asked, the deadline, or an
 * interrupt (raised from here, as an exception).
 */
bool
ReplicaIo::wait_socket(bool for_read, std::string &error)
{
	if (!pg_call([&] { return wait_for_socket(conn, !for_read, pg_deadline()); })) {
		error = format("no answer from replica within %d ms", timeout_ms_);
		return false;
	}
	return true;
}

std::string
ReplicaIo::conn_error()
{
	std::string text = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
	while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
		text.pop_back();
	for (char &c : text)
		if (c == '\n')
			c = ' ';
	return text;
}

/* Sends the batch as one query string: the replica runs it while we go on. */
bool
ReplicaIo::send(const std::string &body, std::string &error)
{
	report_activity(Activity::kSending);
	if (!PQsendQuery(conn, body.c_str())) {
		error = "could not send batch to replica: " + conn_error();
		return false;
	}
	/* Rows one at a time (read_results()), never a whole answer at once. */
	if (!PQsetSingleRowMode(conn)) {
		error = "could not read the replica's answers row by row";
		return false;
	}
	return flush(error);
}

/*
 * A body with spilled pieces is sent as several query strings in one
 * explicit transaction, each about kChunkBytes: every one but the last is
 * sent and its results read here; the last, which ends with COMMIT, is
 * left for finish() as a whole batch is.  A chunk ends at a line end, and
 * the sql format writes one statement per line, so no statement is cut.
 */
bool
ReplicaIo::send_in_chunks(const Body &body, std::string &error)
{
	std::string chunk = "BEGIN;\n";
	auto send_whole_lines = [&]() -> bool {
		size_t end = chunk.rfind('\n');
		if (chunk.size() < kChunkBytes || end == std::string::npos)
			return true;
		std::string rest = chunk.substr(end + 1);
		chunk.resize(end + 1);
		restart_deadline();
		bool ok = send(chunk, error) && collect_results(error);
		chunk = std::move(rest);
		return ok;
	};
	if (!read_body(body, chunk, send_whole_lines))
		return false;
	chunk += "COMMIT;\n";
	restart_deadline();
	return send(chunk, error);
}

/*
 * A body with units (core/statement_unit.hpp) is sent in the extended
 * protocol, in one pipeline: BEGIN, each row as a statement of its own
 * (the sql format writes one statement per line), a unit with its arrays
 * as binary parameters, COMMIT, then a sync; finish() reads the results
 * up to it.  As in send_in_chunks, a large body is synced and its results
 * read every kChunkBytes, inside its transaction, so that neither side
 * buffers a whole spilled transaction's statements or answers.
 */
bool
ReplicaIo::send_pipelined(const Body &body, std::string &error)
{
	if (!PQenterPipelineMode(conn)) {
		error = "could not send batch to replica: " + conn_error();
		return false;
	}
	pipelined_ = true;
	size_t unsynced = 0;
	auto queue_row = [&](std::string_view row) -> bool {
		unit::Unit u;
		bool ok;
		if (!row.empty() && row[0] == unit::kMarker) {
			if (!unit::parse(row, u)) {
				error = "the shipper read back a malformed statement of its own";
				return false;
			}
			std::vector<const char *> values;
			std::vector<int> lengths, formats;
			for (std::string_view p : u.params) {
				values.push_back(p.data());
				lengths.push_back(static_cast<int>(p.size()));
				formats.push_back(1);
			}
			/* (u.statement ends with the unit's 0x00.) */
			ok = PQsendQueryParams(conn, u.statement.data(), static_cast<int>(values.size()),
								   nullptr, values.data(), lengths.data(), formats.data(), 0);
		} else {
			std::string statement(row);
			ok = PQsendQueryParams(conn, statement.c_str(), 0, nullptr, nullptr, nullptr, nullptr,
								   0);
		}
		if (!ok) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		unsynced += row.size();
		if (!send_some(error))
			return false;
		if (unsynced < kChunkBytes)
			return true;
		unsynced = 0;
		restart_deadline();
		return sync(error) && collect_results(error);
	};
	/* Queues the whole rows at the start of bytes; returns how many bytes they took. */
	auto queue_rows = [&](std::string_view bytes, size_t &used) -> bool {
		used = 0;
		for (;;) {
			size_t len = unit::row_length(bytes.substr(used));
			if (len == unit::kIncomplete)
				return true;
			if (len > 0 && !queue_row(bytes.substr(used, len)))
				return false;
			used += len + 1;
		}
	};
	report_activity(Activity::kSending);
	size_t used;
	if (!queue_row("BEGIN"))
		return false;
	std::string pending; /* bytes read but not yet queued: a row's beginning */
	auto queue_pending = [&]() -> bool {
		if (!queue_rows(pending, used))
			return false;
		pending.erase(0, used);
		return true;
	};
	if (!read_body(body, pending, queue_pending))
		return false;
	if (!pending.empty()) {
		error = "the shipper read back a malformed batch of its own";
		return false;
	}
	restart_deadline();
	return queue_row("COMMIT") && sync(error) && send_some(error);
}

/* Ends the pipeline's current stretch with a sync (sent with the rest). */
bool
ReplicaIo::sync(std::string &error)
{
	if (!PQpipelineSync(conn)) {
		error = "could not send batch to replica: " + conn_error();
		return false;
	}
	return true;
}

bool
ReplicaIo::send_some(std::string &error)
{
	if (PQflush(conn) < 0) {
		error = "could not send batch to replica: " + conn_error();
		return false;
	}
	return true;
}

void
ReplicaIo::pump() noexcept
{
	if (conn == nullptr || !pipelined_ || PQflush(conn) < 0)
		return; /* (a failure shows in read_results()) */
	(void) PQconsumeInput(conn);
}

/* Sends what libpq holds, reading what arrives meanwhile. */
bool
ReplicaIo::flush(std::string &error)
{
	for (;;) {
		int rc = PQflush(conn);
		if (rc == 0)
			return true;
		if (rc < 0) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		if (!wait_socket(false, error))
			return false;
		if (!PQconsumeInput(conn)) {
			error = "lost connection to replica: " + conn_error();
			return false;
		}
	}
}

/*
 * Reads the results of the query string sent, row by row (single-row
 * mode), passing each row to on_row if given.  A statement answered with
 * more than kMaxResultRows rows or kMaxResultBytes bytes, or with COPY,
 * fails at once: the caller closes the connection, which rolls the
 * replica's transaction back and stops it sending.  Otherwise false,
 * with the first error, when any statement failed.
 */
bool
ReplicaIo::read_results(const std::function<void(const PGresult *)> &on_row, std::string &error)
{
	/* A pipeline's statements are sent while the next batch is decoded (pump()): the rest now. */
	if (!flush(error))
		return false;
	report_activity(Activity::kWaiting);
	std::string first_error;
	Answer answer;
	for (;;) {
		while (PQisBusy(conn)) {
			notices_.flush(target_);
			if (!wait_socket(true, error))
				return false;
			if (!PQconsumeInput(conn)) {
				error = "lost connection to replica: " + conn_error();
				return false;
			}
		}
		PGresult *res = PQgetResult(conn);
		notices_.flush(target_);
		if (res == nullptr && !pipelined_)
			break;
		if (res == nullptr) {
			/* A statement of the pipeline is done: the next one's answer row by row. */
			(void) PQsetSingleRowMode(conn);
			continue;
		}
		ExecStatusType status = PQresultStatus(res);
		if (status == PGRES_PIPELINE_SYNC || status == PGRES_PIPELINE_ABORTED) {
			/* The end of what was sent; a statement skipped after the first error. */
			PQclear(res);
			if (status == PGRES_PIPELINE_SYNC)
				break;
			continue;
		}
		bool too_much = false;
		if (status == PGRES_SINGLE_TUPLE || status == PGRES_TUPLES_OK) {
			/* One row, or (single-row mode refused) a whole answer. */
			for (int r = 0; r < PQntuples(res); r++) {
				answer.rows++;
				for (int c = 0; c < PQnfields(res); c++)
					answer.bytes += static_cast<size_t>(PQgetlength(res, r, c)) + 1;
			}
			too_much = answer.rows > kMaxResultRows || answer.bytes > kMaxResultBytes;
			if (!too_much && on_row != nullptr && PQntuples(res) > 0)
				on_row(res);
			if (status == PGRES_TUPLES_OK)
				answer = Answer(); /* the end of a statement's rows */
		} else if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
				   status == PGRES_COPY_BOTH) {
			PQclear(res);
			error = "replica answered a statement of the batch with COPY";
			return false;
		} else if (status != PGRES_COMMAND_OK && first_error.empty()) {
			first_error = "replica rejected batch: " + reader_message(remote_error(res));
			std::string text = PQresultErrorMessage(res);
			while (!text.empty() && text.back() == '\n')
				text.pop_back();
			detail_ = printable(text.empty() ? "unknown error" : text, kErrorDetailBytes, true);
		}
		PQclear(res);
		if (too_much) {
			error = answer.rows > kMaxResultRows
						? format("replica answered one statement with more than %ld rows",
								 kMaxResultRows)
						: format("replica answered one statement with more than %zu bytes",
								 kMaxResultBytes);
			return false;
		}
	}
	if (!first_error.empty()) {
		error = printable(first_error, kErrorBytes, false);
		return false;
	}
	return true;
}

/* The fields of a replica's error that say what it is about, not what it quotes. */
RemoteError
ReplicaIo::remote_error(const PGresult *res)
{
	auto field = [&](int code) {
		const char *value = PQresultErrorField(res, code);
		return std::string(value != nullptr ? value : "");
	};
	RemoteError e;
	e.sqlstate = field(PG_DIAG_SQLSTATE);
	e.primary = field(PG_DIAG_MESSAGE_PRIMARY);
	if (e.primary.empty()) {
		/* libpq's own (a lost connection), or not an error at all: no values in it. */
		const char *msg = PQresultErrorMessage(res);
		e.primary = msg != nullptr && msg[0] != '\0'
						? std::string(msg, strcspn(msg, "\n"))
						: std::string("unexpected result ") + PQresStatus(PQresultStatus(res));
		e.sqlstate = e.sqlstate.empty() ? "08006" : e.sqlstate;
	}
	e.schema = field(PG_DIAG_SCHEMA_NAME);
	e.table = field(PG_DIAG_TABLE_NAME);
	e.column = field(PG_DIAG_COLUMN_NAME);
	e.datatype = field(PG_DIAG_DATATYPE_NAME);
	e.constraint = field(PG_DIAG_CONSTRAINT_NAME);
	e.source_function = field(PG_DIAG_SOURCE_FUNCTION);
	return e;
}

bool
ReplicaIo::end_pipeline(std::string &error)
{
	bool ok = !pipelined_ || PQexitPipelineMode(conn);
	if (!ok)
		error = "could not end the pipeline of a batch: " + conn_error();
	pipelined_ = false;
	return ok;
}

} // namespace edgesync::ship
