/* Unit tests for decode/replica_sql.hpp: the statements a replica is applied with. */
#include "decode/replica_sql.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace edgesync::decode::replica;

namespace {

bool
one_line(const std::string &s)
{
	for (char c : s)
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			return false;
	return true;
}

TableShape
patients(const std::string &table = "patients")
{
	TableShape shape;
	shape.schema = "public";
	shape.table = table;
	shape.columns.push_back({"id", "integer", -1, true, "", "", false});
	shape.columns.push_back({"name", "pg_catalog.text", -1, false, "", "", false});
	shape.key = {"id"};
	return shape;
}

} // namespace

TEST(ReplicaSql, ApplyConditionComparesTheCommitLsnWithSkipThrough)
{
	std::string out;
	append_apply_condition(out, "0/1A2B3C8");
	EXPECT_EQ(out, "'0/1A2B3C8'::pg_catalog.pg_lsn OPERATOR(pg_catalog.>) "
				   "pg_catalog.current_setting('edgesync_apply.skip_through')::pg_catalog.pg_lsn");
}

TEST(ReplicaSql, GuardRecordsTheLsnAndReadsThePreviousOne)
{
	std::string g = guard_statement("edgesync", "src", "0/10");
	EXPECT_TRUE(is_guard(g));
	EXPECT_EQ(g.rfind("WITH edgesync_guard AS (", 0), 0u);
	EXPECT_NE(g.find("INSERT INTO \"edgesync\".\"applied_lsn\" AS p (source, lsn) SELECT 'src', "
					 "'0/10' FROM edgesync_guard"),
			  std::string::npos);
	EXPECT_NE(g.find("WHERE p.lsn OPERATOR(pg_catalog.<) EXCLUDED.lsn;"), std::string::npos);
	EXPECT_NE(g.find("set_config('session_replication_role', 'replica', true)"), std::string::npos);
	EXPECT_FALSE(is_guard("SELECT edgesync.apply_begin('s', '0/1');"));
}

TEST(ReplicaSql, SourceAndSchemaCannotEndTheStatement)
{
	std::string g = guard_statement("my\nschema", "src');DROP TABLE x;--\n", "0/10");
	EXPECT_TRUE(one_line(g));
	EXPECT_NE(g.find("U&\"my\\000aschema\".\"applied_lsn\""), std::string::npos);
	EXPECT_NE(g.find("E'src'');DROP TABLE x;--\\x0a'"), std::string::npos);
	std::string s = setup_statement("my\"schema");
	EXPECT_TRUE(one_line(s));
	EXPECT_NE(s.find("CREATE SCHEMA \"my\"\"schema\";"), std::string::npos);
	EXPECT_NE(s.find("pg_catalog.to_regnamespace('\"my\"\"schema\"')"), std::string::npos);
}

TEST(ReplicaSql, CleanLiteralsHoldNoControlCharacter)
{
	std::string out;
	append_clean_literal(out, "plain 'q'");
	EXPECT_EQ(out, "'plain ''q'''");
	out.clear();
	append_clean_literal(out, "t\r\n\t\x7f\\'");
	EXPECT_EQ(out, "E't\\x0d\\x0a\\x09\\x7f\\\\'''");
	EXPECT_TRUE(one_line(out));
}

TEST(ReplicaSql, DoBlockPicksATagItsBodyLacks)
{
	EXPECT_EQ(do_block("BEGIN NULL; END"), "DO $edgesync$BEGIN NULL; END$edgesync$;");
	EXPECT_EQ(do_block("BEGIN RAISE NOTICE '$edgesync$'; END"),
			  "DO $edgesync1$BEGIN RAISE NOTICE '$edgesync$'; END$edgesync1$;");
}

TEST(ReplicaSql, ResyncStartAppliesEverythingAndRecordsNothing)
{
	std::string r = resync_start_statement();
	EXPECT_EQ(
		r.rfind("SELECT pg_catalog.set_config('edgesync_apply.skip_through', '0/0', true)", 0), 0u);
	EXPECT_EQ(r.find("applied_lsn"), std::string::npos);
}

TEST(ReplicaSql, TableBlockCarriesItsDataAsLiterals)
{
	TableShape shape = patients("pat\nients\"; DROP TABLE x; --");
	shape.columns.push_back(
		{"ward", "character varying(10)", 14, true, "", "'A'::character varying(10)", true});
	TableChange change;
	change.renamed_columns.push_back({"nm", "name"});
	change.retyped_columns.push_back("ward");
	std::string b = table_block(shape, change, SchemaMode::kApply, "0/20");
	EXPECT_TRUE(one_line(b));
	EXPECT_EQ(b.rfind("DO $edgesync$DECLARE m pg_catalog.text := 'apply';", 0), 0u);
	/* The table's name: a literal, and (in the CREATE statement) a U& identifier. */
	EXPECT_NE(b.find("n pg_catalog.text := E'pat\\x0aients\"; DROP TABLE x; --';"),
			  std::string::npos);
	EXPECT_NE(b.find("CREATE TABLE \"public\".U&\"pat\\\\000aients\"\"; DROP TABLE x; --\""),
			  std::string::npos);
	/* An added column takes the hospital's value for its rows, then loses the default. */
	EXPECT_NE(b.find("'\"ward\" character varying(10) DEFAULT ''A''::character varying(10) NOT "
					 "NULL'"),
			  std::string::npos);
	EXPECT_NE(b.find("cf pg_catalog.bool[] := ARRAY[false, false, true]"), std::string::npos);
	EXPECT_NE(b.find("rf pg_catalog.text[] := ARRAY['nm']"), std::string::npos);
	EXPECT_NE(b.find("ty pg_catalog.text[] := ARRAY['ward']"), std::string::npos);
	/* Under the apply condition of its transaction. */
	EXPECT_NE(b.find("IF NOT ('0/20'::pg_catalog.pg_lsn OPERATOR(pg_catalog.>)"),
			  std::string::npos);
}

TEST(ReplicaSql, TableBlockWithoutLsnAlwaysRuns)
{
	std::string b = table_block(patients(), TableChange(), SchemaMode::kCheck, "");
	EXPECT_EQ(b.rfind("DO $edgesync$DECLARE m pg_catalog.text := 'check';", 0), 0u);
	EXPECT_EQ(b.find("IF NOT ('"), std::string::npos);
	/* A column merely missing is added nullable, without a default. */
	EXPECT_NE(b.find("cd pg_catalog.text[] := ARRAY['\"id\" integer', '\"name\" pg_catalog.text']"),
			  std::string::npos);
}
