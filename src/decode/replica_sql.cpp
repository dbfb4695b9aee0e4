/*
 * replica_sql.cpp — the statements a replica is applied with
 * (replica_sql.hpp; the contract is docs/replica.md, "What a replica needs").
 *
 * The DO blocks are fixed PL/pgSQL with their data (names, types, the
 * statements to run) in literals and arrays at the top, so that no name of
 * the hospital's ever becomes code: the body builds its statements with
 * format('%I') or runs the ones written here with append_sql_identifier.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "decode/replica_sql.hpp"

namespace edgesync::decode::replica {

namespace {

void
literal(std::string &out, std::string_view s)
{
	append_clean_literal(out, s);
}

void
identifier(std::string &out, std::string_view s)
{
	text::append_sql_identifier(out, s);
}

/* "schema"."table" as a token. */
std::string
qualified(std::string_view schema, std::string_view table)
{
	std::string out;
	identifier(out, schema);
	out.push_back('.');
	identifier(out, table);
	return out;
}

/* "schema"."table" as regclass input reads it (inside a literal). */
std::string
qualified_in_string(std::string_view schema, std::string_view table)
{
	std::string out;
	text::append_sql_identifier(out, schema, text::IdentifierUse::kInString);
	out.push_back('.');
	text::append_sql_identifier(out, table, text::IdentifierUse::kInString);
	return out;
}

/* Replica mode for the rest of the transaction, where the setup found the role may set it. */
constexpr std::string_view kReplicaMode =
	"CASE WHEN pg_catalog.current_setting('edgesync_apply.replica_role', true) "
	"OPERATOR(pg_catalog.=) 'on' THEN pg_catalog.set_config('session_replication_role', "
	"'replica', true) END";

/* ARRAY['a', 'b']::pg_catalog.text[] */
/* An array of type (e.g. "text") whose elements element(out, value) writes. */
template <typename T, typename Element>
void
sql_array(std::string &out, const std::vector<T> &values, const char *type, Element element)
{
	if (values.empty()) {
		out += std::string("'{}'::pg_catalog.") + type + "[]";
		return;
	}
	out += "ARRAY[";
	for (size_t i = 0; i < values.size(); i++) {
		if (i > 0)
			out += ", ";
		element(out, values[i]);
	}
	out += std::string("]::pg_catalog.") + type + "[]";
}

void
text_array(std::string &out, const std::vector<std::string> &values)
{
	sql_array(out, values, "text", [](std::string &o, const std::string &v) { literal(o, v); });
}

void
bool_array(std::string &out, const std::vector<bool> &values)
{
	sql_array(out, values, "bool", [](std::string &o, bool v) { o += v ? "true" : "false"; });
}

void
int_array(std::string &out, const std::vector<int32_t> &values)
{
	sql_array(out, values, "int4", [](std::string &o, int32_t v) { o += std::to_string(v); });
}

/* A column as CREATE TABLE declares it. */
std::string
create_definition(const TableShape::Column &c)
{
	std::string out;
	identifier(out, c.name);
	out += " " + c.type;
	if (!c.generated.empty())
		out += " GENERATED ALWAYS AS (" + c.generated + ") STORED";
	if (c.not_null)
		out += " NOT NULL";
	return out;
}

/*
 * A column as ALTER TABLE ... ADD COLUMN adds it: one added by the change
 * with the value the hospital's existing rows took and its NOT NULL; one
 * that is merely missing, nullable (its rows' values arrive as they change).
 */
std::string
add_definition(const TableShape::Column &c)
{
	std::string out;
	identifier(out, c.name);
	out += " " + c.type;
	if (!c.generated.empty())
		out += " GENERATED ALWAYS AS (" + c.generated + ") STORED";
	else if (c.added_here && !c.fill.empty())
		out += " DEFAULT " + c.fill;
	if (c.added_here && c.not_null)
		out += " NOT NULL";
	return out;
}

std::string
create_statement(const TableShape &shape)
{
	std::string out = "CREATE TABLE " + qualified(shape.schema, shape.table) + " (";
	bool first = true;
	for (const TableShape::Column &c : shape.columns) {
		out += first ? "" : ", ";
		first = false;
		out += create_definition(c);
	}
	if (!shape.key.empty()) {
		out += first ? "PRIMARY KEY (" : ", PRIMARY KEY (";
		for (size_t i = 0; i < shape.key.size(); i++) {
			out += i > 0 ? ", " : "";
			identifier(out, shape.key[i]);
		}
		out += ")";
	}
	out += ")";
	return out;
}

