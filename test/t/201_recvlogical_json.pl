# The output plugin through the stock tool: pg_recvlogical --create-slot
# --plugin=edgesync, then --start -f FILE -o format=json.  Every line is one
# JSON object; changes arrive in commit order with seq 1..n per transaction;
# untracked tables, aborted transactions and prepared-but-uncommitted ones
# produce nothing; a prepared transaction arrives once, at COMMIT PREPARED;
# a database without the extension and columns=raw without
# edgesync_phi_reader are refused at slot start with a clear error.
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

my $node = edgesync_node('hospital');
my $dir = PostgreSQL::Test::Utils::tempdir;

# A UTF-8 database whatever the test environment's locale.
$node->safe_psql('postgres', q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
$node->safe_psql('hospital', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, name text, ward text, weight float8,
	                       meta jsonb, note text);
	SELECT edgesync.track('patients');
	CREATE TABLE visits (id bigint PRIMARY KEY, patient int, reason text);
	SELECT edgesync.track('visits');
	CREATE TABLE scratch (id int PRIMARY KEY, v text);   -- not tracked
});

# recvlogical(LIST): runs pg_recvlogical with these arguments as the test
# user, with a timeout; returns (exit code, stdout, stderr).
sub recvlogical
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my @cmd = ('pg_recvlogical', '--dbname', $node->connstr('hospital'), @args);
	my $ok = eval {
		IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
		1;
	};
	return ($ok ? $? >> 8 : -1, $out, $err . ($ok ? '' : $@));
}

# stream(SLOT, ENDPOS, OPTIONS...): everything of SLOT up to ENDPOS written
# by pg_recvlogical --start -f FILE; returns the decoded JSON objects.
my $nfile = 0;
sub stream
{
	my ($slot, $endpos, @opts) = @_;
	my $file = "$dir/stream" . ++$nfile . '.json';
	my ($rc, $out, $err) = recvlogical('-S', $slot, '--start', '--no-loop', '--endpos', $endpos,
		'-f', $file, map { ('-o', $_) } 'format=json', @opts);
	is($rc, 0, "pg_recvlogical --start up to $endpos") or diag($err);
	return () unless -e $file;
	my @objects;
	my $bad = 0;
	for my $line (split /\n/, slurp_file($file))
	{
		next if $line eq '';
		my $obj = eval { JSON::PP->new->utf8->decode($line) };
		if (!defined $obj || ref $obj ne 'HASH')
		{
			diag("not one JSON object: $line");
			$bad++;
			next;
		}
		push @objects, $obj;
	}
	is($bad, 0, "every line of stream $nfile is one JSON object");
	return @objects;
}

