/*
 * remote_wait.cpp — waiting on a backend's own libpq connection with a
 * deadline (see remote_wait.hpp).
 */
#include "core/remote_wait.hpp"

#include "libpq-fe.h"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace edgesync {

bool
wait_for_socket(PGconn *conn, bool for_write, TimestampTz deadline)
{
	for (;;) {
		long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (ms <= 0)
			return false;
		int events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | WL_TIMEOUT |
					 (for_write ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE);
		int rc = WaitLatchOrSocket(MyLatch, events, PQsocket(conn), ms, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET) {
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			return true;
	}
}

ConnectOutcome
finish_connecting(PGconn *conn, TimestampTz deadline)
{
	/* PQconnectStartParams() leaves the first step to a writable socket. */
	PostgresPollingStatusType state = PGRES_POLLING_WRITING;
	for (;;) {
		if (state == PGRES_POLLING_OK)
			return ConnectOutcome::kConnected;
		if (state == PGRES_POLLING_FAILED)
			return ConnectOutcome::kFailed;
		if (!wait_for_socket(conn, state == PGRES_POLLING_WRITING, deadline))
			return ConnectOutcome::kTimedOut;
		state = PQconnectPoll(conn);
	}
}

} // namespace edgesync
