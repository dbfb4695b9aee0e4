/*
 * owner.hpp — whom a target connects for: the rules for a target's owner.
 *
 * A target belongs to the role that added it or last set its URL (the role
 * its caller acted as, see ship.sql).  The shipper connects from a
 * superuser process, so a postgresql target of a role that is not a
 * superuser follows postgres_fdw's rules for non-superusers, which keep the
 * server's own identity (trust or peer authentication, its .pgpass, its
 * client certificate) out of that role's reach:
 *
 *   - before connecting (check_owner_params, here, also at add_target and
 *     alter_target): the URL comes with a password, and names no client
 *     certificate or key file (sslcert, sslkey);
 *   - after connecting (pg_transport.cpp): the server asked for that
 *     password (PQconnectionUsedPassword), and the connection does not lead
 *     back to this very server as a role other than the owner.
 *
 * A superuser's targets are not checked, as postgres_fdw does not check a
 * superuser's user mappings.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include "ship/url.hpp"

#include <string>

namespace edgesync::ship {

struct TargetOwner {
	std::string name;
	bool superuser = false;
};

/*
 * Throws edgesync::Error unless owner may connect with url and password:
 * 2F003 (password is required) or 42501 (sslcert and sslkey).  target names
 * the target in the hint.  HTTP targets have nothing to check.
 */
void check_owner_params(const std::string &target, const TargetUrl &url,
						const std::string &password, const TargetOwner &owner);

} // namespace edgesync::ship
