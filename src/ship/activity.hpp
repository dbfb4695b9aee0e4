/*
 * activity.hpp — what the process shipping a target is doing now, in shared
 * memory, for edgesync.target_status (state, state_since, pid).
 *
 * A target's background worker takes an entry for the target when it
 * starts and keeps it for its life; edgesync.ship() takes one for its call.
 * The shipper reports each step (decoding, sending, waiting for the
 * receiver's answer, ...) into it: one spinlock-protected store, no
 * transaction, no WAL, so a step costs nothing measurable and a hung step
 * shows while it hangs.  The entries live in shared memory set up at
 * preload (edgesync in shared_preload_libraries); without it nothing is
 * recorded and target_status shows no state from a process.
 */
#pragma once

#include "core/postgres.hpp"

#include <string>
#include <vector>

extern "C" {
#include "datatype/timestamp.h"
}

namespace edgesync::ship {

enum class Activity : uint8_t {
	kIdle,		 /* nothing to ship: waits for WAL to move */
	kDecoding,	 /* reads the slot */
	kResyncing,	 /* reads the tracked tables for a full re-send */
	kConnecting, /* opens the connection to the replica */
	kSending,	 /* hands a batch to the receiver */
	kWaiting,	 /* the batch is out: waits for the receiver's answer */
	kRecording,	 /* records the outcome in target_state */
	kBackingOff, /* the last attempt failed: waits for next_retry */
};

/* The name target_status shows. */
const char *activity_name(Activity activity);

/* At preload: asks for the shared memory and sets it up at startup. */
void request_activity_memory();

/*
 * This process ships target (in this database) from now until the claim
 * ends; it starts as kIdle.  A claim for the target this process already
 * holds one for is empty (the worker's claim covers its ship_target()
 * calls).  A process holds one entry at most; it is freed at exit too.
 */
class ActivityClaim {
  public:
	explicit ActivityClaim(const std::string &target);
	~ActivityClaim();
	ActivityClaim(const ActivityClaim &) = delete;
	ActivityClaim &operator=(const ActivityClaim &) = delete;

  private:
	bool owner_ = false;
};

/* Reports what this process does now for its claimed target (nothing without a claim). */
void report_activity(Activity activity);

/* One process's entry, as read. */
struct ActivityRow {
	std::string target;
	Activity activity;
	TimestampTz since;
	int pid;
};

/*
 * The entries of database, one per target: where two processes report on
 * one target (the worker idle while ship() runs), the one that is not idle,
 * else the one whose state began last.
 */
std::vector<ActivityRow> activities_of_database(Oid database);

} // namespace edgesync::ship
