/* Unit tests for ship/url.hpp and ship/batch.hpp: target URLs, secrets,
 * batches of whole transactions, idempotency keys, retry delays. */
#include "core/error.hpp"
#include "ship/batch.hpp"
#include "ship/owner.hpp"
#include "ship/remote_error.hpp"
#include "ship/replica_check.hpp"
#include "ship/url.hpp"

#include <gtest/gtest.h>

using namespace edgesync::ship;

static std::string
error_of(const char *url)
{
	try {
		parse_target_url(url);
	} catch (const edgesync::Error &e) {
		EXPECT_STREQ(e.sqlstate(), "22023");
		return e.what();
	}
	return "";
}

TEST(TargetUrl, HttpWithPasswordIsSplit)
{
	TargetUrl t = parse_target_url("HTTPS://ann:s%40cret@example.org:8443/ingest?x=1");
	EXPECT_EQ(t.kind, TargetKind::http);
	EXPECT_EQ(t.scheme, "https");
	EXPECT_EQ(t.user, "ann");
	EXPECT_EQ(t.password, "s@cret");
	EXPECT_EQ(t.host, "example.org");
	EXPECT_EQ(t.port, "8443");
	EXPECT_EQ(t.redacted, "https://ann@example.org:8443/ingest?x=1");
	EXPECT_EQ(t.without_userinfo, "https://example.org:8443/ingest?x=1");
}

TEST(TargetUrl, PostgresqlQueryPasswordIsSplit)
{
	TargetUrl t = parse_target_url(
		"postgresql://cloud@db1:5432,db2/replica?sslmode=verify-full&password=p%26w");
	EXPECT_EQ(t.kind, TargetKind::postgresql);
	EXPECT_EQ(t.password, "p&w");
	EXPECT_EQ(t.user, "cloud");
	EXPECT_EQ(t.redacted, "postgresql://cloud@db1:5432,db2/replica?sslmode=verify-full");
	TargetUrl s = parse_target_url("postgres:///replica?host=/tmp&password=x");
	EXPECT_EQ(s.password, "x");
	EXPECT_EQ(s.redacted, "postgres:///replica?host=/tmp");
	EXPECT_EQ(s.option("host"), "/tmp");
}

/* A client key's passphrase would be stored in clear text with the URL: refused. */
TEST(TargetUrl, PostgresqlSslpasswordIsRefused)
{
	for (const char *url : {
			 "postgresql://u@h/db?sslpassword=k3y",
			 "postgresql://u@h/db?sslmode=require&ssl%70assword=k3y",
		 }) {
		std::string error = error_of(url);
		EXPECT_NE(error.find("sslpassword is not accepted"), std::string::npos) << url;
		EXPECT_EQ(error.find("k3y"), std::string::npos) << url;
	}
}

/* Every spelling libpq accepts is found: libpq itself parses the URL. */
TEST(TargetUrl, PostgresqlPasswordInEverySpelling)
{
	for (const char *url : {
			 "postgresql://u:s3cret@h/db?sslmode=require",
			 "postgresql://u:s%33cret@h/db?sslmode=require",
			 "postgresql://u@h/db?password=s3cret&sslmode=require",
			 "postgresql://u@h/db?pass%77ord=s3cret&sslmode=require",
			 "postgresql://u@h/db?%70%61%73%73%77%6f%72%64=s%33cret&sslmode=require",
			 "postgresql://u@h/db?sslmode=require&password=s3cret",
			 "POSTGRESQL://u:wrong@h/db?password=s3cret&sslmode=require",
		 }) {
		TargetUrl t = parse_target_url(url);
		EXPECT_EQ(t.password, "s3cret") << url;
		EXPECT_EQ(t.redacted, "postgresql://u@h/db?sslmode=require") << url;
	}
	/* Unusual forms keep every other option, and parse back to them. */
	TargetUrl t = parse_target_url("postgresql://%2Ftmp%2Fsock:5433/my%20db?user=a%26b&"
								   "options=-c%20x%3Dy&pass%77ord=pw&application_name=q%3Fr");
	EXPECT_EQ(t.password, "pw");
	EXPECT_EQ(t.option("dbname"), "my db");
	EXPECT_EQ(t.option("user"), "a&b");
	EXPECT_EQ(t.option("options"), "-c x=y");
	EXPECT_EQ(t.redacted.find("pw"), std::string::npos);
	EXPECT_EQ(parse_target_url(t.redacted).options, t.options);
	TargetUrl v6 = parse_target_url("postgresql://[::1]:5433,db2:5434/x?password=pw");
	EXPECT_EQ(v6.redacted, "postgresql://[::1]:5433,db2:5434/x");
}

