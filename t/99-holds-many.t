#!/usr/bin/perl
# A thousand calls held at once on two workers, all approved: every held
# request is answered, each with its own approval, none lost or crossed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);
use AgTest;

my $N = 1000;
my $t = AgTest->new;
my $up = $t->free_port;
my $iss = 'agentgov-test';

$t->policy({
    agentgov => 1,
    agents => { bot => { jwt => { iss => $iss, sub => 'bot' }, owner => 'team', max_pending => $N } },
    groups => { finance => [ { jwt => { iss => $iss, groups => 'finance' } } ] },
    tools => { pay => {} },
    intents => { work => { agents => ['bot'], tools => ['pay'], max_ttl => '1h' } },
    rules => [ { id => 'refund', effect => 'hold', tool => 'pay', approvers => ['finance'] } ],
});

$t->config(<<"EOF2", workers => 2, connections => 4096);
@{[ $t->gateway_http(zone => '16m') ]}
    server { listen 127.0.0.1:$up; location / { return 200 "ok\\n"; } }
    server {
        listen 127.0.0.1:@{[ $t->port ]} backlog=2048;
@{[ $t->api_location ]}
        location /tools/pay/ { agentgov on; agentgov_tool pay; proxy_pass http://127.0.0.1:$up/; }
    }
EOF2
$t->start;

my @h = $t->agent_headers(sub => 'bot', intent => 'work');
my $fay = $t->token(sub => 'fay', groups => 'finance');

# a thousand held calls, each on its own connection
my (@socks, %path_of);
for my $i (1 .. $N) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
        or die "connect $i: $!";
    print $s "GET /tools/pay/v1/item/$i HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "Agent-Authorization: $h[1]\r\nAgent-Task: $h[3]\r\n\r\n";
    push @socks, $s;
    $path_of{$s} = "/v1/item/$i";
}

my @pending;
for (1 .. 100) {
    my $r = $t->request('GET', '/agentgov/v1/approvals?state=pending',
                        headers => ['Authorization' => "Bearer $fay"]);
    @pending = @{ $r->{json}{items} // [] };
    last if @pending == $N;
    sleep 0.1;
}
is(scalar @pending, $N, "$N calls held at once");
my %id_of = map { ($_->{action}{path} => $_->{id}) } @pending;

my $t0 = time;
my $ok = 0;
for my $p (@pending) {
    my $r = $t->request('POST', "/agentgov/v1/approvals/$p->{id}",
                        headers => ['Authorization' => "Bearer $fay", 'Content-Type' => 'application/json'],
                        body => { decision => 'approve' });
    $ok++ if $r->{status} == 200;
}
is($ok, $N, 'all approved');

# every held request answers, with its own approval
my $sel = IO::Select->new(@socks);
my (%buf, $done, $right);
$done = $right = 0;
my $deadline = time + 30;
while ($sel->count && time < $deadline) {
    for my $s ($sel->can_read(1)) {
        my $n = sysread($s, my $chunk, 4096);
        if ($n) { $buf{$s} .= $chunk; next }
        $sel->remove($s);
        $done++;
        my ($status) = ($buf{$s} // '') =~ m{^HTTP/1\.1 (\d+)};
        my ($aid) = ($buf{$s} // '') =~ /^Agent-Approval: (\S+)\r$/mi;
        $right++ if ($status // 0) == 200 && defined $aid
                    && $aid eq ($id_of{ $path_of{$s} } // '');
        close $s;
    }
}
my $dt = time - $t0;
is($done, $N, 'every held request answered');
is($right, $N, 'each 200, with the approval of its own hold');
diag(sprintf('%d approvals through the API and %d resumed calls in %.1f s', $N, $N, $dt));

done_testing;
