#!/usr/bin/perl
# The control API for tasks and the kill switch (SPEC section 4): declare,
# read, list with paging, renew, end, delegation, max_tasks, suspend/resume,
# stop/start, who may do what, and the JSON errors of section 9. Two workers,
# so every answer also proves the state is shared.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::Local qw(timegm);
use AgTest;

my $t = AgTest->new;

my $iss = 'agentgov-test';
sub agent_id { return { jwt => { iss => $iss, sub => $_[0] }, owner => $_[1] // 'team' } }

$t->policy({
    agentgov => 1,
    agents => {
        'support-bot' => agent_id('support-bot', 'team-support'),
        'helper-bot'  => agent_id('helper-bot'),
        'third-bot'   => agent_id('third-bot'),
        'report-bot'  => { %{ agent_id('report-bot', 'team-data') }, max_tasks => 2 },
        # an agent whose token also claims the admins' group: still an agent
        'sneaky-bot'  => agent_id('sneaky-bot'),
    },
    groups => {
        secops => [ { jwt => { iss => $iss, groups => 'secops' } } ],
        audit  => [ { jwt => { iss => $iss, groups => 'audit' } } ],
    },
    admins   => ['secops'],
    auditors => ['audit'],
    tools => { tickets => {}, payments => {}, files => {} },
    intents => {
        'triage-ticket' => { agents => ['support-bot', 'helper-bot', 'third-bot', 'sneaky-bot'],
                             tools => ['tickets', 'payments', 'files'],
                             max_ttl => '15m', max_depth => 1 },
        'short-job'     => { agents => ['support-bot'], tools => ['tickets'],
                             max_ttl => '10m', max_lifetime => '10m' },
        'weekly-report' => { agents => ['report-bot'], tools => ['tickets'], max_ttl => '1h' },
    },
    rules => [ { id => 'triage', effect => 'allow', intent => 'triage-ticket', tool => 'tickets' } ],
    default => 'deny',
});

$t->config(<<"EOF", workers => 2);
@{[ $t->gateway_http ]}
    client_body_buffer_size 1k;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
    }
EOF
$t->start;

my %jwt = map { $_ => $t->token(sub => $_) }
    qw(support-bot helper-bot third-bot report-bot);
$jwt{'sneaky-bot'} = $t->token(sub => 'sneaky-bot', groups => 'secops');
my $admin   = $t->token(sub => 'alice', groups => 'secops');
my $auditor = $t->token(sub => 'bob', groups => 'audit');
my $nobody  = $t->token(sub => 'carol', groups => 'marketing');

# who: an agent name, or [person => jwt]
sub call {
    my ($who, $method, $path, %o) = @_;
    my @h = ref $who ? ('Authorization' => "Bearer $who->[1]")
                     : ('Agent-Authorization' => "Bearer $jwt{$who}");
    push @h, 'Content-Type' => 'application/json' if exists $o{body};
    push @h, @{ $o{headers} // [] };
    return $t->request($method, "/agentgov/$path", headers => \@h,
                       exists $o{body} ? (body => $o{body}) : ());
}

my $ADMIN   = [person => $admin];
my $AUDITOR = [person => $auditor];
my $NOBODY  = [person => $nobody];

sub declare {
    my ($agent, $intent, %o) = @_;
    my $body = { intent => $intent, ttl => $o{ttl} // '5m' };
    $body->{tools} = $o{tools} if $o{tools};
    $body->{purpose} = $o{purpose} if $o{purpose};
    return call($agent, 'POST', 'v1/tasks', body => $body,
                headers => [ $o{parent} ? ('Agent-Task' => $o{parent}) : () ]);
}

sub refused {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status")
        or diag($r->{raw});
    is($r->{json}{error}, $code, "$name: $code");
    like($r->{json}{request_id} // '', qr/^[0-9a-f]{32}$/, "$name: request id");
    is($r->{headers}{'agent-decision'}, 'deny', "$name: Agent-Decision");
}

sub epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se) = ($s // '') =~
        /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/ or return undef;
    return timegm($se, $mi, $h, $d, $mo - 1, $y);
}

my $ID = qr/^[A-Za-z0-9_-]{22}$/;

# --- declare ---------------------------------------------------------------------

my $now = time;
my $r = declare('support-bot', 'triage-ticket', ttl => '10m', tools => ['tickets'],
                purpose => 'ticket 7');
is($r->{status}, 201, 'declare: 201') or diag($r->{raw});
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'declare: JSON');
is($r->{headers}{'cache-control'}, 'no-store', 'declare: never cached');
like($r->{body}, qr/\A[^\n]+\n\z/, 'declare: one line and a newline');
my $d = $r->{json};
like($d->{task} // '', $ID, 'declare: task id');
ok(length($d->{token} // '') > 20, 'declare: a token');
is($d->{intent}, 'triage-ticket', 'declare: intent');
is_deeply($d->{tools}, ['tickets'], 'declare: tools narrowed');
is($d->{depth}, 0, 'declare: depth 0');
ok(exists $d->{chain}, 'declare: chain');
my $exp = epoch($d->{expires_at});
ok($exp && abs($exp - ($now + 600)) <= 3, 'declare: expires_at is RFC 3339, now + ttl')
    or diag($d->{expires_at});
my $task = $d->{task};

$r = declare('support-bot', 'triage-ticket');
is($r->{status}, 201, 'declare without tools');
is_deeply([ sort @{ $r->{json}{tools} } ], [qw(files payments tickets)],
          'without tools: the intent\'s tools');

refused(declare('support-bot', 'triage-ticket', ttl => '16m'), 400, 'bad_request',
        'ttl over max_ttl');
refused(declare('report-bot', 'triage-ticket'), 403, 'denied', 'intent not allowed for the agent');
refused(declare('support-bot', 'no-such-intent'), 403, 'denied', 'unknown intent');
refused(declare('support-bot', 'short-job', tools => ['payments']), 403, 'denied',
        'tools outside the intent');
refused(call('support-bot', 'POST', 'v1/tasks', body => { intent => 'triage-ticket',
                                                          ttl => '5m', colour => 'red' }),
        400, 'bad_request', 'unknown key in the declaration');
refused(call('support-bot', 'POST', 'v1/tasks',
             body => '{"intent": "triage-ticket", "intent": "short-job", "ttl": "5m"}'),
        400, 'bad_request', 'duplicate keys');
refused(call('support-bot', 'POST', 'v1/tasks', body => '{"intent": '), 400, 'bad_request',
        'malformed JSON');
refused(call('support-bot', 'POST', 'v1/tasks', body => '["triage-ticket"]'), 400,
        'bad_request', 'not an object');
refused(call('support-bot', 'POST', 'v1/tasks'), 400, 'bad_request', 'no body');
refused(call('support-bot', 'POST', 'v1/tasks',
             body => '{"intent": "triage-ticket", "ttl": "5m", "purpose": "'
                     . ('x' x 70000) . '"}'),
        413, 'body_too_large', 'body over 64 KiB');
$r = $t->request('POST', '/agentgov/v1/tasks',
                 headers => ['Agent-Authorization' => "Bearer $jwt{'support-bot'}"],
                 body => '{"intent": "triage-ticket", "ttl": "5m", "purpose": "'
                         . ('x' x 70000) . '"}', chunked => 1, chunk => 4000);
refused($r, 413, 'body_too_large', 'chunked body over 64 KiB');
$r = $t->request('POST', '/agentgov/v1/tasks',
                 headers => ['Agent-Authorization' => "Bearer $jwt{'support-bot'}"],
                 body => '{"intent": "triage-ticket", "ttl": "5m"' . (' ' x 3000) . '}',
                 chunked => 1, chunk => 700);
is($r->{status}, 201, 'a chunked body over client_body_buffer_size is read whole');

refused(call($ADMIN, 'POST', 'v1/tasks', body => { intent => 'triage-ticket', ttl => '5m' }),
        403, 'denied', 'a person cannot declare');
refused($t->request('POST', '/agentgov/v1/tasks',
                    headers => ['Agent-Authorization' => "Bearer $jwt{'support-bot'}",
                                'Authorization' => "Bearer $admin"],
                    body => { intent => 'triage-ticket', ttl => '5m' }),
        400, 'bad_request', 'both Authorization and Agent-Authorization');
refused($t->request('POST', '/agentgov/v1/tasks',
                    body => { intent => 'triage-ticket', ttl => '5m' }),
        401, 'no_identity', 'no identity');

# --- read ------------------------------------------------------------------------------

$r = call('support-bot', 'GET', "v1/tasks/$task");
is($r->{status}, 200, 'read own task');
is($r->{json}{task}, $task, 'read: id');
is($r->{json}{agent}, 'support-bot', 'read: agent');
is($r->{json}{state}, 'live', 'read: live');
is($r->{json}{purpose}, 'ticket 7', 'read: purpose');
is($r->{json}{expires_at}, $d->{expires_at}, 'read: expires_at as declared');

refused(call('helper-bot', 'GET', "v1/tasks/$task"), 403, 'denied', 'read another agent\'s task');
refused(call('helper-bot', 'GET', 'v1/tasks/' . ('A' x 22)), 403, 'denied',
        'an agent cannot tell an unknown id from another agent\'s');
is(call($ADMIN, 'GET', "v1/tasks/$task")->{status}, 200, 'an admin reads any task');
is(call($AUDITOR, 'GET', "v1/tasks/$task")->{status}, 200, 'an auditor reads any task');
refused(call($NOBODY, 'GET', "v1/tasks/$task"), 403, 'denied', 'a person without a role');
refused(call($ADMIN, 'GET', 'v1/tasks/' . ('A' x 22)), 404, 'not_found', 'unknown id');
refused(call($ADMIN, 'GET', 'v1/tasks/not-an-id'), 404, 'not_found', 'malformed id');

# --- list and paging -----------------------------------------------------------------

my @mine = map { declare('helper-bot', 'triage-ticket')->{json}{task} } 1 .. 5;
$r = call('helper-bot', 'GET', 'v1/tasks');
is($r->{status}, 200, 'list own');
is_deeply([ sort map { $_->{task} } @{ $r->{json}{items} } ], [ sort @mine ],
          'an agent lists exactly its own tasks');
ok(!exists $r->{json}{next}, 'complete list: no next');
is(call('helper-bot', 'GET', 'v1/tasks?agent=helper-bot')->{status}, 200,
   'agent= itself');
refused(call('helper-bot', 'GET', 'v1/tasks?agent=support-bot'), 403, 'denied',
        'an agent cannot list another agent\'s tasks');

my (@seen, $cursor, $pages);
do {
    $r = call($ADMIN, 'GET', 'v1/tasks?agent=helper-bot&state=live&limit=2'
                             . ($cursor ? "&cursor=$cursor" : ''));
    is($r->{status}, 200, 'page ' . ++$pages);
    ok(@{ $r->{json}{items} } <= 2, "page $pages: at most limit items");
    push @seen, map { $_->{task} } @{ $r->{json}{items} };
    $cursor = $r->{json}{next};
} while ($cursor && $pages < 10);
is($pages, 3, 'five tasks in pages of two: three pages');
is_deeply([ sort @seen ], [ sort @mine ], 'paging returns every task once');

$r = call($AUDITOR, 'GET', 'v1/tasks?limit=1000');
ok(@{ $r->{json}{items} } >= 7, 'an auditor lists every agent\'s tasks');
my %agents = map { $_->{agent} => 1 } @{ $r->{json}{items} };
ok($agents{'support-bot'} && $agents{'helper-bot'}, 'all agents in one list');
refused(call($NOBODY, 'GET', 'v1/tasks'), 403, 'denied', 'a person without a role lists');
refused(call($ADMIN, 'GET', 'v1/tasks?state=sleeping'), 400, 'bad_request', 'unknown state');
refused(call($ADMIN, 'GET', 'v1/tasks?colour=red'), 400, 'bad_request', 'unknown parameter');
refused(call($ADMIN, 'GET', 'v1/tasks?limit=0'), 400, 'bad_request', 'limit 0');
refused(call($ADMIN, 'GET', 'v1/tasks?limit=2&limit=3'), 400, 'bad_request',
        'repeated parameter');
refused(call($ADMIN, 'GET', 'v1/tasks?cursor=..'), 400, 'bad_request', 'bad cursor');

# --- renew -----------------------------------------------------------------------------

$r = declare('support-bot', 'triage-ticket', ttl => '1m');
my ($rt, $rtok, $rexp) = ($r->{json}{task}, $r->{json}{token}, epoch($r->{json}{expires_at}));
$r = call('support-bot', 'POST', "v1/tasks/$rt/renew", body => { ttl => '10m' });
is($r->{status}, 200, 'renew: 200') or diag($r->{raw});
ok($r->{json}{token} && $r->{json}{token} ne $rtok, 'renew: a new token');
my $rexp2 = epoch($r->{json}{expires_at});
ok($rexp2 && $rexp2 > $rexp + 500, 'renew: later expires_at');
is(epoch(call('support-bot', 'GET', "v1/tasks/$rt")->{json}{expires_at}), $rexp2,
   'renew: the store has the new expiry');
is(call('support-bot', 'POST', "v1/tasks/$rt/renew")->{status}, 200,
   'renew without a body: the intent\'s max_ttl');
refused(call('support-bot', 'POST', "v1/tasks/$rt/renew", body => { ttl => '1h' }),
        400, 'bad_request', 'renew over max_ttl');
refused(call('support-bot', 'POST', "v1/tasks/$rt/renew", body => { ttl => '5m', x => 1 }),
        400, 'bad_request', 'renew with an unknown key');
refused(call('support-bot', 'POST', "v1/tasks/$rt/renew", body => { ttl => 600 }),
        400, 'bad_request', 'renew with a numeric ttl');
refused(call('helper-bot', 'POST', "v1/tasks/$rt/renew"), 403, 'denied',
        'renew another agent\'s task');
refused(call($ADMIN, 'POST', "v1/tasks/$rt/renew"), 403, 'denied', 'an admin cannot renew');

# capped by max_lifetime: short-job lives at most 10m from its first grant
$r = declare('support-bot', 'short-job', ttl => '1m');
my $st = $r->{json}{task};
my $granted = epoch(call('support-bot', 'GET', "v1/tasks/$st")->{json}{granted_at});
sleep 1;
$r = call('support-bot', 'POST', "v1/tasks/$st/renew", body => { ttl => '10m' });
is($r->{status}, 200, 'renew near max_lifetime');
is(epoch($r->{json}{expires_at}), $granted + 600, 'renew is capped at max_lifetime');

# --- end -------------------------------------------------------------------------------

$r = call('support-bot', 'DELETE', "v1/tasks/$rt");
is($r->{status}, 204, 'end own task: 204');
is($r->{body}, '', '204: no body');
is(call('support-bot', 'GET', "v1/tasks/$rt")->{json}{state}, 'ended', 'read shows ended');
ok(call('support-bot', 'GET', "v1/tasks/$rt")->{json}{ended_at}, 'ended_at set');
is(call('support-bot', 'DELETE', "v1/tasks/$rt")->{status}, 204, 'ending again: 204');
refused(call('support-bot', 'POST', "v1/tasks/$rt/renew"), 401, 'task_revoked',
        'an ended task cannot be renewed');
refused(call('helper-bot', 'DELETE', "v1/tasks/$task"), 403, 'denied',
        'an agent cannot end another agent\'s task');
refused(call($AUDITOR, 'DELETE', "v1/tasks/$task"), 403, 'denied', 'an auditor cannot end');
refused(call('support-bot', 'DELETE', "v1/tasks/$task", body => { why => 'done' }),
        400, 'bad_request', 'end with an unknown key');
is(call($ADMIN, 'DELETE', "v1/tasks/$task")->{status}, 204, 'an admin ends any task');
is(call($ADMIN, 'GET', "v1/tasks/$task")->{json}{state}, 'ended', 'admin-ended task is ended');
refused(call($ADMIN, 'DELETE', 'v1/tasks/' . ('B' x 22)), 404, 'not_found', 'end unknown id');

# --- delegation --------------------------------------------------------------------

$r = declare('support-bot', 'triage-ticket', ttl => '2m', tools => ['tickets', 'payments']);
my ($pt, $ptok, $pexp) = ($r->{json}{task}, $r->{json}{token}, epoch($r->{json}{expires_at}));
$r = declare('helper-bot', 'triage-ticket', ttl => '10m', tools => ['tickets'], parent => $ptok);
is($r->{status}, 201, 'child with narrower tools') or diag($r->{raw});
my ($ct, $ctok) = ($r->{json}{task}, $r->{json}{token});
is($r->{json}{depth}, 1, 'child: depth 1');
is($r->{json}{parent}, $pt, 'child: parent');
like($r->{json}{chain}, qr/support-bot>helper-bot/, 'child: chain');
ok(epoch($r->{json}{expires_at}) <= $pexp, 'a child never outlives its parent');
is(call('helper-bot', 'GET', "v1/tasks/$ct")->{json}{parent}, $pt, 'read child: parent');

refused(declare('helper-bot', 'triage-ticket', tools => ['tickets', 'files'], parent => $ptok),
        403, 'denied', 'child wider than its parent');
refused(declare('support-bot', 'short-job', parent => $ptok), 403, 'denied',
        'child with another intent');
refused(declare('third-bot', 'triage-ticket', tools => ['tickets'], parent => $ctok),
        403, 'denied', 'depth over max_depth');
refused(declare('helper-bot', 'triage-ticket', parent => 'not.a.token'), 401, 'no_task',
        'parent token that is not one');
refused(declare('helper-bot', 'triage-ticket', parent => $jwt{'support-bot'}), 401, 'no_task',
        'an identity JWT is not a task token');
my @jws = split /\./, $ptok;
substr($jws[2], 0, 1) = substr($jws[2], 0, 1) eq 'A' ? 'B' : 'A';
my $forged = join '.', @jws;
refused(declare('helper-bot', 'triage-ticket', parent => $forged), 401, 'no_task',
        'tampered parent token');

is(call('support-bot', 'DELETE', "v1/tasks/$pt")->{status}, 204, 'end the parent');
is(call('helper-bot', 'GET', "v1/tasks/$ct")->{json}{state}, 'ended',
   'ending the parent ends the child');
refused(declare('helper-bot', 'triage-ticket', tools => ['tickets'], parent => $ptok),
        401, 'task_revoked', 'an ended parent cannot delegate');

# --- max_tasks -----------------------------------------------------------------------

my @rep = map { declare('report-bot', 'weekly-report')->{json}{task} } 1 .. 2;
refused(declare('report-bot', 'weekly-report'), 429, 'limit_exceeded', 'over max_tasks');
is(call('report-bot', 'DELETE', "v1/tasks/$rep[0]")->{status}, 204, 'end one');
is(declare('report-bot', 'weekly-report')->{status}, 201, 'room again after ending one');

# --- suspend and resume ----------------------------------------------------------------

my @live = map { declare('support-bot', 'triage-ticket')->{json}{task} } 1 .. 2;
refused(call('sneaky-bot', 'POST', 'v1/agents/support-bot/suspend'), 403, 'denied',
        'an agent cannot suspend, whatever its groups');
refused(call($AUDITOR, 'POST', 'v1/agents/support-bot/suspend'), 403, 'denied',
        'an auditor cannot suspend');
refused(call($ADMIN, 'POST', 'v1/agents/nobody-bot/suspend'), 404, 'not_found',
        'suspend an agent the policy does not know');
refused(call($ADMIN, 'POST', 'v1/agents/support-bot/suspend', body => { reason => 'x' }),
        400, 'bad_request', 'suspend with an unknown key');

$r = call($ADMIN, 'POST', 'v1/agents/support-bot/suspend');
is($r->{status}, 200, 'suspend: 200') or diag($r->{raw});
is($r->{json}{agent}, 'support-bot', 'suspend: agent');
ok($r->{json}{suspended} && $r->{json}{suspended} ne 'false', 'suspend: suspended');
ok($r->{json}{tasks_revoked} >= 2, 'suspend: tasks revoked');
is(call($ADMIN, 'GET', "v1/tasks/$live[0]")->{json}{state}, 'revoked',
   'a suspended agent\'s task is revoked');
refused(declare('support-bot', 'triage-ticket'), 403, 'agent_suspended',
        'a suspended agent cannot declare');
refused(call('support-bot', 'POST', "v1/tasks/$st/renew"), 403, 'agent_suspended',
        'a suspended agent cannot renew');
is(declare('helper-bot', 'triage-ticket')->{status}, 201, 'other agents are not affected');

$r = call($ADMIN, 'POST', 'v1/agents/support-bot/resume');
is($r->{status}, 200, 'resume: 200');
ok(!$r->{json}{suspended}, 'resume: not suspended');
is($r->{json}{tasks_revoked}, 0, 'resume: nothing revoked');
is(declare('support-bot', 'triage-ticket')->{status}, 201, 'declare after resume');
is(call($ADMIN, 'GET', "v1/tasks/$live[0]")->{json}{state}, 'revoked',
   'resume does not revive revoked tasks');

# --- stop and start ----------------------------------------------------------------------

my $before = declare('helper-bot', 'triage-ticket')->{json}{task};
refused(call('helper-bot', 'POST', 'v1/stop'), 403, 'denied', 'an agent cannot stop');
refused(call($AUDITOR, 'POST', 'v1/stop'), 403, 'denied', 'an auditor cannot stop');
$r = call($ADMIN, 'POST', 'v1/stop');
is($r->{status}, 200, 'stop: 200');
ok($r->{json}{stopped}, 'stop: stopped');
ok($r->{json}{tasks_revoked} >= 1, 'stop: tasks revoked');
is(call($ADMIN, 'GET', "v1/tasks/$before")->{json}{state}, 'revoked', 'stop revokes every task');
refused(declare('helper-bot', 'triage-ticket'), 403, 'agent_suspended', 'nothing declares while stopped');
refused(declare('report-bot', 'weekly-report'), 403, 'agent_suspended', 'no agent at all');
$r = call($ADMIN, 'POST', 'v1/start');
is($r->{status}, 200, 'start: 200');
ok(!$r->{json}{stopped}, 'start: not stopped');
is(declare('helper-bot', 'triage-ticket')->{status}, 201, 'declare after start');

# --- routes and methods --------------------------------------------------------------

refused(call($ADMIN, 'GET', 'v1/nothing'), 404, 'not_found', 'unknown route');
refused(call($ADMIN, 'GET', 'v2/tasks'), 404, 'not_found', 'unknown version');
refused(call($ADMIN, 'POST', "v1/tasks/$st/extend"), 404, 'not_found', 'unknown task action');
$r = call($ADMIN, 'PUT', 'v1/tasks', body => {});
refused($r, 405, 'method_not_allowed', 'PUT v1/tasks');
is($r->{headers}{allow}, 'GET, POST', '405: Allow');
$r = call($ADMIN, 'GET', 'v1/stop');
refused($r, 405, 'method_not_allowed', 'GET v1/stop');
is($r->{headers}{allow}, 'POST', '405: Allow POST');
$r = call('support-bot', 'POST', "v1/tasks/$st");
is($r->{headers}{allow}, 'GET, DELETE', '405 on a task: Allow GET, DELETE');

unlike($t->error_log, qr/\beyJ[\w-]+\.[\w-]+/, 'no token in the error log');
unlike($t->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts');

# --- configuration -----------------------------------------------------------------------

$t->stop;
my (undef, $jwks) = $t->issuer_key;
$t->config(<<"EOF");
    agentgov_policy policy.json;
    agentgov_trust  $iss $jwks;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        location /agentgov/ { agentgov_api; }
    }
EOF
my ($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'agentgov_api without zone and key fails nginx -t');
like($out, qr/"agentgov_api" in location "\/agentgov\/" needs "agentgov_zone" and "agentgov_signing_key"/,
     'the error says what is missing');

# --- a task declared with a client certificate is renewed only with it ----------

my $m = AgTest->new;
my $md = $m->dir;

sub ssl {
    my ($rc, $o) = $m->run('openssl', @_);
    die "openssl @_: $o" if $rc;
}

sub cert {
    my ($name, $san) = @_;
    $m->write_file("$name.ext", "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   . "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=$san\n");
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$md/$name.key", '-out', "$md/$name.csr", '-subj', "/CN=$name");
    ssl('x509', '-req', '-in', "$md/$name.csr", '-CA', "$md/ca.pem", '-CAkey', "$md/ca.key",
        '-CAcreateserial', '-out', "$md/$name.pem", '-days', '1', '-extfile', "$md/$name.ext");
}

ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', "$md/ca.key", '-out', "$md/ca.pem", '-days', '2', '-subj', '/CN=ca',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
cert('server', 'DNS:localhost');
cert('bot', 'URI:spiffe://example.org/agent/bot');
cert('bot-again', 'URI:spiffe://example.org/agent/bot');

$m->policy({
    agentgov => 1,
    agents => { bot => { spiffe => 'spiffe://example.org/agent/bot', owner => 'o' } },
    tools => { tickets => {} },
    intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [],
});
$m->config(<<"EOF2");
@{[ $m->gateway_http ]}
    agentgov_trust  spiffe://example.org ca.pem;
    server {
        listen 127.0.0.1:@{[ $m->port ]} ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_client_certificate ca.pem;
        ssl_verify_client optional;
@{[ $m->api_location ]}
    }
EOF2
$m->start;

sub tls {
    my ($cert, $method, $path, $body) = @_;
    my @cmd = ('curl', '-s', '-k', '-o', "$md/curl.out", '-w', '%{http_code}',
               '-X', $method, '--cert', "$md/$cert.pem", '--key', "$md/$cert.key",
               "https://127.0.0.1:@{[ $m->port ]}/agentgov/$path");
    push @cmd, '-H', 'Content-Type: application/json', '--data-binary', $body
        if defined $body;
    my (undef, $code) = $m->run(@cmd);
    return ($code, eval { $AgTest::JSON->decode($m->read_file('curl.out') // '') });
}

my ($code, $j) = tls('bot', 'POST', 'v1/tasks', '{"intent": "work", "ttl": "10m"}');
is($code, 201, 'mTLS: declare with a certificate');
my $mt = $j->{task};
($code, $j) = tls('bot', 'POST', "v1/tasks/$mt/renew");
is($code, 200, 'mTLS: renew with the same certificate');
($code, $j) = tls('bot-again', 'POST', "v1/tasks/$mt/renew");
is($code, 403, 'mTLS: renew with another certificate of the same agent is refused');
is($j->{error}, 'denied', 'mTLS: denied');
($code, $j) = tls('bot-again', 'GET', "v1/tasks/$mt");
is($code, 200, 'mTLS: the agent still reads its task');
($code, $j) = tls('bot-again', 'DELETE', "v1/tasks/$mt");
is($code, 204, 'mTLS: and may end it');

done_testing();
