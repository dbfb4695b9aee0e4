/*
 * selftest.cpp — entry points that exercise the C++/PostgreSQL crossings.
 *
 * Not part of the extension's SQL API: the regression tests declare them
 * (CREATE FUNCTION ... LANGUAGE C, superuser only) to prove that
 *   - a C++ exception becomes an ERROR with its SQLSTATE, and the session
 *     goes on;
 *   - a PostgreSQL error raised under C++ frames runs their destructors
 *     (counted by LiveObject) and deletes owned memory contexts (counted by
 *     name under TopMemoryContext).
 */
#include "core/guard.hpp"
#include "core/memory.hpp"
#include "core/postgres.hpp"

#include <stdexcept>
#include <vector>

extern "C" {
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(edgesync_selftest_throw);
PG_FUNCTION_INFO_V1(edgesync_selftest_pg_error_under_cpp);
PG_FUNCTION_INFO_V1(edgesync_selftest_live_objects);
PG_FUNCTION_INFO_V1(edgesync_selftest_owned_contexts);
}

namespace {

const char *const kSelftestContextName = "edgesync selftest";
int64 live_objects = 0;

/* Counts its live instances: a destructor skipped by a longjmp shows up. */
struct LiveObject {
	LiveObject() { live_objects++; }
	~LiveObject() { live_objects--; }
	LiveObject(const LiveObject &) = delete;
	LiveObject &operator=(const LiveObject &) = delete;
	std::vector<char> payload = std::vector<char>(4096);
};

} // namespace

/*
 * edgesync_selftest_throw(kind text, sqlstate text): throws kind =
 * 'edgesync' (edgesync::Error with that SQLSTATE, detail and hint),
 * 'std' (std::runtime_error), 'bad_alloc', or 'other' (a non-std type).
 */
Datum
edgesync_selftest_throw(PG_FUNCTION_ARGS)
{
	char *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char *sqlstate = text_to_cstring(PG_GETARG_TEXT_PP(1));

	return edgesync::guarded([&]() -> Datum {
		LiveObject alive;
		std::string k(kind);
		if (k == "edgesync")
			throw edgesync::Error(sqlstate, "selftest error from C++")
				.detail("Thrown as edgesync::Error.")
				.hint("This is only a test.");
		if (k == "std")
			throw std::runtime_error("selftest std::runtime_error");
		if (k == "bad_alloc")
			throw std::bad_alloc();
		if (k == "other")
			throw 42;
		return Int32GetDatum(0);
	});
}

/*
 * edgesync_selftest_pg_error_under_cpp(input text): with C++ objects and an
 * owned memory context alive, calls int4in(input) through pg_call; a bad input
 * raises 22P02 there.  Returns the parsed integer otherwise.
 */
Datum
edgesync_selftest_pg_error_under_cpp(PG_FUNCTION_ARGS)
{
	char *input = text_to_cstring(PG_GETARG_TEXT_PP(0));

	return edgesync::guarded([&]() -> Datum {
		LiveObject first;
		edgesync::OwnedMemoryContext scratch(TopMemoryContext, kSelftestContextName);
		LiveObject second;
		edgesync::MemoryContextSwitch in_scratch(scratch.get());
		return edgesync::pg_call(
			[&] { return DirectFunctionCall1(int4in, CStringGetDatum(input)); });
	});
}

/* edgesync_selftest_live_objects(): LiveObject instances alive right now. */
Datum
edgesync_selftest_live_objects(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(live_objects);
}

/* edgesync_selftest_owned_contexts(): selftest contexts under TopMemoryContext. */
Datum
edgesync_selftest_owned_contexts(PG_FUNCTION_ARGS)
{
	int64 count = 0;
	for (MemoryContext c = TopMemoryContext->firstchild; c != nullptr; c = c->nextchild)
		if (strcmp(c->name, kSelftestContextName) == 0)
			count++;
	PG_RETURN_INT64(count);
}
