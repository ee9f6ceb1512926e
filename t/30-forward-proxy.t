#!/usr/bin/perl
# Forward-proxy use: the request's host names the tool, $agentgov_upstream and
# $agentgov_uri build the proxied URL, an unknown host is denied.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;

$t->policy({
    agentgov => 1,
    agents => { bot => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o' } },
    tools => {
        tickets => { hosts => ['tickets.internal'], upstream => "http://127.0.0.1:$echo" },
        wiki    => { hosts => ['*.wiki.internal'], upstream => "http://127.0.0.1:$echo" },
    },
    intents => { work => { agents => ['bot'], tools => ['tickets', 'wiki'], max_ttl => '1h' } },
    rules => [
        { id => 'no-export', effect => 'deny', tool => 'tickets', path => '/v1/export/**' },
        { id => 'tickets', effect => 'allow', tool => 'tickets' },
        { id => 'wiki-read', effect => 'allow', tool => 'wiki', method => 'GET' },
    ],
});

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    log_format ag '\$agentgov_tool \$agentgov_upstream \$agentgov_uri';
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}        access_log logs/fp.log ag;
        location / {
            agentgov on;
            proxy_pass \$agentgov_upstream\$agentgov_uri;
        }
    }
EOF2
$t->start_echo->start;

my %h = $t->agent_headers(sub => 'bot', intent => 'work');
my $auth = join "\r\n", map { "$_: $h{$_}" } sort keys %h;

sub fp {
    my ($method, $url, $host) = @_;
    return $t->raw("$method $url HTTP/1.1\r\nHost: $host\r\n$auth\r\n"
                   . "Connection: close\r\n\r\n");
}

my $r = fp('GET', 'http://tickets.internal/v1/tickets/1?a=b', 'tickets.internal');
is($r->{status}, 200, 'absolute-form request mapped by host');
my $e = AgTest::echoed($r);
is($e->{target}, '/v1/tickets/1?a=b', 'upstream gets path and query');

$r = fp('GET', 'http://tickets.internal/v1/export/all', 'tickets.internal');
is($r->{status}, 403, 'deny rule applies on the full path');
is($r->{json}{rule}, 'no-export', 'decided by no-export');

$r = fp('GET', 'http://TICKETS.internal:8443/v1//export/./all', 'tickets.internal');
is($r->{status}, 403, 'host case, port and raw path variants do not dodge rules');

$r = fp('GET', 'http://evil.example/v1/tickets/1', 'evil.example');
is($r->{status}, 403, 'unknown host denied');
is($r->{json}{error}, 'denied', 'unknown host: denied');

$r = fp('GET', '/v1/tickets/1', 'tickets.internal');
is($r->{status}, 200, 'origin-form request mapped by the Host header');

$r = fp('GET', 'http://a.wiki.internal/page', 'a.wiki.internal');
is($r->{status}, 200, 'wildcard host entry');
$r = fp('POST', 'http://a.wiki.internal/page', 'a.wiki.internal');
is($r->{status}, 403, 'wildcard host tool has its own rules');
$r = fp('GET', 'http://wiki.internal/page', 'wiki.internal');
is($r->{status}, 403, 'wildcard does not match the bare domain');

$r = fp('GET', 'http://tickets.internal/v1/a%20b', 'tickets.internal');
is(AgTest::echoed($r)->{target}, '/v1/a%20b', '$agentgov_uri keeps encoding');

# CONNECT never reaches the module
$r = $t->raw("CONNECT tickets.internal:443 HTTP/1.1\r\nHost: tickets.internal\r\n\r\n");
is($r->{status}, 400, 'CONNECT refused by nginx');

$t->stop;
like($t->read_file('logs/fp.log'), qr{^tickets http://127\.0\.0\.1:\d+ /v1/tickets/1\?a=b$}m,
     '$agentgov_tool, $agentgov_upstream, $agentgov_uri');

done_testing;
