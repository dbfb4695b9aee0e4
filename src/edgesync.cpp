/*
 * edgesync.cpp — the library's front door: module magic, _PG_init, version().
 *
 * edgesync.so is both the extension's C++ code and the logical decoding
 * output plugin; this file registers what is process-wide and nothing else.
 */
#include "core/guard.hpp"
#include "core/postgres.hpp"
#include "decode/decode.hpp"
#include "federate/remote.hpp"
#include "ship/worker.hpp"
#include "track/sync_log.hpp"

extern "C" {
#include "utils/builtins.h"

PG_MODULE_MAGIC;

void _PG_init(void);
PG_FUNCTION_INFO_V1(edgesync_version);
}

#ifndef EDGESYNC_VERSION
#error "EDGESYNC_VERSION must be defined by the build (from edgesync.control)"
#endif

void
_PG_init(void)
{
	edgesync::track::register_sync_log_callbacks();
	edgesync::decode::register_policy_settings();
	edgesync::ship::init();
	edgesync::federate::define_settings();
}

/* edgesync.version(): the version of the loaded library. */
Datum
edgesync_version(PG_FUNCTION_ARGS)
{
	return edgesync::guarded([&] {
		return edgesync::pg_call([] { return PointerGetDatum(cstring_to_text(EDGESYNC_VERSION)); });
	});
}
