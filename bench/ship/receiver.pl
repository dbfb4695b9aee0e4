#!/usr/bin/env perl
# receiver.pl — a minimal NDJSON receiver for the shipper's demo and bench.
#
#   perl bench/ship/receiver.pl PORT FILE [stamp]
#
# Listens on 127.0.0.1:PORT, accepts POSTs (keep-alive), appends each body to
# FILE and answers 200; with "stamp", each body is preceded by a line
# "#ARRIVED <unix time>" (for latency).  Prints "listening" once ready; runs
# until killed.
# Plain Perl (IO::Socket::INET), one connection at a time: enough for one
# shipper, which sends one batch at a time.
use strict;
use warnings;
use IO::Socket::INET;

use Time::HiRes qw(time);

my ($port, $file, $stamp) = @ARGV;
die "usage: $0 PORT FILE\n" unless $port && $file;
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
	Listen => 16, ReuseAddr => 1) or die "cannot listen on $port: $!\n";
open(my $out, '>>', $file) or die "$file: $!\n";
$out->autoflush(1);
$| = 1;
print "listening\n";
while (my $c = $listen->accept)
{
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
		printf $out "#ARRIVED %.6f\n", time if $stamp;
		print $out $body;
		print $c "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	}
	close $c;
}
