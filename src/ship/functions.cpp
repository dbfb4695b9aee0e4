/*
 * functions.cpp — the SQL functions of the ship piece written in C++.
 *
 *   edgesync._parse_target_url(url) -> (kind, url, password)
 *       The URL split from its secret (url.hpp), for add_target() and
 *       alter_target(); errors never echo the URL.
 *
 *   edgesync._calling_role() -> regrole
 *       The role add_target() and alter_target() were called as: current_user
 *       outside them (they are SECURITY DEFINER), i.e. the login role or the
 *       role it SET ROLE to.  It becomes the target's owner (owner.hpp).
 *
 *   edgesync._check_target_owner(target, url, owner) -> void
 *       Raises the error of owner.hpp's rules when owner may not have a
 *       target with this URL (with its password); nothing otherwise.
 *
 *   edgesync._check_target_connection(target, url, password, owner, timeout_ms) -> void
 *       add_target()'s and alter_target()'s check of a postgresql target:
 *       one connection as the shipper would make it for owner, within
 *       timeout_ms, refused with the replica's SQLSTATE or the privileges
 *       applying lacks there (transport.hpp).  url is as stored (no password).
 *
 *   edgesync._ship(target, max_batches) -> bigint
 *       edgesync.ship(): the worker's delivery path in the caller's session
 *       and transaction.  A failed delivery is recorded in target_state and
 *       reported as a WARNING (the recording would be lost with an ERROR);
 *       returns the number of changes delivered.
 *
 *   edgesync._target_activity() -> (name, state, state_since, pid)
 *       What the processes shipping this database's targets are doing now
 *       (activity.hpp), for target_status; no rows without preload.
 *
 *   edgesync._unserved_reason() -> text
 *       Why no background worker ships this database's targets ("no worker
 *       (not preloaded)", "no worker (database not in
 *       edgesync.ship_databases)"), or NULL (worker.hpp), for target_status.
 *
 *   edgesync._refuse_drop_with_targets() -> event_trigger
 *       Fired at ddl_command_start of DROP EXTENSION: refuses to drop
 *       edgesync while targets exist, since their replication slots would
 *       outlive the catalog that names them and hold WAL back for good (as
 *       DROP SUBSCRIPTION protects its slot).  Plain C-style code.
 */
#include "core/catalog_owner.hpp"
#include "core/guard.hpp"
#include "ship/activity.hpp"
#include "ship/owner.hpp"
#include "ship/shipper.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"
#include "ship/worker.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(edgesync_parse_target_url);
PG_FUNCTION_INFO_V1(edgesync_calling_role);
PG_FUNCTION_INFO_V1(edgesync_check_target_owner);
PG_FUNCTION_INFO_V1(edgesync_check_target_connection);
PG_FUNCTION_INFO_V1(edgesync_ship);
PG_FUNCTION_INFO_V1(edgesync_target_activity);
PG_FUNCTION_INFO_V1(edgesync_unserved_reason);
PG_FUNCTION_INFO_V1(edgesync_refuse_drop_with_targets);
}

using namespace edgesync;
using namespace edgesync::ship;

Datum
edgesync_parse_target_url(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::string input = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		TargetUrl url = parse_target_url(input);
		return pg_call([&] {
			TupleDesc desc;
			if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
				elog(ERROR, "return type must be a row type");
			Datum values[3] = {CStringGetTextDatum(kind_name(url.kind)),
							   CStringGetTextDatum(url.redacted.c_str()),
							   CStringGetTextDatum(url.password.c_str())};
			bool nulls[3] = {false, false, false};
			return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
		});
	});
}

/* No C++ objects live here. */
Datum
edgesync_calling_role(PG_FUNCTION_ARGS)
{
	/* SECURITY DEFINER changes the current user, not the outer one (SET ROLE's). */
	PG_RETURN_OID(GetOuterUserId());
}

Datum
edgesync_check_target_owner(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::string target = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		std::string input = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); });
		Oid role = PG_GETARG_OID(2);
		TargetOwner owner;
		owner.superuser = pg_call([&] { return superuser_arg(role); });
		const char *name = pg_call([&] { return GetUserNameFromId(role, true); });
		owner.name = name != nullptr ? name : "(dropped role)";
		TargetUrl url = parse_target_url(input);
		check_owner_params(target, url, url.password, owner);
		PG_RETURN_VOID();
	});
}