TEST(TargetUrl, HttpPasswordInEverySpelling)
{
	for (const char *url : {"https://u:s3cret@h/in", "https://u:s%33cret@h/in",
							"https://u:%73%33%63%72%65%74@h/in", "HTTPS://u:s3cret@h/in"}) {
		TargetUrl t = parse_target_url(url);
		EXPECT_EQ(t.password, "s3cret") << url;
		EXPECT_EQ(t.redacted, "https://u@h/in") << url;
		EXPECT_EQ(t.without_userinfo, "https://h/in") << url;
	}
}

TEST(TargetUrl, BadUrlsAreRefusedWithoutEchoingThem)
{
	EXPECT_NE(error_of("ftp://host/x").find("unsupported target URL scheme \"ftp\""),
			  std::string::npos);
	EXPECT_NE(error_of("").find("empty"), std::string::npos);
	EXPECT_NE(error_of("example.org/ingest").find("no scheme"), std::string::npos);
	EXPECT_NE(error_of("http:///x").find("host"), std::string::npos);
	EXPECT_NE(error_of("http://h:99999/").find("port"), std::string::npos);
	EXPECT_NE(error_of("http://h:8a/").find("port"), std::string::npos);
	EXPECT_NE(error_of("http://a b/").find("space"), std::string::npos);
	EXPECT_NE(error_of("http://u:%zzsecret@h/").find("percent"), std::string::npos);
	EXPECT_EQ(error_of("http://u:topsecret@h:0/").find("topsecret"), std::string::npos);
	EXPECT_NE(error_of("http://:topsecret@h/").find("empty user name"), std::string::npos);
	/* libpq's own messages quote the URL: what they quote is left out. */
	std::string e = error_of("postgresql://u@h/db?passwd=topsecret");
	EXPECT_NE(e.find("invalid URI query parameter"), std::string::npos) << e;
	EXPECT_EQ(e.find("topsecret"), std::string::npos) << e;
	e = error_of("postgresql://u:top%zzsecret@h/db");
	EXPECT_NE(e.find("percent-encoded"), std::string::npos) << e;
	EXPECT_EQ(e.find("top"), std::string::npos) << e;
	e = error_of("postgresql://u@h/db?password=topsecret=x");
	EXPECT_EQ(e.find("topsecret"), std::string::npos) << e;
	EXPECT_NE(error_of("postgresql://h/db?replication=database").find("replication"),
			  std::string::npos);
	EXPECT_NE(error_of("postgresql://h/?dbname=postgresql://u:pw@h2/db").find("connection string"),
			  std::string::npos);
}

static std::string
owner_error(const char *url, const TargetOwner &owner)
{
	TargetUrl t = parse_target_url(url);
	try {
		check_owner_params("t", t, t.password, owner);
	} catch (const edgesync::Error &e) {
		return std::string(e.sqlstate()) + " " + e.what();
	}
	return "";
}

