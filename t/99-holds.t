#!/usr/bin/perl
# Holds (SPEC section 6), first part: a held call waits, live, until an
# approver decides from the API (on either of two workers), expires, or its
# client goes away; who may decide; the first decision wins; two-person
# rules; max_pending; every transition in the audit log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $iss = 'agentgov-test';

$t->policy({
    agentgov => 1,
    agents => {
        bot   => { jwt => { iss => $iss, sub => 'bot' }, owner => 'team', max_pending => 2 },
    },
    groups => {
        finance => [ { jwt => { iss => $iss, groups => 'finance' } } ],
        secops  => [ { jwt => { iss => $iss, groups => 'secops' } } ],
        team    => [ { jwt => { iss => $iss, groups => 'team' } } ],
    },
    auditors => ['secops'],
    admins => ['secops'],
    tools => { pay => { allow_secrets => ['github_token'] } },
    intents => { work => { agents => ['bot'], tools => ['pay'], max_ttl => '1h' } },
    rules => [
        { id => 'refund', effect => 'hold', tool => 'pay', method => 'POST', path => '/v1/refunds',
          approvers => ['finance'], reason => 'refunds need finance' },
        { id => 'transfer', effect => 'hold', tool => 'pay', method => 'POST', path => '/v1/transfers',
          approvers => ['finance'], when => { 'body:/amount' => { gt => 100 } } },
        { id => 'payout', effect => 'hold', tool => 'pay', method => 'POST', path => '/v1/payouts',
          approvers => ['finance'], approvals => 2 },
        { id => 'all', effect => 'allow', tool => 'pay' },
    ],
});

$t->config(<<"EOF2", workers => 2);
@{[ $t->gateway_http(audit => 1) ]}
    agentgov_hold_timeout 4s;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        send_timeout 1s;
@{[ $t->api_location ]}
        location /tools/pay/ { agentgov on; agentgov_tool pay; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF2
$t->start_echo->start;

my @h = $t->agent_headers(sub => 'bot', intent => 'work');
my $fay = $t->token(sub => 'fay', groups => 'finance');
my $fred = $t->token(sub => 'fred', groups => 'finance');
my $sam = $t->token(sub => 'sam', groups => 'secops');

my $n = 0;

# A held call in a child process; returns a sub that waits for its answer.
sub held_call {
    my ($path, @hh) = @_;
    @hh = @h unless @hh;
    my $file = $t->dir . '/held.' . ++$n;
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = $t->request('POST', $path, headers => [@hh, 'Content-Type' => 'application/json'],
                            body => { amount => 9000 });
        $t->write_file($file, $AgTest::JSON->encode({ status => $r->{status}, json => $r->{json},
            approval => $r->{headers}{'agent-approval'}, decision => $r->{headers}{'agent-decision'} }));
        POSIX::_exit(0);
    }
    return sub { waitpid $pid, 0; $AgTest::JSON->decode($t->read_file($file)) };
}

sub api {
    my ($method, $path, $jwt, $body, @more) = @_;
    return $t->request($method, "/agentgov/$path",
                       headers => ['Authorization' => "Bearer $jwt",
                                   $body ? ('Content-Type' => 'application/json') : (), @more],
                       $body ? (body => $body) : ());
}

