package BenchLib;

# Helpers bench/run.pl and bench/holds.pl share: files, environment
# variables, shell quoting and loopback ports.

use strict;
use warnings;
use Exporter qw(import);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

our @EXPORT_OK = qw(read_file write_file env_int sh free_port wait_port);

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!\n";
    print $fh $content;
    close $fh or die "$path: $!\n";
    return $path;
}

sub env_int {
    my ($name, $default, $min, $max) = @_;
    my $v = $ENV{$name};
    return $default unless defined $v && length $v;
    $v =~ /^[0-9]+$/ && $v >= $min && $v <= $max
        or die "$name: $v is not a whole number from $min to $max\n";
    return $v + 0;
}

sub sh {
    my ($s) = @_;
    return $s if $s =~ m{^[\w./=:,+@%-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, Proto => 'tcp')
        or die "no free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 400) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp');
        if ($s) { close $s; return 1; }
        sleep 0.025;
    }
    die "nothing listens on 127.0.0.1:$port\n";
}

1;
