#!/usr/bin/perl
# The shared zone and agentgov_state (SPEC section 2): what survives a reload
# (everything), a restart (live tasks with their budgets, suspensions, the
# stop switch; never an ended task), a restart with another zone size; a
# state file that is malformed fails start-up; a full zone refuses with 503
# and makes room from ended tasks. Two workers share everything.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;
my $dir = $t->dir;
my $iss = 'agentgov-test';

sub agent_id { return { jwt => { iss => $iss, sub => $_[0] }, owner => 'team' } }

$t->policy({
    agentgov => 1,
    agents => {
        'support-bot' => agent_id('support-bot'),
        'helper-bot'  => agent_id('helper-bot'),
        'third-bot'   => agent_id('third-bot'),
        'bulk-bot'    => { %{ agent_id('bulk-bot') }, max_tasks => 1000000 },
    },
    groups => { secops => [ { jwt => { iss => $iss, groups => 'secops' } } ] },
    admins => ['secops'],
    tools => { tickets => {} },
    intents => {
        job => { agents => ['support-bot', 'helper-bot', 'third-bot', 'bulk-bot'],
                 tools => ['tickets'], max_ttl => '1h', budget => { calls => 100 } },
    },
    rules => [ { id => 'job', effect => 'allow', intent => 'job', tool => 'tickets' } ],
    default => 'deny',
});

my $state = "$dir/state/agentgov.state";     # gateway_http(state => 1)

$t->start_echo;
my $echo = $t->echo_port;

