/*
 * shipper.hpp — one target's delivery loop, shared by edgesync.ship() and the
 * background worker.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ship/transport.hpp"

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
 * What a target's worker keeps from one round to the next: the transport,
 * and so its connection to the replica (a new connection per round would
 * cost every change a TLS handshake once the worker is woken at commit).
 * Kept while the target's connection settings stay the same; dropped after
 * a round that failed.
 */
struct ShipSession {
	std::unique_ptr<Transport> transport;
	TargetConfig config; /* what the transport was made for */
};

/*
 * Ships up to max_batches batches of target.  own_transactions: the worker
 * runs each step in a transaction of its own, so that no snapshot is held
 * while it waits on the network; edgesync.ship() runs in the caller's.
 * session: the worker's, kept across rounds (nullptr: a transport for this
 * call only).
 */
ShipResult ship_target(const std::string &target, int max_batches, bool own_transactions,
					   ShipSession *session = nullptr);

/* Records a failure of target that happened outside ship_target's own
 * bookkeeping (an exception), in a transaction of its own; returns the error
 * with the target's secrets removed. */
std::string record_error(const std::string &target, const std::string &error);

/* Settings (worker.cpp defines them). */
extern int retry_min_ms;
extern int retry_max_ms;
extern int transaction_memory_kb; /* edgesync.ship_transaction_memory */
extern bool binary_runs;		  /* edgesync.ship_binary_runs */

} // namespace edgesync::ship
