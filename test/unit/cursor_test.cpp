/* Unit tests for track/cursor.hpp: the text form of sync_log cursors. */
#include "core/error.hpp"
#include "track/cursor.hpp"

#include <gtest/gtest.h>

using edgesync::track::Cursor;
using edgesync::track::format_cursor;
using edgesync::track::format_cursor_head;
using edgesync::track::is_snapshot_text;
using edgesync::track::parse_cursor;

TEST(Snapshot, AcceptsPgSnapshotText)
{
	EXPECT_TRUE(is_snapshot_text("740:740:"));
	EXPECT_TRUE(is_snapshot_text("740:745:740,742"));
	EXPECT_FALSE(is_snapshot_text("745:740:"));		   /* xmin > xmax */
	EXPECT_FALSE(is_snapshot_text("740:745:746"));	   /* xip beyond xmax */
	EXPECT_FALSE(is_snapshot_text("740:745:742,741")); /* not ascending */
	EXPECT_FALSE(is_snapshot_text("0:0:"));
	EXPECT_FALSE(is_snapshot_text("a:b:"));
	EXPECT_FALSE(is_snapshot_text("740:745"));
	EXPECT_FALSE(is_snapshot_text("-1:745:"));
}

TEST(Cursor, RoundTripsClosedAndOpenWindows)
{
	Cursor start{"6f1a.5", "all", std::nullopt, std::nullopt, 0, 0, std::nullopt};
	EXPECT_EQ(format_cursor(start), "es1/6f1a.5/all/-/-/-/-");
	Cursor back = parse_cursor(format_cursor(start));
	EXPECT_EQ(back.database, "6f1a.5");
	EXPECT_FALSE(back.seen.has_value());
	EXPECT_FALSE(back.window.has_value());

	Cursor open{"6f1a.5", "rel16384", "740:745:742", "750:760:", 755, 9001, std::nullopt};
	std::string text = format_cursor(open);
	EXPECT_EQ(text, "es1/6f1a.5/rel16384/740:745:742/750:760:/755/9001");
	Cursor parsed = parse_cursor(text);
	EXPECT_EQ(parsed.scope, "rel16384");
	EXPECT_EQ(*parsed.seen, "740:745:742");
	EXPECT_EQ(*parsed.window, "750:760:");
	EXPECT_EQ(parsed.last_xid, 755);
	EXPECT_EQ(parsed.last_id, 9001);
}

TEST(Cursor, RoundTripsLoadPositions)
{
	Cursor loading{"6f1a.5", "rel16384", "740:745:", std::nullopt, 0, 0, std::string()};
	EXPECT_EQ(format_cursor(loading), "es1/6f1a.5/rel16384/740:745:/-/-/-/k");
	Cursor back = parse_cursor(format_cursor(loading));
	ASSERT_TRUE(back.load.has_value());
	EXPECT_EQ(*back.load, "");

	/* The key's JSON as it is; the field is the rest of the text, so it may hold "/". */
	loading.load = R"({"id":42})";
	EXPECT_EQ(format_cursor(loading), R"(es1/6f1a.5/rel16384/740:745:/-/-/-/k{"id":42})");
	loading.load = R"({"mrn":"A/7 é","n":-3})";
	loading.window = "750:760:";
	loading.last_xid = 755;
	loading.last_id = 9001;
	std::string text = format_cursor(loading);
	EXPECT_EQ(text, R"(es1/6f1a.5/rel16384/740:745:/750:760:/755/9001/k{"mrn":"A/7 é","n":-3})");
	back = parse_cursor(text);
	EXPECT_EQ(*back.load, R"({"mrn":"A/7 é","n":-3})");
	EXPECT_EQ(*back.window, "750:760:");
	EXPECT_EQ(back.last_xid, 755);
	EXPECT_EQ(back.last_id, 9001);

	/* Seven fields: no load (changes() cursors, and pull() once loaded). */
	EXPECT_FALSE(parse_cursor("es1/a/rel1/740:745:/-/-/-").load.has_value());
}

TEST(Cursor, ReadsTheHexLoadPositionsOfEarlierCursors)
{
	/* As devices may have stored them: the key's JSON in lower-case hex. */
	Cursor c = parse_cursor("es1/6f1a.5/rel16384/740:745:/-/-/-/k7b226964223a34327d");
	ASSERT_TRUE(c.load.has_value());
	EXPECT_EQ(*c.load, R"({"id":42})");
	EXPECT_FALSE(c.window.has_value());
	c = parse_cursor("es1/6f1a.5/rel16384/740:745:/750:760:/755/9001/"
					 "k7b226d726e223a22412f3720c3a9222c226e223a2d337d");
	EXPECT_EQ(*c.load, R"({"mrn":"A/7 é","n":-3})");
	EXPECT_EQ(*c.window, "750:760:");
	EXPECT_EQ(c.last_id, 9001);
	/* Read back, it is written in today's form, which reads back the same. */
	EXPECT_EQ(format_cursor(c),
			  R"(es1/6f1a.5/rel16384/740:745:/750:760:/755/9001/k{"mrn":"A/7 é","n":-3})");
	EXPECT_EQ(*parse_cursor(format_cursor(c)).load, *c.load);
}

TEST(Cursor, RejectsMalformedText)
{
	for (const char *bad : {"",
							"es1",
							"es2/a/all/-/-/-/-",
							"es1/a/all/-/-/-",
							"es1//all/-/-/-/-",
							"es1/a/all/x/-/-/-",
							"es1/a/all/-/750:760:/-/-",
							"es1/a/all/-/750:760:/abc/1",
							"es1/a/all/-/-/-/-/extra",
							"es1/a/all/-/-/-/-/k7",
							"es1/a/all/-/-/-/-/k7b7g",
							"es1/a/all/-/-/-/-/k3132",
							"es1/a/all/-/-/-/-/",
							"es1/a/all/-/-/-/-/k/x",
							"es1/a/all/-/-/-/-/k{",
							R"(es1/a/all/-/-/-/-/k{"id":1)",
							"es1/a/all/-/-/-/-/k{}",
							R"(es1/a/all/-/-/-/-/k{"id":[1]})",
							R"(es1/a/all/-/-/-/-/k{"id":1}x)",
							R"(es1/a/all/-/-/-/-/k{"id":1}/k{"id":2})",
							"es1/a/all/-/-/-/-/k7b7d"}) {
		try {
			parse_cursor(bad);
			ADD_FAILURE() << "accepted: " << bad;
		} catch (const edgesync::Error &e) {
			EXPECT_STREQ(e.sqlstate(), "22023") << bad;
			EXPECT_STREQ(e.what(), "invalid cursor");
		}
	}
}

TEST(Cursor, HeadIsTheCursorUpToItsWindow)
{
	Cursor open{"6f1a.5", "rel16384", "740:745:742", "750:760:", 755, 9001, std::nullopt};
	EXPECT_EQ(format_cursor_head(open) + "/755/9001", format_cursor(open));
	Cursor closed{"6f1a.5", "rel16384", "740:745:", std::nullopt, 0, 0, std::string("{\"id\":1}")};
	EXPECT_EQ(format_cursor_head(closed) + R"(/-/-/k{"id":1})", format_cursor(closed));
}
