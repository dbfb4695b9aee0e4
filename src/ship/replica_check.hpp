/*
 * replica_check.hpp — what add_target() and alter_target() ask a replica
 * before they accept it (pg_transport.cpp runs it): the privileges applying
 * needs that the connected role lacks, in plain SQL (nothing of edgesync
 * need be installed there), and the hint of a refused connection.
 */
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace edgesync::ship {

/*
 * A query answering one text: the privileges the connected role lacks for
 * the position table in schema (the replica schema), separated by ", "
 * (empty: none).
 */
std::string missing_privileges_sql(const std::string &schema);

/*
 * The same for the tracked tables (schema, name) that the stream creates,
 * without a replica schema, in the schema of the same name.
 */
std::string
missing_table_privileges_sql(const std::vector<std::pair<std::string, std::string>> &tables);

/* Two answers of those queries as one list, each privilege once, in order. */
std::string merge_missing(const std::string &first, const std::string &second);

/* The hint of a refused connection check, by the refusal's SQLSTATE. */
const char *connection_hint(const std::string &sqlstate);

} // namespace edgesync::ship
