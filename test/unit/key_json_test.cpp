/* Unit tests for track/key_json.hpp: a primary key's JSON read back. */
#include "track/key_json.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using edgesync::track::KeyMember;
using edgesync::track::parse_key_json;

namespace {

/* name=value pairs (strings quoted, "name=null" for JSON null), or "invalid". */
std::string
members(std::string_view text, int max = 32)
{
	std::vector<char> scratch(text.size() + 1);
	KeyMember m[32];
	int n = parse_key_json(text, scratch.data(), m, max);
	if (n < 0)
		return "invalid";
	std::string out;
	for (int i = 0; i < n; i++) {
		if (i > 0)
			out += ' ';
		out += std::string(m[i].name) + '=' +
			   (m[i].is_null	 ? "null"
				: m[i].is_string ? '"' + std::string(m[i].value) + '"'
								 : std::string(m[i].value));
	}
	return out;
}

} // namespace

TEST(KeyJson, ReadsKeysAsTheLogWritesThem)
{
	EXPECT_EQ(members(R"({"id":42})"), "id=42");
	EXPECT_EQ(members(R"({"hospital":"A","n":7})"), "hospital=\"A\" n=7");
	EXPECT_EQ(members(R"({"id":"6d0f0c2e-8c1a-4a5e-9c41-1b2c3d4e5f60"})"),
			  "id=\"6d0f0c2e-8c1a-4a5e-9c41-1b2c3d4e5f60\"");
	EXPECT_EQ(members(R"({"x":-1.5e+20,"ok":true,"no":false,"gone":null})"),
			  "x=-1.5e+20 ok=true no=false gone=null");
	EXPECT_EQ(members(R"({"t":"2026-01-02 10:00:00+00"})"), "t=\"2026-01-02 10:00:00+00\"");
	EXPECT_EQ(members(R"({"s":"true","n":"42"})"), "s=\"true\" n=\"42\"");
	EXPECT_EQ(members("{}"), "");
}

TEST(KeyJson, ReadsKeysAsJsonbPrintsThem)
{
	/* Cursors of earlier versions carry the key as jsonb printed it. */
	EXPECT_EQ(members(R"({"id": 42})"), "id=42");
	EXPECT_EQ(members(R"( { "a" : "x" , "b" : 2 } )"), "a=\"x\" b=2");
}

TEST(KeyJson, UnescapesStrings)
{
	EXPECT_EQ(members(R"({"a\"b":"c\\d\/e"})"), "a\"b=\"c\\d/e\"");
	EXPECT_EQ(members(R"({"k":"line\nbreak\ttab\u0001"})"), "k=\"line\nbreak\ttab\x01\"");
	EXPECT_EQ(members(R"({"k":"caf\u00e9"})"), "invalid"); /* beyond ASCII: never written */
	EXPECT_EQ(members(R"({"k":"nul\u0000"})"), "invalid");
	EXPECT_EQ(members("{\"k\":\"raw\ncontrol\"}"), "invalid");
	EXPECT_EQ(members(R"({"k":"caf\u00E9x"})"), "invalid");
	EXPECT_EQ(members("{\"k\":\"caf\xc3\xa9\"}"), "k=\"caf\xc3\xa9\""); /* UTF-8 as is */
}

TEST(KeyJson, RefusesWhatIsNotAFlatObjectOfScalars)
{
	for (const char *bad :
		 {"", "42", "[1]", R"({"id"})", R"({"id":})", R"({"id":1,})", R"({"id":1)", R"({"id":1} x)",
		  R"({"id":{"a":1}})", R"({"id":[1]})", R"({id:1})", R"({"id":01})", R"({"id":1.})",
		  R"({"id":1e})", R"({"id":tru})", R"({"id":"open)", R"({"id":"\x"})", R"({"id":-})"})
		EXPECT_EQ(members(bad), "invalid") << bad;
	EXPECT_EQ(members(R"({"a":1,"b":2,"c":3})", 2), "invalid");
	EXPECT_EQ(members(R"({"a":1,"b":2})", 2), "a=1 b=2");
}