/* EXISTS: the replica table t has a live column named by expr (a PL/pgSQL expression). */
std::string
column_exists(std::string_view expr, std::string_view extra = "")
{
	return "EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) "
		   "t::pg_catalog.oid AND a.attname OPERATOR(pg_catalog.=) " +
		   std::string(expr) + " AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped" +
		   std::string(extra) + ")";
}

/* In check mode, stop with the difference; in apply mode, go on to run the fix x. */
std::string
report(std::string_view sqlstate, std::string_view format_args)
{
	return "IF m OPERATOR(pg_catalog.=) 'check' THEN RAISE EXCEPTION USING ERRCODE = '" +
		   std::string(sqlstate) + "', MESSAGE = pg_catalog.format(" + std::string(format_args) +
		   "); END IF; ";
}

} // namespace

std::string
setup_statement(std::string_view schema)
{
	std::string body = "DECLARE may pg_catalog.bool; BEGIN IF pg_catalog.to_regnamespace(";
	std::string name;
	text::append_sql_identifier(name, schema, text::IdentifierUse::kInString);
	literal(body, name);
	body += ") IS NULL THEN CREATE SCHEMA ";
	identifier(body, schema);
	body += "; END IF; IF pg_catalog.to_regclass(";
	literal(body, qualified_in_string(schema, "applied_lsn"));
	body += ") IS NULL THEN CREATE TABLE " + qualified(schema, "applied_lsn") +
			" (source pg_catalog.text PRIMARY KEY, lsn pg_catalog.pg_lsn NOT NULL, applied_at "
			"pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()); END IF; "
			"SELECT a.rolsuper INTO may FROM pg_catalog.pg_roles a "
			"WHERE a.rolname OPERATOR(pg_catalog.=) CURRENT_USER; "
			"IF NOT may AND pg_catalog.current_setting('server_version_num')::pg_catalog.int4 "
			"OPERATOR(pg_catalog.>=) 150000 THEN EXECUTE 'SELECT "
			"pg_catalog.has_parameter_privilege(''session_replication_role'', ''SET'')' INTO may; "
			"END IF; PERFORM pg_catalog.set_config('edgesync_apply.replica_role', CASE WHEN may "
			"THEN 'on' ELSE 'off' END, false); END";
	return do_block(body);
}

std::string
guard_statement(std::string_view schema, std::string_view source, std::string_view commit_lsn)
{
	std::string table = qualified(schema, "applied_lsn");
	std::string out(kGuardStart);
	out += "SELECT pg_catalog.set_config('edgesync_apply.skip_through', COALESCE((SELECT p.lsn "
		   "FROM " +
		   table + " p WHERE p.source OPERATOR(pg_catalog.=) ";
	literal(out, source);
	out += "), '0/0')::pg_catalog.text, true), ";
	out += kReplicaMode;
	out += ") INSERT INTO " + table + " AS p (source, lsn) SELECT ";
	literal(out, source);
	out += ", '";
	out += commit_lsn;
	out += "' FROM edgesync_guard ON CONFLICT (source) DO UPDATE SET lsn = EXCLUDED.lsn, "
		   "applied_at = pg_catalog.now() WHERE p.lsn OPERATOR(pg_catalog.<) EXCLUDED.lsn;";
	return out;
}

std::string
resync_start_statement()
{
	return "SELECT pg_catalog.set_config('edgesync_apply.skip_through', '0/0', true), " +
		   std::string(kReplicaMode) + ";";
}

std::string
do_block(std::string_view body)
{
	std::string tag = "$edgesync$";
	for (int i = 1; body.find(tag) != std::string_view::npos; i++)
		tag = "$edgesync" + std::to_string(i) + "$";
	return "DO " + tag + std::string(body) + tag + ";";
}

bool
is_guard(std::string_view row)
{
	return row.substr(0, kGuardStart.size()) == kGuardStart;
}

