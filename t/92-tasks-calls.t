#!/usr/bin/perl
# Tool calls inside tasks, with two workers so that what one worker changes
# another sees at once: scope, bound and forged task tokens, ended tasks,
# delegation cascades, the kill switch, budgets, reload and restart with
# agentgov_state, a full zone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;

$t->policy({
    agentgov => 1,
    agents => {
        bot   => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o', max_tasks => 1000 },
        other => { jwt => { iss => 'agentgov-test', sub => 'other' }, owner => 'o' },
        helper => { jwt => { iss => 'agentgov-test', sub => 'helper' }, owner => 'o' },
    },
    groups => { secops => [ { jwt => { iss => 'agentgov-test', groups => 'secops' } } ] },
    admins => ['secops'],
    tools => { tickets => {}, payments => {}, wiki => {} },
    intents => {
        work   => { agents => ['bot', 'other', 'helper'], tools => ['tickets', 'payments', 'wiki'],
                    max_ttl => '1h' },
        capped => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h',
                    budget => { calls => 3 } },
        paced  => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h',
                    budget => { rate => '2/m' } },
    },
    rules => [
        { id => 'no-delegated-payments', effect => 'deny', tool => 'payments',
          when => { depth => { gt => 0 } } },
        { id => 'capped-only-reads', effect => 'deny', intent => 'capped', method => 'POST' },
        { id => 'all', effect => 'allow', tool => ['tickets', 'payments', 'wiki'] },
    ],
});

