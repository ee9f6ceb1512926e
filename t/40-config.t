#!/usr/bin/perl
# Configuration: a broken policy fails "nginx -t" with the engine's message and
# JSON path; a reload with a broken policy keeps the running policy; governed
# locations refuse "satisfy any", unknown tools, and a missing policy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;

sub policy_with {
    my ($effect) = @_;
    return {
        agentgov => 1,
        agents => { bot => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o' } },
        tools => { tickets => {} },
        intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
        rules => [ { id => 'r1', effect => $effect, tool => 'tickets' } ],
    };
}

sub conf {
    my ($extra, $loc, $tool) = @_;
    $tool //= 'tickets';
    $t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    $extra
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location /tools/tickets/ {
            agentgov on;
            agentgov_tool $tool;
            $loc
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF2
}

# a policy error names the file and the JSON path
$t->policy({ %{ policy_with('allow') },
             rules => [ { id => 'r1', effect => 'hold', tool => 'tickets',
                          when => { 'body:/amount' => { gt => 'lots' } } } ] });
conf('', '');
my ($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'nginx -t fails on a broken policy');
like($out, qr{agentgov_policy ".*policy\.json": /rules/0/when/body:/amount/gt: expected a number},
     'the error names the JSON path');

$t->write_file('policy.json', '{"agentgov": 1, "rules": [');
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'nginx -t fails on malformed JSON');
like($out, qr{agentgov_policy ".*policy\.json": .*JSON}i, 'malformed JSON reported');

$t->policy({ %{ policy_with('allow') }, surprise => 1 });
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'unknown top-level key fails');
like($out, qr{/surprise}, 'unknown key named by path');

$t->policy(policy_with('allow'));
conf('', 'satisfy any;');
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'satisfy any in a governed location fails');
like($out, qr{"satisfy any" cannot be used}, 'satisfy any message');

conf('', '', 'nosuch');
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'unknown agentgov_tool fails');
like($out, qr{agentgov_tool "nosuch": no such tool}, 'unknown tool message');

$t->config(<<"EOF2");
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        location / { agentgov on; agentgov_tool x; return 200; }
    }
EOF2
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'agentgov on without agentgov_policy fails');
like($out, qr{no "agentgov_policy"}, 'missing policy message');

$t->config(<<"EOF2");
    agentgov_policy policy.json;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        location / { agentgov on; agentgov_tool tickets; return 200; }
    }
EOF2
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'agentgov on without a zone and a signing key fails');
like($out, qr{needs "agentgov_zone" and "agentgov_signing_key"}, 'tasks need the zone and the key');

$t->config(<<"EOF2");
    agentgov_policy policy.json;
    agentgov_trust  agentgov-test $t->{dir}/missing.json;
    server { listen 127.0.0.1:@{[ $t->port ]}; }
EOF2
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'missing JWKS file fails');

# reload: a broken policy is refused and the old one keeps serving
conf('', '');
($rc, $out) = $t->nginx_test;
is($rc, 0, 'valid configuration passes nginx -t') or diag $out;
$t->start_echo->start;

my @auth = $t->agent_headers(sub => 'bot', intent => 'work');
is($t->request('GET', '/tools/tickets/x', headers => \@auth)->{status}, 200,
   'allowed under the first policy');

$t->write_file('policy.json', '{"agentgov": 1, "rules": [ {"id": 7} ] }');
$t->reload;
my $logged;
for (1 .. 40) {
    $logged = $t->error_log =~ m{\[emerg\].*agentgov_policy .*/rules/0/id};
    last if $logged;
    sleep 0.1;
}
ok($logged, 'reload error logged with its JSON path');
is($t->request('GET', '/tools/tickets/x', headers => \@auth)->{status}, 200,
   'old policy keeps serving after a broken reload');

$t->policy(policy_with('deny'));
$t->reload;
my $status;
for (1 .. 40) {
    $status = $t->request('GET', '/tools/tickets/x', headers => \@auth)->{status};
    last if $status == 403;
    sleep 0.1;
}
is($status, 403, 'a valid policy is picked up by reload');

done_testing;