TEST(TargetOwner, NonSuperusersFollowPostgresFdwRules)
{
	TargetOwner admin{"mallory", false};
	TargetOwner root{"postgres", true};
	EXPECT_EQ(owner_error("postgresql:///db?host=/tmp&user=postgres", admin),
			  "2F003 password is required");
	EXPECT_EQ(owner_error("postgresql://u@h/db?password=", admin), "2F003 password is required");
	EXPECT_EQ(owner_error("postgresql://u:pw@h/db", admin), "");
	EXPECT_EQ(owner_error("postgresql://u:pw@h/db?sslkey=/var/lib/postgresql/k", admin),
			  "42501 sslcert and sslkey are superuser-only");
	EXPECT_EQ(owner_error("postgresql://u:pw@h/db?sslcert=/c", admin),
			  "42501 sslcert and sslkey are superuser-only");
	EXPECT_EQ(owner_error("postgresql:///db?host=/tmp&user=postgres&sslkey=/k", root), "");
	EXPECT_EQ(owner_error("https://h/in", admin), "");
}

static std::string
reader(const char *sqlstate, const char *primary, const char *table = "",
	   const char *constraint = "", const char *source = "")
{
	RemoteError e;
	e.sqlstate = sqlstate;
	e.primary = primary;
	e.table = table;
	e.constraint = constraint;
	e.source_function = source;
	return reader_message(e);
}

TEST(RemoteError, ReaderSeesNoValues)
{
	EXPECT_EQ(reader("23514", "new row for relation \"patients\" violates check constraint \"c\"",
					 "patients", "c"),
			  "new row for relation \"patients\" violates check constraint \"c\" (SQLSTATE 23514)");
	EXPECT_EQ(reader("22P02", "invalid input syntax for type integer: \"PHI-7\""),
			  "invalid input syntax for type integer (SQLSTATE 22P02)");
	EXPECT_EQ(reader("22003", "value \"123456789012\" is out of range for type integer"),
			  "value \"...\" is out of range for type integer (SQLSTATE 22003)");
	/* A value with quotes of its own hides everything to the last quote. */
	EXPECT_EQ(reader("XX000", "bad \"a\" SSN 123 \"b\" here", "t"),
			  "bad \"...\" here (SQLSTATE XX000)");
	EXPECT_EQ(reader("XX000", "bad \"t\" then \"va\"lue"), "bad \"...\"lue (SQLSTATE XX000)");
	EXPECT_EQ(reader("XX000", "table \"t\" value \"x", "t"),
			  "table \"t\" value \"...\" (SQLSTATE XX000)");
	/* Names of the statement itself (class 42) stay. */
	EXPECT_EQ(reader("42P01", "relation \"public.patients\" does not exist"),
			  "relation \"public.patients\" does not exist (SQLSTATE 42P01)");
	EXPECT_EQ(reader("42601", "syntax error at or near \"Jane\""),
			  "syntax error at or near \"...\" (SQLSTATE 42601)");
	EXPECT_EQ(reader("P0001", "patient Jane Doe refused"),
			  "an error raised by a function on the replica (SQLSTATE P0001)");
	EXPECT_EQ(reader("23505", "Jane Doe again", "", "", "exec_stmt_raise"),
			  "an error raised by a function on the replica (SQLSTATE 23505)");
}

TEST(Redact, ReplacesPlainAndEncodedSecrets)
{
	EXPECT_EQ(redact("token abc and a%2Fb and a/b", {"abc", "a/b", ""}),
			  "token ******** and ******** and ********");
	EXPECT_EQ(redact("nothing here", {}), "nothing here");
}

static std::vector<Row>
rows(std::initializer_list<std::pair<uint32_t, const char *>> list)
{
	std::vector<Row> out;
	uint64_t lsn = 100;
	for (auto &[xid, data] : list)
		out.push_back(Row{lsn++, xid, data});
	return out;
}

TEST(Batch, CutsOnlyAtTransactionEnds)
{
	auto r = rows({{7, "{\"op\":\"begin\"}"},
				   {7, "a"},
				   {7, "{\"op\":\"commit\"}"},
				   {8, "{\"op\":\"begin\"}"},
				   {8, "b"},
				   {8, "c"},
				   {8, "{\"op\":\"commit\"}"}});
	EXPECT_EQ(cut_batch(r, {100, 1 << 20}), 7u);
	EXPECT_EQ(cut_batch(r, {6, 1 << 20}), 3u);
	EXPECT_EQ(cut_batch(r, {2, 1 << 20}), 3u); /* first transaction even if too big */
	EXPECT_EQ(cut_batch(r, {100, 30}), 3u);
	EXPECT_EQ(cut_batch({}, {100, 100}), 0u);
}

