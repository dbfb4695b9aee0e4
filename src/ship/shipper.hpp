/*
 * shipper.hpp — one target's delivery loop, shared by edgesync.ship() and the
 * background worker.
 */
#pragma once

#include <cstdint>
#include <string>

namespace edgesync::ship {

struct ShipResult {
	int64_t changes = 0;
	int64_t batches = 0;
	bool more = false;		 /* the slot holds more than was shipped */
	bool failed = false;	 /* a delivery failed (recorded in target_state) */
	bool busy = false;		 /* another process is shipping this target */
	std::string error;		 /* secrets removed */
	bool has_detail = false; /* the receiver's whole answer is in target_state.last_error_detail */
};

/*
 * Ships up to max_batches batches of target.  own_transactions: the worker
 * runs each step in a transaction of its own, so that no snapshot is held
 * while it waits on the network; edgesync.ship() runs in the caller's.
 */
ShipResult ship_target(const std::string &target, int max_batches, bool own_transactions);

/* Records a failure of target that happened outside ship_target's own
 * bookkeeping (an exception), in a transaction of its own; returns the error
 * with the target's secrets removed. */
std::string record_error(const std::string &target, const std::string &error);

/* Settings (worker.cpp defines them). */
extern int retry_min_ms;
extern int retry_max_ms;
extern int transaction_memory_kb; /* edgesync.ship_transaction_memory */

} // namespace edgesync::ship