sub conf {
    my (%o) = @_;
    $t->config(<<"EOF", workers => 2);
@{[ $t->gateway_http(state => 1, zone => $o{zone} // '1m') ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF
}

conf();
$t->start;

my %jwt = map { $_ => $t->token(sub => $_) } qw(support-bot helper-bot third-bot bulk-bot);
my $admin = $t->token(sub => 'alice', groups => 'secops');

sub call {
    my ($who, $method, $path, %o) = @_;
    my @h = $who eq 'admin' ? ('Authorization' => "Bearer $admin")
                            : ('Agent-Authorization' => "Bearer $jwt{$who}");
    push @h, 'Content-Type' => 'application/json' if exists $o{body};
    push @h, @{ $o{headers} // [] };
    return $t->request($method, "/agentgov/$path", headers => \@h,
                       exists $o{body} ? (body => $o{body}) : ());
}

sub declare {
    my ($agent, %o) = @_;
    return call($agent, 'POST', 'v1/tasks',
                body => { intent => 'job', ttl => $o{ttl} // '30m' },
                headers => [ $o{parent} ? ('Agent-Task' => $o{parent}) : () ]);
}

sub tool {
    my ($agent, $token) = @_;
    return $t->request('GET', '/tools/tickets/v1/tickets/1',
                       headers => [ 'Agent-Authorization' => "Bearer $jwt{$agent}",
                                    'Agent-Task' => $token ]);
}

sub task { return call('admin', 'GET', "v1/tasks/$_[0]") }

# stop also ends the echo upstream
sub restart {
    $t->stop;
    $t->start_echo;
    $t->start;
}

sub state_file {
    my $text = $t->read_file($state) // return;
    return eval { $AgTest::JSON->decode($text) };
}

# --- what the state file holds ------------------------------------------------------

my $r = declare('support-bot');
is($r->{status}, 201, 'declare') or diag($r->{raw});
my ($t1, $tok1) = @{ $r->{json} }{qw(task token)};
$r = declare('helper-bot', parent => $tok1);
is($r->{status}, 201, 'declare a child') or diag($r->{raw});
my ($t2, $tok2) = @{ $r->{json} }{qw(task token)};
$r = declare('support-bot');
my ($t3, $tok3) = @{ $r->{json} }{qw(task token)};
is(call('support-bot', 'DELETE', "v1/tasks/$t3")->{status}, 204, 'end one');
is(call('admin', 'POST', 'v1/agents/third-bot/suspend')->{status}, 200, 'suspend one');

is(tool('support-bot', $tok1)->{status}, 200, "a call in $t1") for 1 .. 3;
# spends are saved with the next change
is(declare('helper-bot')->{status}, 201, 'another declaration writes the state');

my @st = stat $state;
ok(@st, 'the state file exists');
is($st[2] & 0777, 0600, 'the state file is 0600') if @st;
my $s = state_file();
ok($s, 'the state file is JSON') or diag($t->read_file($state));
is($s->{version}, 1, 'version 1');
is_deeply($s->{suspended}, ['third-bot'], 'suspended agents are saved');
ok(!$s->{stopped}, 'not stopped');
my %saved = map { $_->{id} => $_ } @{ $s->{tasks} };
ok($saved{$t1} && $saved{$t2}, 'live tasks are saved');
ok(!$saved{$t3}, 'an ended task is not');
is($saved{$t1}{calls}, 3, 'with its calls');
is($saved{$t2}{parent}, $t1, 'and its parent');

# --- reload: the zone is kept -------------------------------------------------------------

$t->reload;
sleep 1;
is(task($t1)->{json}{state}, 'live', 'after a reload: live task');
is(task($t3)->{json}{state}, 'ended', 'after a reload: the ended task is still known');
is(task($t1)->{json}{calls}, 3, 'after a reload: its calls');
is(tool('support-bot', $tok1)->{status}, 200, 'after a reload: a call');

# --- restart: the state file -----------------------------------------------------------

restart();
is(task($t1)->{json}{state}, 'live', 'after a restart: live task');
ok(task($t1)->{json}{calls} >= 3, 'after a restart: its calls');
is(task($t2)->{json}{parent}, $t1, 'after a restart: the child and its parent');
is(task($t3)->{status}, 404, 'after a restart: the ended task is gone');
isnt(tool('support-bot', $tok3)->{status}, 200, 'after a restart: its token is refused');
is(tool('support-bot', $tok1)->{status}, 200, 'after a restart: a live task\'s token works');
is(declare('third-bot')->{json}{error}, 'agent_suspended',
   'after a restart: the suspension holds');

# descendants are linked again: ending the parent ends the child
is(call('support-bot', 'DELETE', "v1/tasks/$t1")->{status}, 204, 'end the parent');
is(task($t2)->{json}{state}, 'ended', 'after a restart, ending the parent ends the child');

# --- a restart with another zone size loses nothing ---------------------------------

$r = declare('support-bot');
my $t4 = $r->{json}{task};
conf(zone => '2m');
restart();
is(task($t4)->{json}{state}, 'live', 'another zone size: the task is still live');
is(declare('third-bot')->{json}{error}, 'agent_suspended',
   'another zone size: the suspension holds');

# --- the stop switch survives a restart ---------------------------------------------------

is(call('admin', 'POST', 'v1/stop')->{status}, 200, 'stop');
restart();
is(declare('helper-bot')->{json}{error}, 'agent_suspended', 'stopped after a restart');
isnt(task($t4)->{json}{state} // '', 'live', 'the revoked task did not come back');
is(call('admin', 'POST', 'v1/start')->{status}, 200, 'start');
is(declare('helper-bot')->{status}, 201, 'declare after start');
is(call('admin', 'POST', 'v1/agents/third-bot/resume')->{status}, 200, 'resume');
is(declare('third-bot')->{status}, 201, 'declare after resume');

unlike($t->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts');

# --- a malformed state file fails start-up --------------------------------------------

$t->stop;
my $good = $t->read_file($state);
$t->write_file($state, '{"version": 1, "stopped": false, "suspended": ["third-bot"], "tasks": [');
my ($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'a malformed state file fails nginx -t');
like($out, qr/agentgov_state ".*agentgov\.state" is malformed/, 'and says why');
ok(!eval { $t->start; 1 }, 'and start-up');
$t->write_file($state, '{"version": 2, "stopped": false, "suspended": [], "tasks": []}');
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'a state file of another version fails');
$t->write_file($state, $good);
($rc, $out) = $t->nginx_test;
is($rc, 0, 'the good one passes') or diag($out);

# --- a full zone ----------------------------------------------------------------------

my $f = AgTest->new;
$f->policy($t->read_file('policy.json'));
# the same issuer key, so that the tokens above are valid here too
$f->run('cp', "$dir/idp.pem", "$dir/idp.jwks.json", $f->dir);
$f->config(<<"EOF", workers => 2);
@{[ $f->gateway_http(zone => '64k') ]}
    server {
        listen 127.0.0.1:@{[ $f->port ]};
@{[ $f->api_location ]}
    }
EOF
$f->start;

sub fdeclare {
    return $f->request('POST', '/agentgov/v1/tasks',
                       headers => [ 'Agent-Authorization' => "Bearer $jwt{'bulk-bot'}",
                                    'Content-Type' => 'application/json' ],
                       body => { intent => 'job', ttl => '30m' });
}

my (@ids, $full);
for (1 .. 1000) {
    $r = fdeclare();
    if ($r->{status} != 201) {
        $full = $r;
        last;
    }
    push @ids, $r->{json}{task};
}
ok(@ids > 20, scalar(@ids) . ' tasks fit in a 64k zone');
ok($full, 'then the zone is full');
is($full->{status}, 503, 'full: 503') if $full;
is($full->{json}{error}, 'gateway_error', 'full: gateway_error') if $full;
like($f->error_log, qr/agentgov_zone "agentgov" is full/, 'full: the error log says so');

for my $id (@ids[0 .. 9]) {
    $f->request('DELETE', "/agentgov/v1/tasks/$id",
                headers => [ 'Agent-Authorization' => "Bearer $jwt{'bulk-bot'}" ]);
}
is(fdeclare()->{status}, 201, 'ended tasks make room');
is($f->request('GET', "/agentgov/v1/tasks/$ids[20]",
               headers => [ 'Authorization' => "Bearer $admin" ])->{json}{state},
   'live', 'live tasks are never dropped for room');

done_testing;
