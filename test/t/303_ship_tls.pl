# HTTPS targets verify the receiver's certificate and host name by default:
# against a TLS server on loopback (openssl s_server) with a self-signed
# certificate for 127.0.0.1, a target without ca_file fails on the
# certificate, one with the certificate as ca_file gets past the handshake,
# and one naming another host fails on the host name.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $dir = PostgreSQL::Test::Utils::tempdir;
system_or_bail('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
	'-keyout', "$dir/key.pem", '-out', "$dir/cert.pem", '-subj', '/CN=127.0.0.1',
	'-addext', 'subjectAltName=IP:127.0.0.1');
chmod 0644, "$dir/cert.pem";

my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($in, $out, $err) = ('', '', '');
my $server = IPC::Run::start(
	[ 'openssl', 's_server', '-accept', "127.0.0.1:$port", '-cert', "$dir/cert.pem",
	  '-key', "$dir/key.pem", '-quiet' ],
	\$in, \$out, \$err);
sleep(1);

my $node = edgesync_node('hospital');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text);
	SELECT edgesync.track('hospital_patients');
	SELECT edgesync.add_target('tls_default', 'https://127.0.0.1:$port/in', timeout_ms => 1500);
	SELECT edgesync.add_target('tls_ca', 'https://127.0.0.1:$port/in', ca_file => '$dir/cert.pem',
	                           timeout_ms => 1500);
	SELECT edgesync.add_target('tls_name', 'https://localhost:$port/in', ca_file => '$dir/cert.pem',
	                           timeout_ms => 1500);
});
$node->safe_psql('postgres', q{INSERT INTO hospital_patients VALUES (1, 'Ann')});
for my $t (qw(tls_default tls_ca tls_name))
{
	$node->psql('postgres', "SELECT edgesync.ship('$t')");
}
sub last_error
{
	return $node->safe_psql('postgres',
		"SELECT last_error FROM edgesync.target_status WHERE name = '$_[0]'");
}
like(last_error('tls_default'), qr/certificate/i,
	'no ca_file: the self-signed certificate is refused');
my $with_ca = last_error('tls_ca');
unlike($with_ca, qr/certificate|SSL/i, 'ca_file: the handshake succeeds');
like($with_ca, qr/timed out/i, 'ca_file: the (silent) server then times out');
like(last_error('tls_name'), qr/subject name|host name/i,
	'a certificate for another host name is refused');
is($node->safe_psql('postgres', 'SELECT sum(batches_shipped) FROM edgesync.target_status'), '0',
	'nothing counted as delivered');

$server->kill_kill;
$node->stop;
done_testing();
