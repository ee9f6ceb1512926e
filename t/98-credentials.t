#!/usr/bin/perl
# The credential broker (SPEC section 7), proven by what the echoing upstream
# received: keys stripped from headers and query with proxy_pass with a URI,
# without one and with variables; the minted JWT injected, verified against
# agentgov_jwks, cached within half its life and never past its task; a
# gateway-held secret injected; every secret pattern refused in header,
# query, JSON body, JSON-escaped and URL-encoded, and never written to the
# audit file or the error log; agentgov_secret files and names checked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $iss = 'agentgov-test';

$t->policy({
    agentgov => 1,
    agents => {
        bot    => { jwt => { iss => $iss, sub => 'bot' }, owner => 'team' },
        helper => { jwt => { iss => $iss, sub => 'helper' }, owner => 'team' },
    },
    strip => { headers => ['X-Custom-Secret'], query => ['sig'] },
    secret_patterns => { acme_key => 'ACME-[0-9]{8}-KEY' },
    tools => {
        tickets  => { credential => { type => 'jwt', audience => 'tickets-api', ttl => '4s' } },
        plain    => { credential => { type => 'jwt', audience => 'plain-api', ttl => '60s',
                                      header => 'X-Tool-Token', format => 'Token {token}' } },
        vars     => { strip => { headers => ['X-Vars-Only'], query => ['session'] } },
        payments => { credential => { type => 'secret', secret => 'payments_key' } },
        vault    => { allow_secrets => ['github_token'] },
    },
    intents => {
        work  => { agents => ['bot', 'helper'], tools => ['tickets', 'plain', 'vars', 'payments', 'vault'],
                   max_ttl => '1h', max_depth => 2 },
        short => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' },
    },
    rules => [ { id => 'all', effect => 'allow', tool => ['tickets', 'plain', 'vars', 'payments', 'vault'] } ],
});

my $secret = 'payments-EXAMPLE-secret-value-42';
my $secret_file = $t->write_file('payments.secret', "$secret\n", 0600);
my ($rc, $out) = $t->run($AgTest::CLI, 'keygen', '--out', $t->dir . '/next.pem', '--type', 'p256');
die $out if $rc;

