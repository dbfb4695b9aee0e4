/*
 * guard.hpp — the two guarded crossings between C++ and PostgreSQL.
 *
 * PostgreSQL reports errors with longjmp; C++ with exceptions.  Neither may
 * cross the other's frames:
 *
 *   - an exception unwinding into PostgreSQL's C code aborts the backend, and
 *     the postmaster then restarts every session;
 *   - a longjmp through C++ frames skips their destructors (leaked memory,
 *     unreleased locks, half-built objects).
 *
 * So every crossing goes through one of two helpers, and nothing else:
 *
 *   guarded(fn)   PostgreSQL -> C++.  Wrap the body of every extern "C" entry
 *                 point (SQL functions, triggers, decoding callbacks, worker
 *                 mains).  Any exception is caught, all C++ frames are unwound,
 *                 and only then is it raised as ereport(ERROR).
 *
 *   pg_call(fn)   C++ -> PostgreSQL.  Call PostgreSQL functions that may raise
 *                 an error from C++ code that owns resources.  The error is
 *                 caught with PG_TRY, copied, and rethrown as PgException, so
 *                 destructors run; guarded() re-raises it unchanged (same
 *                 SQLSTATE, message, detail, hint, context).
 *
 * fn passed to pg_call must not itself own objects with destructors: it is the
 * code a longjmp may cross.  A PgException must not be swallowed: the
 * transaction is in an undefined state until it is re-raised and aborted
 * (code that wants to recover starts a subtransaction first, and then calls
 * discard()).
 */
#pragma once

#include "core/error.hpp"
#include "core/postgres.hpp"

#include <exception>
#include <type_traits>

namespace edgesync {

/* A PostgreSQL error caught under C++ frames, on its way back to PostgreSQL. */
class PgException : public std::exception {
  public:
	explicit PgException(ErrorData *data) noexcept : data_(data) {}
	const char *what() const noexcept override;
	ErrorData *data() const noexcept { return data_; }
	/* Frees the error after a caller recovered from it (in a subtransaction). */
	void discard() noexcept;

  private:
	ErrorData *data_; /* in a context of its own, freed when re-raised */
};

namespace guard_detail {

/* What guarded() raises once the C++ frames are gone: plain data only. */
struct PendingError {
	ErrorData *pg_error; /* a PostgreSQL error to re-raise as it was */
	char sqlstate[6];	 /* otherwise our own error: malloc'd strings */
	char *message;
	char *detail;
	char *hint;
};

void capture_current_exception(PendingError &pending) noexcept;
[[noreturn]] void raise(PendingError &pending);
ErrorData *run_catching_pg_error(void (*body)(void *), void *arg) noexcept;
/* Frees what run_catching_pg_error() returned (not FreeErrorData: it leaks). */
void free_error(ErrorData *error) noexcept;

template <typename Fn, typename Result>
bool
run(Fn &fn, Result *result, PendingError &pending) noexcept
{
	try {
		if constexpr (std::is_void_v<Result>)
			fn();
		else
			*result = fn();
		return true;
	} catch (...) {
		capture_current_exception(pending);
		return false;
	}
}

} // namespace guard_detail

/*
 * PostgreSQL -> C++: run fn, turning any exception into ereport(ERROR) after
 * every C++ frame inside fn has been destroyed.
 */
template <typename Fn>
auto
guarded(Fn &&fn) -> decltype(fn())
{
	using Result = decltype(fn());
	guard_detail::PendingError pending{};

	if constexpr (std::is_void_v<Result>) {
		if (guard_detail::run<Fn, void>(fn, nullptr, pending))
			return;
	} else {
		static_assert(std::is_trivially_destructible_v<Result>,
					  "guarded() returns PostgreSQL values only");
		Result result{};
		if (guard_detail::run(fn, &result, pending))
			return result;
	}
	guard_detail::raise(pending);
}

/*
 * C++ -> PostgreSQL: run fn (which calls PostgreSQL and owns no C++ objects)
 * and rethrow any PostgreSQL error as PgException.
 */
template <typename Fn>
auto
pg_call(Fn &&fn) -> decltype(fn())
{
	using Result = decltype(fn());
	struct Call {
		Fn *fn;
		std::conditional_t<std::is_void_v<Result>, char, Result> result;
		std::exception_ptr cpp_error; /* a throw inside fn must not cross PG_TRY */
	} call{&fn, {}, nullptr};

	ErrorData *pg_error = guard_detail::run_catching_pg_error(
		[](void *arg) {
			Call *c = static_cast<Call *>(arg);
			try {
				if constexpr (std::is_void_v<Result>)
					(*c->fn)();
				else
					c->result = (*c->fn)();
			} catch (...) {
				c->cpp_error = std::current_exception();
			}
		},
		&call);

	if (pg_error != nullptr)
		throw PgException(pg_error);
	if (call.cpp_error)
		std::rethrow_exception(call.cpp_error);
	if constexpr (!std::is_void_v<Result>)
		return call.result;
}

} // namespace edgesync
