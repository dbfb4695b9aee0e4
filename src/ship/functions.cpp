/*
 * functions.cpp — the SQL functions of the ship piece written in C++.
 *
 *   edgesync._parse_target_url(url) -> (kind, url, password)
 *       The URL split from its secret (url.hpp), for add_target() and
 *       alter_target(); errors never echo the URL.
 *
 *   edgesync._ship(target, max_batches) -> bigint
 *       edgesync.ship(): the worker's delivery path in the caller's session
 *       and transaction.  A failed delivery is recorded in target_state and
 *       reported as a WARNING (the recording would be lost with an ERROR);
 *       returns the number of changes delivered.
 */
#include "core/guard.hpp"
#include "ship/shipper.hpp"
#include "ship/url.hpp"

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(edgesync_parse_target_url);
PG_FUNCTION_INFO_V1(edgesync_ship);
}

using namespace edgesync;
using namespace edgesync::ship;

Datum
edgesync_parse_target_url(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::string input = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		TargetUrl url = parse_target_url(input);
		return pg_call([&] {
			TupleDesc desc;
			if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
				elog(ERROR, "return type must be a row type");
			Datum values[3] = {CStringGetTextDatum(kind_name(url.kind)),
							   CStringGetTextDatum(url.redacted.c_str()),
							   CStringGetTextDatum(url.password.c_str())};
			bool nulls[3] = {false, false, false};
			return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
		});
	});
}

Datum
edgesync_ship(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::string target = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		int max_batches = PG_GETARG_INT32(1);
		ShipResult r = ship_target(target, max_batches, false);
		if (r.busy)
			throw Error("55006",
						format("target \"%s\" is being shipped by another process", target.c_str()))
				.hint("The background worker ships it; try again later.");
		if (r.failed) {
			std::string message = format("could not ship to target \"%s\"", target.c_str());
			pg_call([&] {
				ereport(WARNING, (errcode(ERRCODE_CONNECTION_FAILURE),
								  errmsg("%s", message.c_str()), errdetail("%s", r.error.c_str())));
			});
		}
		return Int64GetDatum(r.changes);
	});
}