TEST(Batch, ChangesAreWhatTheCommitRowsCarry)
{
	/* The slot reader puts each transaction's decoded changes on its commit row. */
	auto r = rows({{7, "{\"op\":\"begin\"}"},
				   {7, "{\"op\":\"update\"}"},
				   {7, "{\"op\":\"commit\",\"changes\":1}"},
				   {8, "{\"op\":\"begin\"}"},
				   {8, "{\"op\":\"insert\"}"},
				   {8, "{\"op\":\"message\",\"transactional\":true}"},
				   {8, "{\"op\":\"commit\",\"changes\":2}"}});
	r[2].changes = 1;
	r[6].changes = 1;
	EXPECT_EQ(count_changes(r, 7), 2);
	EXPECT_EQ(count_changes(r, 3), 1);
	/* A key-changing update: a delete and an upsert in the sql format, one change. */
	auto sql = rows({{9, "BEGIN;"},
					 {9, "WITH edgesync_guard AS (s, '0/1');"},
					 {9, "DELETE ... ;"},
					 {9, "INSERT ... ;"},
					 {9, "COMMIT;"}});
	sql[4].changes = 1;
	EXPECT_EQ(count_changes(sql, 5), 1);
	EXPECT_TRUE(is_commit_row("COMMIT;") && is_commit_row("{\"op\":\"commit\",\"changes\":3}"));
	EXPECT_FALSE(is_commit_row("COMMENT ON ...;") || is_commit_row("{\"op\":\"insert\"}"));
	EXPECT_TRUE(is_transactional_message(r[5].data));
	EXPECT_FALSE(is_transactional_message("{\"op\":\"message\",\"transactional\":false}"));
}

TEST(Batch, IdempotencyKeyFromCommitLsnAndSeq)
{
	auto r = rows(
		{{7, "{\"op\":\"begin\",\"xid\":7}"},
		 {7, "{\"op\":\"insert\",\"row\":{\"seq\":99},\"commit_lsn\":\"0/16B3F48\",\"seq\":1}"},
		 {7, "{\"op\":\"insert\",\"commit_lsn\":\"0/16B3F48\",\"seq\":2}"},
		 {7, "{\"op\":\"commit\",\"xid\":7}"}});
	EXPECT_EQ(idempotency_key(r, 4), "0/16B3F48:1-0/16B3F48:2");
	auto plain = rows({{7, "BEGIN 7"}, {7, "COMMIT 7"}});
	EXPECT_EQ(idempotency_key(plain, 2), "0/64-0/65");
}

TEST(Batch, StripTransaction)
{
	EXPECT_EQ(strip_transaction("BEGIN;\nINSERT 1;\nCOMMIT;\n"), "INSERT 1;");
	EXPECT_EQ(strip_transaction("  begin; x; commit;"), "x;");
	EXPECT_EQ(strip_transaction("x;"), "x;");
}

TEST(Batch, ReplicaBodyHasOneGuardTheLastTransactions)
{
	auto r = rows({{9, "BEGIN;"},
				   {9, "WITH edgesync_guard AS (s, '0/10');"},
				   {9, "INSERT 1;"},
				   {9, "COMMIT;"},
				   {10, "BEGIN;"},
				   {10, "WITH edgesync_guard AS (s, '0/20');"},
				   {10, "DELETE 2;"},
				   {10, "INSERT 3;"},
				   {10, "COMMIT;"}});
	std::vector<Row> first_four = r;
	EXPECT_EQ(*replica_batch_body(r, 9).in_memory(),
			  "WITH edgesync_guard AS (s, '0/20');\nINSERT 1;\nDELETE 2;\nINSERT 3;\n");
	EXPECT_EQ(*replica_batch_body(first_four, 4).in_memory(),
			  "WITH edgesync_guard AS (s, '0/10');\nINSERT 1;\n");
	EXPECT_TRUE(r[2].data.empty() && first_four[2].data.empty()) << "the text is moved, not copied";
	auto unguarded = rows({{9, "BEGIN;"}, {9, "INSERT 1;"}, {9, "COMMIT;"}});
	EXPECT_EQ(*replica_batch_body(unguarded, 3).in_memory(), "INSERT 1;\n");
}

