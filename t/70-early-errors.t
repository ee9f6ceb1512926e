#!/usr/bin/perl
# nginx's own refusals before the module runs (oversized headers, bodies over
# client_max_body_size, malformed requests) answered in the JSON shape of the
# gateway's errors, with the error_page recipe of docs/errors.md.
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
    tools => { tickets => {} },
    intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [ { id => 'all', effect => 'allow', tool => 'tickets' } ],
});

# the recipe, as documented
my $doc = $t->read_file("$AgTest::ROOT/docs/errors.md");
my ($recipe) = $doc =~ /```nginx\n(error_page.*?)```/s;
ok($recipe, 'docs/errors.md has the error_page recipe');

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    large_client_header_buffers 2 1k;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        client_max_body_size 2k;
@{[ $t->api_location ]}$recipe
        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            agentgov_body_max 64k;
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF2
$t->start_echo->start;
my @auth = $t->agent_headers(sub => 'bot', intent => 'work');

my $r = $t->request('POST', '/tools/tickets/x', headers => \@auth, body => 'z' x 5000);
is($r->{status}, 413, 'body over client_max_body_size: 413');
is($r->{json}{error}, 'body_too_large', '413 answered in JSON');
is($r->{headers}{'agent-decision'}, 'deny', '413 carries Agent-Decision');

$r = $t->request('GET', '/tools/tickets/x', headers => [@auth, 'X-Big' => 'h' x 2000]);
is($r->{status}, 400, 'header over large_client_header_buffers: 400');
is($r->{json}{error}, 'bad_request', 'oversized header answered in JSON');

$r = $t->request('GET', '/tools/tickets/' . ('p' x 3000), headers => \@auth);
ok($r->{status} == 414 || $r->{status} == 400, 'request line too long refused');
is($r->{json}{error}, 'bad_request', 'oversized request line answered in JSON');

$r = $t->raw("GET /tools/tickets/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
is($r->{status}, 400, 'malformed request: 400');
is($r->{json}{error}, 'bad_request', 'malformed request answered in JSON');

$r = $t->request('GET', '/tools/tickets/x', headers => \@auth);
is($r->{status}, 200, 'normal calls unaffected');

done_testing;
