#!/usr/bin/perl
# The shared zone and agentgov_state (SPEC section 2): what survives a reload
# (everything), a restart (live tasks with their budgets, suspensions, the
# stop switch; never an ended task), a restart or a reload with another zone
# size; what takes authority away survives SIGKILL, what gives it is written
# within about a second; old workers still exit at once after a reload; a
# state file that is malformed fails start-up; a full zone refuses with 503
# and makes room from ended tasks. Two workers share everything.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes ();
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
    my $http = $t->gateway_http(state => 1, zone => $o{zone} // '1m');
    $http =~ s{/agentgov\.state;}{/$o{state_name};} if $o{state_name};
    $t->config(<<"EOF", workers => 2);
$http
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

# whether the state file holds task $id within $secs seconds
sub on_disk_within {
    my ($id, $secs) = @_;
    my $until = Time::HiRes::time() + $secs;
    while (1) {
        my $s = state_file();
        return 1 if $s && grep { $_->{id} eq $id } @{ $s->{tasks} };
        return 0 if Time::HiRes::time() > $until;
        Time::HiRes::sleep(0.05);
    }
}

# nginx's master and its workers (zombies excluded)
sub alive {
    open my $fh, '<', "/proc/$_[0]/stat" or return 0;
    my $l = <$fh> // return 0;
    return $l !~ /^\d+ \(.*\) Z /;
}

sub workers {
    my $master = $t->nginx_pid or return;
    my @w;
    for my $f (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $f or next;
        my $l = <$fh> // next;
        my ($pid, $st, $ppid) = $l =~ /^(\d+) \(.*\) (\S) (\d+)/ or next;
        push @w, $pid if $ppid == $master && $st ne 'Z';
    }
    return @w;
}

sub gone_within {
    my ($secs, @pids) = @_;
    for (1 .. $secs * 20) {
        return 1 unless grep { alive($_) } @pids;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

# SIGKILL to the master and the workers at once: no exit handler runs
sub crash {
    my @p = ($t->nginx_pid, workers());
    kill 'KILL', @p;
    gone_within(5, @p) or die "nginx survived SIGKILL\n";
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
# spends are saved with the next change; a declaration is written by the
# save timer (about a second), without any further change
$r = declare('helper-bot');
is($r->{status}, 201, 'another declaration');
ok(on_disk_within($r->{json}{task}, 2.5), 'a declaration is on disk within 2 s');

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

# a declaration just before a reload: the new workers (or the old ones on
# their way out) write it
my @old = workers();
is(scalar @old, 2, 'two workers');
$r = declare('helper-bot');
my $t5 = $r->{json}{task};
$t->reload;
ok(gone_within(5, @old), 'the old workers exit at once: the save timer is cancelable');
ok(on_disk_within($t5, 2.5), 'a declaration made just before a reload is written');
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

# declared just before: the workers write it as they exit
$r = declare('support-bot');
my $t4 = $r->{json}{task};
conf(zone => '2m');
restart();
is(task($t4)->{json}{state}, 'live', 'another zone size: the task is still live');
is(declare('third-bot')->{json}{error}, 'agent_suspended',
   'another zone size: the suspension holds');

# --- a reload with another zone size: the master saves the old zone first ---------

$r = declare('support-bot');
my $t6 = $r->{json}{task};
conf(zone => '3m');
@old = workers();
$t->reload;
ok(gone_within(5, @old), 'reload to another zone size: the old workers exit');
is(task($t6)->{json}{state}, 'live',
   'reload to another zone size: a declaration made just before is kept');
is(declare('third-bot')->{json}{error}, 'agent_suspended',
   'reload to another zone size: the suspension holds');
is(call('admin', 'POST', 'v1/agents/helper-bot/suspend')->{status}, 200,
   'a suspension after it');
is_deeply([ sort @{ state_file()->{suspended} } ], ['helper-bot', 'third-bot'],
          'is written by the new workers');
is(call('admin', 'POST', 'v1/agents/helper-bot/resume')->{status}, 200, 'resume');

# --- SIGKILL: what takes authority away is on disk before the API answers ---------

$r = declare('support-bot');
my $t7 = $r->{json}{task};
ok(on_disk_within($t7, 2.5), 'a task on disk');
is(call('support-bot', 'DELETE', "v1/tasks/$t7")->{status}, 204,
   'end it, then SIGKILL at once');
crash();
$t->start;
is(task($t7)->{status}, 404, 'after SIGKILL: the ended task did not come back');

is(call('admin', 'POST', 'v1/agents/helper-bot/suspend')->{status}, 200,
   'suspend an agent');
is(declare('support-bot')->{status}, 201, 'a declaration, then SIGKILL at once');
crash();
ok(state_file(), 'after SIGKILL the state file is valid JSON')
    or diag($t->read_file($state));
$t->start;
is(declare('helper-bot')->{json}{error}, 'agent_suspended',
   'after SIGKILL: the suspension holds');
is(task($t4)->{json}{state}, 'live', 'after SIGKILL: an older task is live');

is(call('admin', 'POST', 'v1/agents/helper-bot/resume')->{status}, 200,
   'resume, then SIGKILL after the save timer');
sleep 2;
crash();
$t->start;
is(declare('helper-bot')->{status}, 201, 'the resume was saved by the timer');

# --- the stop switch survives a restart ---------------------------------------------------

is(call('admin', 'POST', 'v1/stop')->{status}, 200, 'stop');
restart();
is(declare('helper-bot')->{json}{error}, 'agent_suspended', 'stopped after a restart');
isnt(task($t4)->{json}{state} // '', 'live', 'the revoked task did not come back');
is(call('admin', 'POST', 'v1/start')->{status}, 200, 'start');
is(declare('helper-bot')->{status}, 201, 'declare after start');
is(call('admin', 'POST', 'v1/agents/third-bot/resume')->{status}, 200, 'resume');
$r = declare('third-bot');
is($r->{status}, 201, 'declare after resume');

# a reload that moves the state file (same zone): the new workers write it
conf(zone => '3m', state_name => 'moved.state');
$t->reload;
{
    my $moved = "$dir/state/moved.state";
    my $found;
    for (1 .. 50) {
        my $m = eval { $AgTest::JSON->decode($t->read_file($moved) // '') };
        last if $found = $m && grep { $_->{id} eq $r->{json}{task} } @{ $m->{tasks} };
        Time::HiRes::sleep(0.05);
    }
    ok($found, 'a reload to another state file writes it at once');
}
conf(zone => '3m');
$t->reload;
sleep 1;

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
