#!/usr/bin/perl
# Allow, deny, default deny, hold expired, monitor, body conditions, through a
# real nginx with the module and an echo upstream.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;

$t->policy({
    agentgov => 1,
    agents => {
        'support-bot' => { jwt => { iss => 'agentgov-test', sub => 'support-bot' },
                           owner => 'team-support' },
        'deploy-bot'  => { jwt => { iss => 'agentgov-test', sub => 'deploy-bot' },
                           owner => 'team-platform' },
    },
    groups => { finance => [ { jwt => { iss => 'agentgov-test', groups => 'finance' } } ] },
    tools => {
        tickets  => {},
        payments => {},
    },
    intents => {
        work => { agents => ['support-bot', 'deploy-bot'], tools => ['tickets', 'payments'],
                  max_ttl => '1h' },
    },
    rules => [
        { id => 'no-export', effect => 'deny', tool => 'tickets', method => 'GET',
          path => '/v1/export/**', reason => 'bulk export is never part of a task' },
        { id => 'big-refund', effect => 'hold', tool => 'payments', method => 'POST',
          path => '/v1/refunds', when => { 'body:/amount' => { gt => 5000 } },
          approvers => ['finance'] },
        { id => 'refunds', effect => 'allow', tool => 'payments', method => 'POST',
          path => '/v1/refunds' },
        { id => 'tickets-read', effect => 'allow', tool => 'tickets',
          method => ['GET', 'HEAD'], agent => 'support-bot' },
        { id => 'tickets-write', effect => 'allow', tool => 'tickets', method => 'POST',
          path => '/v1/tickets/*/comments', agent => 'support-bot' },
        { id => 'watch-deletes', effect => 'deny', mode => 'monitor', tool => 'tickets',
          method => 'GET', path => '/v1/tickets/9' },
    ],
    default => 'deny',
});

my $echo = $t->echo_port;
$t->config(<<"EOF");
@{[ $t->gateway_http ]}
    agentgov_hold_timeout 200ms;
    client_body_buffer_size 1k;
    log_format ag '\$agentgov_agent \$agentgov_tool \$agentgov_decision \$agentgov_rule \$agentgov_request_id';
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        access_log logs/decisions.log ag;
@{[ $t->api_location ]}        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
        location /tools/payments/ {
            agentgov on;
            agentgov_tool payments;
            agentgov_body_max 4k;
            proxy_pass http://127.0.0.1:$echo/;
        }
        location /watch/tickets/ {
            agentgov monitor;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF
$t->start_echo->start;

my @auth = $t->agent_headers(sub => 'support-bot', intent => 'work');
my @deploy = $t->agent_headers(sub => 'deploy-bot', intent => 'work');
my $bot = $t->token(sub => 'support-bot');

sub refused {
    my ($r, $status, $code, $rule, $name) = @_;
    is($r->{status}, $status, "$name: status $status");
    is($r->{json}{error}, $code, "$name: error $code");
    is($r->{json}{rule}, $rule, "$name: rule " . ($rule // 'none'));
    like($r->{json}{request_id} // '', qr/^[0-9a-f]{32}$/, "$name: request id");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$name: JSON");
    ok(!exists $r->{headers}{'x-echo'}, "$name: never reached the tool");
}

# allow: reaches the tool, relative path, own headers removed
my $r = $t->request('GET', '/tools/tickets/v1/tickets/7?x=1',
                    headers => [@auth, 'Agent-Approval' => 'ap', 'X-Other' => 'kept']);
is($r->{status}, 200, 'allowed call reaches the tool');
my $e = AgTest::echoed($r);
is($e->{target}, '/v1/tickets/7?x=1', 'tool sees the path relative to the location');
ok(!$e->{h}{'agent-authorization'}, 'Agent-Authorization never reaches the tool');
ok(!$e->{h}{'agent-task'}, 'Agent-Task never reaches the tool');
ok(!$e->{h}{'agent-approval'}, 'Agent-Approval never reaches the tool');
is_deeply($e->{h}{'x-other'}, ['kept'], 'other headers pass');

# deny rule wins over the allow rule that also matches
$r = $t->request('GET', '/tools/tickets/v1/export/all', headers => \@auth);
refused($r, 403, 'denied', 'no-export', 'deny rule');
is($r->{headers}{'agent-decision'}, 'deny', 'Agent-Decision: deny');
is($r->{json}{message}, 'bulk export is never part of a task', 'reason is the message');

# default deny: no rule allows deploy-bot on tickets
$r = $t->request('GET', '/tools/tickets/v1/tickets/7', headers => \@deploy);
refused($r, 403, 'denied', undef, 'default deny');

# body conditions: a refund over 5000 is held; nobody decides within
# agentgov_hold_timeout here, so it expires (t/99-holds.t decides them)
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => { amount => 9000, currency => 'EUR' });
refused($r, 403, 'approval_expired', 'big-refund', 'a hold nobody decides');
is($r->{headers}{'agent-decision'}, 'expired', 'Agent-Decision: expired');

$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => { amount => 100, currency => 'EUR' });
is($r->{status}, 200, 'small refund allowed');
$e = AgTest::echoed($r);
is($e->{body}, '{"amount":100,"currency":"EUR"}', 'tool receives the body unchanged');

# fail closed on type: "9000" is not a number, so the hold rule matches
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => { amount => '9000' });
refused($r, 403, 'approval_expired', 'big-refund', 'string amount counts for the hold rule');

# a missing subject also counts for the hold rule
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => { currency => 'EUR' });
refused($r, 403, 'approval_expired', 'big-refund', 'missing amount counts for the hold rule');

