# Security of the output plugin's streams and of the replica's apply
# functions (docs/security.md), each attack reproduced end to end:
#
#  1. SQL injection into a replica through a name: schemas, tables, columns,
#     types (an enum and a domain in a schema named for the attack), enum
#     labels, a logical message's prefix and the source option, each holding
#     a line break followed by SQL (and a psql meta-command).  Streamed with
#     pg_recvlogical -o format=sql | psql into a second cluster as superuser,
#     and through the shipper (a postgresql:// target, stream and resync):
#     nothing runs, every statement stays on one line, and the replica ends
#     with the same rows under the same names.  The json format parses back
#     to the same names.
#  2. A redacted column that is a replica identity key (REPLICA IDENTITY
#     USING INDEX on it, set after the policy): its clear value is in no
#     byte of either format (the sql format's delete becomes a comment the
#     replica applies as nothing), and set_column_policy refuses to redact a
#     replica identity column.
#  3. Sizes: a 190 MB logical message (any role may emit one) and row values
#     too large for one output line (a 600 MB bytea, 180 MB of control
#     characters for JSON), read with pg_recvlogical and with
#     pg_logical_slot_get_changes: left out and named, the slot goes on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $dir = PostgreSQL::Test::Utils::tempdir;

my $source = edgesync_node('source', extra_conf => q{
edgesync.hash_key = 'tap-920-key'
log_statement = none
});
my $replica = edgesync_node('replica');
for my $node ($source, $replica)
{
	$node->safe_psql('postgres',
		q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
	$node->safe_psql('hospital', 'CREATE EXTENSION edgesync');
}

# qi(NAME), ql(TEXT): NAME as a quoted identifier, TEXT as a literal, for the
# test's own SQL (standard_conforming_strings is on).
sub qi { my $n = shift; $n =~ s/"/""/g; return qq{"$n"}; }
sub ql { my $s = shift; $s =~ s/'/''/g; return qq{'$s'}; }

sub recvlogical_cmd
{
	my ($node, @args) = @_;
	return [ 'pg_recvlogical', '--dbname', $node->connstr('hospital'), @args ];
}

sub psql_cmd
{
	my ($node, $db) = @_;
	return [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db // 'hospital') ];
}

# slurp_slot(SLOT, ENDPOS, OPTIONS...): what pg_recvlogical writes for SLOT
# up to ENDPOS, as bytes.
my $nfile = 0;
sub slurp_slot
{
	my ($slot, $endpos, @opts) = @_;
	my $file = "$dir/stream" . ++$nfile;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		recvlogical_cmd($source, '-S', $slot, '--start', '--no-loop', '--endpos', $endpos,
			'-f', $file, map { ('-o', $_) } @opts),
		'>', \$out, '2>', \$err, IPC::Run::timeout($timeout))
	  or diag("pg_recvlogical -S $slot: $err");
	return -e $file ? slurp_file($file) : '';
}

sub create_slots
{
	for my $slot (@_)
	{
		$source->safe_psql('hospital',
			"SELECT pg_create_logical_replication_slot('$slot', 'edgesync')");
	}
}

# The names: each ends a line and then runs SQL, or a psql meta-command,
# wherever it would be written raw.
my %name = (
	schema      => "s\nCREATE TABLE pwned_schema(a int);--",
	table       => "t\r\nCREATE TABLE pwned_table(a int);--\t\"q\"\\",
	column      => "c\nCREATE TABLE pwned_column(a int);--",
	type_schema => "ts\nCREATE TABLE pwned_type_schema(a int);--",
	enum        => "e\nCREATE TABLE pwned_enum(a int);--",
	domain      => "d\n\\! echo PWNED_SHELL_DOMAIN\n--",
	label       => "l\nCREATE TABLE pwned_label(a int);--",
	label_quote => "l');CREATE TABLE pwned_label_quote(a int);--",
	# The issue's reproduction: a delete under REPLICA IDENTITY NOTHING.
	nothing     => "x\nCREATE TABLE pwned(a int);--",
	nothing_sh  => "y\n\\! echo PWNED_SHELL_NOTHING\n--",
	prefix      => "p\nCREATE TABLE pwned_prefix(a int);--",
	# pg_recvlogical does not escape option values: no quote in this one.
	source      => "src\\\nCREATE TABLE pwned_source(a int);--",
	source_sql  => "src');CREATE TABLE pwned_source_sql(a int);--\n",);
my ($S, $T, $C, $TS) = map { qi($name{$_}) } qw(schema table column type_schema);
my $E = "$TS." . qi($name{enum});
my $D = "$TS." . qi($name{domain});
my $hostile = "$S.$T";
my $nothing = 'public.' . qi($name{nothing});
my $nothing_sh = "$S." . qi($name{nothing_sh});

my $ddl = qq{
	CREATE SCHEMA $S;
	CREATE SCHEMA $TS;
	CREATE TYPE $E AS ENUM ('calm', } . ql($name{label}) . ', ' . ql($name{label_quote}) . qq{);
	CREATE DOMAIN $D AS text CHECK (VALUE <> 'forbidden');
	CREATE TABLE $hostile (id int PRIMARY KEY, $C text, mood $E, moods $E\[], note $D);
	CREATE TABLE $nothing (id int PRIMARY KEY, v text);
	ALTER TABLE $nothing REPLICA IDENTITY NOTHING;
	CREATE TABLE $nothing_sh (id int PRIMARY KEY, v text);
	ALTER TABLE $nothing_sh REPLICA IDENTITY NOTHING;
};
# (Tracked on the replica too: the same columns, version and timestamps.)
$ddl .= join '', map { "SELECT edgesync.track('$_'::regclass);" } map { s/'/''/gr } ($hostile, $nothing, $nothing_sh);
$_->safe_psql('hospital', $ddl) for $source, $replica;

create_slots(qw(cloud audit json));

my $L1 = ql($name{label});
my $L2 = ql($name{label_quote});
$source->safe_psql('hospital', qq{
	INSERT INTO $hostile VALUES (1, 'one', 'calm', ARRAY['calm']::$E\[], 'n1');
	BEGIN;
	INSERT INTO $hostile SELECT g, 'run ' || g, $L1, ARRAY[$L1, $L2]::$E\[], 'run' FROM generate_series(2, 6) g;
	SELECT pg_logical_emit_message(true, } . ql($name{prefix}) . qq{, 'in a transaction');
	COMMIT;
	SELECT pg_logical_emit_message(false, } . ql($name{prefix}) . qq{, 'alone');
	UPDATE $hostile SET $C = 'two', mood = $L2 WHERE id = 2;
	UPDATE $hostile SET id = 20 WHERE id = 3;
	DELETE FROM $hostile WHERE id = 4;
	INSERT INTO $nothing VALUES (1, 'a');
	DELETE FROM $nothing;
	INSERT INTO $nothing_sh VALUES (1, 'a');
	DELETE FROM $nothing_sh;
	TRUNCATE $nothing;
	INSERT INTO $hostile VALUES (7, 'after', $L2, NULL, NULL);
});
my $end = $source->lsn('insert');
# (pg_recvlogical --endpos stops at the first record at or past it.)
$source->safe_psql('hospital', 'SELECT pg_logical_emit_message(false, $$end$$, $$$$)');

my $pwned = q{SELECT count(*) FROM pg_class WHERE relname LIKE 'pwned%'};

# 1a. pg_recvlogical -o format=sql | psql, the replica applying as superuser.
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	recvlogical_cmd($source, '-S', 'cloud', '--start', '--no-loop', '--endpos', $end, '-f', '-',
		'-o', 'format=sql', '-o', "source=$name{source}"),
	'|', psql_cmd($replica), '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'names: pg_recvlogical -o format=sql | psql applies the stream') or diag($err);
is($replica->safe_psql('hospital', $pwned), '0', 'names: no SQL of a name ran on the replica');
unlike($out . $err, qr/PWNED_SHELL/, 'names: no psql meta-command of a name ran');

my $rows = qq{SELECT string_agg(format('%s|%s|%s|%s|%s', id, $C, mood, moods, note), E'\\n' ORDER BY id)
                FROM $hostile};
is($replica->safe_psql('hospital', $rows), $source->safe_psql('hospital', $rows),
	'names: the replica has the same rows under the same names');
is($replica->safe_psql('hospital', 'SELECT source FROM edgesync.applied_lsn'), $name{source},
	'names: the replica records the source option as given');

# The same stream, read again: one statement per line, no control character.
my $sql = slurp_slot('audit', $end, 'format=sql', "source=$name{source}");
my @lines = split /\n/, $sql;
my @bad = grep {
	!/^(BEGIN;|COMMIT;|WITH edgesync_guard AS \(|INSERT INTO |UPDATE |DELETE FROM |DO \$edgesync\$|-- edgesync: )/
	  || /[\x00-\x1f\x7f]/
} @lines;
ok(@lines > 10, 'names: the sql stream has its statements');
is(scalar(@bad), 0, 'names: every line of the sql stream is one whole statement without control characters')
  or diag(explain(\@bad));
like($sql, qr/-- edgesync: a delete from "public"\.U&"x\\000aCREATE TABLE pwned\(a int\);--" cannot be applied/,
	'names: the REPLICA IDENTITY NOTHING marker names the table in the U& form');

# A source name with a quote and a line break, through the SQL interface.
create_slots('quoted');
$source->safe_psql('hospital', "INSERT INTO $hostile VALUES (8, 'quoted source', 'calm', NULL, NULL)");
my $quoted_stream = $source->safe_psql('hospital',
	q{SELECT string_agg(data, E'\n') FROM pg_logical_slot_get_changes('quoted', NULL, NULL, 'format', 'sql', 'source', }
	  . ql($name{source_sql}) . ')');
($out, $err) = ('', '');
ok(IPC::Run::run(psql_cmd($replica), '<', \$quoted_stream, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout)), 'names: a stream with a quoted source applies') or diag($err);
is($replica->safe_psql('hospital', $pwned), '0', 'names: the source option ran no SQL');
is($replica->safe_psql('hospital', 'SELECT count(*) FROM edgesync.applied_lsn WHERE source = ' . ql($name{source_sql})),
	'1', 'names: the quoted source is recorded as given');

# 1b. json: every line parses, and gives the names back.
my @objects;
my $unparsed = 0;
for my $line (split /\n/, slurp_slot('json', $end, 'include-transaction'))
{
	my $obj = eval { JSON::PP->new->utf8->decode($line) };
	if (ref $obj eq 'HASH' && $line !~ /[\x00-\x1f\x7f]/) { push @objects, $obj; }
	else { $unparsed++; diag("not one JSON object on one line: $line"); }
}
is($unparsed, 0, 'names, json: every line is one JSON object');
my @rows = grep { ($_->{table} // '') eq $name{table} } @objects;
is(scalar(@rows), 10, 'names, json: the changes of the table, under its name');
is(scalar(grep { $_->{schema} eq $name{schema} } @rows), 10, 'names, json: the schema name');
is($rows[0]{row}{$name{column}}, 'one', 'names, json: the column name');
is_deeply([ map { $_->{row}{mood} } grep { $_->{op} eq 'insert' && $_->{row}{id} == 2 } @rows ],
	[ $name{label} ], 'names, json: the enum label');
my @messages = grep { $_->{op} eq 'message' && $_->{prefix} ne 'end' } @objects;
is_deeply([ map { $_->{prefix} } @messages ], [ ($name{prefix}) x 2 ], 'names, json: the message prefix');
my ($truncate) = grep { $_->{op} eq 'truncate' } @objects;
is($source->safe_psql('hospital',
		'SELECT parse_ident(' . ql($truncate->{tables}[0]) . ') = ARRAY[' . ql('public') . ', ' . ql($name{nothing}) . ']'),
	't', 'names, json: the truncated table\'s quoted name parses back to its name');
my @nothing = grep { ($_->{table} // '') eq $name{nothing_sh} && $_->{op} eq 'delete' } @objects;
is(scalar(@nothing), 1, 'names, json: the delete under REPLICA IDENTITY NOTHING') and
  is($nothing[0]{pk}, undef, 'names, json: ... with "pk":null');

# 1c. The shipper: its stream and its full re-send (resync) into a second
# database of the replica, as superuser.
$replica->safe_psql('postgres', q{CREATE DATABASE shipped ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
$replica->safe_psql('shipped', "CREATE EXTENSION edgesync; $ddl");
my $url = 'postgresql:///shipped?host=' . $replica->host . '&port=' . $replica->port;
$source->safe_psql('hospital', "SELECT edgesync.add_target('loop', '$url')");
$source->safe_psql('hospital', qq{
	INSERT INTO $hostile VALUES (9, 'shipped', $L1, NULL, 'n9');
	INSERT INTO $nothing VALUES (2, 'b');
	DELETE FROM $nothing WHERE id = 2;
});
$source->safe_psql('hospital', q{SELECT edgesync.ship('loop', 1000)});
$source->safe_psql('hospital', q{SELECT edgesync.resync('loop')});
$source->safe_psql('hospital', q{SELECT edgesync.ship('loop', 1000)});
is($source->safe_psql('hospital',
		q{SELECT consecutive_failures || '|' || coalesce(last_error, '') || '|' || resync_pending FROM edgesync.target_status}),
	'0||false', 'names, shipper: stream and resync delivered');
is($replica->safe_psql('shipped', $pwned), '0', 'names, shipper: no SQL of a name ran on the replica');
is($replica->safe_psql('shipped', $rows), $source->safe_psql('hospital', $rows),
	'names, shipper: the re-sent rows are the source\'s');

# 2. A redacted replica identity column, streamed through the stock tools.
my $secret = 'MRN-SECRET-4711';
# (The replica's mrn takes NULL: a redacted column is left out of the inserts.)
$source->safe_psql('hospital', q{CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, name text);
	CREATE UNIQUE INDEX patients_mrn ON patients (mrn);
	SELECT edgesync.track('patients');});
$replica->safe_psql('hospital', q{CREATE TABLE patients (id int PRIMARY KEY, mrn text, name text);
	SELECT edgesync.track('patients');});
create_slots(qw(redact_sql redact_json));
$source->safe_psql('hospital', qq{
	SELECT edgesync.set_column_policy('patients', 'mrn', 'redact');
	ALTER TABLE patients REPLICA IDENTITY USING INDEX patients_mrn;
	INSERT INTO patients VALUES (1, '$secret', 'Ann'), (2, 'MRN-2', 'Bob');
	DELETE FROM patients WHERE id = 1;
	UPDATE patients SET mrn = 'MRN-3' WHERE id = 2;
});
$end = $source->lsn('insert');
$source->safe_psql('hospital', 'SELECT pg_logical_emit_message(false, $$end$$, $$$$)');
my $redact_sql = slurp_slot('redact_sql', $end, 'format=sql');
my $redact_json = slurp_slot('redact_json', $end);
ok($redact_sql =~ /DELETE|cannot be applied/ && $redact_json =~ /"op":"delete"/, 'redact: both streams have the delete');
unlike($redact_sql, qr/MRN-/, 'redact: no value of the redacted identity column in the sql stream');
unlike($redact_json, qr/MRN-/, 'redact: nor in the json stream');
like($redact_sql, qr/^-- edgesync: a delete from "public"\."patients" cannot be applied: column "mrn" identifies the row and is redacted$/m,
	'redact: the sql format says the delete cannot be applied');
($out, $err) = ('', '');
ok(IPC::Run::run(psql_cmd($replica), '<', \$redact_sql, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout)),
	'redact: the replica applies the stream') or diag($err);
is($replica->safe_psql('hospital', q{SELECT string_agg(id || ':' || coalesce(mrn, 'null') || ':' || name, ',' ORDER BY id) FROM patients}),
	'1:null:Ann,2:null:Bob', 'redact: the replica has no redacted value, and the delete it could not apply left its row');
my ($rc, $stdout, $stderr) = $source->psql('hospital', q{
	SELECT edgesync.set_column_policy('patients', 'mrn', 'replicate');
	SELECT edgesync.set_column_policy('patients', 'mrn', 'redact');});
like($stderr, qr/column "mrn" of relation "patients" cannot be redacted/,
	'redact: set_column_policy refuses to redact a replica identity column');

# 3. Sizes: a logical message anyone may emit, and row values, too large
# for one output line.  Nothing stops the slot: what is too large is left
# out and named, and the changes after it arrive.
$source->safe_psql('hospital', q{CREATE TABLE documents (id int PRIMARY KEY, scan bytea, body text, note text);
	SELECT edgesync.track('documents');});
$replica->safe_psql('hospital', q{CREATE TABLE documents (id int PRIMARY KEY, scan bytea, body text, note text);
	SELECT edgesync.track('documents');});
create_slots(qw(size_sql size_json size_get));
# The issue's reproduction, by a role that owns nothing: 190 MB of control
# characters, six bytes each in JSON.
$source->safe_psql('hospital', q{CREATE ROLE nobody_special LOGIN;});
$source->safe_psql('hospital', q{SET ROLE nobody_special;
	SELECT pg_logical_emit_message(false, 'p', repeat(chr(1), 190 * 1024 * 1024));});
$source->safe_psql('hospital', q{
	BEGIN;
	SELECT pg_logical_emit_message(true, 'big', repeat('x', 16 * 1024 * 1024 + 1));
	SELECT pg_logical_emit_message(true, repeat('p', 1025), 'long prefix');
	SELECT pg_logical_emit_message(true, 'small', 'fits');
	COMMIT;
	-- byteaout cannot print 600 MB (1.2 GB of hex): left out in both formats
	INSERT INTO documents VALUES (1, convert_to(repeat('x', 600 * 1024 * 1024), 'SQL_ASCII'), NULL, 'scan');
	-- 180 MB of control characters: 1.08 GB in JSON, as it is in SQL
	INSERT INTO documents VALUES (2, NULL, repeat(chr(1), 180000000), 'body');
	INSERT INTO documents VALUES (3, NULL, NULL, 'after');
});
$end = $source->lsn('insert');
$source->safe_psql('hospital', 'SELECT pg_logical_emit_message(false, $$end$$, $$$$)');

my @json = map { JSON::PP->new->utf8->decode($_) } grep { $_ ne '' } split /\n/, slurp_slot('size_json', $end);
my %message = map { ($_->{prefix} // 'null') => $_ } grep { $_->{op} eq 'message' } @json;
is_deeply([ @{ $message{p} }{qw(content content_size too_large)} ], [ undef, 190 * 1024 * 1024, ['content'] ],
	'sizes, pg_recvlogical: a 190 MB message is written without its content, with its size');
is_deeply([ @{ $message{big} }{qw(content content_size too_large)} ], [ undef, 16 * 1024 * 1024 + 1, ['content'] ],
	'sizes: a message one byte over 16 MB too');
is_deeply([ @{ $message{null} }{qw(content prefix_size too_large)} ], [ 'long prefix', 1025, ['prefix'] ],
	'sizes: a prefix over 1 kB is left out, with its size');
is($message{small}{content}, 'fits', 'sizes: a small message in the same transaction is whole');
my %doc = map { $_->{row}{id} => $_ } grep { ($_->{table} // '') eq 'documents' } @json;
is_deeply([ $doc{1}{row}{scan}, $doc{1}{row}{note}, $doc{1}{too_large} ], [ undef, 'scan', ['scan'] ],
	'sizes, json: a 600 MB bytea is left out and named');
is_deeply([ $doc{2}{row}{body}, $doc{2}{row}{note}, $doc{2}{too_large} ], [ undef, 'body', ['body'] ],
	'sizes, json: a text whose JSON would pass 1 GB too');
is($doc{3}{row}{note}, 'after', 'sizes, json: the change after them arrives');

is($source->safe_psql('hospital', q{
	SELECT string_agg(coalesce(d->>'prefix', 'null') || ':' || coalesce(d->>'content_size', '-') || ':' || coalesce(d->>'too_large', '-'), ',' ORDER BY n)
	  FROM pg_logical_slot_get_changes('size_get', NULL, NULL) WITH ORDINALITY AS c(l, x, data, n),
	       LATERAL (SELECT c.data::jsonb) AS j(d)
	 WHERE d->>'op' = 'message' AND d->>'prefix' IS DISTINCT FROM 'end'}),
	qq{p:199229440:["content"],big:16777217:["content"],null:-:["prefix"],small:-:-},
	'sizes, pg_logical_slot_get_changes: the same messages');

($out, $err) = ('', '');
$ok = IPC::Run::run(
	recvlogical_cmd($source, '-S', 'size_sql', '--start', '--no-loop', '--endpos', $end, '-f', '-',
		'-o', 'format=sql'),
	'|', psql_cmd($replica), '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'sizes, sql: pg_recvlogical | psql applies the stream') or diag($err);
is($replica->safe_psql('hospital',
		q{SELECT string_agg(id || ':' || (scan IS NULL) || ':' || coalesce(length(body), -1) || ':' || note, ',' ORDER BY id) FROM documents}),
	'1:true:-1:scan,2:true:180000000:body,3:true:-1:after',
	'sizes, sql: the replica has the rows, without the value too large for the sql format');

done_testing();
