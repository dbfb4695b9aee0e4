/*
 * resync.hpp — the full re-send of a resync (resync.cpp).
 */
#pragma once

#include "ship/transport.hpp"

namespace edgesync::ship {

/*
 * Sends the current rows of every tracked table to the target, in batches
 * within its limits, in the target's format and under its column policy.
 * Runs in the current transaction and snapshot, with SPI connected.  False,
 * with error set, when a delivery failed; delivered counts the batches
 * acknowledged (their changes: the rows sent), also when a later one failed.
 */
bool resend_current_rows(const TargetConfig &config, Transport &transport, std::string &error,
						 Delivered &delivered);

} // namespace edgesync::ship
