/*
 * owner.cpp — the rules for a target's owner before connecting (owner.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "ship/owner.hpp"

#include "core/error.hpp"

namespace edgesync::ship {

void
check_owner_params(const std::string &target, const TargetUrl &url, const std::string &password,
				   const TargetOwner &owner)
{
	if (owner.superuser || url.kind != TargetKind::postgresql)
		return;
	/*
	 * A password of the URL's own, so that none is taken from the server's
	 * .pgpass, service file or environment (libpq looks there only when no
	 * password is given).
	 */
	if (password.empty())
		throw Error("2F003", "password is required")
			.detail("Non-superusers must provide a password in the target URL.")
			.hint(format("Target \"%s\" belongs to role \"%s\", which is not a superuser: give the "
						 "password in its URL (user:password@host), or have a superuser set the "
						 "URL with edgesync.alter_target().",
						 target.c_str(), owner.name.c_str()));
	if (!url.option("sslcert").empty() || !url.option("sslkey").empty())
		throw Error("42501", "sslcert and sslkey are superuser-only")
			.detail("A client certificate or key file is read with the server's privileges.")
			.hint(format("Target \"%s\" belongs to role \"%s\", which is not a superuser: only a "
						 "superuser may set a URL with sslcert or sslkey.",
						 target.c_str(), owner.name.c_str()));
}

} // namespace edgesync::ship