namespace {

/* The tracked tables (schema, name) a replica gets: partitions arrive in their root's. */
std::vector<std::pair<std::string, std::string>>
tracked_roots()
{
	std::vector<std::pair<std::string, std::string>> tables;
	OwnerRows rows = pg_call([] {
		return query_as_catalog_owner(
			"tracked_tables",
			"SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text "
			"FROM edgesync.tracked_tables t JOIN pg_catalog.pg_class c ON c.oid "
			"OPERATOR(pg_catalog.=) t.relid JOIN pg_catalog.pg_namespace n ON n.oid "
			"OPERATOR(pg_catalog.=) c.relnamespace WHERE NOT c.relispartition ORDER BY 1, 2",
			0, nullptr, nullptr, nullptr);
	});
	for (uint64 i = 0; i < rows.count; i++) {
		auto column = [&](int attnum) {
			const char *value = pg_call([&]() -> const char * {
				bool isnull;
				Datum d = heap_getattr(rows.rows[i], attnum, rows.desc, &isnull);
				return isnull ? "" : TextDatumGetCString(d);
			});
			return std::string(value);
		};
		tables.emplace_back(column(1), column(2));
	}
	return tables;
}

} // namespace

Datum
edgesync_check_target_connection(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		TargetConfig config;
		config.name = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		TargetUrl url =
			parse_target_url(pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); }));
		config.password = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(2)); });
		Oid role = PG_GETARG_OID(3);
		config.timeout_ms = PG_GETARG_INT32(4);
		config.replica_schema =
			pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(5)); }); /* '': the default */
		if (url.kind != TargetKind::postgresql)
			PG_RETURN_VOID();
		config.kind = kind_name(url.kind);
		config.url = url.redacted;
		if (!url.password.empty())
			config.password = url.password;
		config.owner_superuser = pg_call([&] { return superuser_arg(role); });
		const char *name = pg_call([&] { return GetUserNameFromId(role, true); });
		config.owner = name != nullptr ? name : "(dropped role)";
		if (config.replica_schema.empty())
			config.replica_tables = tracked_roots();
		check_replica_connection(config);
		PG_RETURN_VOID();
	});
}

Datum
edgesync_ship(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::string target = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		int max_batches = PG_GETARG_INT32(1);
		ShipResult r = ship_target(target, max_batches, false);
		if (r.busy)
			throw Error("55006",
						format("target \"%s\" is being shipped by another process", target.c_str()))
				.hint("The background worker ships it; try again later.");
		if (r.failed) {
			/* The recorded error, as edgesync_reader sees it: no values in it. */
			std::string message = format("could not ship to target \"%s\"", target.c_str());
			pg_call([&] {
				ereport(WARNING, (errcode(ERRCODE_CONNECTION_FAILURE),
								  errmsg("%s", message.c_str()), errdetail("%s", r.error.c_str()),
								  r.has_detail ? errhint("The receiver's whole answer is in "
														 "edgesync.target_state.last_error_detail.")
											   : 0));
			});
		}
		return Int64GetDatum(r.changes);
	});
}

Datum
edgesync_target_activity(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		std::vector<ActivityRow> rows = activities_of_database(MyDatabaseId);
		pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
		ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
		for (const ActivityRow &row : rows)
			pg_call([&] {
				Datum values[4] = {CStringGetTextDatum(row.target.c_str()),
								   CStringGetTextDatum(activity_name(row.activity)),
								   TimestampTzGetDatum(row.since), Int32GetDatum(row.pid)};
				bool nulls[4] = {false, false, false, false};
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			});
		return static_cast<Datum>(0);
	});
}

Datum
edgesync_unserved_reason(PG_FUNCTION_ARGS)
{
	return guarded([&]() -> Datum {
		const char *reason = unserved_reason();
		if (reason == nullptr)
			PG_RETURN_NULL();
		return pg_call([&] { return PointerGetDatum(cstring_to_text(reason)); });
	});
}

/* No C++ objects live here: it may ereport directly. */
Datum
edgesync_refuse_drop_with_targets(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "edgesync._refuse_drop_with_targets() must be called as an event trigger");
	Node *tree = reinterpret_cast<EventTriggerData *>(fcinfo->context)->parsetree;
	if (tree == nullptr || !IsA(tree, DropStmt) ||
		reinterpret_cast<DropStmt *>(tree)->removeType != OBJECT_EXTENSION)
		PG_RETURN_VOID();
	bool ours = false;
	ListCell *lc;
	foreach (lc, reinterpret_cast<DropStmt *>(tree)->objects)
		if (strcmp(strVal(lfirst(lc)), "edgesync") == 0)
			ours = true;
	if (!ours)
		PG_RETURN_VOID();

	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.count(*), pg_catalog.min(name)::pg_catalog.text,"
					"       pg_catalog.min(slot_name)::pg_catalog.text FROM edgesync.targets",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count edgesync targets");
	bool isnull;
	int64 n =
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n > 0) {
		char *target = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		char *slot = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension edgesync while it has shipping targets"),
				 n == 1 ? errdetail("Target \"%s\" owns replication slot \"%s\", which would be "
									"left behind holding back WAL.",
									target, slot)
						: errdetail("%lld targets, such as \"%s\", own replication slots, which "
									"would be left behind holding back WAL.",
									static_cast<long long>(n), target),
				 errhint("Drop the targets first with edgesync.drop_target().")));
	}
	SPI_finish();
	PG_RETURN_VOID();
}