/* A guard as decode/replica_sql.cpp writes it, for source s and commit LSN lsn. */
static std::string
real_guard(const char *lsn)
{
	return std::string("WITH edgesync_guard AS (SELECT pg_catalog.set_config("
					   "'edgesync_apply.skip_through', COALESCE((SELECT p.lsn FROM "
					   "\"edgesync\".\"applied_lsn\" p WHERE p.source OPERATOR(pg_catalog.=) "
					   "'s'), '0/0')::pg_catalog.text, true), x) INSERT INTO "
					   "\"edgesync\".\"applied_lsn\" AS p (source, lsn) SELECT 's', '") +
		   lsn + "' FROM edgesync_guard ON CONFLICT (source) DO NOTHING;";
}

TEST(Batch, ReplicaBodyLeavesOutWhatTheReplicaHas)
{
	std::string g1 = real_guard("0/10"), g2 = real_guard("0/20"), g3 = real_guard("1/0");
	auto make = [&] {
		return rows({{9, "BEGIN;"},
					 {9, g1.c_str()},
					 {9, "INSERT 1;"},
					 {9, "COMMIT;"},
					 {10, "BEGIN;"},
					 {10, g2.c_str()},
					 {10, "DO 2;"},
					 {10, "COMMIT;"},
					 {11, "BEGIN;"},
					 {11, g3.c_str()},
					 {11, "INSERT 3;"},
					 {11, "COMMIT;"}});
	};
	auto all = make();
	Body b = replica_batch_body(all, all.size(), 0);
	EXPECT_EQ(*b.in_memory(), g3 + "\nINSERT 1;\nDO 2;\nINSERT 3;\n");
	EXPECT_EQ(b.last_commit, uint64_t{1} << 32);
	auto some = make();
	EXPECT_EQ(*replica_batch_body(some, some.size(), 0x20).in_memory(), g3 + "\nINSERT 3;\n")
		<< "transactions at or below the replica's position are left out";
	auto none = make();
	EXPECT_EQ(*replica_batch_body(none, none.size(), uint64_t{1} << 32).in_memory(), g3 + "\n");
	EXPECT_EQ(guard_position_query(g1),
			  "SELECT COALESCE((SELECT p.lsn FROM \"edgesync\".\"applied_lsn\" p WHERE p.source "
			  "OPERATOR(pg_catalog.=) 's'), '0/0')::pg_catalog.text;");
	EXPECT_EQ(guard_position_query("INSERT 1;"), "");
	EXPECT_EQ(parse_lsn("16/B374D848"), (uint64_t{0x16} << 32) | 0xB374D848u);
	EXPECT_EQ(parse_lsn("0/0"), 0u);
	EXPECT_EQ(parse_lsn("x/1"), 0u);
	EXPECT_EQ(parse_lsn("123456789/1"), 0u);
}

TEST(Batch, HttpBodyIsTheRowsLines)
{
	auto r =
		rows({{9, "{\"op\":\"begin\"}"}, {9, "{\"op\":\"insert\"}"}, {10, "{\"op\":\"begin\"}"}});
	EXPECT_EQ(*http_batch_body(r, 2).in_memory(), "{\"op\":\"begin\"}\n{\"op\":\"insert\"}\n");
	EXPECT_TRUE(r[0].data.empty() && r[1].data.empty());
	EXPECT_EQ(r[2].data, "{\"op\":\"begin\"}") << "rows past n are left alone";
}

