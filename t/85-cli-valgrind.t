#!/usr/bin/perl
# The CLI under valgrind: no invalid access, no uninitialised read, no leak, on
# every subcommand, on success and on failure paths.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
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

# a short audit chain (t/86-audit-cli.t writes them in full), one with a
# changed record and one cut short
my $akey = 'agentgov TEST audit key, never use it: 0123456789';
$t->write_file('audit.key', $akey, 0600);
my ($prev, $chain) = ('0' x 64, '');
for my $seq (1 .. 5) {
    my $line = sprintf('{"seq":%d,"ts":"2026-11-23T10:00:0%d.000000Z","event":"call",'
                       . '"agent":"support-bot","tool":"payments","decision":"%s",'
                       . '"prev":"%s"', $seq, $seq, $seq == 3 ? 'deny' : 'allow', $prev);
    $prev = hmac_sha256_hex($line, $akey);
    $chain .= qq($line,"hash":"$prev"}\n);
}
$t->write_file('audit.jsonl', $chain);
(my $broken = $chain) =~ s/"deny"/"allow"/;
$t->write_file('broken.jsonl', $broken);
$t->write_file('cut.jsonl', $chain . '{"seq":6,"ts');

my @runs = (
    [ 'keygen ed25519', 'keygen', '--type', 'ed25519', '--out', "$d/k1.pem", '--jwks', "$d/k1.json" ],
    [ 'keygen p256', 'keygen', '--type', 'p256', '--out', "$d/k2.pem" ],
    [ 'token', 'token', '--key', "$d/k1.pem", '--iss', 'i', '--sub', 's', '--groups', 'a,b',
      '--claim', 'n=5' ],
    [ 'policy check', 'policy', 'check', $policy ],
    [ 'policy check broken', 'policy', 'check', "$d/broken.json" ],
    [ 'policy eval --trace', 'policy', 'eval', $policy, "$d/call.json", '--trace' ],
    [ 'policy test', 'policy', 'test', $policy, $cases ],
    [ 'audit verify', 'audit', 'verify', "$d/audit.jsonl", '--key', "$d/audit.key",
      '--jwks', "$d/k1.json" ],
    [ 'audit verify broken', 'audit', 'verify', "$d/broken.jsonl", '--key',
      "$d/audit.key" ],
    [ 'audit verify cut', 'audit', 'verify', "$d/cut.jsonl", '--key', "$d/audit.key" ],
    [ 'audit show', 'audit', 'show', "$d/cut.jsonl" ],
    [ 'audit show filtered', 'audit', 'show', "$d/audit.jsonl", '--agent', 'support-bot',
      '--decision', 'deny', '--since', '2026-11-23T10:00:02Z' ],
    [ 'audit show --json', 'audit', 'show', "$d/audit.jsonl", '--json', '--event', 'call' ],
    [ 'audit show bad --since', 'audit', 'show', "$d/audit.jsonl", '--since', 'now' ],
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
