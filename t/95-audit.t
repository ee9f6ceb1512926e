#!/usr/bin/perl
# The audit log's records (SPEC section 8): the policy record at start and
# reload, a call's record before it goes on and its result after, refusals of
# every kind, task and agent events, monitor mode; no secret value in the
# audit file or the error log; the audit API for auditors, the checkpoint
# API, metrics and health. Two workers, one chain.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $iss = 'agentgov-test';

$t->policy({
    agentgov => 1,
    agents => {
        bot   => { jwt => { iss => $iss, sub => 'bot' }, owner => 'team-a' },
        other => { jwt => { iss => $iss, sub => 'other' }, owner => 'team-b' },
    },
    groups => {
        secops => [ { jwt => { iss => $iss, groups => 'secops' } } ],
        audit  => [ { jwt => { iss => $iss, groups => 'audit' } } ],
    },
    admins   => ['secops'],
    auditors => ['audit'],
    tools => { tickets => {}, wiki => {} },
    intents => { work => { agents => ['bot', 'other'], tools => ['tickets', 'wiki'], max_ttl => '1h' } },
    rules => [
        { id => 'no-export', effect => 'deny', tool => 'tickets', path => '/export/**',
          reason => 'bulk export is never part of a task', tags => ['OWASP-AGENTIC-A03', 'T2'] },
        { id => 'big-amounts', effect => 'deny', tool => 'tickets', method => 'POST', path => '/v1/refunds',
          when => { 'body:/amount' => { gt => 1000 } } },
        { id => 'all', effect => 'allow', tool => ['tickets', 'wiki'] },
    ],
});

