#!/usr/bin/env perl
# receiver.pl — a minimal NDJSON receiver for the shipper's demo and bench.
#
#   perl bench/ship/receiver.pl PORT FILE [stamp] [hang|slow|fail]
#
# Listens on 127.0.0.1:PORT, accepts POSTs (keep-alive), appends each body to
# FILE and answers 200; with "stamp", each body is preceded by a line
# "#ARRIVED <unix time>" (for latency).  A receiver in trouble, for
# bench/ship/independent.sh: "hang" accepts connections and never reads or
# answers, "slow" answers each request 1.5 s after reading it, "fail"
# answers 500.  PORT 0 takes a free port.  Prints "listening on PORT" once
# ready; runs until killed.
# Plain Perl (IO::Socket::INET), one connection at a time: enough for one
# shipper, which sends one batch at a time.
use strict;
use warnings;
use IO::Socket::INET;

use Time::HiRes qw(time);

my ($port, $file, @flags) = @ARGV;
die "usage: $0 PORT FILE [stamp] [hang|slow|fail]\n" unless defined $port && $file;
my $stamp = grep { $_ eq 'stamp' } @flags;
my ($mode) = (grep({ /^(hang|slow|fail)$/ } @flags), 'ok');
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
	Listen => 16, ReuseAddr => 1) or die "cannot listen on $port: $!\n";
open(my $out, '>>', $file) or die "$file: $!\n";
$out->autoflush(1);
$| = 1;
print "listening on ", $listen->sockport, "\n";
while (my $c = $listen->accept)
{
	sleep while $mode eq 'hang';
	while (defined(my $line = <$c>))
	{
		my $len = 0;
		while (defined(my $h = <$c>))
		{
			$h =~ s/\r?\n$//;
			last if $h eq '';
			$len = $1 if $h =~ /^content-length:\s*(\d+)/i;
		}
		my $body = '';
		while (length($body) < $len)
		{
			my $n = read($c, my $chunk, $len - length($body));
			last unless $n;
			$body .= $chunk;
		}
		if ($mode eq 'fail')
		{
			print $c "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
			next;
		}
		select(undef, undef, undef, 1.5) if $mode eq 'slow';
		printf $out "#ARRIVED %.6f\n", time if $stamp;
		print $out $body;
		print $c "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	}
	close $c;
}
