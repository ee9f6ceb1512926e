#!/usr/bin/perl
# An upstream tool for the integration tests: answers every request with JSON
# describing exactly what it received (method, target, protocol, every header
# in order, body), so tests can check what reached the tool.
#
#   echo.pl PORT [LOGFILE]     (LOGFILE: one JSON line per request received)
use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP;

my ($port, $logfile) = @ARGV;
die "usage: echo.pl PORT [LOGFILE]\n" unless $port;

my $srv = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 64,
    ReuseAddr => 1, Proto => 'tcp') or die "echo: listen $port: $!\n";


$SIG{CHLD} = 'IGNORE';
my $json = JSON::PP->new->canonical->utf8;

while (1) {
    my $c = $srv->accept or next;
    my $pid = fork;
    if (!defined $pid) { close $c; next; }
    if ($pid) { close $c; next; }
    close $srv;
    serve($c);
    exit 0;
}

sub serve {
    my ($c) = @_;
    $c->autoflush(1);
    local $/ = "\r\n";
    while (1) {
        my $line = <$c>;
        return unless defined $line;
        $line =~ s/\r\n$//;
        next if $line eq '';
        my ($method, $target, $proto) = split / /, $line, 3;
        my @headers;
        my %h;
        while (my $hl = <$c>) {
            $hl =~ s/\r\n$//;
            last if $hl eq '';
            my ($k, $v) = split /:\s*/, $hl, 2;
            push @headers, [$k, $v];
            $h{lc $k} = $v;
        }
        my $body = '';
        if (defined $h{'content-length'}) {
            my $n = $h{'content-length'};
            while (length($body) < $n) {
                my $r = read($c, my $buf, $n - length($body));
                last unless $r;
                $body .= $buf;
            }
        } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            while (1) {
                my $size = <$c>;
                last unless defined $size;
                $size =~ s/\r\n$//;
                $size = hex $size;
                if ($size == 0) { <$c>; last; }
                read($c, my $buf, $size);
                $body .= $buf;
                <$c>;
            }
        }
        my $out = $json->encode({
            method => $method, target => $target, protocol => $proto,
            headers => \@headers, body => $body,
        });
        if ($logfile && open my $lf, '>>', $logfile) {
            print $lf "$out\n";
            close $lf;
        }
        my $keep = ($proto // '') eq 'HTTP/1.1'
            && lc($h{connection} // '') ne 'close';
        print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($out) . "\r\n"
            . "X-Echo: 1\r\n"
            . ($keep ? "" : "Connection: close\r\n") . "\r\n" . $out;
        return unless $keep;
    }
}
