#!/usr/bin/perl
# Paths as rules see them: relative to the location, normalised by nginx so
# that raw variants cannot dodge a rule; ambiguous raw paths refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;

$t->policy({
    agentgov => 1,
    agents => { bot => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o' } },
    tools => { tickets => {} },
    intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [
        { id => 'no-admin', effect => 'deny', tool => 'tickets', path => '/v1/admin/**' },
        { id => 'no-root-users', effect => 'deny', tool => 'tickets', path => '/v1/users' },
        { id => 'rest', effect => 'allow', tool => 'tickets' },
    ],
});

my $echo = $t->echo_port;
$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
        location /raw/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo;
        }
    }
EOF2
$t->start_echo->start;

my %h = $t->agent_headers(sub => 'bot', intent => 'work');
my $auth = join "\r\n", map { "$_: $h{$_}" } sort keys %h;

sub get {
    my ($target) = @_;
    return $t->raw("GET $target HTTP/1.1\r\nHost: localhost\r\n$auth\r\n"
                   . "Connection: close\r\n\r\n");
}

my $r = get('/tools/tickets/v1/tickets/1');
is($r->{status}, 200, 'plain path allowed');
is(AgTest::echoed($r)->{target}, '/v1/tickets/1', 'relative path forwarded');

for my $p ('/tools/tickets/v1/admin/x', '/tools/tickets/v1//admin/x',
           '/tools/tickets/v1/./admin/x', '/tools/tickets/v1/%61dmin/x',
           '/tools/tickets/v1/%61%64%6d%69%6e/x', '/tools/tickets/v1/public/../admin/x',
           '/tools/tickets//v1/admin/x', '/tools/tickets/v1/admin/', '/tools/tickets/v1/users',
           '/tools/tickets/v1/us%65rs', '/tools/tickets/./v1/users') {
    $r = get($p);
    is($r->{status}, 403, "deny rule not dodged by $p");
    ok($r->{json} && $r->{json}{rule}, "$p: decided by a rule");
}

for my $p ('/tools/tickets/v1/admin%2Fx', '/tools/tickets/v1/admin%2fx',
           '/tools/tickets/v1%5Cadmin', '/tools/tickets/v1\\admin',
           '/tools/tickets/v1/users;x=1', '/tools/tickets/v1/users%3Bx=1') {
    $r = get($p);
    is($r->{status}, 400, "ambiguous path refused: $p");
    is($r->{json}{error}, 'bad_request', "$p: bad_request");
}

# %00 is refused by nginx itself before any module runs
$r = get('/tools/tickets/v1/a%00b');
is($r->{status}, 400, 'NUL in the path refused');

# the query is not part of the path
$r = get('/tools/tickets/v1/users?x=/v1/admin/');
is($r->{status}, 403, 'query does not change the path');
$r = get('/tools/tickets/v1/tickets?path=/v1/admin/x');
is($r->{status}, 200, 'a path-like query does not trigger a path rule');
is(AgTest::echoed($r)->{target}, '/v1/tickets?path=/v1/admin/x', 'query forwarded');

# the tool receives the normalised path
$r = get('/tools/tickets/v1/./tickets/../tickets/2');
is($r->{status}, 200, 'dot segments normalised');
is(AgTest::echoed($r)->{target}, '/v1/tickets/2', 'tool receives the normalised path');

# proxy_pass without a URI part forwards the whole path; rules still see it
# relative to the location
$r = get('/raw/tickets/v1/tickets/3');
is($r->{status}, 200, 'location without URI part');
is(AgTest::echoed($r)->{target}, '/raw/tickets/v1/tickets/3', 'full path forwarded');
$r = get('/raw/tickets/v1/admin/3');
is($r->{status}, 403, 'relative path used for rules without a URI part too');

done_testing;
