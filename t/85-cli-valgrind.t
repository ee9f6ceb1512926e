#!/usr/bin/perl
# The CLI under valgrind: no invalid access, no uninitialised read, no leak, on
# every subcommand, on success and on failure paths.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

plan skip_all => 'the sanitizer build is checked by its own runtime'
    if $AgTest::SANITIZE;
plan skip_all => 'valgrind is not installed' unless `which valgrind` =~ /valgrind/;

my $t = AgTest->new;
my $d = $t->dir;
my $cli = $AgTest::CLI;
my $policy = "$AgTest::ROOT/policies/example.json";
my $cases = "$AgTest::ROOT/policies/example.cases.json";

$t->write_file('call.json', '{"agent": "support-bot", "tool": "payments", "method": "POST", '
               . '"path": "/v1/refunds", "body": {"amount": 9000, "currency": "EUR"}}');
$t->write_file('broken.json', '{"agentgov": 1, "rules": [{"id": "x", "effect": "allow", '
               . '"when": {"body:/a": {"regex": "("}}}]}');

my @runs = (
    [ 'keygen ed25519', 'keygen', '--type', 'ed25519', '--out', "$d/k1.pem", '--jwks', "$d/k1.json" ],
    [ 'keygen p256', 'keygen', '--type', 'p256', '--out', "$d/k2.pem" ],
    [ 'token', 'token', '--key', "$d/k1.pem", '--iss', 'i', '--sub', 's', '--groups', 'a,b',
      '--claim', 'n=5' ],
    [ 'policy check', 'policy', 'check', $policy ],
    [ 'policy check broken', 'policy', 'check', "$d/broken.json" ],
    [ 'policy eval --trace', 'policy', 'eval', $policy, "$d/call.json", '--trace' ],
    [ 'policy test', 'policy', 'test', $policy, $cases ],
    [ 'usage error', 'policy', 'frobnicate' ],
);

for my $run (@runs) {
    my ($name, @args) = @$run;
    my ($rc, $out) = $t->run('valgrind', '--error-exitcode=99', '--leak-check=full',
                             '--errors-for-leak-kinds=definite,indirect',
                             '--quiet', $cli, @args);
    isnt($rc >> 8, 99, "valgrind clean: $name") or diag $out;
    unlike($out, qr/definitely lost|indirectly lost|Invalid (read|write)|uninitialised/,
           "no valgrind report: $name");
}

done_testing;
