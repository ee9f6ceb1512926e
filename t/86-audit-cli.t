#!/usr/bin/perl
# agentgov audit verify and show: chains written here as the gateway writes
# them (HMAC with Digest::SHA, checkpoint JWS signed by openssl with a key
# from `agentgov keygen`), then every kind of damage: the exit status, the
# FILE:LINE of the first broken record and the line itself; and the records
# shown for people, filtered, and raw.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use POSIX qw(strftime);
use AgTest;

my $t = AgTest->new;
my $d = $t->dir;
my $cli = $AgTest::CLI;

my $hkey = 'agentgov TEST audit key, never use it: 0123456789';
$t->write_file('audit.key', $hkey, 0600);
$t->write_file('other.key', 'another TEST audit key, never use it: 9876543210', 0600);

my ($rc, $kid) = $t->run($cli, 'keygen', '--out', "$d/gw.pem", '--jwks', "$d/gw.json");
is($rc, 0, 'gateway signing key') or diag $kid;
chomp $kid;
($rc, my $evil) = $t->run($cli, 'keygen', '--out', "$d/evil.pem", '--jwks', "$d/evil.json");
chomp $evil;


# --- writing chains --------------------------------------------------------------

sub ts {
    my ($seq) = @_;
    my $us = 1795428000_000000 + $seq * 1234;
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime(int($us / 1_000_000)))
           . sprintf('.%06dZ', $us % 1_000_000);
}