# a body larger than client_body_buffer_size, read from the temp file
my $pad = 'x' x 3000;
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => qq({"note":"$pad","amount":7000}));
refused($r, 403, 'approval_expired', 'big-refund', 'body from a temp file is inspected');

$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => qq({"note":"$pad","amount":70}), chunked => 1, chunk => 500);
is($r->{status}, 200, 'chunked body in several buffers is read and forwarded');
$e = AgTest::echoed($r);
is(length($e->{body}), length(qq({"note":"$pad","amount":70})), 'whole chunked body forwarded');

# body too large
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => '{"a":"' . ('y' x 5000) . '"}');
refused($r, 413, 'body_too_large', undef, 'body over agentgov_body_max');
$r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                 body => '{"a":"' . ('y' x 5000) . '"}', chunked => 1);
refused($r, 413, 'body_too_large', undef, 'chunked body over agentgov_body_max');

# malformed bodies where a rule reads them
for my $bad (['{"amount": 1', 'truncated JSON'],
             ['{"amount": 1, "amount": 9000}', 'duplicate keys'],
             [('[' x 65) . (']' x 65), 'nesting deeper than 64'],
             ["{\"a\": \"\xff\"}", 'invalid UTF-8'],
             ['amount=9000', 'not JSON']) {
    $r = $t->request('POST', '/tools/payments/v1/refunds', headers => \@auth,
                     body => $bad->[0]);
    refused($r, 400, 'bad_request', undef, $bad->[1]);
}

# identity
$r = $t->request('GET', '/tools/tickets/v1/tickets/7');
refused($r, 401, 'no_identity', undef, 'no identity');
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => ['Agent-Authorization' => 'Bearer abc.def.ghi']);
refused($r, 401, 'invalid_identity', undef, 'garbage token');
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => ['Agent-Authorization' => 'Basic Zm9vOmJhcg==']);
refused($r, 401, 'invalid_identity', undef, 'not a bearer token');
my $stranger = $t->token(sub => 'nobody');
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => ['Agent-Authorization' => "Bearer $stranger"]);
refused($r, 401, 'invalid_identity', undef, 'trusted issuer, unknown agent');
my $other_aud = $t->token(sub => 'support-bot', aud => 'someone-else');
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => ['Agent-Authorization' => "Bearer $other_aud"]);
refused($r, 401, 'invalid_identity', undef, 'wrong audience');
my ($evil_key) = $t->issuer_key('evil');
my $forged = $t->token(sub => 'support-bot', key => $evil_key);
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => ['Agent-Authorization' => "Bearer $forged"]);
refused($r, 401, 'invalid_identity', undef, 'token signed by an untrusted key');
$r = $t->request('GET', '/tools/tickets/v1/tickets/7',
                 headers => [@auth, 'Agent-Authorization' => "Bearer $bot"]);
refused($r, 400, 'bad_request', undef, 'two Agent-Authorization headers');

# monitor: decided and logged, never blocked
$r = $t->request('GET', '/watch/tickets/v1/export/all', headers => \@auth);
is($r->{status}, 200, 'monitor location passes a denied call');
$e = AgTest::echoed($r);
ok(!$e->{h}{'agent-authorization'}, 'monitor: own headers still removed');
$r = $t->request('GET', '/watch/tickets/v1/tickets/1');
is($r->{status}, 200, 'monitor location passes a call without identity');

# monitor-mode rule never changes the outcome
$r = $t->request('GET', '/tools/tickets/v1/tickets/9', headers => \@auth);
is($r->{status}, 200, 'monitor-mode deny rule does not block');

$t->stop;
my $log = $t->read_file('logs/decisions.log');
like($log, qr{^support-bot tickets allow tickets-read [0-9a-f]{32}$}m,
     'variables in the access log: allow');
like($log, qr{^support-bot tickets deny no-export [0-9a-f]{32}$}m,
     'variables in the access log: deny');
like($log, qr{^support-bot tickets monitor-deny no-export }m,
     'variables in the access log: monitor-deny');

done_testing;
