/*
 * replica_check.cpp — the privilege check add_target() and alter_target()
 * send to a replica (replica_check.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "ship/replica_check.hpp"

#include "core/text_writer.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace edgesync::ship {

namespace {

/*
 * What applying needs on the replica that the connected role may lack, in
 * plain SQL (nothing of edgesync need be installed there): one text, the
 * missing privileges separated by ", " (empty: none).  The position table
 * lives in schema (created, with the schema, where missing: docs/replica.md);
 * a re-send sweeps keys through a temporary table.  Each privilege is asked
 * alone (has_*_privilege() with a list is true when any one is held), and a
 * schema's table only when the schema may be used (to_regclass() raises an
 * error otherwise).  Every name it calls is qualified with pg_catalog;
 * @NAME@, @IDENT@ and @TABLE@ stand for literals of the schema's name, its
 * identifier and its position table (missing_privileges_sql()).
 */
constexpr const char *kMissingPrivilegesSql = R"(SELECT pg_catalog.concat_ws(', ',
  CASE WHEN NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY')
       THEN 'TEMPORARY on database ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(pg_catalog.current_database()) END,
  CASE WHEN pg_catalog.to_regnamespace(@IDENT@) IS NULL
        AND NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')
       THEN 'CREATE on database ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(pg_catalog.current_database()) END,
  CASE WHEN pg_catalog.to_regnamespace(@IDENT@) IS NULL THEN NULL
       WHEN NOT pg_catalog.has_schema_privilege(@NAME@, 'USAGE')
       THEN 'USAGE on schema ' OPERATOR(pg_catalog.||) @IDENT@
       WHEN pg_catalog.to_regclass(@TABLE@) IS NULL
       THEN CASE WHEN NOT pg_catalog.has_schema_privilege(@NAME@, 'CREATE')
                 THEN 'CREATE on schema ' OPERATOR(pg_catalog.||) @IDENT@ END
       ELSE NULLIF(pg_catalog.concat_ws(', ',
              CASE WHEN NOT pg_catalog.has_table_privilege(@TABLE@, 'SELECT') THEN 'SELECT' END,
              CASE WHEN NOT pg_catalog.has_table_privilege(@TABLE@, 'INSERT') THEN 'INSERT' END,
              CASE WHEN NOT pg_catalog.has_table_privilege(@TABLE@, 'UPDATE') THEN 'UPDATE' END), '')
            OPERATOR(pg_catalog.||) ' on table ' OPERATOR(pg_catalog.||) @TABLE@ END))";

} // namespace

/* kMissingPrivilegesSql for the replica schema schema. */
std::string
missing_privileges_sql(const std::string &schema)
{
	std::string quoted; /* "schema", as a name parser reads it */
	text::append_sql_identifier(quoted, schema, text::IdentifierUse::kInString);
	std::string name, ident, table;
	text::append_sql_literal(name, schema);
	text::append_sql_literal(ident, quoted);
	text::append_sql_literal(table, quoted + ".applied_lsn");
	/* One pass over the template: a value is never searched for keys. */
	std::string sql;
	for (const char *p = kMissingPrivilegesSql; *p != '\0';) {
		bool replaced = false;
		for (const auto &[key, value] :
			 {std::pair<std::string_view, const std::string &>{"@NAME@", name},
			  {"@IDENT@", ident},
			  {"@TABLE@", table}})
			if (strncmp(p, key.data(), key.size()) == 0) {
				sql += value;
				p += key.size();
				replaced = true;
				break;
			}
		if (!replaced)
			sql.push_back(*p++);
	}
	return sql;
}

/*
 * Without a replica schema, the stream creates each tracked table the
 * replica lacks in the schema of the same name (docs/replica.md): what the
 * role lacks for that, in the form of kMissingPrivilegesSql, for the tables
 * (schema, name).  A schema's table is looked up only where the role may
 * use the schema (to_regclass() raises an error otherwise);
 * has_schema_privilege() reads a schema's name, to_regnamespace() an
 * identifier.
 */
std::string
missing_table_privileges_sql(const std::vector<std::pair<std::string, std::string>> &tables)
{
	std::string values;
	for (const auto &[schema, table] : tables) {
		values += values.empty() ? "(" : ", (";
		text::append_sql_literal(values, schema);
		values += ", ";
		text::append_sql_literal(values, table);
		values += ")";
	}
	return R"(SELECT pg_catalog.concat_ws(', ', VARIADIC pg_catalog.array_agg(DISTINCT m ORDER BY m))
  FROM (SELECT CASE
          WHEN pg_catalog.to_regnamespace(pg_catalog.quote_ident(s)) IS NULL
          THEN CASE WHEN NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')
                    THEN 'CREATE on database ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(pg_catalog.current_database()) END
          WHEN NOT pg_catalog.has_schema_privilege(s, 'USAGE')
          THEN 'USAGE on schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s)
          WHEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', s, t)) IS NULL
           AND NOT pg_catalog.has_schema_privilege(s, 'CREATE')
          THEN 'CREATE on schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s) END AS m
          FROM (VALUES )" +
		   values + R"() AS v(s, t)) AS needs
 WHERE m IS NOT NULL)";
}

std::string
merge_missing(const std::string &first, const std::string &second)
{
	std::string merged = first;
	for (size_t start = 0; start < second.size();) {
		size_t end = std::min(second.find(", ", start), second.size());
		std::string item = second.substr(start, end - start);
		if ((", " + merged + ", ").find(", " + item + ", ") == std::string::npos)
			merged += (merged.empty() ? "" : ", ") + item;
		start = end + 2;
	}
	return merged;
}

/* The hint of a refused connection check, by the refusal's SQLSTATE. */
const char *
connection_hint(const std::string &sqlstate)
{
	if (sqlstate == "28P01")
		return "Check the user name and password of the URL: the replica refused them.";
	if (sqlstate == "3D000")
		return "Check the database name of the URL, or create the database on the replica.";
	if (sqlstate == "28000")
		return "Check the user name of the URL, and that the replica's pg_hba.conf lets it in.";
	if (sqlstate == "08001")
		return "Check the host and port of the URL, and that the replica accepts connections "
			   "from this server (firewall, listen_addresses, pg_hba.conf) within timeout_ms.";
	return "Fix what the replica reports, or add the target with enabled => false and enable it "
		   "later.";
}

} // namespace edgesync::ship