sub lsn_value { my ($hi, $lo) = split m{/}, shift; return hex($hi) * 2**32 + hex($lo); }
sub changes_of { my ($table, @objs) = @_; return grep { ($_->{table} // '') eq $table } @objs; }

# (a) A slot made by the stock tool, then a workload.
my ($rc, $out, $err) = recvlogical('-S', 'json_slot', '--create-slot', '--plugin=edgesync');
is($rc, 0, 'pg_recvlogical --create-slot --plugin=edgesync') or diag($err);

$node->safe_psql('hospital', q{
	INSERT INTO patients VALUES (1, 'Ann', 'A', 61.5, '{"allergies": ["penicillin"]}', 'line one
line two'), (2, 'Bob "B"', 'B', NULL, 'null', E'tab\there'), (3, 'Zoë 𝄞', 'C', 'NaN', NULL, NULL);
});
$node->safe_psql('hospital', q{
	BEGIN;
	UPDATE patients SET ward = 'ICU' WHERE id = 1;
	DELETE FROM patients WHERE id = 2;
	COMMIT;
});
# Interleaved: A starts first, B commits first; commit order wins.
my $a = $node->background_psql('hospital');
$a->query_safe('BEGIN');
$a->query_safe(q{INSERT INTO patients (id, name) VALUES (100, 'first started')});
$node->safe_psql('hospital', q{INSERT INTO patients (id, name) VALUES (200, 'first committed')});
$a->query_safe(q{INSERT INTO patients (id, name) VALUES (101, 'first started, second row')});
$a->query_safe('COMMIT');
$a->quit;
# Nothing from an untracked table or an aborted transaction.
$node->safe_psql('hospital', q{
	INSERT INTO scratch VALUES (1, 'untracked');
	BEGIN; INSERT INTO patients (id, name) VALUES (300, 'rolled back'); ROLLBACK;
	BEGIN;
	INSERT INTO patients (id, name) VALUES (301, 'subxact kept');
	SAVEPOINT s; INSERT INTO patients (id, name) VALUES (302, 'subxact rolled back'); ROLLBACK TO s;
	COMMIT;
});
# A transaction larger than logical_decoding_work_mem (64kB): spilled.
$node->safe_psql('hospital', q{
	INSERT INTO visits SELECT g, 1, repeat('visit ', 20) || g FROM generate_series(1, 3000) g;
});
# A key change: pk is the old key, row the new one.
$node->safe_psql('hospital', q{UPDATE patients SET id = 5000 WHERE id = 3});
$node->safe_psql('hospital', q{TRUNCATE visits});
my $end1 = $node->lsn('insert');

my @s1 = stream('json_slot', $end1);
my @p = changes_of('patients', @s1);
my @v = changes_of('visits', @s1);
is(scalar(grep { ($_->{table} // '') eq 'scratch' } @s1), 0, 'nothing from an untracked table');
is(scalar(grep { ($_->{row}{id} // 0) == 300 || ($_->{row}{id} // 0) == 302 } @p), 0,
	'nothing from an aborted transaction or a rolled-back subtransaction');
is(scalar(grep { ($_->{row}{id} // 0) == 301 } @p), 1, 'a committed subtransaction arrives');
is(scalar(grep { $_->{op} eq 'insert' } @v), 3000, 'all 3000 rows of the big transaction');
my @tr = grep { $_->{op} eq 'truncate' } @s1;
is(scalar(@tr), 1, 'one truncate line');
is_deeply($tr[0]{tables}, ['public.visits'], 'truncate: the tables');

# Every change names its transaction; (commit_lsn, seq) orders the stream.
my ($missing, $order_ok, $seq_ok) = (0, 1, 1);
my ($prev_lsn, $prev_seq) = (-1, 0);
for my $c (@s1)
{
	my @keys = ($c->{op} // '') eq 'truncate' ? qw(op tables xid commit_lsn commit_time seq)
	  : qw(op schema table xid commit_lsn commit_time seq);
	for my $k (@keys)
	{
		$missing++, diag("no \"$k\" in " . encode_json($c)) unless defined $c->{$k};
	}
	next unless defined $c->{commit_lsn} && defined $c->{seq};
	my $lsn = lsn_value($c->{commit_lsn});
	if ($lsn < $prev_lsn) { $order_ok = 0; diag("commit_lsn goes back at " . encode_json($c)); }
	my $want = $lsn == $prev_lsn ? $prev_seq + 1 : 1;
	if ($c->{seq} != $want) { $seq_ok = 0; diag("seq $c->{seq}, expected $want: " . encode_json($c)); }
	($prev_lsn, $prev_seq) = ($lsn, $c->{seq});
}
is($missing, 0, 'every line has op, schema and table (truncate: tables), xid, commit_lsn, commit_time, seq');
ok($order_ok, 'commit_lsn never goes back (commit order)');
ok($seq_ok, 'seq is 1, 2, ... within each transaction');
is(scalar(grep { ($_->{commit_time} // '') !~ /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:?\d\d)?)$/ } @s1),
	0, 'commit_time is ISO 8601 with a zone');
my %big = map { $_->{commit_lsn} => 1 } grep { $_->{op} eq 'insert' } @v;
is(scalar(keys %big), 1, 'the big transaction is one commit');
is(scalar(grep { $_->{op} eq 'insert' && $_->{seq} == 3000 } @v), 1, 'its last change has seq 3000');

my @ids = map { $_->{row}{id} } grep { $_->{op} eq 'insert' } @p;
is_deeply(\@ids, [ 1, 2, 3, 200, 100, 101, 301 ],
	'inserts in commit order: the transaction that committed first comes first');
my ($ins1) = grep { $_->{op} eq 'insert' && $_->{row}{id} == 1 } @p;
is_deeply($ins1->{pk}, { id => 1 }, 'insert: pk object');
is($ins1->{row}{note}, "line one\nline two", 'a newline inside a value survives');
is_deeply($ins1->{row}{meta}, { allergies => ['penicillin'] }, 'jsonb embedded as JSON');
is($ins1->{row}{weight}, 61.5, 'float8 as a JSON number');
is($ins1->{version}, 1, 'insert: version 1');
my ($ins3) = grep { $_->{op} eq 'insert' && $_->{row}{id} == 3 } @p;
is($ins3->{row}{name}, "Zo\x{eb} \x{1d11e}", '2- and 4-byte UTF-8');
my ($upd1) = grep { $_->{op} eq 'update' && $_->{pk}{id} == 1 } @p;
is($upd1->{row}{ward}, 'ICU', 'update: the new row');
is($upd1->{version}, 2, 'update: the new version');
my ($del2) = grep { $_->{op} eq 'delete' } @p;
is_deeply($del2->{pk}, { id => 2 }, 'delete: the key');
my ($pkchange) = grep { $_->{op} eq 'update' && $_->{pk}{id} == 3 } @p;
is($pkchange->{row}{id}, 5000, 'key change: pk is the old key, row has the new one');

# Streaming again from the same slot: only what is new, nothing twice.
$node->safe_psql('hospital', q{INSERT INTO patients (id, name) VALUES (6000, 'after')});
my $end2 = $node->lsn('insert');
my @s2 = stream('json_slot', $end2);
is_deeply([ map { $_->{op} . ':' . ($_->{row}{id} // '') } @s2 ], ['insert:6000'],
	'a second run of the slot streams only the new change');

# include-transaction: begin and commit lines around the changes.
$node->safe_psql('hospital', q{INSERT INTO patients (id, name) VALUES (6001, 'tx')});
my @s3 = stream('json_slot', $node->lsn('insert'), 'include-transaction=on');
is_deeply([ map { $_->{op} } @s3 ], [qw(begin insert commit)], 'include-transaction: begin, insert, commit');

# (d) Two-phase commit: nothing at PREPARE, the changes once at COMMIT PREPARED;
# a rolled-back prepared transaction never appears.
$node->safe_psql('hospital', q{
	BEGIN; INSERT INTO patients (id, name) VALUES (7000, 'prepared'); PREPARE TRANSACTION 'p1';
	BEGIN; INSERT INTO patients (id, name) VALUES (7001, 'prepared, rolled back'); PREPARE TRANSACTION 'p2';
});
my @s4 = stream('json_slot', $node->lsn('insert'));
is(scalar(@s4), 0, 'nothing of a prepared transaction before COMMIT PREPARED');
$node->safe_psql('hospital', q{COMMIT PREPARED 'p1'; ROLLBACK PREPARED 'p2'});
my @s5 = stream('json_slot', $node->lsn('insert'));
is_deeply([ map { $_->{op} . ':' . ($_->{row}{id} // '') } @s5 ], ['insert:7000'],
	'COMMIT PREPARED: the prepared change arrives once; ROLLBACK PREPARED: nothing');
$node->safe_psql('hospital', q{INSERT INTO patients (id, name) VALUES (7002, 'after 2PC')});
my @s6 = stream('json_slot', $node->lsn('insert'));
is_deeply([ map { $_->{op} . ':' . ($_->{row}{id} // '') } @s6 ], ['insert:7002'],
	'the prepared transaction is not streamed again');

# The same on a slot created with --two-phase: the plugin has no prepare
# callbacks, so the transaction still arrives once, at COMMIT PREPARED.
($rc, $out, $err) = recvlogical('-S', 'tp_slot', '--create-slot', '--two-phase', '--plugin=edgesync');
is($rc, 0, 'pg_recvlogical --create-slot --two-phase') or diag($err);
$node->safe_psql('hospital', q{
	BEGIN; INSERT INTO patients (id, name) VALUES (7100, 'prepared, two-phase slot'); PREPARE TRANSACTION 'p3';
});
my @t1 = stream('tp_slot', $node->lsn('insert'));
is(scalar(@t1), 0, 'two-phase slot: nothing at PREPARE');
$node->safe_psql('hospital', q{COMMIT PREPARED 'p3'});
$node->safe_psql('hospital', q{INSERT INTO patients (id, name) VALUES (7101, 'after')});
my @t2 = stream('tp_slot', $node->lsn('insert'));
is_deeply([ map { $_->{op} . ':' . ($_->{row}{id} // '') } @t2 ], [ 'insert:7100', 'insert:7101' ],
	'two-phase slot: the prepared change arrives once, at COMMIT PREPARED');

# (e) A database without the extension: a clear error at slot start, and
# the server keeps running.
$node->safe_psql('postgres', 'CREATE DATABASE noext');
my @noext = ('--dbname', $node->connstr('noext'), '-S', 'noext_slot');
my ($crc, undef, $cerr) = recvlogical(@noext, '--create-slot', '--plugin=edgesync');
my ($src, $serr) = ($crc, $cerr);
if ($crc == 0)
{
	my $lsn = $node->lsn('insert');
	($src, undef, $serr) = recvlogical(@noext, '--start', '--no-loop', '--endpos', $lsn, '-f', '-');
}
isnt($src, 0, 'a database without the extension: the slot does not start');
like($serr, qr/extension "edgesync" is not installed in database "noext"/,
	'the error says the extension is missing, and where');
like($serr, qr/CREATE EXTENSION edgesync/, 'the hint says what to do');
$node->safe_psql('postgres', q{SELECT pg_drop_replication_slot('noext_slot')
	FROM pg_replication_slots WHERE slot_name = 'noext_slot'});
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');

# (f) columns=raw over the replication protocol needs edgesync_phi_reader.
$node->safe_psql('hospital', q{
	CREATE ROLE plain_repl LOGIN REPLICATION;
	CREATE ROLE phi_repl LOGIN REPLICATION;
	GRANT edgesync_phi_reader TO phi_repl;
	INSERT INTO patients (id, name) VALUES (8000, 'raw');
});
my $end_raw = $node->lsn('insert');
for my $who (qw(plain_repl phi_repl))
{
	($rc, $out, $err) = recvlogical('-U', $who, '-S', "raw_$who", '--create-slot', '--plugin=edgesync');
	is($rc, 0, "$who may create an edgesync slot") or diag($err);
}
($rc, $out, $err) = recvlogical('-U', 'plain_repl', '-S', 'raw_plain_repl', '--start', '--no-loop',
	'--endpos', $end_raw, '-f', '-', '-o', 'columns=raw');
isnt($rc, 0, 'columns=raw without edgesync_phi_reader: refused');
like($err, qr/permission denied for option "columns" = "raw"/, 'the error names the option');
like($err, qr/edgesync_phi_reader/, 'and the role to grant');
unlike($out, qr/8000/, 'and nothing was streamed');
($rc, $out, $err) = recvlogical('-U', 'plain_repl', '-S', 'raw_plain_repl', '--start', '--no-loop',
	'--endpos', $node->lsn('insert'), '-f', '-', '-o', 'columns=policy');
is($rc, 0, 'the same role may stream under the column policy') or diag($err);
($rc, $out, $err) = recvlogical('-U', 'phi_repl', '-S', 'raw_phi_repl', '--start', '--no-loop',
	'--endpos', $node->lsn('insert'), '-f', '-', '-o', 'columns=raw');
is($rc, 0, 'a member of edgesync_phi_reader may stream columns=raw') or diag($err);

$node->stop;
done_testing();