sub pending_id {
    for (1 .. 50) {
        my $r = api('GET', 'v1/approvals?state=pending', $fay);
        my @items = @{ $r->{json}{items} // [] };
        return $items[0]{id} if @items;
        sleep 0.05;
    }
    return undef;
}

# --- approved ------------------------------------------------------------------------

my $wait = held_call('/tools/pay/v1/refunds');
my $id = pending_id();
like($id // '', qr/^[A-Za-z0-9_-]{22}$/, 'a held call is pending');
my $r = api('GET', "v1/approvals/$id", $fay);
is($r->{json}{state}, 'pending', 'an approver reads it');
like($t->request('GET', '/agentgov/metrics')->{body}, qr/^agentgov_pending_holds 1$/m,
     'the metrics count it');
is($r->{json}{agent}, 'bot', 'agent');
is($r->{json}{owner}, 'team', 'owner');
is($r->{json}{tool}, 'pay', 'tool');
is_deeply($r->{json}{action}, { method => 'POST', host => 'localhost', path => '/v1/refunds' }, 'action');
is($r->{json}{rules}, 'refund', 'rule');
is($r->{json}{reason}, 'refunds need finance', 'reason');
ok(!(grep { /v1\/refunds/ } map { $_->{target} } @{ $t->echo_log }), 'nothing reached the tool yet');

$r = api('POST', "v1/approvals/$id", $sam, { decision => 'approve' });
is($r->{status}, 403, 'someone outside the rule\'s approvers: 403');
$r = $t->request('POST', "/agentgov/v1/approvals/$id",
                 headers => [@h[0, 1], 'Content-Type' => 'application/json'], body => { decision => 'approve' });
is($r->{status}, 403, 'an agent never approves');
$r = api('POST', "v1/approvals/$id", $fay, { decision => 'maybe' });
is($r->{status}, 400, 'a decision is approve or deny');

my $t0 = time;
$r = api('POST', "v1/approvals/$id", $fay, { decision => 'approve', reason => 'customer verified' });
is($r->{status}, 200, 'an approver approves');
is($r->{json}{state}, 'approved', 'approved');
my $res = $wait->();
my $dt = time - $t0;
is($res->{status}, 200, 'the held call goes on to the tool');
is($res->{approval}, $id, 'with Agent-Approval');
ok($dt < 2, sprintf('resumed %.0f ms after the decision', $dt * 1000));
$r = api('POST', "v1/approvals/$id", $fred, { decision => 'deny' });
is($r->{status}, 409, 'a decision on a closed hold: 409');

# --- what an approver is shown ----------------------------------------------------------------

{
    my $tokenish = 'ghp_' . ('Zz9' x 12);
    $wait = held_call('/tools/pay/v1/transfers');
    $id = pending_id();
    api('POST', "v1/approvals/$id", $fay, { decision => 'deny' });
    $wait->();
    my $body = $AgTest::JSON->encode({ amount => 250, note => "key $tokenish", pad => 'p' x 3000 });
    my $pid = fork // die;
    if ($pid == 0) {
        $t->request('POST', '/tools/pay/v1/transfers', headers => [@h, 'Content-Type' => 'application/json'],
                    body => $body);
        POSIX::_exit(0);
    }
    $id = pending_id();
    $r = api('GET', "v1/approvals/$id", $fay);
    is_deeply($r->{json}{values}, { 'body:/amount' => 250 }, 'first the values the rules read');
    is(length $r->{json}{preview}, 2048, 'then the first 2 KiB of the body');
    like($r->{json}{preview}, qr/^\{"amount":250/, '... from its start');
    unlike($r->{json}{preview}, qr/Zz9Zz9/, '... with secrets overwritten');
    like($r->{json}{preview}, qr/key \*{40}/, '... by stars');
    api('POST', "v1/approvals/$id", $fay, { decision => 'deny' });
    waitpid $pid, 0;
}

# --- denied ----------------------------------------------------------------------------

$wait = held_call('/tools/pay/v1/refunds');
$id = pending_id();
$r = api('POST', "v1/approvals/$id", $fred, { decision => 'deny', reason => 'no' });
is($r->{json}{state}, 'denied', 'denied');
$res = $wait->();
is($res->{status}, 403, 'the held call is refused');
is($res->{json}{error}, 'approval_denied', 'approval_denied');
is($res->{decision}, 'denied', 'Agent-Decision: denied');

# --- two people ------------------------------------------------------------------------

$wait = held_call('/tools/pay/v1/payouts');
$id = pending_id();
$r = api('POST', "v1/approvals/$id", $fay, { decision => 'approve' });
is($r->{json}{state}, 'pending', 'one of two approvals: still pending');
$r = api('POST', "v1/approvals/$id", $fay, { decision => 'approve' });
is($r->{status}, 409, 'the same person twice: 409');
$r = api('POST', "v1/approvals/$id", $fred, { decision => 'approve' });
is($r->{json}{state}, 'approved', 'a second person completes it');
is($wait->()->{status}, 200, 'the call goes on');

# --- expired ---------------------------------------------------------------------------

$t0 = time;
$r = $t->request('POST', '/tools/pay/v1/refunds', headers => [@h, 'Content-Type' => 'application/json'],
                 body => { amount => 1 });
is($r->{status}, 403, 'no decision in time');
is($r->{json}{error}, 'approval_expired', 'approval_expired');
ok(time - $t0 >= 3.9, 'after agentgov_hold_timeout, though send_timeout is shorter');

# --- the client goes away ----------------------------------------------------------------

{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port) or die;
    my $body = '{"amount": 5}';
    print $s "POST /tools/pay/v1/refunds HTTP/1.1\r\nHost: localhost\r\n"
           . "Agent-Authorization: $h[1]\r\nAgent-Task: $h[3]\r\n"
           . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    $id = pending_id();
    close $s;
    my $state = '';
    for (1 .. 50) {
        $state = api('GET', "v1/approvals/$id", $fay)->{json}{state};
        last if $state ne 'pending';
        sleep 0.05;
    }
    is($state, 'cancelled', 'a client that goes away cancels its hold');
}

# --- max_pending ---------------------------------------------------------------------------

my @w = (held_call('/tools/pay/v1/refunds'), held_call('/tools/pay/v1/refunds'));
for (1 .. 50) { last if @{ api('GET', 'v1/approvals?state=pending', $fay)->{json}{items} } == 2; sleep 0.05 }
$r = $t->request('POST', '/tools/pay/v1/refunds', headers => [@h, 'Content-Type' => 'application/json'],
                 body => { amount => 1 });
is($r->{status}, 429, 'over max_pending: 429');
is($r->{json}{error}, 'limit_exceeded', 'limit_exceeded');
for my $item (@{ api('GET', 'v1/approvals?state=pending', $fay)->{json}{items} }) {
    api('POST', "v1/approvals/$item->{id}", $fay, { decision => 'deny' });
}
is($_->()->{json}{error}, 'approval_denied', 'the pending ones denied') for @w;

# --- who sees what ---------------------------------------------------------------------------

$r = api('GET', 'v1/approvals', $sam);
ok(@{ $r->{json}{items} } >= 6, 'an auditor sees every hold');
$r = api('GET', 'v1/approvals?state=approved', $fay);
is(scalar @{ $r->{json}{items} }, 2, 'filter by state');
$r = api('GET', 'v1/approvals/AAAAAAAAAAAAAAAAAAAAAA', $fay);
is($r->{status}, 404, 'unknown: 404');
$r = api('GET', 'v1/approvals?state=nope', $fay);
is($r->{status}, 400, 'a bad state: 400');

# --- async: 202 at once, then a one-time grant for exactly that call ------------------------

{
    my @pref = (@h, 'Content-Type' => 'application/json', 'Prefer' => 'respond-async');
    my $body = { amount => 7000, to => 'acct-1' };
    $r = $t->request('POST', '/tools/pay/v1/refunds', headers => \@pref, body => $body);
    is($r->{status}, 202, 'Prefer: respond-async: 202 at once');
    is($r->{headers}{'agent-decision'}, 'hold', 'Agent-Decision: hold');
    my $aid = $r->{json}{approval};
    is($r->{json}{status}, "/agentgov/v1/approvals/$aid", 'and where to look');
    $r = $t->request('GET', "/agentgov/v1/approvals/$aid", headers => [@h[0, 1]]);
    is($r->{json}{state}, 'pending', 'the agent reads its own approval');

    my @grant = (@h, 'Content-Type' => 'application/json', 'Agent-Approval' => $aid);
    $r = $t->request('POST', '/tools/pay/v1/refunds', headers => \@grant, body => $body);
    is($r->{status}, 403, 'before approval the grant is refused');

    api('POST', "v1/approvals/$aid", $fay, { decision => 'approve' });
    $r = $t->request('POST', '/tools/pay/v1/refunds', headers => \@grant,
                     body => { amount => 7000, to => 'acct-2' });
    is($r->{status}, 403, 'a different call: refused');
    $r = $t->request('POST', '/tools/pay/v1/refunds?x=1', headers => \@grant, body => $body);
    is($r->{status}, 403, 'another query: refused');
    $r = $t->request('POST', '/tools/pay/v1/refunds', headers => \@grant, body => $body);
    is($r->{status}, 200, 'the identical call passes once approved');
    is($r->{headers}{'agent-approval'}, $aid, 'with Agent-Approval');
    my $e = AgTest::echoed($r);
    ok(!exists $e->{h}{'agent-approval'}, 'the tool never sees the header');
    $r = $t->request('POST', '/tools/pay/v1/refunds', headers => \@grant, body => $body);
    is($r->{status}, 403, 'honoured once');
}

# --- a reload while a call is held ---------------------------------------------------------

$wait = held_call('/tools/pay/v1/refunds');
$id = pending_id();
$t->reload;
sleep 0.5;
$r = api('POST', "v1/approvals/$id", $fay, { decision => 'approve' });
is($r->{json}{state}, 'approved', 'approved after a reload (by a new worker)');
$res = $wait->();
is($res->{status}, 200, 'the old worker still holding the call lets it go on');
is($res->{approval}, $id, 'with Agent-Approval');

# --- the worker holding the call is killed -------------------------------------------------

$wait = held_call('/tools/pay/v1/refunds');
$id = pending_id();
ok(scalar $t->kill_workers, 'SIGKILL to the workers');
$res = $wait->();
ok(!$res->{status} || $res->{status} != 200, 'a call whose worker died never passes');
sleep 0.3;
my $state = '';
for (1 .. 50) {
    $state = api('GET', 'v1/approvals', $sam)->{json}{items}[0]{state} // '';
    last if $state eq 'cancelled';
    sleep 0.1;
}
is(api('GET', "v1/approvals/$id", $fay)->{json}{state}, 'cancelled',
   'a hold whose worker was killed does not stay pending');
sleep 0.2;
ok((grep { $_->{event} eq 'approval' && $_->{decision} eq 'cancelled'
           && ($_->{approval}{id} // '') eq $id } $t->audit_records),
   'and its cancellation is recorded');

# --- an ended task or a suspended agent cancels its holds --------------------------------

{
    my $jwt = $t->token(sub => 'bot');
    my $d = $t->declare(jwt => $jwt, intent => 'work', want_response => 1);
    my @h2 = ('Agent-Authorization' => "Bearer $jwt", 'Agent-Task' => $d->{json}{token});
    $wait = held_call('/tools/pay/v1/refunds', @h2);
    $id = pending_id();
    $r = $t->request('DELETE', "/agentgov/v1/tasks/$d->{json}{task}", headers => [@h2[0, 1]]);
    is($r->{status}, 204, 'the task of a held call ends');
    $res = $wait->();
    is($res->{status}, 401, 'the held call is refused');
    is($res->{json}{error}, 'task_revoked', 'task_revoked');
    is(api('GET', "v1/approvals/$id", $fay)->{json}{state}, 'cancelled', 'its hold is cancelled');

    $wait = held_call('/tools/pay/v1/refunds');
    $id = pending_id();
    $r = api('POST', 'v1/agents/bot/suspend', $sam);
    is($r->{status}, 200, 'the agent of a held call is suspended');
    $res = $wait->();
    is($res->{status}, 403, 'the held call is refused');
    is($res->{json}{error}, 'agent_suspended', 'agent_suspended');
    is(api('GET', "v1/approvals/$id", $fay)->{json}{state}, 'cancelled', 'its hold is cancelled');
    is(api('POST', "v1/approvals/$id", $fay, { decision => 'approve' })->{status}, 409,
       'and can no longer be approved');
    api('POST', 'v1/agents/bot/resume', $sam);
}

# --- the audit log -------------------------------------------------------------------------

sleep 0.3;
my @recs = $t->audit_records;
my @appr = grep { $_->{event} eq 'approval' } @recs;
ok((grep { $_->{decision} eq 'approved' && ($_->{approval}{approver} // '') eq "$iss|fay"
           && ($_->{approval}{reason} // '') eq 'customer verified' } @appr),
   'an approval record names the approver and the reason');
ok((grep { $_->{decision} eq 'denied' } @appr), 'a denial');
ok((grep { $_->{decision} eq 'expired' } @appr), 'an expiry');
ok((grep { $_->{decision} eq 'cancelled' } @appr), 'a cancellation');
ok((grep { $_->{event} eq 'call' && $_->{decision} eq 'hold' && $_->{approval}{id} } @recs),
   'the held call\'s record names its approval');
is($t->audit_check, '', 'the chain verifies');

done_testing;
