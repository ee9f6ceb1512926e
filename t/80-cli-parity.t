#!/usr/bin/perl
# The CLI (`agentgov policy eval`) and the module decide the same call the same
# way: every example case without a task-only part is sent through nginx and
# evaluated by the CLI, and the decisions and deciding rules must agree. An
# MCP case is sent as its JSON-RPC message and read from the JSON-RPC answer.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use AgTest;

my $t = AgTest->new;
my $echo = $t->echo_port;
my $policy = "$AgTest::ROOT/policies/example.json";
my $cases = $AgTest::JSON->decode($t->read_file("$AgTest::ROOT/policies/example.cases.json"));

# the example's own tests pass
my ($rc, $out) = $t->run($AgTest::CLI, 'policy', 'test', $policy,
                         "$AgTest::ROOT/policies/example.cases.json");
is($rc, 0, 'agentgov policy test passes the example cases');
like($out, qr/^\d+ passed, 0 failed$/m, 'policy test summary line');

my $policy_json = $AgTest::JSON->decode($t->read_file($policy));
my @tools = sort keys %{ $policy_json->{tools} };
my $locations = join "\n", map { <<"LOC" } @tools;
        location /tools/$_/ {
            agentgov on;
            agentgov_tool $_;
            proxy_pass http://127.0.0.1:$echo/;
        }
LOC

my $secret = $t->write_file('payments.secret', "test-only-secret\n", 0600);
$t->config(<<"EOF2");
@{[ $t->gateway_http(policy => $policy, iss => 'agentgov-dev') ]}
    agentgov_secret payments_key $secret;
    agentgov_hold_timeout 100ms;
    server {
        listen 127.0.0.1:@{[ $t->port ]};
        add_header X-Rule \$agentgov_rule always;
@{[ $t->api_location ]}
$locations
        location / {
            agentgov on;
            proxy_pass http://127.0.0.1:$echo\$agentgov_uri;
        }
    }
EOF2
$t->start_echo->start;

my $n = 0;
for my $case (@{ $cases->{cases} }) {
    my %call = %{ $case->{call} };
    next if $call{tool} && !$policy_json->{tools}{ $call{tool} };
    next unless $call{intent};                 # the module calls only inside tasks
    my $intent = $policy_json->{intents}{ $call{intent} } or next;
    next unless grep { $_ eq $call{agent} } @{ $intent->{agents} };
    delete $call{time};                        # the module decides at the current time
    $n++;

    my $file = $t->write_file("call-$n.json", $AgTest::JSON->encode(\%call));
    my (undef, $res) = $t->run($AgTest::CLI, 'policy', 'eval', $policy, $file);
    my $cli = eval { $AgTest::JSON->decode($res) } or do { fail("eval $case->{name}: $res"); next };

    my @h = $t->agent_headers(sub => $call{agent}, intent => $call{intent},
                              iss => 'agentgov-dev', ttl => '10m');
    for my $name (sort keys %{ $call{headers} // {} }) {
        my $v = $call{headers}{$name};
        push @h, map { ($name => $_) } ref $v ? @$v : ($v);
    }
    my $target = $call{tool} ? "/tools/$call{tool}$call{path}" : $call{path};
    if (defined $call{query}) {
        my $q = $call{query};
        $q = join '&', map { "$_=$q->{$_}" } sort keys %$q if ref $q;
        $target .= "?$q";
    }
    my $body = exists $call{body} ? $call{body} : undef;
    if (my $m = $call{mcp}) {
        # the module's session default (initialize, lists) is not the CLI's
        next if $m->{method} =~ m{^(initialize|ping|notifications/|[a-z]+(/templates)?/list$)};
        my $params = $m->{method} eq 'tools/call' ? { name => $m->{tool}, arguments => $m->{arguments} // {} }
                   : $m->{method} eq 'resources/read' ? { uri => $m->{resource} }
                   : $m->{method} eq 'prompts/get' ? { name => $m->{prompt} } : {};
        $body = { jsonrpc => '2.0', id => $n, method => $m->{method}, params => $params };
        push @h, 'Content-Type' => 'application/json';
        $call{method} = 'POST';
        $target = "/tools/$call{tool}/";
    }
    my $r = $t->request($call{method}, $target, headers => \@h,
                        host => $call{host} // 'localhost',
                        defined $body ? (body => $body) : ());

    # an MCP refusal is a JSON-RPC answer: its code is the gateway's
    my $mcp_error = $call{mcp} && ref $r->{json} eq 'HASH' && $r->{status} == 200
                    ? ($r->{json}{result}{_meta}{agentgov}{error}
                       // (ref $r->{json}{error} ? $r->{json}{error}{data}{error} : undef))
                    : undef;
    $r->{json} = { error => $mcp_error } if defined $mcp_error;

    my $module = $r->{status} == 200 && !defined $mcp_error ? 'allow'
               : ($r->{json}{error} // '') =~ /^approval_(expired|pending)$/ ? 'hold'
               : 'deny';
    is($module, $cli->{decision}, "$case->{name}: same decision ($cli->{decision})");
    is($r->{headers}{'x-rule'} || undef, $cli->{rule}, "$case->{name}: same rule");
    if ($module eq 'deny' && $cli->{error}) {
        is($r->{json}{error}, $cli->{error}, "$case->{name}: same error ($cli->{error})");
    }
}
ok($n >= 10, "$n calls compared");

done_testing;
