#!/usr/bin/perl
# The same decisions over HTTP/2 (cleartext, prior knowledge), where nginx
# reads request bodies through a different path.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $d = $t->dir;

$t->policy({
    agentgov => 1,
    agents => { bot => { jwt => { iss => 'agentgov-test', sub => 'bot' }, owner => 'o' } },
    tools => { payments => {} },
    intents => { work => { agents => ['bot'], tools => ['payments'], max_ttl => '1h' } },
    rules => [
        { id => 'big', effect => 'deny', tool => 'payments', method => 'POST',
          when => { 'body:/amount' => { gt => 5000 } } },
        { id => 'all', effect => 'allow', tool => 'payments' },
    ],
});

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    client_body_buffer_size 1k;
    server {
        listen 127.0.0.1:@{[ $t->port ]} http2;
@{[ $t->api_location ]}        location /tools/payments/ {
            agentgov on;
            agentgov_tool payments;
            proxy_pass http://127.0.0.1:$echo/;
        }
    }
EOF2
$t->start_echo->start;
my $jwt = $t->token(sub => 'bot');
my (undef, $out) = $t->run('curl', '-s', '--http2-prior-knowledge', '-H', "Agent-Authorization: Bearer $jwt",
                           '-H', 'Content-Type: application/json', '--data-binary',
                           '{"intent": "work", "ttl": "1h"}',
                           "http://127.0.0.1:@{[ $t->port ]}/agentgov/v1/tasks");
my $task = eval { $AgTest::JSON->decode($out)->{token} } or BAIL_OUT("declare over HTTP/2: $out");
my @tok = ("Agent-Authorization: Bearer $jwt", "Agent-Task: $task");

sub h2 {
    my ($body, @extra) = @_;
    $t->write_file('h2-body', $body) if defined $body;
    my @cmd = ('curl', '-s', '--http2-prior-knowledge', '-o', "$d/h2.out",
               '-w', '%{http_code} %{http_version}',
               (map { ('-H', $_) } @tok), @extra);
    push @cmd, '-H', 'Content-Type: application/json', '--data-binary', "\@$d/h2-body"
        if defined $body;
    push @cmd, "http://127.0.0.1:@{[ $t->port ]}/tools/payments/v1/refunds";
    my (undef, $out) = $t->run(@cmd);
    my ($code, $ver) = split ' ', $out;
    my $json = eval { $AgTest::JSON->decode($t->read_file('h2.out')) };
    return ($code, $ver, $json);
}

my ($code, $ver, $j) = h2(undef);
is($ver, '2', 'spoke HTTP/2');
is($code, 200, 'GET allowed over HTTP/2');

($code, undef, $j) = h2('{"amount": 10}');
is($code, 200, 'small body allowed over HTTP/2');
is($j->{body}, '{"amount": 10}', 'body forwarded unchanged');

($code, undef, $j) = h2('{"amount": 9000}');
is($code, 403, 'body condition denies over HTTP/2');
is($j->{rule}, 'big', 'deciding rule');

my $pad = 'x' x 20000;
($code, undef, $j) = h2(qq({"pad": "$pad", "amount": 9000}));
is($code, 403, 'body in many frames and a temp file is inspected');
($code, undef, $j) = h2(qq({"pad": "$pad", "amount": 1}));
is($code, 200, 'large allowed body forwarded');
is(length($j->{body}), length(qq({"pad": "$pad", "amount": 1})), 'whole body forwarded');

($code, undef, $j) = h2('{"amount": 1, "amount": 9000}');
is($code, 400, 'duplicate keys refused over HTTP/2');

done_testing;