sub chain { return { seq => 0, hash => '0' x 64, lines => [], key => $_[0] // $hkey } }

# seal one record: the line before ,"hash" is what the HMAC covers
sub seal {
    my ($c, $body, $seq) = @_;
    $c->{seq} = $seq // $c->{seq} + 1;
    my $line = sprintf('{"seq":%d,"ts":"%s",%s,"prev":"%s"', $c->{seq}, ts($c->{seq}),
                       $body, $c->{hash});
    $c->{hash} = hmac_sha256_hex($line, $c->{key});
    push @{ $c->{lines} }, qq($line,"hash":"$c->{hash}"});
    $c->{hashes}{ $c->{seq} } = $c->{hash};
}

sub call_body {
    my ($i) = @_;
    return qq("event":"call","request_id":"req-$i","agent":"support-bot","tool":"payments",)
         . qq("action":{"method":"POST","host":"pay.example","path":"/v1/refunds/$i"},)
         . qq("decision":") . ($i % 4 ? 'allow' : 'deny') . qq(","rule":"refunds-small");
}

my $n_sign = 0;
sub jws {
    my ($pem, $kid, $seq, $hash) = @_;
    my $in = AgTest::b64url(qq({"alg":"EdDSA","kid":"$kid","typ":"agentgov-checkpoint+jwt"})) . '.'
           . AgTest::b64url(qq({"iss":"agentgov-test","seq":$seq,"hash":"$hash","iat":1795428000}));
    my $f = "$d/sign-" . $n_sign++;
    $t->write_file($f, $in);
    my ($rc, $out) = $t->run('openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', $pem,
                             '-in', $f, '-out', "$f.sig");
    die "openssl: $out" if $rc;
    return "$in." . AgTest::b64url($t->read_file("$f.sig"));
}

sub checkpoint {
    my ($c, $pem, $kid, $seq) = @_;
    $seq //= $c->{seq};
    my $h = $c->{hashes}{$seq};
    seal($c, qq("event":"checkpoint","checkpoint":{"seq":$seq,"hash":"$h","jws":")
             . jws($pem, $kid, $seq, $h) . '"}');
}

# n records with a checkpoint after every 10th
sub good_chain {
    my ($n, %o) = @_;
    my $c = chain($o{key});
    for my $i (1 .. $n) {
        seal($c, call_body($i));
        checkpoint($c, $o{pem} // "$d/gw.pem", $o{kid} // $kid) if $i % 10 == 0;
    }
    return $c;
}

sub text { join '', map { "$_\n" } @_ }

sub verify {
    my (@args) = @_;
    my ($rc, $out) = $t->run($cli, 'audit', 'verify', @args);
    return ($rc >> 8, $out);
}


# --- good chains ---------------------------------------------------------------

my $c = good_chain(30);
my @l = @{ $c->{lines} };
is(scalar @l, 33, '30 records and 3 checkpoints');
$t->write_file('good.jsonl', text(@l));

($rc, my $out) = verify("$d/good.jsonl", '--key', "$d/audit.key", '--jwks', "$d/gw.json");
is($rc, 0, 'a good chain verifies') or diag $out;
like($out, qr/^ok: 33 records \(seq 1\.\.33\), 3 checkpoints verified, 0 restarts$/m,
     'the summary');
unlike($out, qr/not checked/, 'no note with --jwks');

($rc, $out) = verify("$d/good.jsonl", "--key=$d/audit.key");
is($rc, 0, 'without --jwks too');
like($out, qr/0 checkpoints verified/, 'no checkpoint counted');
like($out, qr/note: checkpoint signatures were not checked/, 'and a note says why');

($rc, $out) = verify("$d/good.jsonl", '--key', "$d/audit.key", '--jwks', "$d/evil.json");
is($rc, 1, "another gateway's JWKS: broken");
like($out, qr{good\.jsonl:11: seq 11: the checkpoint's signature does not verify},
     'at the first checkpoint');

($rc, $out) = verify("$d/good.jsonl", '--key', "$d/other.key");
is($rc, 1, 'another HMAC key: broken');
like($out, qr{good\.jsonl:1: seq 1: hash does not match}, 'at the first record');

# rotated: files in order are one chain
$t->write_file('part1.jsonl', text(@l[0 .. 15]));
$t->write_file('part2.jsonl', text(@l[16 .. $#l]));
($rc, $out) = verify("$d/part1.jsonl", "$d/part2.jsonl", '--key', "$d/audit.key",
                     '--jwks', "$d/gw.json");
is($rc, 0, 'two files in order') or diag $out;
like($out, qr/33 records \(seq 1\.\.33\), 3 checkpoints verified/, 'one chain');

($rc, $out) = verify("$d/part2.jsonl", '--key', "$d/audit.key", '--jwks', "$d/gw.json");
is($rc, 0, 'the second file alone') or diag $out;
like($out, qr/17 records \(seq 17\.\.33\), 2 checkpoints verified/, 'starts mid-chain');

($rc, $out) = verify("$d/part2.jsonl", "$d/part1.jsonl", '--key', "$d/audit.key");
is($rc, 1, 'two files in the wrong order');
like($out, qr{part1\.jsonl:1: seq 1: expected seq 34 after seq 33 \(a record is missing},
     'the first line of the second file');

# standard input
$out = `$cli audit verify - --key $d/audit.key < $d/good.jsonl 2>&1`;
is($? >> 8, 0, 'standard input') or diag $out;
like($out, qr/ok: 33 records/, 'standard input: the summary');


# --- damage ------------------------------------------------------------------------

sub broken {
    my ($name, $lines, $want_line, $want, $show) = @_;
    $t->write_file("$name.jsonl", ref $lines ? text(@$lines) : $lines);
    my ($rc, $out) = verify("$d/$name.jsonl", '--key', "$d/audit.key", '--jwks', "$d/gw.json");
    is($rc, 1, "$name: exit 1") or diag $out;
    like($out, qr{\Q$name.jsonl:$want_line: \E\Q$want\E}, "$name: $want_line: $want")
        or diag $out;
    like($out, qr{^    \Q$show\E}m, "$name: the line is shown") if defined $show;
}

my @e = @l;
($e[16] = $e[16]) =~ s/"decision":"deny"/"decision":"allow"/ or die;
broken('edit', \@e, 17, 'seq 17: hash does not match (the record was changed',
       substr($e[16], 0, 40));

@e = @l;
splice @e, 4, 1;
broken('delete', \@e, 5, 'seq 6: expected seq 5 after seq 4 (a record is missing, '
       . 'reordered or inserted)', '{"seq":6,');

@e = @l;
@e[7, 8] = @e[8, 7];
broken('swap', \@e, 8, 'seq 9: expected seq 8 after seq 7', '{"seq":9,');

@e = @l;
splice @e, 12, 0, $l[2];
broken('insert-copy', \@e, 13, 'seq 3: expected seq 13 after seq 12', '{"seq":3,');

@e = @l;
splice @e, 12, 0, "{\"note\":\"hello\"}\x01";
broken('insert-garbage', \@e, 13, 'not a record (not an audit record), and no restart '
       . 'record names it', '{"note":"hello"}\x01');

# a long line is shown cut at 200 bytes
@e = @l;
($e[25] = $e[25]) =~ s/"rule":"refunds-small"/'"rule":"' . ('x' x 300) . '"'/e or die;
broken('long', \@e, 26, 'seq 26: hash does not match');
like($out = $t->run($cli, 'audit', 'verify', "$d/long.jsonl", '--key', "$d/audit.key"),
     qr/^    .{200}\.\.\.$/m, 'long: shown cut at 200 bytes');

# a file cut by a crash, and nothing written since
my $all = text(@l);
broken('cut', substr($all, 0, length(text(@l[0 .. 21])) + 100), 23,
       'not a record (the line is cut short), and no restart record follows it');

# the held line of an earlier file, reported in that file
$t->write_file('cut1.jsonl', substr($all, 0, length(text(@l[0 .. 21])) + 100));
$t->write_file('cut2.jsonl', text(@l[22 .. $#l]));
($rc, $out) = verify("$d/cut1.jsonl", "$d/cut2.jsonl", '--key', "$d/audit.key");
is($rc, 1, 'a cut line at the end of the first file');
like($out, qr{cut1\.jsonl:23: not a record \(the line is cut short\)}, 'names that file');


# --- crash and restart ---------------------------------------------------------------

# the gateway after a crash: a '\n' if the file does not end with one, then a
# restart record naming the partial bytes (without that last '\n')
sub restarted {
    my ($keep, $junk, %o) = @_;
    my $c = chain();
    seal($c, call_body($_)) for 1 .. 20;
    my $text = text(@{ $c->{lines} });
    my $offset = length $text;
    seal($c, call_body(21));
    my $partial = substr($c->{lines}[-1], 0, $keep) . $junk;
    pop @{ $c->{lines} };
    $c->{seq} = 20;
    $c->{hash} = $c->{hashes}{20};
    $text .= $partial;
    $text .= "\n" unless $partial =~ /\n\z/;
    (my $named = $partial) =~ s/\n\z//;
    my $sha = $o{sha} // sha256_hex($named);
    my $bytes = length($named) + ($o{extra} // 0);
    $c->{lines} = [];
    seal($c, qq("event":"restart","reason":"cut","partial":{"offset":$offset,)
             . qq("bytes":$bytes,"sha256":"$sha"}));
    seal($c, call_body($_)) for 22 .. 25;
    return $text . text(@{ $c->{lines} });
}

$t->write_file('restart.jsonl', restarted(120, ''));
($rc, $out) = verify("$d/restart.jsonl", '--key', "$d/audit.key");
is($rc, 0, 'a cut line named by a restart record') or diag $out;
like($out, qr/ok: 25 records \(seq 1\.\.25\), 0 checkpoints verified, 1 restart$/m,
     'one restart');

$t->write_file('restart2.jsonl', restarted(0, "\0\0\0\0garbage\n\n"));
($rc, $out) = verify("$d/restart2.jsonl", '--key', "$d/audit.key");
is($rc, 0, 'garbage lines named by a restart record') or diag $out;

broken('restart-sha', restarted(120, '', sha => 'a' x 64), 22,
       'seq 21: the 120 partial bytes the restart record names are not the bytes from '
       . 'line 21 on (the partial line was changed)');
broken('restart-bytes', restarted(120, '', extra => 1), 22, 'seq 21: the 121 partial bytes');


# --- a chain rewritten with the HMAC key, without the signing key ------------------

# record 15 changed, everything after re-sealed, every checkpoint signed anew
# with a key that is not the gateway's but claims its kid
{
    my $r = chain();
    for my $i (1 .. 30) {
        seal($r, call_body($i == 15 ? 1015 : $i));
        checkpoint($r, "$d/evil.pem", $kid) if $i % 10 == 0;
    }
    $t->write_file('rewritten.jsonl', text(@{ $r->{lines} }));
}
($rc, $out) = verify("$d/rewritten.jsonl", '--key', "$d/audit.key");
is($rc, 0, 'a rewritten chain passes the HMAC alone');
($rc, $out) = verify("$d/rewritten.jsonl", '--key', "$d/audit.key", '--jwks', "$d/gw.json");
is($rc, 1, 'but not the JWKS');
like($out, qr{rewritten\.jsonl:11: seq 11: the checkpoint's signature does not verify},
     'it fails at its first checkpoint');


# --- audit show -------------------------------------------------------------------

# every kind of record, one agent name with a terminal escape in it
{
    my $c = chain();
    seal($c, call_body(1));
    seal($c, qq("event":"result","request_id":"req-1","agent":"support-bot","tool":"payments",)
             . qq("action":{"method":"POST","host":"pay.example","path":"/v1/refunds/1"},)
             . qq("status":201,"latency_us":12345));
    seal($c, call_body(4));
    seal($c, qq("event":"call","request_id":"req-5","agent":"ops-bot","task":"t-42",)
             . qq("tool":"search","action":{"mcp_method":"tools/call","mcp_tool":"query"},)
             . qq("decision":"hold","rule":"needs-approval"));
    seal($c, qq("event":"approval","request_id":"req-5","agent":"ops-bot","tool":"search",)
             . qq("decision":"approved","approval":{"id":"ap-1","approver":"alice"}));
    seal($c, qq("event":"task","agent":"ops-bot","task":"t-42","op":"declare","by":"bob",)
             . qq("decision":"allow"));
    seal($c, '"event":"call","agent":"evil\\u001b[31m\\u009b2J","tool":"payments",'
             . '"action":{"method":"GET","host":"pay.example","path":"/x\\u0007"},'
             . '"decision":"monitor-deny","rule":"r"');
    checkpoint($c, "$d/gw.pem", $kid);
    $t->write_file('show.jsonl', text(@{ $c->{lines} }) . "not a record\n");
}

sub show {
    my ($rc, $out) = $t->run($cli, 'audit', 'show', "$d/show.jsonl", @_);
    return ($rc >> 8, $out);
}

($rc, $out) = show();
is($rc, 0, 'audit show');
my @rows = split /\n/, $out;
like($rows[0], qr/^SEQ\s+TIME\s+EVENT\s+DECISION\s+AGENT\s+TOOL\s+ACTION\s+RULE\s+STATUS$/,
     'a header');
like($rows[1], qr{^1\s+2026-11-23\ 10:00:00\.001\ call\s+allow\s+support-bot\s+payments\s+
                  POST\ /v1/refunds/1\s+refunds-small$}x, 'a call');
like($rows[2], qr{^2\s+\S+\ \S+\ result\s+-\s+support-bot\s+payments\s+POST\ /v1/refunds/1\s+
                  -\s+201\ 12\.3ms$}x, 'a result: status and latency');
like($rows[3], qr{^3 .* deny\s+support-bot}, 'a denied call');
like($rows[4], qr{^4 .* hold\s+ops-bot\s+search\s+tools/call query\s+needs-approval$},
     'an MCP call');
like($rows[5], qr{^5 .* approval\s+approved\s+ops-bot\s+search\s+approval ap-1 by alice},
     'an approval');
like($rows[6], qr{^6 .* task\s+allow\s+ops-bot\s+-\s+declare by bob}, 'a task operation');
like($rows[7], qr{^7 .* monitor-deny\s+evil\?\[31m\?2J\s+payments\s+GET /x\?\s+r$},
     'control characters are shown as ?');
like($rows[8], qr{^8 .* checkpoint\s+-\s+-\s+-\s+of seq 7\s+-$}, 'a checkpoint');
is(scalar @rows, 10, 'every record, and a note');
like($out, qr/show\.jsonl: 1 line that is not a record/, 'the line that is not a record');
unlike($out, qr/\e/, 'no escape sequence when standard output is not a terminal');

($rc, $out) = show('--agent', 'ops-bot');
is(scalar(() = $out =~ /^\d+ /mg), 3, '--agent');
($rc, $out) = show('--agent=ops-bot', '--event', 'task');
like($out, qr/^6 /m, '--agent and --event');
is(scalar(() = $out =~ /^\d+ /mg), 1, 'only that one');
($rc, $out) = show('--decision', 'deny');
like($out, qr/^3 /m, '--decision deny');
is(scalar(() = $out =~ /^\d+ /mg), 1, 'not monitor-deny');
($rc, $out) = show('--tool', 'search', '--task', 't-42');
is(scalar(() = $out =~ /^\d+ /mg), 1, '--tool and --task');
($rc, $out) = show('--event', 'checkpoint');
like($out, qr/^8 /m, '--event checkpoint');
($rc, $out) = show('--since', ts(6));
is(scalar(() = $out =~ /^\d+ /mg), 3, '--since: that record and the later ones');
($rc, $out) = show('--since', '2026-11-23T10:00:00.0075Z');
is(scalar(() = $out =~ /^\d+ /mg), 2, '--since with a fraction');

$out = `$cli audit show $d/show.jsonl --json --agent ops-bot 2>/dev/null`;
my @want = (split /\n/, $t->read_file('show.jsonl'))[3, 4, 5];
is($out, join('', map { "$_\n" } @want), '--json: the lines as they are');

for my $case (
    [ 'show: no file', [], qr/FILE is missing/ ],
    [ 'show: bad --since', [ "$d/show.jsonl", '--since', '2026-11-23' ], qr/--since 2026-11-23/ ],
    [ 'show: --since with an offset', [ "$d/show.jsonl", '--since', '2026-11-23T10:00:00+01:00' ],
      qr/in UTC/ ],
    [ 'show: unknown option', [ "$d/show.jsonl", '--colour' ], qr/unknown option --colour/ ],
    [ 'show: two files', [ "$d/show.jsonl", "$d/good.jsonl" ], qr/unexpected argument/ ],
    [ 'show: missing file', [ "$d/nothing.jsonl" ], qr/nothing\.jsonl: No such file/ ],
) {
    my ($name, $args, $want) = @$case;
    my ($rc, $out) = $t->run($cli, 'audit', 'show', @$args);
    is($rc >> 8, 2, "$name: exit 2");
    like($out, $want, "$name: says so") or diag $out;
}


# --- usage and I/O ------------------------------------------------------------------

for my $case (
    [ 'no --key', [ "$d/good.jsonl" ], qr/--key KEYFILE are needed/ ],
    [ 'no file', [ '--key', "$d/audit.key" ], qr/FILE\.\.\. and --key/ ],
    [ 'unknown option', [ "$d/good.jsonl", '--key', "$d/audit.key", '--fast' ],
      qr/unknown option --fast/ ],
    [ 'missing file', [ "$d/nothing.jsonl", '--key', "$d/audit.key" ],
      qr/nothing\.jsonl: No such file/ ],
    [ 'short key', [ "$d/good.jsonl", '--key', "$d/gw.json.short" ], qr/gw\.json\.short/ ],
    [ 'bad JWKS', [ "$d/good.jsonl", '--key', "$d/audit.key", '--jwks', "$d/audit.key" ],
      qr/audit\.key: JWKS/ ],
) {
    my ($name, $args, $want) = @$case;
    $t->write_file('gw.json.short', 'short');
    my ($rc, $out) = verify(@$args);
    is($rc, 2, "$name: exit 2");
    like($out, $want, "$name: says so") or diag $out;
}

($rc, $out) = $t->run($cli, 'audit');
is($rc >> 8, 2, 'audit without a subcommand');
($rc, $out) = $t->run($cli, 'audit', 'frob');
is($rc >> 8, 2, 'audit with an unknown subcommand');
like($out, qr/unknown subcommand frob/, 'names it');

done_testing;
