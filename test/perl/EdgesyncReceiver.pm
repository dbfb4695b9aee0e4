# EdgesyncReceiver — a real HTTP receiver on loopback for the shipper's TAP
# tests, with fault injection.
#
# A forked child serves HTTP/1.1 POSTs one connection at a time (plain
# IO::Socket::INET, no module beyond Perl's core).  Its behaviour is the
# "mode", read from a file before every request, so a test switches faults
# while the shipper keeps running:
#
#   ok        read the body, record it, answer 200
#   fail500   read the body, answer 500 (not recorded as delivered)
#   timeout   read the body, never answer (until the mode changes), close
#   hang      accept the connection and read nothing, never answer (until
#             the mode changes), close; later connections wait in the
#             listen queue meanwhile
#   reset     read part of the body, then reset the connection (RST)
#   slow      read the body, wait 1.5 s, then record and answer 200
#   redirect URL  read the body, answer 307 with Location: URL
#   echo500   read the body, answer 500 with a body of 100 kB that quotes the
#             request's Authorization header and first line
#
# and a test can stop() the receiver (connection refused) and start() it
# again on the same port.  Every request is appended to attempts.log
# ("mode key"); every acknowledged one to delivered.log as
# "=== <Idempotency-Key> <Authorization>\n" followed by the body.
package EdgesyncReceiver;

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(sleep);

sub new
{
	my ($class, %opts) = @_;
	my $self = bless {
		dir => tempdir('edgesync-receiver-XXXXXX', TMPDIR => 1, CLEANUP => 1),
		port => $opts{port} // 0,
	}, $class;
	$self->set_mode('ok');
	$self->start;
	return $self;
}

sub port { $_[0]{port} }
sub url { 'http://127.0.0.1:' . $_[0]{port} . ($_[1] // '/ingest') }

sub set_mode
{
	my ($self, $mode) = @_;
	open(my $fh, '>', "$self->{dir}/mode.tmp") or die $!;
	print $fh $mode;
	close $fh;
	rename("$self->{dir}/mode.tmp", "$self->{dir}/mode") or die $!;
}

sub mode
{
	my ($self) = @_;
	open(my $fh, '<', "$self->{dir}/mode") or return 'ok';
	my $m = <$fh>;
	close $fh;
	return $m // 'ok';
}

sub start
{
	my ($self) = @_;
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => $self->{port},
		Proto => 'tcp',
		Listen => 16,
		ReuseAddr => 1) or die "receiver: cannot listen: $!";
	$self->{port} = $listen->sockport;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		# _exit: the test's END blocks (which stop clusters) are the parent's.
		eval { $self->_serve($listen) };
		POSIX::_exit(0);
	}
	close $listen;
	$self->{pid} = $pid;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	local $?;    # waitpid would set the test's exit status at global destruction
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

sub _append
{
	my ($self, $file, $text) = @_;
	open(my $fh, '>>', "$self->{dir}/$file") or die $!;
	print $fh $text;
	close $fh;
}

sub _serve
{
	my ($self, $listen) = @_;
	while (my $c = $listen->accept)
	{
		$c->autoflush(1);
		# Keep-alive: serve requests on this connection until it closes.
		while (1)
		{
			if ($self->mode eq 'hang')
			{
				$self->_append('attempts.log', "hang -\n");
				sleep(0.05) while $self->mode eq 'hang';
				last;
			}
			my %h;
			my $line = <$c>;
			last unless defined $line;
			while (my $l = <$c>)
			{
				$l =~ s/\r?\n$//;
				last if $l eq '';
				my ($k, $v) = split(/:\s*/, $l, 2);
				$h{ lc $k } = $v;
			}
			my $len = $h{'content-length'} // 0;
			my $key = $h{'idempotency-key'} // '-';
			my $mode = $self->mode;
			$self->_append('attempts.log', "$mode $key\n");
			if ($mode eq 'reset')
			{
				my $part;
				read($c, $part, $len > 10 ? 10 : $len);
				setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
				close $c;
				last;
			}
			my $body = '';
			while (length($body) < $len)
			{
				my $n = read($c, my $chunk, $len - length($body));
				last unless $n;
				$body .= $chunk;
			}
			if ($mode eq 'timeout')
			{
				sleep(0.05) while $self->mode eq 'timeout';
				close $c;
				last;
			}
			if ($mode =~ /^redirect (\S+)/)
			{
				print $c "HTTP/1.1 307 Temporary Redirect\r\nLocation: $1\r\nContent-Length: 0\r\n\r\n";
				next;
			}
			if ($mode eq 'echo500')
			{
				my ($first) = split /\n/, $body;
				my $answer = 'rejected ' . ($h{authorization} // '-') . ' ' . ($first // '') . ' '
				  . ('x' x 100_000);
				print $c "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
				  . length($answer) . "\r\n\r\n$answer";
				next;
			}
			if ($mode eq 'fail500')
			{
				print $c "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\n\r\nstorage down";
				next;
			}
			sleep(1.5) if $mode eq 'slow';
			$self->_append('delivered.log',
				"=== $key " . ($h{authorization} // '-') . "\n" . $body);
			print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		}
		close $c;
	}
}

# The acknowledged batches: a list of { key, auth, lines => [...] }.
sub deliveries
{
	my ($self) = @_;
	my @batches;
	open(my $fh, '<', "$self->{dir}/delivered.log") or return ();
	while (my $l = <$fh>)
	{
		chomp $l;
		if ($l =~ /^=== (\S+) (.*)$/)
		{
			push @batches, { key => $1, auth => $2, lines => [] };
		}
		elsif (@batches && $l ne '')
		{
			push @{ $batches[-1]{lines} }, $l;
		}
	}
	close $fh;
	return @batches;
}

# Requests seen, as "mode key" lines.
sub attempts
{
	my ($self) = @_;
	open(my $fh, '<', "$self->{dir}/attempts.log") or return ();
	my @a = <$fh>;
	close $fh;
	chomp @a;
	return @a;
}

1;