sub conf {
    my (%o) = @_;
    $t->config(<<"EOF2", workers => 2);
@{[ $t->gateway_http(state => 1, zone => $o{zone} // '1m') ]}
    log_format ag '\$agentgov_agent \$agentgov_task \$agentgov_intent \$agentgov_decision';
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        access_log logs/tasks.log ag;
@{[ $t->api_location ]}
        location /tools/tickets/ { agentgov on; agentgov_tool tickets; proxy_pass http://127.0.0.1:$echo/; }
        location /tools/payments/ { agentgov on; agentgov_tool payments; proxy_pass http://127.0.0.1:$echo/; }
        location /tools/wiki/ { agentgov on; agentgov_tool wiki; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF2
}

conf();
$t->start_echo->start;

my $bot = $t->token(sub => 'bot');
my $other = $t->token(sub => 'other');
my $helper = $t->token(sub => 'helper');
my $admin = $t->token(sub => 'alice', groups => 'secops');

sub call {
    my ($jwt, $task, $path, %o) = @_;
    my @h = ('Agent-Authorization' => "Bearer $jwt");
    push @h, 'Agent-Task' => $task if defined $task;
    return $t->request($o{method} // 'GET', $path, headers => \@h,
                       $o{body} ? (body => $o{body}) : ());
}

# several calls, so that both workers answer
sub all_status {
    my ($jwt, $task, $path) = @_;
    my %seen;
    $seen{ call($jwt, $task, $path)->{status} }++ for 1 .. 6;
    return join ',', sort keys %seen;
}

sub api {
    my ($method, $path, $jwt, %o) = @_;
    my $hdr = $o{person} ? 'Authorization' : 'Agent-Authorization';
    return $t->request($method, "/agentgov/v1/$path",
                       headers => [$hdr => "Bearer $jwt", 'Content-Type' => 'application/json'],
                       body => $o{body} // ($method eq 'POST' ? '{}' : ''));
}

sub declare {
    my ($jwt, %o) = @_;
    my $r = $t->declare(jwt => $jwt, intent => $o{intent} // 'work', ttl => $o{ttl} // '30m',
                        tools => $o{tools}, parent => $o{parent}, want_response => 1);
    return $r;
}

# --- declare and use ---------------------------------------------------------------
my $r = declare($bot, tools => ['tickets', 'payments']);
is($r->{status}, 201, 'task declared');
my $task = $r->{json}{token};
my $task_id = $r->{json}{task};

is(all_status($bot, $task, '/tools/tickets/v1/x'), '200', 'calls inside the task pass on every worker');

$r = call($bot, undef, '/tools/tickets/v1/x');
is($r->{status}, 401, 'no Agent-Task: 401');
is($r->{json}{error}, 'no_task', 'no_task');

$r = call($bot, $task, '/tools/wiki/v1/x');
is($r->{status}, 403, 'tool outside the task: 403');
is($r->{json}{error}, 'out_of_scope', 'out_of_scope');

$r = call($other, $task, '/tools/tickets/v1/x');
is($r->{status}, 401, 'another agent using the token: 401');
is($r->{json}{error}, 'no_task', 'token bound to its agent');

# forged, truncated, re-signed tokens
my ($h, $p, $s) = split /\./, $task;
my %bad = (
    'truncated'          => substr($task, 0, length($task) - 5),
    'signature dropped'  => "$h.$p.",
    'payload swapped'    => "$h." . AgTest::b64url('{"tid":"x"}') . ".$s",
    'alg none'           => AgTest::b64url('{"alg":"none","typ":"agentgov-task+jwt"}') . ".$p.",
    'agent JWT as task'  => $bot,
    'garbage'            => 'not-a-token',
);
for my $name (sort keys %bad) {
    $r = call($bot, $bad{$name}, '/tools/tickets/v1/x');
    is($r->{status}, 401, "forged task token ($name): 401");
    is($r->{json}{error}, 'no_task', "forged task token ($name): no_task");
}

# the same claims, or claims naming another agent, MACed with another key
use Digest::SHA qw(hmac_sha256);
my $other_p = AgTest::b64url(AgTest::b64url_decode($p) =~ s/"sub":"bot"/"sub":"other"/r);
for my $case (["$h.$p", 'same claims'], ["$h.$other_p", 'claims of another agent']) {
    my $resigned = "$case->[0]." . AgTest::b64url(hmac_sha256($case->[0], 'k' x 32));
    $r = call($case->[1] =~ /another/ ? $other : $bot, $resigned, '/tools/tickets/v1/x');
    is($r->{status}, 401, "re-signed with another key ($case->[1]): 401");
}

# $agentgov_task and $agentgov_intent
$r = call($bot, $task, '/tools/payments/v1/charge');
is($r->{status}, 200, 'second tool of the task');

# --- delegation and cascade -----------------------------------------------------
$r = declare($helper, parent => $task, tools => ['tickets']);
is($r->{status}, 201, 'child task declared by another agent');
my $child = $r->{json}{token};
is($r->{json}{depth}, 1, 'child depth 1');

is(call($helper, $child, '/tools/tickets/v1/x')->{status}, 200, 'child calls its tool');
$r = call($helper, $child, '/tools/payments/v1/x');
is($r->{json}{error}, 'out_of_scope', 'child narrowed its tools');

$r = declare($helper, parent => $task, tools => ['tickets', 'wiki']);
is($r->{status}, 403, 'child cannot widen the tools');

$r = declare($helper, parent => $task, tools => ['payments']);
my $child_pay = $r->{json}{token};
$r = call($helper, $child_pay, '/tools/payments/v1/x');
is($r->{status}, 403, 'a depth rule applies to delegated calls');
is($r->{json}{rule}, 'no-delegated-payments', 'decided by the depth rule');

$r = api('DELETE', "tasks/$task_id", $bot);
is($r->{status}, 204, 'parent ended');
is(all_status($bot, $task, '/tools/tickets/v1/x'), '401', 'ended task refused on every worker');
$r = call($helper, $child, '/tools/tickets/v1/x');
is($r->{status}, 401, 'child of an ended task refused');
is($r->{json}{error}, 'task_revoked', 'child: task_revoked');

# --- the kill switch -----------------------------------------------------------------
my $t1 = declare($bot)->{json}{token};
is(call($bot, $t1, '/tools/tickets/v1/x')->{status}, 200, 'fresh task works');

$r = api('POST', 'agents/bot/suspend', $bot);
is($r->{status}, 403, 'an agent cannot suspend');

$r = api('POST', 'agents/bot/suspend', $admin, person => 1);
is($r->{status}, 200, 'admin suspends the agent');
$r = call($bot, $t1, '/tools/tickets/v1/x');
is($r->{status}, 403, 'suspended agent refused mid-task');
is($r->{json}{error}, 'agent_suspended', 'agent_suspended');
is(all_status($bot, $t1, '/tools/tickets/v1/x'), '403', 'on every worker');
is(declare($bot)->{status}, 403, 'suspended agent cannot declare');

$r = api('POST', 'agents/bot/resume', $admin, person => 1);
is($r->{status}, 200, 'resumed');
$r = call($bot, $t1, '/tools/tickets/v1/x');
is($r->{json}{error}, 'task_revoked', 'the suspension revoked the task for good');
my $t2 = declare($bot)->{json}{token};
is(call($bot, $t2, '/tools/tickets/v1/x')->{status}, 200, 'a new task works after resume');

my $ot = declare($other)->{json}{token};
$r = api('POST', 'stop', $admin, person => 1);
is($r->{status}, 200, 'stop');
is(call($other, $ot, '/tools/tickets/v1/x')->{json}{error}, 'agent_suspended', 'stop: every agent refused');
is(declare($other)->{status}, 403, 'stop: no declarations');
$r = api('POST', 'start', $admin, person => 1);
is($r->{status}, 200, 'start');
is(call($other, $ot, '/tools/tickets/v1/x')->{json}{error}, 'task_revoked', 'stop revoked live tasks');
$ot = declare($other)->{json}{token};
is(call($other, $ot, '/tools/tickets/v1/x')->{status}, 200, 'after start, new tasks work');

# --- budgets -------------------------------------------------------------------------
my $capped = declare($bot, intent => 'capped')->{json}{token};
is(call($bot, $capped, '/tools/tickets/v1/x', method => 'POST')->{status}, 403,
   'a denied call spends no budget');
is(call($bot, $capped, '/tools/tickets/v1/x')->{status}, 200, "call 1 of 3");
is(call($bot, $capped, '/tools/tickets/v1/x')->{status}, 200, "call 2 of 3");
is(call($bot, $capped, '/tools/tickets/v1/x')->{status}, 200, "call 3 of 3");
$r = call($bot, $capped, '/tools/tickets/v1/x');
is($r->{status}, 429, 'call budget spent: 429');
is($r->{json}{error}, 'budget_exceeded', 'budget_exceeded');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'Retry-After');
cmp_ok($r->{headers}{'retry-after'}, '>', 60, 'Retry-After is the time until the task ends');

my $paced = declare($bot, intent => 'paced')->{json}{token};
is(call($bot, $paced, '/tools/tickets/v1/x')->{status}, 200, 'rate: first call');
is(call($bot, $paced, '/tools/tickets/v1/x')->{status}, 200, 'rate: second call');
$r = call($bot, $paced, '/tools/tickets/v1/x');
is($r->{status}, 429, 'rate: third call within the minute refused');
cmp_ok($r->{headers}{'retry-after'} // 0, '>=', 1, 'rate: Retry-After at least 1');
cmp_ok($r->{headers}{'retry-after'} // 99, '<=', 30, 'rate: Retry-After until the next token');

# --- reload keeps tasks; restart keeps suspensions and ended tasks ---------------
my $live = declare($bot)->{json}{token};
my $ended = declare($bot);
my $ended_token = $ended->{json}{token};
api('DELETE', "tasks/$ended->{json}{task}", $bot);
api('POST', 'agents/other/suspend', $admin, person => 1);

$t->reload;
sleep 1;
is(call($bot, $live, '/tools/tickets/v1/x')->{status}, 200, 'live task survives a reload');

$t->stop;
$t->start_echo->start;
is(call($bot, $live, '/tools/tickets/v1/x')->{status}, 200, 'live task survives a restart');
is(call($bot, $ended_token, '/tools/tickets/v1/x')->{status}, 401, 'ended task stays ended after a restart');
is(call($other, $ot, '/tools/tickets/v1/x')->{json}{error}, 'agent_suspended',
   'suspension survives a restart');
is(declare($other)->{status}, 403, 'suspended agent still cannot declare after a restart');
api('POST', 'agents/other/resume', $admin, person => 1);

$t->stop;
my $log = $t->read_file('logs/tasks.log');
like($log, qr{^bot [A-Za-z0-9_-]{22} work allow$}m, '$agentgov_task and $agentgov_intent logged');

# --- a full zone -----------------------------------------------------------------------
conf(zone => '64k');
unlink $t->dir . '/state/agentgov.state';
$t->start_echo->start;
my (@ids, $full);
for my $i (1 .. 2000) {
    $r = declare($bot, ttl => '10m');
    if ($r->{status} != 201) { $full = $r; last; }
    push @ids, $r->{json}{task};
}
ok($full, 'a small zone fills up (' . scalar(@ids) . ' tasks)');
is($full && $full->{status}, 503, 'full zone: 503');
is($full && $full->{json}{error}, 'gateway_error', 'full zone: gateway_error');
like($t->error_log, qr/agentgov_zone "agentgov" is full/, 'full zone logged');

# the tasks that exist still work, and ending some makes room again
$r = api('GET', "tasks/$ids[0]", $bot);
is($r->{status}, 200, 'existing tasks intact when full');
api('DELETE', "tasks/$_", $bot) for @ids[0 .. 19];
$r = declare($bot, ttl => '10m');
is($r->{status}, 201, 'room again after tasks end');

done_testing;