sub conf {
    $t->config(<<"EOF", workers => 2);
@{[ $t->gateway_http(audit => 1) ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location /tools/tickets/ { agentgov on; agentgov_tool tickets; proxy_pass http://127.0.0.1:$echo/; }
        location /tools/wiki/ { agentgov monitor; agentgov_tool wiki; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF
}

conf();
$t->start_echo->start;

my $admin   = $t->token(sub => 'alice', groups => 'secops');
my $auditor = $t->token(sub => 'bob', groups => 'audit');
my $nobody  = $t->token(sub => 'carol', groups => 'marketing');

# The records written after `$n` records, once the workers' queued results
# are out (they follow within an event loop iteration).
sub records_after {
    my ($n) = @_;
    sleep 0.2;
    my @r = $t->audit_records;
    return @r[$n .. $#r];
}

sub count { scalar(my @r = $t->audit_records) }

# --- start ------------------------------------------------------------------------

my @recs = $t->audit_records;
is(scalar @recs, 1, 'one record at start');
is($recs[0]{event}, 'policy', 'it is the policy record');
is($recs[0]{seq}, 1, 'the chain starts at seq 1');
is($recs[0]{prev}, '0' x 64, 'with 64 zeros as prev');
is($recs[0]{policy}{sha256}, sha256_hex($t->read_file('policy.json')),
   'naming the SHA-256 of the policy file');
is($recs[0]{reason}, 'start', 'at start');
like($recs[0]{ts}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'ts is RFC 3339 with microseconds');

# --- a call and its result ----------------------------------------------------------

my @h = $t->agent_headers(sub => 'bot', intent => 'work');
my $n = count();
my @task = records_after($n - 1);
is($task[0]{event}, 'task', 'the declaration is recorded');
is($task[0]{op}, 'declare', '... as declare');
is($task[0]{decision}, 'allow', '... allowed');
is($task[0]{agent}, 'bot', '... by its agent');
like($task[0]{task}, qr/^[A-Za-z0-9_-]{22}$/, '... with the task id');
my $task_id = $task[0]{task};

my $r = $t->request('GET', '/tools/tickets/v1/items?limit=3', headers => \@h);
is($r->{status}, 200, 'allowed call');
my @new = records_after($n);
is(scalar @new, 2, 'a call record and a result record');
my ($call, $result) = @new;
is($call->{event}, 'call', 'call record');
is($call->{decision}, 'allow', 'decision allow');
is($call->{rule}, 'all', 'the deciding rule');
is($call->{agent}, 'bot', 'agent');
is($call->{owner}, 'team-a', 'owner');
is($call->{task}, $task_id, 'task');
is($call->{intent}, 'work', 'intent');
is($call->{tool}, 'tickets', 'tool');
is_deeply($call->{action}, { method => 'GET', host => 'localhost', path => '/v1/items' },
          'action: method, host and the relative path (no query)');
ok(!exists $call->{status}, 'a forwarded call has its status in the result');
is($result->{event}, 'result', 'result record');
is($result->{request_id}, $call->{request_id}, 'linked by request_id');
like($call->{request_id}, qr/^[0-9a-f]{32}$/, 'request id');
is($call->{request_id}, $r->{json}{request_id} // $call->{request_id}, 'the id the agent was given');
is($result->{status}, 200, 'result status');
ok($result->{latency_us} > 0, 'result latency_us');
is($result->{seq}, $call->{seq} + 1, 'one chain');
my @all = $t->audit_records;
is($call->{prev}, $all[$call->{seq} - 2]{hash}, 'prev is the hash of the record before');

# --- refusals ---------------------------------------------------------------------------

$n = count();
$r = $t->request('GET', '/tools/tickets/export/all', headers => \@h);
is($r->{status}, 403, 'denied by rule');
($call) = records_after($n);
is($call->{decision}, 'deny', 'deny recorded');
is($call->{rule}, 'no-export', 'with its rule');
is($call->{reason}, 'bulk export is never part of a task', 'and its reason');
is($call->{error}, 'denied', 'and the error code');
is_deeply($call->{tags}, ['OWASP-AGENTIC-A03', 'T2'], 'the rule\'s tags');
is($call->{status}, 403, 'the status the agent got');
is(scalar(my @x = records_after($n)), 1, 'no result record for a refusal');

$n = count();
$r = $t->request('GET', '/tools/tickets/v1/items');
is($r->{status}, 401, 'no identity');
($call) = records_after($n);
is($call->{decision}, 'deny', 'recorded too');
is($call->{error}, 'no_identity', 'with its code');
ok(!exists $call->{agent}, 'and no agent');

my $body = '{"amount": 5000, "note": "x"}';
$n = count();
$r = $t->request('POST', '/tools/tickets/v1/refunds', headers => [@h, 'Content-Type' => 'application/json'],
                 body => $body);
is($r->{status}, 403, 'denied on the body');
($call) = records_after($n);
is($call->{args_sha256}, sha256_hex($body), 'args_sha256 is the body\'s SHA-256');
is($call->{rule}, 'big-amounts', 'body rule');

# --- monitor ------------------------------------------------------------------------------

$n = count();
$r = $t->request('GET', '/tools/wiki/page', headers => [@h[0, 1]]);
is($r->{status}, 200, 'monitor lets a refusal pass');
@new = records_after($n);
is($new[0]{decision}, 'monitor-deny', 'recorded as monitor-deny');
is($new[0]{error}, 'no_task', 'with the would-be code');
is($new[1]{event}, 'result', 'and it has a result');

# --- no secret value --------------------------------------------------------------------

my $planted = 'AKIAZZZZ7PLANTED0KEY';
my $gh = 'ghp_PLANTEDsecretVALUE0123456789abcdefAB';
$r = $t->request('POST', "/tools/tickets/v1/notes?api_key=$gh", headers => [@h,
                 'Content-Type' => 'application/json', 'X-Api-Key' => $planted,
                 'Cookie' => "session=$gh"],
                 body => qq({"note": "$planted $gh"}));
is($r->{status}, 403, 'a call carrying planted keys is refused') or diag($r->{raw});
is($r->{json}{error}, 'secret_in_request', '... as secret_in_request');
$r = $t->request('POST', '/tools/tickets/v1/refunds', headers => [@h,
                 'Content-Type' => 'application/json', 'X-Leak' => $planted],
                 body => qq({"note": "$planted", "amount": "$gh"}));
is($r->{status}, 403, 'a refused one');
$r = $t->request('POST', '/tools/tickets/v1/notes', headers => [@h,
                 'Content-Type' => 'application/json'], body => qq({"note": "$planted",));
is($r->{status}, 400, 'a malformed body carrying one');
sleep 0.2;
my $audit = $t->read_file('audit/audit.jsonl');
unlike($audit, qr/PLANTED/, 'no planted value in the audit file');
unlike($t->error_log, qr/PLANTED/, 'nor in the error log');

# --- task and agent events ------------------------------------------------------------

$n = count();
$r = $t->request('POST', "/agentgov/v1/tasks/$task_id/renew",
                 headers => [@h[0, 1], 'Content-Type' => 'application/json'], body => { ttl => '30m' });
is($r->{status}, 200, 'renewed');
$r = $t->request('POST', '/agentgov/v1/agents/other/suspend',
                 headers => ['Authorization' => "Bearer $admin"]);
is($r->{status}, 200, 'suspended');
$r = $t->request('POST', '/agentgov/v1/agents/other/resume',
                 headers => ['Authorization' => "Bearer $admin"]);
is($r->{status}, 200, 'resumed');
$r = $t->request('POST', '/agentgov/v1/tasks', headers => [@h[0, 1], 'Content-Type' => 'application/json'],
                 body => { intent => 'nope', ttl => '5m' });
is($r->{status}, 403, 'a refused declaration');
$r = $t->request('POST', '/agentgov/v1/agents/bot/suspend',
                 headers => ['Authorization' => 'Bearer not.a.token']);
is($r->{status}, 401, 'a suspension without a valid identity');
$r = $t->request('DELETE', "/agentgov/v1/tasks/$task_id", headers => [@h[0, 1]]);
is($r->{status}, 204, 'ended');
@new = records_after($n);
is_deeply([ map { "$_->{event} $_->{op} $_->{decision}" } @new ],
          ['task renew allow', 'agent suspend allow', 'agent resume allow',
           'task declare deny', 'agent suspend deny', 'task end allow'],
          'renew, suspend, resume, refusals and end are recorded');
is($new[1]{agent}, 'other', 'the suspended agent');
like($new[1]{by}, qr/alice/, 'by whom');
is($new[3]{error}, 'denied', 'the refusal\'s code');
is($new[4]{error}, 'invalid_identity', 'an identity refused');
is($new[4]{agent}, 'bot', 'the agent the refused suspension named');
is($new[5]{task}, $task_id, 'the ended task');

# --- reload -----------------------------------------------------------------------------

$n = count();
$t->reload;
for (1 .. 100) { last if count() > $n; sleep 0.05 }
@new = records_after($n);
is($new[0]{event}, 'policy', 'a policy record at reload');
is($new[0]{reason}, 'reload', '... saying so');
is($new[0]{seq}, $n + 1, '... continuing the chain');

is($t->audit_check, '', 'the whole chain verifies (independent check)');
my ($rc, $out) = $t->run($AgTest::CLI, 'audit', 'verify', $t->audit_file, '--key', $t->audit_key);
is($rc, 0, 'agentgov audit verify accepts it') or diag($out);

# --- the audit API ------------------------------------------------------------------------

sub api {
    my ($jwt, $path) = @_;
    return $t->request('GET', "/agentgov/$path", headers => ['Authorization' => "Bearer $jwt"]);
}

my $total = count();
$r = api($auditor, 'v1/audit?limit=5');
is($r->{status}, 200, 'an auditor reads the audit log');
is(scalar @{ $r->{json}{items} }, 5, 'limit');
is_deeply([ map { $_->{seq} } @{ $r->{json}{items} } ], [ reverse(($total - 4) .. $total) ],
          'newest first');
ok(defined $r->{json}{next}, 'a cursor to go on');
my $r2 = api($auditor, "v1/audit?limit=5&before=$r->{json}{next}");
is_deeply([ map { $_->{seq} } @{ $r2->{json}{items} } ], [ reverse(($total - 9) .. ($total - 5)) ],
          'the next page from the cursor');

$r = api($auditor, 'v1/audit?decision=deny&agent=bot&limit=1000');
ok(@{ $r->{json}{items} } >= 3, 'filter by decision and agent');
ok(!(grep { $_->{decision} ne 'deny' || $_->{agent} ne 'bot' } @{ $r->{json}{items} }),
   'only matching records');
is($r->{json}{next}, undef, 'the whole file was read: no cursor');

$r = api($auditor, 'v1/audit?event=task');
is_deeply([ sort map { $_->{op} } @{ $r->{json}{items} } ], [ sort qw(declare renew declare end) ],
          'filter by event');
$r = api($auditor, "v1/audit?task=$task_id&event=call");
ok(@{ $r->{json}{items} } >= 3 && !(grep { $_->{task} ne $task_id } @{ $r->{json}{items} }),
   'filter by task');
$r = api($auditor, 'v1/audit?tool=wiki');
is(scalar @{ $r->{json}{items} }, 2, 'filter by tool');
$r = api($auditor, 'v1/audit?since=2099-01-01T00:00:00Z');
is_deeply($r->{json}{items}, [], 'since in the future: nothing');
$r = api($auditor, 'v1/audit?since=2000-01-01T00:00:00Z&limit=1000');
is(scalar @{ $r->{json}{items} }, $total, 'since long ago: everything');

for my $bad (['v1/audit?limit=1001', 'limit over 1000'], ['v1/audit?limit=0', 'limit 0'],
             ['v1/audit?agnt=bot', 'a misspelt filter'], ['v1/audit?agent=a&agent=b', 'a repeated one'],
             ['v1/audit?since=yesterday', 'a bad since'], ['v1/audit?before=12x', 'a bad cursor']) {
    $r = api($auditor, $bad->[0]);
    is($r->{status}, 400, "$bad->[1]: 400");
    is($r->{json}{error}, 'bad_request', "$bad->[1]: bad_request");
}

$r = api($admin, 'v1/audit');
is($r->{status}, 403, 'an admin who is no auditor: 403');
$r = api($nobody, 'v1/audit');
is($r->{status}, 403, 'a person in no group: 403');
$r = $t->request('GET', '/agentgov/v1/audit', headers => [@h[0, 1]]);
is($r->{status}, 403, 'an agent: 403');
$r = $t->request('GET', '/agentgov/v1/audit');
is($r->{status}, 401, 'nobody: 401');
$r = $t->request('POST', '/agentgov/v1/audit', headers => ['Authorization' => "Bearer $auditor"]);
is($r->{status}, 405, 'read only');

$r = api($auditor, 'v1/audit/checkpoint');
is($r->{status}, 404, 'no checkpoint yet: 404');
is($r->{json}{error}, 'not_found', '... not_found');

# --- metrics and health -------------------------------------------------------------------

$r = $t->request('GET', '/agentgov/metrics');
is($r->{status}, 200, 'metrics');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Prometheus text');
like($r->{body}, qr/^agentgov_decisions_total\{tool="tickets",decision="allow"\} [1-9]/m, 'allowed calls by tool');
like($r->{body}, qr/^agentgov_decisions_total\{tool="tickets",decision="deny"\} [1-9]/m, 'refused calls by tool');
like($r->{body}, qr/^agentgov_decisions_total\{tool="wiki",decision="monitor-deny"\} 1$/m, 'monitor outcomes');
like($r->{body}, qr/^agentgov_refusals_total\{code="no_identity"\} [1-9]/m, 'refusals by code');
like($r->{body}, qr/^agentgov_decision_duration_seconds_bucket\{le="\+Inf"\} [1-9]/m, 'latency histogram');
like($r->{body}, qr/^agentgov_decision_duration_seconds_count [1-9]/m, 'its count');
like($r->{body}, qr/^agentgov_pending_holds 0$/m, 'pending holds');
like($r->{body}, qr/^agentgov_live_tasks \d+$/m, 'live tasks');
my ($records) = $r->{body} =~ /^agentgov_audit_records_total (\d+)$/m;
ok($records >= $total - 1, 'audit records');
like($r->{body}, qr/^agentgov_audit_failures_total 0$/m, 'no audit failures');
like($r->{body}, qr/^agentgov_policy_info\{sha256="[0-9a-f]{64}"\} 1$/m, 'policy');

$r = $t->request('GET', '/agentgov/health');
is($r->{status}, 200, 'health');
is($r->{json}{status}, 'ok', 'ok');
is($r->{json}{audit}, 'ok', 'audit ok');
is($r->{json}{policy}, sha256_hex($t->read_file('policy.json')), 'the policy\'s SHA-256');
ok(defined $r->{json}{zone_used} && $r->{json}{zone_used} < 0.5, 'zone_used');

done_testing;
