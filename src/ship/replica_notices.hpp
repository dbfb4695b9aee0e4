/*
 * replica_notices.hpp — what a replica sends besides its results, on its way
 * to this server's log: notices, rate-limited and escaped (ReplicaNotices),
 * and any text of the replica's made fit for the log or a catalog
 * (printable()).  Used by the replica transport (pg_transport.cpp).
 */
#pragma once

#include "core/error.hpp"
#include "core/guard.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "libpq-fe.h"

namespace edgesync::ship {

/* Replica notices: logged at most this many per minute per process, ... */
constexpr int kNoticesPerMinute = 10;
/* ... each its first this many bytes. */
constexpr size_t kNoticeBytes = 512;

/*
 * What a replica wrote, as text fit for this server's log or catalog: its
 * first max bytes; control characters escaped (\\n, \\x1b; newlines kept when
 * keep_newlines), and a backslash too when not; bytes that are not valid in
 * the database encoding (a multibyte character cut at max, or a replica's
 * bad bytes) as \\xNN.  "..." marks a cut.
 */
std::string printable(const std::string &raw, size_t max, bool keep_newlines);

/*
 * The notices of a replica connection, on their way to the server log.
 * take() runs in libpq's notice callback: it copies what it needs and calls
 * no PostgreSQL function (an error there would longjmp through libpq's
 * frames); flush() logs them afterwards, from our own code, and report() at
 * the end of a batch also says how many were not logged.  The rate is the
 * process's, over all its connections: at most kNoticesPerMinute notices and
 * one line counting the others a minute.
 */
class ReplicaNotices {
	using Clock = std::chrono::steady_clock;

  public:
	/* libpq's PQnoticeReceiver: never throws. */
	static void receive(void *arg, const PGresult *res) noexcept
	{
		try {
			static_cast<ReplicaNotices *>(arg)->take(res);
		} catch (...) {
			dropped++; /* out of memory: not kept */
		}
	}

	/* Logs the notices taken, within the rate; the others are counted. */
	void flush(const std::string &target)
	{
		for (const Pending &n : pending_) {
			new_window();
			if (logged >= kNoticesPerMinute) {
				dropped++;
				continue;
			}
			logged++;
			std::string text =
				printable(n.message, kNoticeBytes, false) + (n.truncated ? "..." : "");
			pg_call([&] {
				ereport(LOG_SERVER_ONLY, (errmsg("edgesync shipper: target \"%s\": replica %s: %s",
												 target.c_str(), n.severity.c_str(), text.c_str()),
										  errhidestmt(true), errhidecontext(true)));
			});
		}
		pending_.clear();
	}

	/* flush(), then one line for the notices not logged, once a minute at most. */
	void report(const std::string &target)
	{
		flush(target);
		new_window();
		if (dropped == 0 || counted)
			return;
		counted = true;
		long long n = dropped;
		dropped = 0;
		pg_call([&] {
			ereport(
				LOG_SERVER_ONLY,
				(errmsg("edgesync shipper: %lld more notices from the replica of target \"%s\" "
						"were not logged",
						n, target.c_str()),
				 errdetail("At most %d replica notices a minute are logged.", kNoticesPerMinute),
				 errhidestmt(true), errhidecontext(true)));
		});
	}

	/* A connection that goes: what it left unlogged is counted. */
	void forget()
	{
		dropped += static_cast<long long>(pending_.size());
		pending_.clear();
	}

  private:
	struct Pending {
		std::string severity;
		std::string message; /* at most kNoticeBytes */
		bool truncated;
	};

	void take(const PGresult *res)
	{
		if (pending_.size() >= static_cast<size_t>(kNoticesPerMinute)) {
			dropped++; /* more than a minute's worth before a flush */
			return;
		}
		const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
		const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		std::string text = message != nullptr ? message : "";
		bool truncated = text.size() > kNoticeBytes;
		if (truncated)
			text.resize(kNoticeBytes);
		std::string level = severity != nullptr ? severity : "NOTICE";
		if (level.empty() || level.size() > 16 ||
			!std::all_of(level.begin(), level.end(),
						 [](unsigned char c) { return std::isupper(c); }))
			level = "NOTICE";
		pending_.push_back(Pending{level, std::move(text), truncated});
	}

	static void new_window()
	{
		auto now = Clock::now();
		if (now - window_start < std::chrono::minutes(1))
			return;
		window_start = now;
		logged = 0;
		counted = false;
	}

	std::vector<Pending> pending_;

	static inline Clock::time_point window_start{};
	static inline int logged = 0;		/* notices logged in the window */
	static inline bool counted = false; /* the line counting the others, logged in it */
	static inline long long dropped = 0;
};

} // namespace edgesync::ship
