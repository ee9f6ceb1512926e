#!/usr/bin/perl
# A governed location cannot be reached by subrequests (SSI, auth_request,
# mirror), which skip nginx's access phase.
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
    agents => { bot => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o' } },
    tools => { tickets => {} },
    intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [ { id => 'all', effect => 'allow', tool => 'tickets' } ],
});
mkdir $t->dir . '/html';
mkdir $t->dir . "/html/$_" for qw(guarded mirrored);
$t->write_file("html/$_/x", "static $_\n") for qw(guarded mirrored);
$t->write_file('html/page.html',
               "before<!--# include virtual=\"/tools/tickets/v1/ssi\" -->after\n");

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}        root html;
        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
        location = /page.html { ssi on; }
        location /guarded/ {
            auth_request /tools/tickets/v1/auth;
        }
        location /mirrored/ {
            mirror /tools/tickets/v1/mirror;
        }
    }
EOF2
$t->start_echo->start;

my $r = $t->request('GET', '/page.html');
unlike($r->{body}, qr/"target"/, 'SSI include did not reach the tool');
like($r->{body}, qr/subrequests into a governed location are refused/,
     'SSI include got the refusal');

$r = $t->request('GET', '/guarded/x');
is($r->{status}, 403, 'auth_request into a governed location is refused');

$r = $t->request('GET', '/mirrored/x');
is($r->{status}, 200, 'the mirroring request itself is served');
is($r->{body}, "static mirrored\n", 'mirrored content');
sleep 0.3;

my @seen = map { $_->{target} } @{ $t->echo_log };
ok(!grep({ m{/v1/(ssi|auth|mirror)} } @seen), 'no subrequest ever reached the tool')
    or diag "tool saw: @seen";
for my $kind (qw(ssi auth mirror)) {
    like($t->error_log, qr{subrequest "/tools/tickets/v1/$kind" into a governed location refused},
         "$kind subrequest refused and logged");
}

# the main request path still works
$r = $t->request('GET', '/tools/tickets/v1/direct',
                 headers => [$t->agent_headers(sub => 'bot', intent => 'work')]);
is($r->{status}, 200, 'direct governed call still allowed');

done_testing;