sub conf {
    my (%o) = @_;
    $t->config(<<"EOF2", workers => 2);
@{[ $t->gateway_http(audit => 1) ]}
    agentgov_signing_key @{[ $t->dir ]}/next.pem next;
    agentgov_secret      payments_key @{[ $o{secret_file} // $secret_file ]};
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location = /.well-known/jwks.json { agentgov_jwks; }
        location /tools/tickets/ { agentgov on; agentgov_tool tickets; proxy_pass http://127.0.0.1:$echo/; }
        location /tools/plain/ { agentgov on; agentgov_tool plain; proxy_pass http://127.0.0.1:$echo; }
        location /tools/vars/ { agentgov on; agentgov_tool vars; proxy_pass http://127.0.0.1:$echo\$agentgov_uri; }
        location /tools/payments/ { agentgov on; agentgov_tool payments; proxy_pass http://127.0.0.1:$echo/; }
        location /tools/vault/ { agentgov on; agentgov_tool vault; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF2
}

conf();
$t->start_echo->start;

my @h = $t->agent_headers(sub => 'bot', intent => 'work');

sub call {
    my ($method, $target, %o) = @_;
    my @hdr = (@h, @{ $o{headers} // [] });
    push @hdr, 'Content-Type' => 'application/json' if defined $o{body};
    return $t->request($method, $target, headers => \@hdr,
                       defined $o{body} ? (body => $o{body}) : ());
}

sub b64d { AgTest::b64url_decode($_[0]) }

# --- stripping ------------------------------------------------------------------------

my @keys = ('Authorization' => 'Basic c2VjcmV0OnNlY3JldA==', 'Proxy-Authorization' => 'Basic eA==',
            'Cookie' => 'session=abc', 'X-Api-Key' => 'k1', 'Api-Key' => 'k2',
            'X-Auth-Token' => 'k3', 'X-Custom-Secret' => 'k4', 'X-Vars-Only' => 'k5',
            'X-Kept' => 'kept-value');
my $query = 'api_key=q1&apikey=q2&access_token=q3&token=q4&key=q5&sig=q6&session=q7&keep=yes&Api%5FKey=q8';

for my $form (['tickets', 'a proxy_pass with a URI', '/v1/items'],
              ['plain', 'a proxy_pass without a URI', '/tools/plain/v1/items'],
              ['vars', 'a proxy_pass with variables', '/v1/items']) {
    my ($tool, $name, $path) = @$form;
    my $r = call('GET', "/tools/$tool/v1/items?$query", headers => \@keys);
    is($r->{status}, 200, "$name: the call passes") or diag($r->{raw});
    my $e = AgTest::echoed($r);
    my %got = %{ $e->{h} };
    for my $k (qw(proxy-authorization cookie x-api-key api-key x-auth-token x-custom-secret
                  agent-authorization agent-task)) {
        ok(!exists $got{$k}, "$name: $k does not reach the tool");
    }
    is_deeply($got{'x-kept'}, ['kept-value'], "$name: other headers do");
    my $auth = join ',', @{ $got{authorization} // [] };
    unlike($auth, qr/Basic/, "$name: the agent's Authorization does not reach the tool");
    if ($tool eq 'vars') {
        ok(!exists $got{'x-vars-only'}, "$name: the tool's own strip list");
        is($e->{target}, '/v1/items?keep=yes', "$name: only kept parameters arrive");
    } else {
        is_deeply($got{'x-vars-only'}, ['k5'], "$name: another tool's strip list does not apply");
        is($e->{target}, "$path?session=q7&keep=yes", "$name: only kept parameters arrive");
    }
}

my @recs = $t->audit_records;
my ($rec) = grep { ($_->{event} // '') eq 'call' && ($_->{tool} // '') eq 'tickets' } @recs;
is_deeply([ sort @{ $rec->{stripped} } ],
          [ sort qw(Authorization Proxy-Authorization Cookie X-Api-Key Api-Key X-Auth-Token
                    X-Custom-Secret api_key apikey access_token token key sig Api%5FKey) ],
          'the audit record names what was stripped');
unlike($t->read_file('audit/audit.jsonl'), qr/c2VjcmV0|session=abc|\bq[1-8]\b|kept-value/,
       'and never a value');

# --- the minted JWT ---------------------------------------------------------------------

my $r = $t->request('GET', '/.well-known/jwks.json');
is($r->{status}, 200, 'agentgov_jwks');
my @jwks = @{ $r->{json}{keys} };
is(scalar @jwks, 2, 'the signing key and the next one');
is($jwks[0]{kty}, 'OKP', 'the signing key (Ed25519)');
is($jwks[1]{kty}, 'EC', 'the next key (P-256), published before it signs');
ok($jwks[0]{kid} && $jwks[1]{kid} && $jwks[0]{kid} ne $jwks[1]{kid}, 'each with its kid');

my $t0 = time;
$r = call('GET', '/tools/tickets/v1/items');
my $e = AgTest::echoed($r);
my ($tok) = ($e->{h}{authorization}[0] // '') =~ /^Bearer (\S+)$/;
ok($tok, 'the tool gets Authorization: Bearer <jwt>');
my ($h64, $p64, $s64) = split /\./, $tok // '';
my $hdr = $AgTest::JSON->decode(b64d($h64));
my $claims = $AgTest::JSON->decode(b64d($p64));
is($hdr->{typ}, 'agentgov-credential+jwt', 'a typ of its own');
is($hdr->{kid}, $jwks[0]{kid}, 'signed by the key the JWKS names');
is($claims->{iss}, 'agentgov', 'iss: the gateway');
is($claims->{aud}, 'tickets-api', 'aud: the tool');
is($claims->{sub}, 'bot', 'sub: the agent');
is($claims->{scope}, 'tickets', 'scope: the tool');
is($claims->{intent}, 'work', 'intent');
like($claims->{task}, qr/^[A-Za-z0-9_-]{22}$/, 'task');
is($claims->{exp} - $claims->{iat}, 4, 'exp: the tool\'s ttl');

# the signature, with openssl and the public key only
{
    my $pub = $t->dir . '/gw-pub.pem';
    system("openssl pkey -in " . $t->dir . "/gateway.pem -pubout -out $pub 2>/dev/null") == 0 or die;
    $t->write_file('signed', "$h64.$p64");
    $t->write_file('sig', b64d($s64));
    my ($vrc, $vout) = $t->run('openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', $pub, '-rawin',
                               '-in', $t->dir . '/signed', '-sigfile', $t->dir . '/sig');
    is($vrc, 0, 'the signature verifies with the published key') or diag($vout);
}

# cached within half its life, minted anew after: each of the two workers
# has its own cache, so a run of calls sees at most one token per worker
my %seen = ($tok => 1);
for (1 .. 6) {
    $r = call('GET', '/tools/tickets/v1/again');
    my ($tk) = (AgTest::echoed($r)->{h}{authorization}[0] // '') =~ /^Bearer (\S+)$/;
    $seen{ $tk // '' }++;
}
ok(keys %seen <= 2, 'the same token within half its life (one per worker)')
    if time - $t0 < 1.8;
sleep(2.2 - (time - $t0)) if time - $t0 < 2.2;
my %jti;
for (1 .. 4) {
    $r = call('GET', '/tools/tickets/v1/later');
    my ($tk) = (AgTest::echoed($r)->{h}{authorization}[0] // '') =~ /^Bearer (\S+)$/;
    $jti{ $AgTest::JSON->decode(b64d((split /\./, $tk)[1]))->{jti} }++;
}
ok(!$jti{ $claims->{jti} }, 'a new one once half its life is gone');

# another header and format; a delegated task's act chain
$r = call('GET', '/tools/plain/v1/x');
$e = AgTest::echoed($r);
like($e->{h}{'x-tool-token'}[0] // '', qr/^Token ey/, 'header and format as the tool says');
{
    my $hjwt = $t->token(sub => 'helper');
    my $d = $t->declare(jwt => $hjwt, intent => 'work', parent => $h[3], want_response => 1);
    is($d->{status}, 201, 'a delegated task') or diag($d->{raw});
    $r = $t->request('GET', '/tools/tickets/v1/x',
                     headers => ['Agent-Authorization' => "Bearer $hjwt", 'Agent-Task' => $d->{json}{token}]);
    my ($dt) = (AgTest::echoed($r)->{h}{authorization}[0] // '') =~ /^Bearer (\S+)$/;
    my $dc = $AgTest::JSON->decode(b64d((split /\./, $dt)[1]));
    is($dc->{sub}, 'helper', 'sub: the delegated agent');
    is_deeply($dc->{act}, { sub => 'bot' }, 'act: the delegator');
}

# never past the task's end
{
    my $jwt = $t->token(sub => 'bot');
    my $d = $t->declare(jwt => $jwt, intent => 'short', ttl => '2s', want_response => 1);
    my @hs = ('Agent-Authorization' => "Bearer $jwt", 'Agent-Task' => $d->{json}{token});
    $r = $t->request('GET', '/tools/tickets/v1/short', headers => \@hs);
    my ($st) = (AgTest::echoed($r)->{h}{authorization}[0] // '') =~ /^Bearer (\S+)$/;
    my $sc = $AgTest::JSON->decode(b64d((split /\./, $st)[1]));
    ok($sc->{exp} <= $sc->{iat} + 2, 'exp never past the task\'s end');
    $r = $t->request('DELETE', "/agentgov/v1/tasks/$d->{json}{task}",
                     headers => ['Agent-Authorization' => "Bearer $jwt"]);
    my $n = () = $t->echo_log->@*;
    $r = $t->request('GET', '/tools/tickets/v1/after-end', headers => \@hs);
    is($r->{status}, 401, 'after the task ends no call passes');
    is(scalar(() = $t->echo_log->@*), $n, 'and no credential goes out');
}

# the audit record names the credential
@recs = $t->audit_records;
($rec) = grep { ($_->{action}{path} // '') eq '/v1/x' && $_->{tool} eq 'plain' } @recs;
is($rec->{credential}{type}, 'jwt', 'the audit record: credential type');
is($rec->{credential}{kid}, $jwks[0]{kid}, 'kid');
like($rec->{credential}{jti}, qr/^[A-Za-z0-9_-]{22}$/, 'jti');
ok($rec->{credential}{exp} > time, 'exp');

# --- a gateway-held secret ------------------------------------------------------------

$r = call('GET', '/tools/payments/v1/balance', headers => ['Authorization' => 'Bearer agent-held']);
$e = AgTest::echoed($r);
is_deeply($e->{h}{authorization}, ["Bearer $secret"], 'the secret, formatted, replaces what the agent sent');
unlike($t->read_file('audit/audit.jsonl'), qr/\Q$secret\E/, 'the secret is not in the audit file');
unlike($t->error_log, qr/\Q$secret\E/, 'nor in the error log');

# --- secrets in content ------------------------------------------------------------------

# fake keys of each format, put together at run time
my %fake = (
    aws_access_key => 'AKIA' . ('Q' x 16),
    github_token   => 'ghp_' . ('a1B2' x 9),
    gitlab_token   => 'glpat-' . ('x' x 20),
    slack_token    => 'xoxb-' . '123456789012' . '-abcdefABCDEF',
    stripe_key     => 'sk_live_' . ('Z9' x 12),
    openai_key     => 'sk-' . ('A1' x 12),
    google_api_key => 'AIza' . ('B' x 35),
    private_key    => '-----BEGIN RSA PRIVATE KEY-----',
    jwt            => 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' . ('s' x 20),
    acme_key       => 'ACME-12345678-KEY',
);
$fake{aws_secret_key} = 'aws_secret_access_key=' . ('wJalr' x 8);

sub pct { my $s = shift; $s =~ s/([^A-Za-z0-9])/sprintf('%%%02X', ord $1)/ge; $s }
sub pct_all { join '', map { sprintf '%%%02X', ord } split //, $_[0] }

my $n = 0;
for my $name (sort keys %fake) {
    my $v = $fake{$name};
    (my $esc = $v) =~ s/^(.)/sprintf('\\u%04x', ord $1)/e;
    my @ways = (
        ['header', [headers => ['X-Note' => $v]]],
        ['path', [], undef, '/' . pct($v)],
        ['query', [], '?q=' . pct($v)],
        ['URL-encoded query', [], '?q=' . pct_all($v)],
        ['JSON body', [body => $AgTest::JSON->encode({ note => $v })]],
        ['JSON-escaped body', [body => qq({"note": "$esc"})]],
    );
    for my $w (@ways) {
        my ($how, $args, $q, $tail) = @$w;
        my $method = (grep { $_ eq 'body' } @$args) ? 'POST' : 'GET';
        $r = call($method, "/tools/tickets/v1/x" . ($tail // '') . ($q // ''), @$args);
        $n++;
        is($r->{status}, 403, "$name in a $how: 403") or diag($r->{raw});
        is($r->{json}{error}, 'secret_in_request', "$name in a $how: secret_in_request");
    }
}

@recs = grep { ($_->{error} // '') eq 'secret_in_request' } $t->audit_records;
is(scalar @recs, $n, 'every refusal recorded');
ok(!(grep { !@{ $_->{findings} // [] } } @recs), 'each with its findings');
like($recs[0]{findings}[0], qr/^[a-z_]+:(header|path|query|body):[0-9a-f]{8}$/, 'a pattern name and a hash prefix');
ok(!(grep { ($_->{findings}[0] =~ /:path:/) && $_->{action}{path} !~ /^\(withheld/ } @recs),
   'a path that holds a secret is not written down');
my $audit = $t->read_file('audit/audit.jsonl');
my $log = $t->error_log;
for my $name (sort keys %fake) {
    my $core = substr($fake{$name}, 4, 12);
    unlike($audit, qr/\Q$core\E/, "$name: not in the audit file");
    unlike($log, qr/\Q$core\E/, "$name: not in the error log");
}

# a tool that may receive a pattern
$r = call('POST', '/tools/vault/v1/store', body => $AgTest::JSON->encode({ value => $fake{github_token} }));
is($r->{status}, 200, 'allow_secrets lets that pattern pass to its tool');
$r = call('POST', '/tools/vault/v1/store', body => $AgTest::JSON->encode({ value => $fake{gitlab_token} }));
is($r->{status}, 403, 'but no other');

# ordinary content passes
$r = call('POST', '/tools/tickets/v1/x', body => $AgTest::JSON->encode({
    id => '3fa85f64-5717-4562-b3fc-2c963f66afa6', sha => 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    text => 'skipping the sk- prefix; see AKIA docs' }));
is($r->{status}, 200, 'UUIDs, hashes and prose pass');

# --- configuration ------------------------------------------------------------------------

chmod 0644, $secret_file;
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'a secret file others may read fails nginx -t');
like($out, qr/accessible to group or others/, '... saying so');
chmod 0600, $secret_file;

$t->config(<<"EOF2");
@{[ $t->gateway_http ]}
    server { listen 127.0.0.1:@{[ $t->port ]}; location / { agentgov on; agentgov_tool payments; proxy_pass http://127.0.0.1:$echo/; } }
EOF2
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'a credential naming an undefined secret fails nginx -t');
like($out, qr/payments_key/, '... naming it');
conf();

done_testing;
