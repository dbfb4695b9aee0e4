/*
 * postgres.hpp — the one door through which PostgreSQL's C headers enter C++.
 *
 * C++ standard headers must come first: PostgreSQL's port.h redefines
 * snprintf, printf and strerror as macros, which breaks <string> and friends
 * if they are included afterwards.  Every edgesync file that talks to the
 * server includes this header before any other PostgreSQL header.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <utility>

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}