std::string
table_block(const TableShape &shape, const TableChange &change, SchemaMode mode,
			std::string_view commit_lsn)
{
	std::vector<std::string> names, adds, types, renamed_from, renamed_to;
	std::vector<bool> drop_default, not_null;
	std::vector<int32_t> typmods;
	for (const TableShape::Column &c : shape.columns) {
		names.push_back(c.name);
		adds.push_back(add_definition(c));
		drop_default.push_back(c.added_here && !c.fill.empty() && c.generated.empty());
		types.push_back(c.type);
		typmods.push_back(c.typmod);
		not_null.push_back(c.not_null);
	}
	for (const auto &[from, to] : change.renamed_columns) {
		renamed_from.push_back(from);
		renamed_to.push_back(to);
	}
	std::string key_list;
	for (const std::string &k : shape.key) {
		key_list += key_list.empty() ? "" : ", ";
		identifier(key_list, k);
	}

	std::string b = "DECLARE m pg_catalog.text := ";
	b += mode == SchemaMode::kCheck ? "'check'" : "'apply'";
	b += "; s pg_catalog.text := ";
	literal(b, shape.schema);
	b += "; n pg_catalog.text := ";
	literal(b, shape.table);
	b += "; os pg_catalog.text := ";
	if (change.renamed_from)
		literal(b, change.renamed_from->first);
	else
		b += "NULL";
	b += "; ot pg_catalog.text := ";
	if (change.renamed_from)
		literal(b, change.renamed_from->second);
	else
		b += "NULL";
	b += "; cr pg_catalog.text := ";
	literal(b, create_statement(shape));
	b += "; cn pg_catalog.text[] := ";
	text_array(b, names);
	b += "; cd pg_catalog.text[] := ";
	text_array(b, adds);
	b += "; cf pg_catalog.bool[] := ";
	bool_array(b, drop_default);
	b += "; ct pg_catalog.text[] := ";
	text_array(b, types);
	b += "; cm pg_catalog.int4[] := ";
	int_array(b, typmods);
	b += "; cz pg_catalog.bool[] := ";
	bool_array(b, not_null);
	b += "; k pg_catalog.text[] := ";
	text_array(b, shape.key);
	b += "; kd pg_catalog.text := ";
	literal(b, key_list);
	b += "; rf pg_catalog.text[] := ";
	text_array(b, renamed_from);
	b += "; rt pg_catalog.text[] := ";
	text_array(b, renamed_to);
	b += "; dr pg_catalog.text[] := ";
	text_array(b, change.dropped_columns);
	b += "; ty pg_catalog.text[] := ";
	text_array(b, change.retyped_columns);
	b += "; q pg_catalog.text := pg_catalog.format('%I.%I', s, n); t pg_catalog.regclass; "
		 "x pg_catalog.text := ''; e pg_catalog.text; c pg_catalog.text; i pg_catalog.int4; "
		 "BEGIN ";
	if (!commit_lsn.empty()) {
		b += "IF NOT (";
		append_apply_condition(b, commit_lsn);
		b += ") THEN RETURN; END IF; ";
	}
	b += "BEGIN t := pg_catalog.to_regclass(q); ";

	/* The hospital renamed the table (or moved it to another schema). */
	b +=
		"IF t IS NULL AND ot IS NOT NULL THEN IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', "
		"os, ot)) IS NOT NULL THEN x := pg_catalog.concat_ws('; ', CASE WHEN os "
		"OPERATOR(pg_catalog.<>) s THEN pg_catalog.format('ALTER TABLE %I.%I SET SCHEMA %I', os, "
		"ot, s) END, CASE WHEN ot OPERATOR(pg_catalog.<>) n THEN pg_catalog.format('ALTER TABLE "
		"%I.%I RENAME TO %I', s, ot, n) END); ";
	b += report("42P01", "'edgesync: replica table %s does not exist: the hospital renamed table "
						 "%I.%I (fix: %s)', q, os, ot, x");
	b += "IF os OPERATOR(pg_catalog.<>) s THEN EXECUTE pg_catalog.format('ALTER TABLE %I.%I SET "
		 "SCHEMA %I', os, ot, s); END IF; IF ot OPERATOR(pg_catalog.<>) n THEN EXECUTE "
		 "pg_catalog.format('ALTER TABLE %I.%I RENAME TO %I', s, ot, n); END IF; "
		 "t := pg_catalog.to_regclass(q); END IF; END IF; ";

	/* A missing table, with its schema where that is missing too. */
	b += "IF t IS NULL THEN x := cr; ";
	b += report("42P01", "'edgesync: replica table %s does not exist (fix: %s)', q, x");
	b += "IF pg_catalog.to_regnamespace(pg_catalog.quote_ident(s)) IS NULL THEN "
		 "x := pg_catalog.format('CREATE SCHEMA %I', s); EXECUTE x; ";
	/* PostgreSQL 15 and later keep schema public to its owner: say so up front. */
	b += "ELSIF NOT pg_catalog.has_schema_privilege(s, 'CREATE') THEN "
		 "x := pg_catalog.format('GRANT CREATE ON SCHEMA %I TO %I', s, CURRENT_USER); RAISE "
		 "EXCEPTION USING ERRCODE = '42501', MESSAGE = pg_catalog.format('edgesync: the applying "
		 "role %I may not create replica table %s in schema %I (fix: %s, by the schema''s "
		 "owner; or apply into a schema of its own with replica-schema)', CURRENT_USER, q, s, x); "
		 "END IF; ";
	b += "x := cr; EXECUTE x; t := pg_catalog.to_regclass(q); END IF; ";

	/* Columns renamed, dropped (apply only: an extra column does the replica no harm). */
	b += "FOR i IN 1 .. pg_catalog.cardinality(rf) LOOP IF " + column_exists("rf[i]") +
		 " AND NOT " + column_exists("rt[i]") +
		 " THEN x := pg_catalog.format('ALTER TABLE %s RENAME COLUMN %I TO %I', q, rf[i], "
		 "rt[i]); ";
	b += report("42703", "'edgesync: replica table %s lacks column %I: the hospital renamed "
						 "column %I (fix: %s)', q, rt[i], rf[i], x");
	b += "EXECUTE x; END IF; END LOOP; ";
	b += "IF m OPERATOR(pg_catalog.=) 'apply' THEN FOR i IN 1 .. pg_catalog.cardinality(dr) LOOP "
		 "IF " +
		 column_exists("dr[i]") +
		 " THEN x := pg_catalog.format('ALTER TABLE %s DROP COLUMN %I', q, dr[i]); EXECUTE x; "
		 "END IF; END LOOP; END IF; ";

	/* Every column of the shape: present, of the type a retype gave it, NULL where it may be. */
	b += "FOR i IN 1 .. pg_catalog.cardinality(cn) LOOP IF NOT " + column_exists("cn[i]") +
		 " THEN x := pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', q, cd[i]); ";
	b += report("42703", "'edgesync: replica table %s lacks column %I (fix: %s)', q, cn[i], x");
	b += "EXECUTE x; IF cf[i] THEN x := pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP "
		 "DEFAULT', q, cn[i]); EXECUTE x; END IF; ELSIF cn[i] OPERATOR(pg_catalog.=) ANY (ty) AND "
		 "NOT " +
		 column_exists("cn[i]", " AND a.atttypid OPERATOR(pg_catalog.=) "
								"pg_catalog.to_regtype(ct[i])::pg_catalog.oid AND a.atttypmod "
								"OPERATOR(pg_catalog.=) cm[i]") +
		 " THEN x := pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s', q, "
		 "cn[i], ct[i], cn[i], ct[i]); ";
	b += report("42804", "'edgesync: replica table %s has column %I of another type than the "
						 "hospital''s %s (fix: %s)', q, cn[i], ct[i], x");
	b += "EXECUTE x; END IF; IF NOT cz[i] AND " +
		 column_exists("cn[i]", " AND a.attnotnull AND NOT a.atthasdef") +
		 " THEN x := pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', q, "
		 "cn[i]); ";
	b += report("42804", "'edgesync: replica table %s has column %I NOT NULL, where the "
						 "hospital''s takes NULL (fix: %s)', q, cn[i], x");
	b += "EXECUTE x; END IF; END LOOP; ";

	/* The key ON CONFLICT names: a unique index on exactly its columns. */
	b += "IF pg_catalog.cardinality(k) OPERATOR(pg_catalog.>) 0 AND NOT EXISTS (SELECT FROM "
		 "pg_catalog.pg_index ix WHERE ix.indrelid OPERATOR(pg_catalog.=) t::pg_catalog.oid AND "
		 "ix.indisunique AND ix.indpred IS NULL AND ix.indexprs IS NULL AND ix.indnatts "
		 "OPERATOR(pg_catalog.=) pg_catalog.cardinality(k) AND NOT EXISTS (SELECT FROM "
		 "pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) t::pg_catalog.oid "
		 "AND a.attnum OPERATOR(pg_catalog.=) ANY (ix.indkey::pg_catalog.int2[]) AND NOT "
		 "a.attname OPERATOR(pg_catalog.=) ANY (k))) THEN SELECT co.conname INTO c FROM "
		 "pg_catalog.pg_constraint co WHERE co.conrelid OPERATOR(pg_catalog.=) "
		 "t::pg_catalog.oid AND co.contype OPERATOR(pg_catalog.=) 'p'; x := "
		 "pg_catalog.format('ALTER TABLE %s %sADD PRIMARY KEY (%s)', q, CASE WHEN c IS NOT NULL "
		 "THEN pg_catalog.format('DROP CONSTRAINT %I, ', c) ELSE '' END, kd); ";
	b += report("42P10", "'edgesync: replica table %s has no unique index on the hospital''s key "
						 "(%s) (fix: %s)', q, kd, x");
	b += "EXECUTE x; END IF; ";

	/* What no change of ours can fix: the role's rights on a table it does not own. */
	b += "IF NOT (pg_catalog.has_table_privilege(t::pg_catalog.oid, 'SELECT') AND "
		 "pg_catalog.has_table_privilege(t::pg_catalog.oid, 'INSERT') AND "
		 "pg_catalog.has_table_privilege(t::pg_catalog.oid, 'UPDATE') AND "
		 "pg_catalog.has_table_privilege(t::pg_catalog.oid, 'DELETE')) THEN x := "
		 "pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON %s TO %I', q, "
		 "CURRENT_USER); RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = "
		 "pg_catalog.format('edgesync: the applying role %I may not write replica table %s "
		 "(fix: %s)', CURRENT_USER, q, x); END IF; ";
	b += "IF pg_catalog.row_security_active(t) AND NOT EXISTS (SELECT FROM pg_catalog.pg_policy po "
		 "WHERE po.polrelid OPERATOR(pg_catalog.=) t::pg_catalog.oid AND po.polcmd "
		 "OPERATOR(pg_catalog.=) ANY ('{*,a}'::pg_catalog.\"char\"[]) AND (0::pg_catalog.oid "
		 "OPERATOR(pg_catalog.=) ANY (po.polroles) OR EXISTS (SELECT FROM "
		 "pg_catalog.unnest(po.polroles) AS r(o) WHERE pg_catalog.pg_has_role(r.o, 'USAGE')))) "
		 "THEN x := pg_catalog.format('ALTER TABLE %s OWNER TO %I', q, CURRENT_USER); RAISE "
		 "EXCEPTION USING ERRCODE = '42501', MESSAGE = pg_catalog.format('edgesync: row level "
		 "security on replica table %s would reject the rows of the applying role %I (fix: %s, "
		 "or a policy for it)', q, CURRENT_USER, x); END IF; ";

	/* Anything else the replica refused: said with the table, the statement and a hint. */
	b += "EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS e = MESSAGE_TEXT, c = "
		 "RETURNED_SQLSTATE; IF pg_catalog.starts_with(e, 'edgesync: ') THEN RAISE; END IF; "
		 "RAISE EXCEPTION USING ERRCODE = c, MESSAGE = pg_catalog.format('edgesync: could not "
		 "change replica table %s: %s', q, e), DETAIL = pg_catalog.format('The statement was: "
		 "%s', x), HINT = 'The applying role changes the tables it created; a table someone "
		 "else owns is changed by its owner (or given to the applying role with ALTER TABLE ... "
		 "OWNER TO), and the types and functions of the hospital''s columns must exist on the "
		 "replica.  To keep the replica''s schema yourself, apply with schema-changes = check.'; "
		 "END; END";
	return do_block(b);
}

} // namespace edgesync::decode::replica
