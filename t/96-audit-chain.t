#!/usr/bin/perl
# The audit chain itself (SPEC section 8): one chain across workers under
# concurrent load, signed checkpoints, `agentgov audit verify` against edits,
# deletions, reordering, insertion and a chain rewritten with the HMAC key but
# not the signing key; the chain across restart, a line cut short by a crash,
# and log rotation with reopen.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use POSIX ();
use Time::HiRes qw(sleep);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $iss = 'agentgov-test';

$t->policy({
    agentgov => 1,
    agents => { map { ("bot$_" => { jwt => { iss => $iss, sub => "bot$_" }, owner => 'o' }) } 1 .. 4 },
    groups => { audit => [ { jwt => { iss => $iss, groups => 'audit' } } ] },
    auditors => ['audit'],
    tools => { tickets => {} },
    intents => { work => { agents => [ map { "bot$_" } 1 .. 4 ], tools => ['tickets'], max_ttl => '1h' } },
    rules => [
        { id => 'odd', effect => 'deny', tool => 'tickets', path => '/odd/**' },
        { id => 'all', effect => 'allow', tool => 'tickets' },
    ],
});

$t->config(<<"EOF2", workers => 2);
@{[ $t->gateway_http(audit => 1, state => 1) ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location /tools/tickets/ { agentgov on; agentgov_tool tickets; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF2

$t->start_echo->start;

my $file = $t->audit_file;
my $key = $t->audit_key;
my $jwks = $t->dir . '/gateway.jwks.json';
my $auditor = $t->token(sub => 'bob', groups => 'audit');

sub verify {
    my (@args) = @_;
    my ($rc, $out) = $t->run($AgTest::CLI, 'audit', 'verify', @args);
    return ($rc >> 8, $out);
}

sub lines { split /^/m, $t->read_file($_[0] // 'audit/audit.jsonl') }

# --- concurrent load over two workers -------------------------------------------------

my @headers = map { [ $t->agent_headers(sub => "bot$_", intent => 'work') ] } 1 .. 4;

my @pids;
for my $c (0 .. 7) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $h = $headers[$c % 4];
        for my $i (1 .. 70) {
            my $path = $i % 5 ? "/tools/tickets/v1/$c/$i" : "/tools/tickets/odd/$c/$i";
            $t->request('GET', $path, headers => $h);
        }
        POSIX::_exit(0);   # no destructors: they would stop nginx
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
sleep 0.3;

my @recs = $t->audit_records;
my @seqs = map { $_->{seq} } @recs;
is_deeply(\@seqs, [1 .. scalar @recs], 'every seq once, in file order');
my @calls = grep { $_->{event} eq 'call' && $_->{action}{path} =~ m{^/(v1|odd)/\d} } @recs;
is(scalar @calls, 560, 'a record for every call');
is(scalar(grep { $_->{event} eq 'result' } @recs), 448, 'a result for every forwarded call');
my %req;
$req{ $_->{request_id} }++ for grep { $_->{event} =~ /^(call|result)$/ } @recs;
ok(!(grep { $_ > 2 } values %req), 'request ids are unique');
is($t->audit_check, '', 'the chain verifies (independent check)');

# group commit: results go out with the next record
my $m = $t->request('GET', '/agentgov/metrics')->{body};
my ($nrec) = $m =~ /^agentgov_audit_records_total (\d+)$/m;
my ($nwr) = $m =~ /^agentgov_audit_writes_total (\d+)$/m;
is($nrec, scalar @recs, 'metrics count every record');
ok($nwr < $nrec, "results share write()s with the records after them ($nrec records, $nwr writes)");

# --- checkpoints ---------------------------------------------------------------------

my @cp = grep { $_->{event} eq 'checkpoint' } @recs;
ok(@cp >= 1, 'a checkpoint after 1000 records');
my $cp = $cp[0];
ok($cp->{checkpoint}{seq} >= 1000 && $cp->{checkpoint}{seq} < $cp->{seq}, 'naming a record before it');
is($cp->{checkpoint}{hash}, $recs[ $cp->{checkpoint}{seq} - 1 ]{hash}, 'by its hash');
my ($h64, $p64) = split /\./, $cp->{checkpoint}{jws};
my $hdr = $AgTest::JSON->decode(AgTest::b64url_decode($h64));
my $pay = $AgTest::JSON->decode(AgTest::b64url_decode($p64));
is($hdr->{typ}, 'agentgov-checkpoint+jwt', 'a JWS of its own type');
is($hdr->{alg}, 'EdDSA', 'signed with the gateway\'s key');
is($hdr->{kid}, $AgTest::JSON->decode($t->read_file('gateway.jwks.json'))->{keys}[0]{kid},
   'kid from the JWKS');
is($pay->{seq}, $cp->{checkpoint}{seq}, 'the payload names the seq');
is($pay->{hash}, $cp->{checkpoint}{hash}, 'and the hash');

my $r = $t->request('GET', '/agentgov/v1/audit/checkpoint',
                    headers => ['Authorization' => "Bearer $auditor"]);
is($r->{status}, 200, 'the checkpoint API');
is($r->{json}{seq}, $cp[-1]{seq}, 'serves the latest checkpoint record');
is($r->{json}{hash}, $cp[-1]{hash}, 'as written');

my ($rc, $out) = verify($file, '--key', $key, '--jwks', $jwks);
is($rc, 0, 'audit verify with the JWKS accepts the chain') or diag($out);
like($out, qr/checkpoint/, 'and says how many checkpoints it checked');

# --- tampering -------------------------------------------------------------------------

my @l = lines();
my $copy = $t->dir . '/tampered.jsonl';

sub tampered {
    my ($name, $bad_seq, @lines) = @_;
    $t->write_file($copy, join '', @lines);
    my ($rc, $out) = verify($copy, '--key', $key);
    is($rc, 1, "$name: verify fails");
    like($out, qr/\bseq $bad_seq\b/, "$name: names seq $bad_seq") or diag($out);
}

my @e = @l;
$e[9] =~ s/"decision":"allow"/"decision":"deny"/ or $e[9] =~ s/"event":"(\w+)"/"event":"x$1"/;
tampered('an edited record', 10, @e);
tampered('a deleted record', 11, @l[0 .. 9], @l[11 .. $#l]);
tampered('two records swapped', 11, @l[0 .. 9], $l[11], $l[10], @l[12 .. $#l]);
tampered('an inserted record', 11, @l[0 .. 10], $l[5], @l[11 .. $#l]);
tampered('the wrong key', 1, @l) if 0;

($rc, $out) = verify($file, '--key', $t->write_file('other.key', 'x' x 40));
is($rc, 1, 'another HMAC key: verify fails');

# rewritten end to end with the HMAC key, but not the signing key
my $hkey = $t->read_file('audit.key');
my ($prev, %hash_of) = ('0' x 64);
my @w;
for my $i (0 .. $#l) {
    my $line = $l[$i];
    chomp $line;
    $line =~ s/,"hash":"[0-9a-f]{64}"\}\z//;
    $line =~ s/"ts":"\d{4}/"ts":"1999/ if $i == 20;
    $line =~ s/,"prev":"[0-9a-f]{64}"\z/,"prev":"$prev"/;
    $line =~ s/"checkpoint":\{"seq":(\d+),"hash":"[0-9a-f]{64}"/"checkpoint":{"seq":$1,"hash":"$hash_of{$1}"/;
    my ($s) = $line =~ /^\{"seq":(\d+)/;
    $prev = $hash_of{$s} = hmac_sha256_hex($line, $hkey);
    push @w, qq($line,"hash":"$prev"}\n);
}
$t->write_file($copy, join '', @w);
($rc, $out) = verify($copy, '--key', $key);
is($rc, 0, 'a chain rewritten with the HMAC key passes the HMAC check alone') or diag($out);
($rc, $out) = verify($copy, '--key', $key, '--jwks', $jwks);
is($rc, 1, 'but not the checkpoint signatures');
like($out, qr/\bseq $cp->{seq}\b/, 'verify names the first checkpoint') or diag($out);

# --- restart ---------------------------------------------------------------------------

my $last = (grep { $_->{event} } $t->audit_records)[-1];
$t->stop;
$t->start_echo->start;
my @after = $t->audit_records;
my $first = $after[ $last->{seq} ];
is($first->{seq}, $last->{seq} + 1, 'restart continues the seq');
is($first->{prev}, $last->{hash}, 'and the chain');
is($first->{event}, 'policy', 'with the policy record');

# --- a line cut short -------------------------------------------------------------------

$t->stop;
$last = ($t->audit_records)[-1];
open my $fh, '>>', $file or die;
print $fh '{"seq":' . ($last->{seq} + 1) . ',"ts":"2026-11-23T10:00:00.0';
close $fh;
$t->start_echo->start;
like($t->error_log, qr/cut short/, 'a cut line is reported at start');
@after = $t->audit_records;
ok($after[-3]{_bad}, 'the partial line stays where it was');
my $restart = $after[-2];
is($restart->{event}, 'restart', 'a restart record follows it');
is($restart->{seq}, $last->{seq} + 1, 'continuing from the last whole record');
is($restart->{prev}, $last->{hash}, 'and its hash');
is($restart->{partial}{bytes}, length('{"seq":' . ($last->{seq} + 1) . ',"ts":"2026-11-23T10:00:00.0'),
   'naming the partial bytes');
is($after[-1]{event}, 'policy', 'then the policy record');
($rc, $out) = verify($file, '--key', $key, '--jwks', $jwks);
is($rc, 0, 'verify accepts a cut line the restart record explains') or diag($out);

# an empty line after the last record (added by hand): bytes after the last
# record, though none of them a record's
$t->stop;
$last = ($t->audit_records)[-1];
open $fh, '>>', $file or die;
print $fh "\n";
close $fh;
$t->start_echo->start;
@after = $t->audit_records;
is($after[-2]{event}, 'restart', 'an empty last line gets a restart record too');
is($after[-2]{partial}{bytes}, 0, 'naming no bytes');
is($after[-2]{prev}, $last->{hash}, 'after the last record');
($rc, $out) = verify($file, '--key', $key);
is($rc, 0, 'and verify accepts it') or diag($out);

# --- rotation ---------------------------------------------------------------------------

$last = ($t->audit_records)[-1];
rename $file, "$file.1" or die "rename: $!";
my @h = @{ $headers[0] };
$r = $t->request('GET', '/tools/tickets/v1/before-reopen', headers => \@h);
is($r->{status}, 200, 'a call between the move and the reopen');
kill 'USR1', $t->nginx_pid;
for (1 .. 100) { last if -e $file; sleep 0.05 }
sleep 0.3;
for my $i (1 .. 20) {
    $r = $t->request('GET', "/tools/tickets/v1/after-reopen/$i", headers => \@h);
}
is($r->{status}, 200, 'calls after the reopen');
sleep 0.2;
my @old = $t->audit_records("$file.1");
my @new = $t->audit_records($file);
ok(@new >= 40, 'the new file holds the records after the reopen');
is($new[0]{seq}, $old[-1]{seq} + 1, 'its first record continues the seq');
is($new[0]{prev}, $old[-1]{hash}, 'and the chain');
ok(!(grep { $_->{action} && $_->{action}{path} =~ /after-reopen/ } @old),
   'no record after the reopen went to the old file');
($rc, $out) = verify("$file.1", $file, '--key', $key, '--jwks', $jwks);
is($rc, 0, 'verify accepts both files in order') or diag($out);
($rc, $out) = verify($file, "$file.1", '--key', $key);
is($rc, 1, 'but not out of order');

done_testing;