/* A transaction whose middle the slot reader spilled: 300 bytes; 6 changes in all. */
static std::vector<Row>
with_spilled_stretch(const char *begin, const char *first, const char *commit)
{
	auto r = rows({{9, begin}, {9, first}, {9, "last spilled"}, {9, commit}});
	r[2].spill_offset = 1000;
	r[2].spill_bytes = 300;
	r[3].changes = 6;
	return r;
}

TEST(Batch, SpilledStretchesCountAndBecomePieces)
{
	auto r =
		with_spilled_stretch("{\"op\":\"begin\"}", "{\"op\":\"insert\"}", "{\"op\":\"commit\"}");
	EXPECT_EQ(count_changes(r, 4), 6);
	EXPECT_EQ(cut_batch(r, {1000, 100}), 4u) << "the transaction is one batch, spilled or not";
	Body body = http_batch_body(r, 4);
	ASSERT_EQ(body.pieces.size(), 3u);
	EXPECT_EQ(body.pieces[0].text, "{\"op\":\"begin\"}\n{\"op\":\"insert\"}\n");
	EXPECT_EQ(body.pieces[1].spill_offset, 1000u);
	EXPECT_EQ(body.pieces[1].spill_bytes, 300u);
	EXPECT_EQ(body.pieces[2].text, "{\"op\":\"commit\"}\n");
	EXPECT_EQ(body.size(), body.pieces[0].text.size() + 300u + body.pieces[2].text.size());
	EXPECT_EQ(body.in_memory(), nullptr);

	auto sql = with_spilled_stretch("BEGIN;", "WITH edgesync_guard AS (s, '0/10');", "COMMIT;");
	sql.insert(sql.begin() + 2, Row{0, 9, "INSERT 1;"});
	Body replica = replica_batch_body(sql, sql.size());
	ASSERT_EQ(replica.pieces.size(), 2u);
	EXPECT_EQ(replica.pieces[0].text, "WITH edgesync_guard AS (s, '0/10');\nINSERT 1;\n");
	EXPECT_EQ(replica.pieces[1].spill_bytes, 300u) << "COMMIT; after the stretch adds nothing";
}

TEST(Batch, RetryDelayDoublesCapsAndJitters)
{
	EXPECT_EQ(retry_delay_ms(1, 1000, 60000, 0.999999), 999);
	EXPECT_EQ(retry_delay_ms(1, 1000, 60000, 0.0), 500);
	EXPECT_EQ(retry_delay_ms(3, 1000, 60000, 0.0), 2000);
	EXPECT_EQ(retry_delay_ms(30, 1000, 60000, 0.0), 30000);
	EXPECT_LE(retry_delay_ms(30, 1000, 60000, 0.9999), 60000);
	EXPECT_EQ(retry_delay_ms(0, 1000, 60000, 0.5), 0);
}

/* The replica check's SQL holds every name as a literal, whatever it holds. */
TEST(ReplicaCheck, NamesAreLiterals)
{
	std::string sql = missing_table_privileges_sql({{"we'ird \"s\"", "t'1"}, {"public", "p"}});
	EXPECT_NE(sql.find("('we''ird \"s\"', 't''1')"), std::string::npos) << sql;
	EXPECT_NE(sql.find("('public', 'p')"), std::string::npos) << sql;
	std::string schema = missing_privileges_sql("x'@TABLE@");
	EXPECT_NE(schema.find("'x''@TABLE@'"), std::string::npos) << schema;
	EXPECT_EQ(schema.find("@NAME@"), std::string::npos) << schema;
	EXPECT_EQ(schema.find("@IDENT@"), std::string::npos) << schema;
}

TEST(ReplicaCheck, MissingListsMerge)
{
	EXPECT_EQ(merge_missing("", ""), "");
	EXPECT_EQ(merge_missing("", "CREATE on schema public"), "CREATE on schema public");
	EXPECT_EQ(merge_missing("TEMPORARY on database d, CREATE on database d",
							"CREATE on database d, CREATE on schema public"),
			  "TEMPORARY on database d, CREATE on database d, CREATE on schema public");
	EXPECT_EQ(merge_missing("CREATE on schema s", ""), "CREATE on schema s");
}
