#!/usr/bin/perl
# mTLS identity: a client certificate with one SPIFFE ID, trusted only under
# its own trust domain's bundle, whatever ssl_client_certificate accepts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;
my $d = $t->dir;
my $echo = $t->echo_port;

sub ssl {
    my ($rc, $out) = $t->run('openssl', @_);
    die "openssl @_: $out" if $rc;
}

sub ca {
    my ($name) = @_;
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$d/$name.key", '-out', "$d/$name.pem", '-days', '2',
        '-subj', "/CN=$name", '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

sub leaf {
    my ($name, $ca, $san) = @_;
    $t->write_file("$name.ext", "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   . "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=$san\n");
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$d/$name.key", '-out', "$d/$name.csr", '-subj', "/CN=$name");
    ssl('x509', '-req', '-in', "$d/$name.csr", '-CA', "$d/$ca.pem", '-CAkey', "$d/$ca.key",
        '-CAcreateserial', '-out', "$d/$name.pem", '-days', '1', '-extfile', "$d/$name.ext");
}

ca('ca-example');
ca('ca-other');
leaf('server', 'ca-example', 'DNS:localhost');
leaf('bot', 'ca-example', 'URI:spiffe://example.org/agent/bot');
leaf('bot-again', 'ca-example', 'URI:spiffe://example.org/agent/bot');
leaf('impostor', 'ca-other', 'URI:spiffe://example.org/agent/bot');
leaf('other-bot', 'ca-other', 'URI:spiffe://other.org/agent/bot2');
leaf('two-ids', 'ca-example', 'URI:spiffe://example.org/agent/bot,URI:spiffe://example.org/agent/x');
leaf('no-id', 'ca-example', 'DNS:bot.example.org');
$t->write_file('clients.pem', $t->read_file('ca-example.pem') . $t->read_file('ca-other.pem'));

$t->policy({
    agentgov => 1,
    agents => {
        bot  => { spiffe => 'spiffe://example.org/agent/bot', owner => 'o' },
        bot2 => { spiffe => 'spiffe://other.org/agent/bot2', owner => 'o' },
        jwtbot => { jwt => { iss => 'agentgov-test', sub => 'jwtbot' }, owner => 'o' },
    },
    tools => { tickets => {} },
    intents => { work => { agents => ['bot', 'bot2', 'jwtbot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [ { id => 'all', effect => 'allow', tool => 'tickets' } ],
});

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    agentgov_trust  spiffe://example.org ca-example.pem;
    agentgov_trust  spiffe://other.org ca-other.pem;
    log_format ag '\$agentgov_agent \$agentgov_decision';
    server {
        listen 127.0.0.1:@{[ $t->port ]} ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_client_certificate clients.pem;
        ssl_verify_client optional;
        access_log logs/mtls.log ag;
@{[ $t->api_location ]}        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF2
$t->start_echo->start;

sub call {
    my (%o) = @_;
    my $path = $o{declare} ? '/agentgov/v1/tasks' : '/tools/tickets/v1/x';
    my @cmd = ('curl', '-s', '-k', '-o', "$d/curl.out", '-w', '%{http_code}',
               "https://127.0.0.1:@{[ $t->port ]}$path");
    push @cmd, '--cert', "$d/$o{cert}.pem", '--key', "$d/$o{cert}.key" if $o{cert};
    push @cmd, '-H', "Agent-Authorization: Bearer $o{jwt}" if $o{jwt};
    push @cmd, '-H', "Agent-Task: $o{task}" if $o{task};
    push @cmd, '-H', 'Content-Type: application/json', '--data-binary',
        '{"intent": "work", "ttl": "1h"}' if $o{declare};
    my ($rc, $out) = $t->run(@cmd);
    my $body = $t->read_file('curl.out') // '';
    my $json = eval { $AgTest::JSON->decode($body) };
    return ($out, $json);
}

# a task declared with the certificate is bound to it
my ($status, $j) = call(cert => 'bot', declare => 1);
is($status, 201, 'agent identified by its certificate declares a task');
my $bot_task = $j->{token};

($status, $j) = call(cert => 'bot', task => $bot_task);
is($status, 200, 'SPIFFE certificate from its own domain CA is an agent');
ok($j && $j->{target}, 'call reached the tool');

($status, $j) = call(cert => 'bot-again', task => $bot_task);
is($status, 401, 'the task token with another certificate of the same agent is refused');
is($j->{error}, 'no_task', 'certificate-bound task token: no_task');

($status, $j) = call(cert => 'impostor');
is($status, 401, 'certificate from another domain CA claiming this domain is refused');
is($j->{error}, 'invalid_identity', 'impostor: invalid_identity');

($status, $j) = call(cert => 'other-bot', declare => 1);
($status, $j) = call(cert => 'other-bot', task => $j->{token});
is($status, 200, 'the other domain ID under its own bundle is trusted');

($status, $j) = call(cert => 'two-ids');
is($status, 401, 'two URI SANs refused');

($status, $j) = call(cert => 'no-id');
is($status, 401, 'certificate without SPIFFE ID refused');

($status, $j) = call();
is($status, 401, 'no certificate and no JWT');
is($j->{error}, 'no_identity', 'no_identity');

my $jwt = $t->token(sub => 'jwtbot');
($status, $j) = call(jwt => $jwt, declare => 1);
($status, $j) = call(jwt => $jwt, task => $j->{token});
is($status, 200, 'JWT identity over TLS without a certificate');

($status, $j) = call(jwt => $jwt, task => $bot_task);
is($status, 401, 'another agent presenting a task token is refused');

($status, $j) = call(cert => 'bot', jwt => $jwt);
is($status, 400, 'certificate and Agent-Authorization together refused');
is($j->{error}, 'bad_request', 'both identities: bad_request');

$t->stop;
like($t->read_file('logs/mtls.log'), qr{^bot allow$}m, '$agentgov_agent from the certificate');
like($t->read_file('logs/mtls.log'), qr{^bot2 allow$}m, 'second trust domain agent');

done_testing;
