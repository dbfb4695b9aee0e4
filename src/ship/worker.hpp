/*
 * worker.hpp — the shipper's settings and background workers (worker.cpp).
 */
#pragma once

namespace edgesync::ship {

/* Defines the edgesync.ship_* settings; at preload, registers the launcher. */
void init();

} // namespace edgesync::ship
