#!/usr/bin/env perl
# The `make bench` driver (SPEC section 10, docs/bench.md). In one run, on
# this machine, all on 127.0.0.1:
#
#   1. throughput and latency under the same wrk load and the same upstream:
#      plain nginx proxy_pass, then the gateway (agentgov on, ES256 agent JWT,
#      100-rule policy) on a GET, and the same pair for a 1 KiB JSON POST
#      decided by a rule with body: conditions; each also on one connection,
#      for the latency added without queueing;
#   2. policy evaluation time per call at 10 to 10,000 rules
#      (agentgov policy eval --bench, policies from bench/gen-policy.pl), and
#      for the gateway's own policy and calls;
#   3. memory, idle CPU and resume latency of BENCH_HOLDS calls held at once
#      (bench/holds.pl, which also writes build/bench/holds.json);
#   4. a compact table on stdout, also written to build/bench/report.txt.
#
# Every nginx it starts and every wrk it runs is stopped when it ends, also on
# failure or interruption. Perl core modules only; wrk and taskset.
#
# Environment: AGENTGOV_BUILD, NGINX_BIN, BENCH_SECONDS (10), BENCH_WARMUP (2),
# BENCH_CONNECTIONS (50), BENCH_EVAL_MS (1000), BENCH_EVAL_RULES
# ("10 100 1000 10000"), BENCH_HOLDS (10000; 0 leaves the holds out) and
# bench/holds.pl's BENCH_HOLDS_* variables.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);

my $ROOT   = abs_path(dirname(__FILE__) . '/..');
my $BUILD  = abs_path($ENV{AGENTGOV_BUILD} // "$ROOT/build");
my $NGINX  = $ENV{NGINX_BIN} // '/usr/sbin/nginx';
my $CLI    = "$BUILD/agentgov";
my $MODULE = "$BUILD/ngx_http_agentgov_module.so";
my $OUT    = "$BUILD/bench";
my $DIR    = "$OUT/run";

my $SECONDS = env_int('BENCH_SECONDS', 10, 1, 300);
my $WARMUP  = env_int('BENCH_WARMUP', 2, 0, 60);
my $CONNS   = env_int('BENCH_CONNECTIONS', 50, 1, 1000);
my $EVAL_MS = env_int('BENCH_EVAL_MS', 1000, 10, 60000);
my $HOLDS   = env_int('BENCH_HOLDS', 10000, 0, 100000);
my $LAT_SECONDS = int($SECONDS / 2) || 1;
my @EVAL_RULES = split ' ', ($ENV{BENCH_EVAL_RULES} // '10 100 1000 10000');
/^[0-9]+$/ && $_ > 0 or die "BENCH_EVAL_RULES: $_ is not a rule count\n"
    for @EVAL_RULES;

my $JSON = JSON::PP->new->canonical->pretty;
my $GW_RULES = 100;         # rules in the gateway's policy, the bench rules included
my $GW_TOOLS = 10;
my $ISS = 'agentgov-dev';   # the issuer bench/gen-policy.pl's agent names
my $BODY_SIZE = 1024;

# --- clean-up, whatever happens ----------------------------------------------------

my (@started, %child);      # nginx pid files; pids of wrk runs under way

sub stop_nginx {
    my ($pidfile) = @_;
    open my $fh, '<', $pidfile or return;
    my $pid = <$fh>;
    close $fh;
    return unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    $pid = $1;
    my @workers = children($pid);
    kill 'QUIT', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        kill 'KILL', @workers if @workers;
    }
    unlink $pidfile;
}

sub cleanup {
    for my $pid (keys %child) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    %child = ();
    stop_nginx($_) for reverse @started;
    @started = ();
}

$SIG{$_} = sub { die "interrupted by SIG$_[0]\n" } for qw(INT TERM HUP);
END {
    my $rc = $?;
    cleanup();
    $? = $rc;
}

# --- small helpers ---------------------------------------------------------------------

sub env_int {
    my ($name, $default, $min, $max) = @_;
    my $v = $ENV{$name};
    return $default unless defined $v && length $v;
    $v =~ /^[0-9]+$/ && $v >= $min && $v <= $max
        or die "$name: $v is not a whole number from $min to $max\n";
    return $v + 0;
}

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!\n";
    print $fh $content;
    close $fh or die "$path: $!\n";
    return $path;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

sub sh {
    my ($s) = @_;
    return $s if $s =~ m{^[\w./=:,+@%-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# Runs a command; returns (exit status, stdout, stderr, seconds).
sub run {
    my (@cmd) = @_;
    my $err = "$DIR/.stderr";
    my $t0 = time;
    my $out = `@{[ join ' ', map { sh($_) } @cmd ]} 2>@{[ sh($err) ]}`;
    my $rc = $?;
    my $dt = time - $t0;
    return ($rc, $out, read_file($err) // '', $dt);
}

sub run_ok {
    my (@cmd) = @_;
    my ($rc, $out, $err) = run(@cmd);
    die "failed ($rc): @cmd\n$out$err" if $rc;
    return $out;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, Proto => 'tcp')
        or die "no free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 400) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp');
        if ($s) { close $s; return 1; }
        sleep 0.025;
    }
    die "nothing listens on 127.0.0.1:$port\n";
}

sub which {
    my ($name) = @_;
    for (split /:/, $ENV{PATH} // '/usr/bin:/bin') {
        return "$_/$name" if -x "$_/$name";
    }
    return;
}

sub children {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = read_file($stat) // next;
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        push @kids, $1 if $s =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return @kids;
}

# user + system CPU time of a process, in seconds
my $TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub cpu_seconds {
    my ($pid) = @_;
    my $s = read_file("/proc/$pid/stat") // return 0;
    $s =~ s/^.*\) //s;
    my @f = split ' ', $s;          # f[0] is the state: utime is f[11], stime f[12]
    return ($f[11] + $f[12]) / $TCK;
}

sub rss_kib {
    my ($pid) = @_;
    my $s = read_file("/proc/$pid/status") // return 0;
    return $s =~ /^VmRSS:\s+(\d+)/m ? $1 : 0;
}

# One HTTP/1.1 request over a fresh connection: (status, body).
sub http {
    my ($port, $method, $target, $headers, $body) = @_;
    $body //= '';
    my $req = "$method $target HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    $req .= "$_\r\n" for @$headers;
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if length $body;
    $req .= "\r\n$body";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or die "connect 127.0.0.1:$port: $!\n";
    $s->autoflush(1);
    print $s $req;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $rbody) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return ($status // 0, $rbody // '');
}

# --- where the processes run ---------------------------------------------------------

# The first two CPUs this process may use: nginx (master, worker, and the
# upstream) on the first, wrk on the second. Unpinned without taskset or with
# one CPU.
my $TASKSET = which('taskset');
my ($CPU_NGINX, $CPU_WRK);
if ($TASKSET) {
    my $aff = `$TASKSET -pc $$ 2>/dev/null` // '';
    my @cpus;
    if ($aff =~ /:\s*([0-9,\-]+)\s*$/) {
        for (split /,/, $1) {
            push @cpus, /^(\d+)-(\d+)$/ ? ($1 .. $2) : $_;
        }
    }
    ($CPU_NGINX, $CPU_WRK) = @cpus[0, 1] if @cpus >= 2;
}

sub pinned {
    my ($cpu, @cmd) = @_;
    return defined $cpu ? ($TASKSET, '-c', $cpu, @cmd) : @cmd;
}

# --- nginx -------------------------------------------------------------------------------

sub nginx_conf {
    my ($name, %o) = @_;
    my $d = "$DIR/$name";
    make_path("$d/logs");
    chmod 0755, $d;
    my $conf = '';
    $conf .= "load_module $MODULE;\n" if $o{module};
    $conf .= <<"EOF";
worker_processes 1;
daemon on;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
$o{http}
}
EOF
    write_file("$d/nginx.conf", $conf);
    return $d;
}

# Starts nginx on DIR/nginx.conf, pinned; returns its worker's pid.
sub start_nginx {
    my ($d, $port) = @_;
    push @started, "$d/nginx.pid";
    my ($rc, $out, $err) = run(pinned($CPU_NGINX, $NGINX, '-p', "$d/", '-c', "$d/nginx.conf"));
    die "nginx ($d) failed to start:\n$out$err" . (read_file("$d/logs/error.log") // '')
        if $rc;
    wait_port($port);
    my $pid = read_file("$d/nginx.pid") // die "nginx ($d): no pid file\n";
    chomp $pid;
    my @w;
    for (1 .. 100) {
        @w = children($pid);
        last if @w;
        sleep 0.02;
    }
    die "nginx ($d): no worker process\n" unless @w == 1;
    return $w[0];
}

# --- wrk ---------------------------------------------------------------------------------------

# Runs wrk for SECS seconds on a variant; returns its figures (undef when it
# produced none).
sub wrk {
    my ($v, $secs, $tag, $conns) = @_;
    $conns //= $CONNS;
    my $log = "$DIR/wrk-$v->{key}-$tag.txt";
    my @cmd = (pinned($CPU_WRK, 'wrk', '-t1', "-c$conns", "-d${secs}s", '--latency',
                      '--timeout', '5s', '-s', "$ROOT/bench/wrk.lua",
                      map({ ('-H', $_) } @{ $v->{headers} }), $v->{url}));
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        $ENV{BENCH_METHOD} = $v->{method};
        $ENV{BENCH_BODY_FILE} = $v->{body_file} // '';
        open STDOUT, '>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }
    $child{$pid} = 1;
    my $deadline = time + $secs + 30;
    my $done = 0;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) { $done = 1; last; }
        sleep 0.1;
    }
    unless ($done) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    delete $child{$pid};
    die "wrk ($v->{name}) did not finish within ${secs}s + 30s\n" unless $done;
    my $text = read_file($log) // '';
    my ($line) = $text =~ /^BENCH (.*)$/m;
    die "wrk ($v->{name}) gave no figures:\n$text" unless $line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    $r{rps} = $r{duration_us} ? $r{requests} / ($r{duration_us} / 1e6) : 0;
    $r{errors} = $r{non2xx} + $r{connect} + $r{read} + $r{write} + $r{timeout};
    return \%r;
}

# --- 0. set up --------------------------------------------------------------------------

-x $CLI && -f $MODULE or die "build $CLI and $MODULE first (make all)\n";
which('wrk') or die "wrk is not installed (scripts/deps.sh wrk)\n";
remove_tree($DIR);
make_path($DIR);
chmod 0755, $OUT, $DIR;
my $t_start = time;
# nginx loads a copy of the module: `make` rewrites the built one in place
# (cp), which kills a running worker with SIGBUS
{
    require File::Copy;
    File::Copy::copy($MODULE, "$DIR/ngx_http_agentgov_module.so")
        or die "copy $MODULE: $!\n";
    $MODULE = "$DIR/ngx_http_agentgov_module.so";
}

my $ncpu = () = (read_file('/proc/cpuinfo') // '') =~ /^processor\s*:/mg;
my ($cpu_model) = (read_file('/proc/cpuinfo') // '') =~ /^model name\s*:\s*(.*)$/m;
my ($nginx_ver) = `$NGINX -v 2>&1` =~ m{nginx/(\S+)};
my ($wrk_ver) = `wrk -v 2>&1` =~ /^wrk (\S+)/m;
my $kernel = (POSIX::uname())[2];
my ($loadavg) = (read_file('/proc/loadavg') // '?') =~ /^(\S+ \S+ \S+)/;
$loadavg //= '?';
my $commit = `git -C @{[ sh($ROOT) ]} rev-parse --short HEAD 2>/dev/null` // '';
chomp $commit;
if (length $commit) {
    $commit .= '+dirty'
        if `git -C @{[ sh($ROOT) ]} status --porcelain -- src ngx_agentgov_module.c config 2>/dev/null` ne '';
} else {
    $commit = 'unknown';
}

print "agentgov bench: wrk -t1 -c$CONNS, ${WARMUP}s warm-up + ${SECONDS}s per variant; "
    . (defined $CPU_NGINX ? "nginx on CPU $CPU_NGINX, wrk on CPU $CPU_WRK"
                          : "not pinned (no taskset or one CPU)") . "\n";

# Keys and the agent's token: ES256, like an identity provider's.
my $key = "$DIR/idp.pem";
my $jwks = "$DIR/idp.jwks.json";
run_ok($CLI, 'keygen', '--out', $key, '--type', 'p256', '--jwks', $jwks);
my $token = run_ok($CLI, 'token', '--key', $key, '--iss', $ISS, '--sub', 'bench-bot',
                   '--aud', 'agentgov', '--ttl', '1h');
$token =~ s/\s+$//;
# the gateway's own key: task tokens are MACed with a key derived from it
my $gw_key = "$DIR/gateway.pem";
run_ok($CLI, 'keygen', '--out', $gw_key, '--type', 'ed25519');

# The gateway's policy: bench/gen-policy.pl's synthetic rules over 10 tools,
# and the rules the benchmark's calls are decided by, appended last. The GET
# goes to the tool with the most GET rules and the POST to the one with the
# most POST rules, so the index hands the engine several candidates first.
my @bench_rules = (
    { id => 'bench-read', effect => 'allow', agent => 'bench-bot', method => 'GET',
      path => '/v1/bench/*/items',
      when => { 'header:X-Team' => { glob => 'team-*' },
                'query:limit'   => { le => 100 } } },
    { id => 'bench-write-limit', effect => 'deny', method => 'POST',
      path => '/v1/bench/*/notes', reason => 'notes over 5000 are refused',
      when => { 'body:/amount' => { gt => 5000 } } },
    { id => 'bench-write', effect => 'allow', agent => 'bench-bot', method => 'POST',
      path => '/v1/bench/*/notes',
      when => { 'body:/amount' => { le => 5000 },
                'body:/status' => { in => ['open', 'pending'] } } },
);
my $gen = run_ok($^X, "$ROOT/bench/gen-policy.pl", $GW_RULES - @bench_rules,
                 '--tools', $GW_TOOLS);
my $policy = JSON::PP->new->decode($gen);
my %cell;
$cell{"$_->{method} $_->{tool}"}++ for @{ $policy->{rules} };
my %tool_for;
for my $m (qw(GET POST)) {
    my ($best) = sort { $cell{"$m $b"} <=> $cell{"$m $a"} || $a cmp $b }
                 grep { $cell{"$m $_"} } keys %{ $policy->{tools} };
    $tool_for{$m} = $best // (sort keys %{ $policy->{tools} })[0];
}
for (@bench_rules) { $_->{tool} = $tool_for{ $_->{method} } }
push @{ $policy->{rules} }, @bench_rules;
# an MCP tool: tools/call decided on the tool's name and its arguments
$policy->{tools}{'bench-mcp'} = { protocol => 'mcp',
    credential => { type => 'jwt', audience => 'bench-mcp', ttl => '60s' } };
push @{ $policy->{rules} },
    { id => 'bench-mcp-limit', effect => 'deny', tool => 'bench-mcp',
      mcp => { tool => 'update_note' }, reason => 'notes over 5000 are refused',
      when => { 'args:/amount' => { gt => 5000 } } },
    { id => 'bench-mcp', effect => 'allow', agent => 'bench-bot', tool => 'bench-mcp',
      mcp => { tool => 'update_note' },
      when => { 'args:/amount' => { le => 5000 },
                'args:/status' => { in => ['open', 'pending'] } } };
# the tools the calls go to get a minted credential (the agent's keys are
# stripped and the call scanned for secrets on every call anyway)
for my $m (qw(GET POST)) {
    $policy->{tools}{ $tool_for{$m} }{credential} =
        { type => 'jwt', audience => "bench-$m", ttl => '60s' };
}
# every governed call is made inside a task: the bench agent's intent
$policy->{intents}{'bench'} = { agents => ['bench-bot'], max_ttl => '1h',
                                tools => [ (sort { $a cmp $b } keys %{{ reverse %tool_for }}),
                                           'bench-mcp' ] };
my $policy_file = write_file("$DIR/policy.json", $JSON->encode($policy));
run_ok($CLI, 'policy', 'check', $policy_file);

# The calls: a GET with a query and a team header, and a 1 KiB JSON POST: a
# note on an order, with a customer, line items, and text that fills it to
# exactly 1 KiB.
my $note = {
    amount => 1200, currency => 'EUR', status => 'open', ticket => 4242,
    notify => JSON::PP::false,
    customer => { id => 'cus_8f14e45fceea167a', name => 'Ada Example',
                  email => 'ada@example.org', tier => 'gold' },
    items => [ map { { sku => sprintf('SKU-%05d', 1000 + $_), qty => $_,
                       price => 9.5 * $_, title => "replacement part $_" } } 1 .. 5 ],
    tags => [qw(refund customer-request priority-normal)],
    text => '',
};
my $fill = $BODY_SIZE - length JSON::PP->new->canonical->encode($note);
$fill > 0 or die "the bench body is over $BODY_SIZE bytes before its text\n";
$note->{text} = substr(('The customer reports that the part arrived damaged and asks for a '
                        . 'refund of the amount below; photos are attached to the ticket. ')
                       x 20, 0, $fill);
my $body = JSON::PP->new->canonical->encode($note);
length $body == $BODY_SIZE or die "body is " . length($body) . " bytes\n";
my $body_file = write_file("$DIR/body.json", $body);
# the same note as the arguments of an MCP tools/call
my $mcp_body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":'
             . '{"name":"update_note","arguments":' . $body . '}}';
my $mcp_file = write_file("$DIR/mcp.json", $mcp_body);

my %calls = (
    GET  => { path => '/v1/bench/1234/items', query => 'limit=50&page=2', rule => 'bench-read' },
    POST => { path => '/v1/bench/1234/notes', query => 'notify=0', rule => 'bench-write' },
);
my %candidates;
for my $m (qw(GET POST)) {
    my $c = $calls{$m};
    my $call = { agent => 'bench-bot', intent => 'bench', tool => $tool_for{$m}, method => $m,
                 path => $c->{path}, query => $c->{query},
                 headers => { 'X-Team' => 'team-support', 'Accept' => 'application/json' } };
    $call->{body} = JSON::PP->new->decode($body) if $m eq 'POST';
    my $cf = write_file("$DIR/call-$m.json", $JSON->encode($call));
    my $d = JSON::PP->new->decode(run_ok($CLI, 'policy', 'eval', $policy_file, $cf, '--trace'));
    die "the bench $m call is not allowed by $c->{rule}: " . $JSON->encode($d)
        unless $d->{decision} eq 'allow' && ($d->{rule} // '') eq $c->{rule};
    $candidates{$m} = scalar @{ $d->{trace} };
}
{
    my $call = { agent => 'bench-bot', intent => 'bench', tool => 'bench-mcp', method => 'POST',
                 path => '/', mcp => { method => 'tools/call', tool => 'update_note',
                                       arguments => JSON::PP->new->decode($body) } };
    my $cf = write_file("$DIR/call-MCP.json", $JSON->encode($call));
    my $d = JSON::PP->new->decode(run_ok($CLI, 'policy', 'eval', $policy_file, $cf, '--trace'));
    die "the bench MCP call is not allowed by bench-mcp: " . $JSON->encode($d)
        unless $d->{decision} eq 'allow' && ($d->{rule} // '') eq 'bench-mcp';
    $candidates{MCP} = scalar @{ $d->{trace} };
}

# --- 1. the upstream and the two fronts ------------------------------------------------

my $up_port = free_port();
my $up_dir = nginx_conf('upstream', http => <<"EOF");
    server {
        listen 127.0.0.1:$up_port;
        default_type application/json;
        location / { return 200 '{"ok":true}\\n'; }
    }
EOF
my $up_worker = start_nginx($up_dir, $up_port);

# The third front is the gateway with the audit log on (a test key).
my $audit_key = write_file("$DIR/audit.key", 'agentgov bench audit key, test only: 0123456789');
chmod 0600, $audit_key;
my $audit_file = "$DIR/audit/audit.jsonl";
mkdir "$DIR/audit";

# The front: the same server for the plain and the gateway runs; the gateway
# adds load_module, the policy and trust, and two lines per location.
sub front_http {
    my ($port, $gw, $audit) = @_;
    my $h = '';
    $h .= "    agentgov_policy $policy_file;\n    agentgov_trust  $ISS $jwks;\n"
        . "    agentgov_zone bench 32m;\n    agentgov_signing_key $gw_key;\n" if $gw;
    $h .= "    agentgov_audit_log $audit key=$audit_key fail=closed;\n" if $audit;
    $h .= <<"EOF";
    upstream tool {
        server 127.0.0.1:$up_port;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
EOF
    $h .= "        location /agentgov/ { agentgov_api; }\n" if $gw;
    for (['read', $tool_for{GET}], ['write', $tool_for{POST}], ['mcp', 'bench-mcp']) {
        my ($loc, $tool) = @$_;
        $h .= "        location /tools/$loc/ {\n";
        $h .= "            agentgov on;\n            agentgov_tool $tool;\n" if $gw;
        $h .= "            proxy_pass http://tool/;\n        }\n";
    }
    $h .= "    }\n";
    return $h;
}

my @headers = ("Agent-Authorization: Bearer $token", 'X-Team: team-support',
               'Accept: application/json');
my @variants = (
    { key => 'plain-get', name => 'plain GET', front => 'plain', method => 'GET',
      target => "/tools/read$calls{GET}{path}?$calls{GET}{query}" },
    { key => 'gw-get', name => "gateway GET", front => 'gateway', method => 'GET',
      base => 'plain-get', target => "/tools/read$calls{GET}{path}?$calls{GET}{query}" },
    { key => 'gwa-get', name => "gateway+audit GET", front => 'audit', method => 'GET',
      base => 'plain-get', target => "/tools/read$calls{GET}{path}?$calls{GET}{query}" },
    { key => 'plain-post', name => 'plain POST 1 KiB', front => 'plain', method => 'POST',
      body_file => $body_file,
      target => "/tools/write$calls{POST}{path}?$calls{POST}{query}" },
    { key => 'gw-post', name => 'gateway POST 1 KiB', front => 'gateway', method => 'POST',
      base => 'plain-post', body_file => $body_file,
      target => "/tools/write$calls{POST}{path}?$calls{POST}{query}" },
    { key => 'gwa-post', name => 'gateway+audit POST', front => 'audit', method => 'POST',
      base => 'plain-post', body_file => $body_file,
      target => "/tools/write$calls{POST}{path}?$calls{POST}{query}" },
    { key => 'plain-mcp', name => 'plain MCP 1 KiB', front => 'plain', method => 'POST',
      body_file => $mcp_file, target => '/tools/mcp/' },
    { key => 'gw-mcp', name => 'gateway MCP 1 KiB', front => 'gateway', method => 'POST',
      base => 'plain-mcp', body_file => $mcp_file, target => '/tools/mcp/' },
    { key => 'gwa-mcp', name => 'gateway+audit MCP', front => 'audit', method => 'POST',
      base => 'plain-mcp', body_file => $mcp_file, target => '/tools/mcp/' },
);
my %res;
my @failed;

# Both fronts run side by side (the idle one costs nothing), so that each
# gateway run follows its plain run at once, under the same conditions.
my %front;
for my $name (qw(plain gateway audit)) {
    my $gw = $name ne 'plain';
    my $port = free_port();
    my $d = nginx_conf($name, module => $gw,
                       http => front_http($port, $gw, $name eq 'audit' ? $audit_file : undef));
    $front{$name} = { dir => $d, port => $port, worker => start_nginx($d, $port) };
}

# The gateway's calls carry the token of a task the agent declares first (on
# either gateway: the token is the same key's, the task is in each zone).
my %task_header;
for my $name (qw(gateway audit)) {
    my $port = $front{$name}{port};
    my ($st, $b) = http($port, 'POST', '/agentgov/v1/tasks',
                        ["Agent-Authorization: Bearer $token", 'Content-Type: application/json'],
                        '{"intent": "bench", "ttl": "1h"}');
    die "$name: declaring the bench task got HTTP $st: $b\n" unless $st == 201;
    $task_header{$name} = 'Agent-Task: ' . JSON::PP->new->decode($b)->{token};
}

# Check that every call is answered by the upstream, and that the gateway
# really governs: no token is 401, an amount over the limit is 403.
for my $v (@variants) {
    my $port = $front{ $v->{front} }{port};
    $v->{url} = "http://127.0.0.1:$port$v->{target}";
    $v->{headers} = [ @headers, $task_header{ $v->{front} } // () ];
    my ($st, $b) = http($port, $v->{method}, $v->{target}, $v->{headers},
                        $v->{body_file} ? read_file($v->{body_file}) : undef);
    die "$v->{name}: HTTP $st, not the upstream's answer: $b\n"
        unless $st == 200 && $b eq "{\"ok\":true}\n";
}
{
    my $port = $front{gateway}{port};
    my ($st) = http($port, 'GET', $variants[1]{target}, ['X-Team: team-support']);
    die "gateway: a call without a token got $st, not 401\n" unless $st == 401;
    (my $big = $body) =~ s/"amount":1200/"amount":9000/;
    ($st) = http($port, 'POST', $variants[4]{target}, [ @headers, $task_header{gateway} ], $big);
    die "gateway: a note over the limit got $st, not 403\n" unless $st == 403;
    (my $bigmcp = $mcp_body) =~ s/"amount":1200/"amount":9000/;
    my $b;
    ($st, $b) = http($port, 'POST', '/tools/mcp/', [ @headers, $task_header{gateway} ], $bigmcp);
    die "gateway: an MCP note over the limit got $st $b, not a tool error result\n"
        unless $st == 200 && $b =~ /"isError":true/ && $b =~ /bench-mcp-limit/;
}

for my $v (@variants) {
    my $worker = $front{ $v->{front} }{worker};
    print "  $v->{name}: ";
    wrk($v, $WARMUP, 'warmup') if $WARMUP;
    my ($c0, $u0) = (cpu_seconds($worker), cpu_seconds($up_worker));
    my $r = wrk($v, $SECONDS, 'run');
    my ($c1, $u1) = (cpu_seconds($worker), cpu_seconds($up_worker));
    $r->{cpu_us} = $r->{requests} ? ($c1 - $c0) * 1e6 / $r->{requests} : 0;
    $r->{up_cpu_us} = $r->{requests} ? ($u1 - $u0) * 1e6 / $r->{requests} : 0;
    $r->{cpu_busy} = ($c1 - $c0 + $u1 - $u0) / ($r->{duration_us} / 1e6);
    $r->{rss} = rss_kib($worker);
    $res{ $v->{key} } = $r;
    push @failed, "$v->{name}: $r->{non2xx} non-2xx responses, "
        . ($r->{errors} - $r->{non2xx}) . " socket errors (see $DIR/wrk-$v->{key}-run.txt)"
        if $r->{errors};
    printf "%.0f req/s, p50 %.2f ms, p99 %.2f ms", $r->{rps},
        $r->{p50_us} / 1000, $r->{p99_us} / 1000;
    # the same request on one connection: latency without queueing
    my $one = wrk($v, $LAT_SECONDS, 'one', 1);
    $r->{one} = $one;
    push @failed, "$v->{name} (one connection): $one->{errors} errors" if $one->{errors};
    printf "; one connection: p50 %d us, p99 %d us\n", $one->{p50_us}, $one->{p99_us};
}

for my $name (qw(plain gateway audit)) {
    my $errlog = read_file("$front{$name}{dir}/logs/error.log") // '';
    push @failed, "$name nginx: $1" if $errlog =~ /(.*exited on signal.*)/;
}

# The audit log the runs wrote: its size per record, and the CLI's time to
# verify it.
my %audit_fig;
{
    my $size = -s $audit_file // 0;
    my $n = 0;
    if (open my $fh, '<', $audit_file) { $n++ while <$fh>; close $fh }
    my ($rc, $out, $err, $dt) = run($CLI, 'audit', 'verify', $audit_file, '--key', $audit_key);
    push @failed, "audit verify of the bench's audit log failed: $out$err" if $rc;
    %audit_fig = (records => $n, bytes => $n ? $size / $n : 0,
                  verify_s_per_million => $n ? $dt * 1e6 / $n : 0);
}
cleanup();

# --- 2. policy evaluation -----------------------------------------------------------------------

# bench/gen-policy.pl's policy and call at each size, then the gateway's own
# policy with the two calls of the HTTP runs.
my @cases;
for my $n (@EVAL_RULES) {
    my $pf = "$DIR/eval-$n.json";
    my $cf = "$DIR/eval-$n.call.json";
    write_file($pf, run_ok($^X, "$ROOT/bench/gen-policy.pl", $n, '--call', $cf));
    push @cases, ["gen-policy", $n, $pf, $cf];
}
push @cases, map { ["gateway $_", scalar @{ $policy->{rules} }, $policy_file,
                    "$DIR/call-$_.json"] } qw(GET POST);

my @evals;
for my $case (@cases) {
    my ($label, $n, $pf, $cf) = @$case;
    my ($rc, $out, $err, $load) = run($CLI, 'policy', 'eval', $pf, $cf, '--trace');
    die "policy eval ($label, $n rules) failed:\n$err" if $rc;
    my $d = JSON::PP->new->decode($out);
    my $ns = sub {
        my ($calls) = @_;
        my (undef, undef, $e) = run($CLI, 'policy', 'eval', $pf, $cf, '--bench', $calls);
        $e =~ /eval: ([0-9.]+) ns\/call/ or die "policy eval --bench ($n rules): $e";
        return $1;
    };
    my $probe = $ns->(10000);
    my $calls = int($EVAL_MS * 1e6 / ($probe || 1));
    $calls = 10000 if $calls < 10000;
    $calls = 50_000_000 if $calls > 50_000_000;
    push @evals, { label => $label, rules => $n, candidates => scalar @{ $d->{trace} },
                   decision => $d->{decision}, ns => $ns->($calls), calls => $calls,
                   load_ms => $load * 1000, size => -s $pf };
}

# --- 3. holds ---------------------------------------------------------------------------------------

# bench/holds.pl on its own nginx instances; its table goes into the report
my $holds_report = '';
if ($HOLDS) {
    print "holds:\n";
    local $ENV{AGENTGOV_HOLDS_QUIET} = 1;
    local $ENV{AGENTGOV_BUILD} = $BUILD;
    local $ENV{NGINX_BIN} = $NGINX;
    unlink "$OUT/holds.txt";
    my $rc = system($^X, "$ROOT/bench/holds.pl");
    $holds_report = read_file("$OUT/holds.txt") // '';
    push @failed, "holds: bench/holds.pl failed (exit " . ($rc >> 8) . ")" if $rc;
}

# --- 4. the report ------------------------------------------------------------------------------

# Features the benchmark cannot measure yet, and why. A directive that now
# exists in the module is reported as such, so that this list cannot go stale
# silently.
my $so = read_file($MODULE) // '';
my @pending = (
    ['nginx auth_request to Cerbos', undef,
     'Cerbos is not available from Debian or npm, so there is no external decision point to compare with'],
);

my @L;
push @L, sprintf('agentgov bench, %s, commit %s', strftime('%Y-%m-%d %H:%M UTC', gmtime), $commit);
push @L, sprintf('machine: %d CPU (%s), Linux %s; nginx %s (worker_processes 1), wrk %s',
                 $ncpu, $cpu_model // '?', $kernel, $nginx_ver // '?', $wrk_ver // '?');
push @L, "load average before the run: $loadavg (other work on the machine adds noise)";
push @L, sprintf('load: wrk -t1 -c%d, keep-alive, %ds warm-up + %ds per variant; %s',
                 $CONNS, $WARMUP, $SECONDS,
                 (defined $CPU_NGINX ? "nginx (front and upstream) on CPU $CPU_NGINX, wrk on CPU $CPU_WRK"
                                    : 'not pinned'));
push @L, 'upstream: one nginx, return 200 (12 bytes), reached through a keepalive pool';
push @L, sprintf('gateway: ES256 agent JWT and task token (both cached per worker after first sight; the task looked up live in the zone on every call), %d-rule policy over %d tools,'
                 . ' keys stripped, headers, query and body scanned for secrets, a minted JWT injected (warm cache);',
                 scalar @{ $policy->{rules} }, $GW_TOOLS);
push @L, sprintf('  GET: %d candidate rules evaluated, allowed by bench-read (header: and query: conditions);',
                 $candidates{GET});
push @L, sprintf('  POST: %d candidates, allowed by bench-write (body: conditions) after deny bench-write-limit;',
                 $candidates{POST});
push @L, sprintf('  MCP: the same note as the arguments of a JSON-RPC tools/call (%d bytes), parsed as JSON-RPC, %d candidates, allowed by bench-mcp (args: conditions) after deny bench-mcp-limit',
                 length $mcp_body, $candidates{MCP});
push @L, '';
push @L, sprintf('%-19s %7s %6s %7s %7s %6s %6s %7s %6s %6s %6s %6s',
                 'variant', 'req/s', 'ratio', 'p50 ms', 'p99 ms', '+p50', '+p99',
                 'us/req', '+us', 'nginx%', 'RSS MB', 'errors');
for my $v (@variants) {
    my $r = $res{ $v->{key} };
    my $b = $v->{base} ? $res{ $v->{base} } : undef;
    push @L, sprintf('%-19s %7.0f %6.3f %7.2f %7.2f %6s %6s %7.1f %6s %6.0f %6.1f %6d',
                     $v->{name}, $r->{rps}, $b ? $r->{rps} / $b->{rps} : 1,
                     $r->{p50_us} / 1000, $r->{p99_us} / 1000,
                     $b ? sprintf('%+.2f', ($r->{p50_us} - $b->{p50_us}) / 1000) : '-',
                     $b ? sprintf('%+.2f', ($r->{p99_us} - $b->{p99_us}) / 1000) : '-',
                     $r->{cpu_us}, $b ? sprintf('%+.1f', $r->{cpu_us} - $b->{cpu_us}) : '-',
                     $r->{cpu_busy} * 100, $r->{rss} / 1024, $r->{errors});
}
push @L, 'ratio, +p50, +p99 (ms), +us: against the plain run of the same request.';
push @L, sprintf('us/req: CPU time of the front nginx worker per request, so +us is the gateway\'s own '
                 . 'cost; the upstream worker adds %.1f.', $res{'plain-get'}{up_cpu_us});
push @L, 'nginx%: CPU used by the front and upstream workers, of the one CPU they share '
    . '(near 100: nginx\'s CPU was the limit).';
my ($least) = sort { $a <=> $b } map { $_->{cpu_busy} } values %res;
push @L, sprintf('WARNING: nginx got as little as %.0f%% of its CPU: other work on this machine '
                 . 'competed with it, so req/s and latency vary with that work, not only with the '
                 . 'variant; us/req is the figure to compare.', $least * 100)
    if defined $CPU_NGINX && $least < 0.85;
push @L, '';
push @L, sprintf('the same requests on one connection, %ds each (latency without queueing):',
                 $LAT_SECONDS);
push @L, sprintf('%-19s %7s %7s %7s %7s %7s', 'variant', 'req/s', 'p50 us', 'p99 us',
                 '+p50', '+p99');
for my $v (@variants) {
    my $r = $res{ $v->{key} }{one};
    my $b = $v->{base} ? $res{ $v->{base} }{one} : undef;
    push @L, sprintf('%-19s %7.0f %7d %7d %7s %7s', $v->{name}, $r->{rps},
                     $r->{p50_us}, $r->{p99_us},
                     $b ? sprintf('%+d', $r->{p50_us} - $b->{p50_us}) : '-',
                     $b ? sprintf('%+d', $r->{p99_us} - $b->{p99_us}) : '-');
}
push @L, sprintf('gateway+audit: agentgov_audit_log fail=closed; %d records written, %.0f bytes each; '
                 . 'agentgov audit verify: %.2f s per million records',
                 $audit_fig{records}, $audit_fig{bytes}, $audit_fig{verify_s_per_million});
push @L, '';
push @L, 'policy evaluation (agentgov policy eval --bench: one call, rule step only, one core)';
push @L, sprintf('%-12s %6s %10s %8s %9s %9s %8s %7s', 'policy', 'rules', 'candidates',
                 'ns/call', 'decision', 'calls', 'load ms', 'file KB');
push @L, sprintf('%-12s %6d %10d %8.0f %9s %9d %8.0f %7.0f',
                 @{$_}{qw(label rules candidates ns decision calls load_ms)}, $_->{size} / 1024)
    for @evals;
push @L, 'candidates: rules the index hands the engine for the call; load ms: the CLI reading, '
    . 'compiling and deciding once, process start included.';
push @L, '';
if (length $holds_report) {
    push @L, split(/\n/, $holds_report), '';
}
for my $p (@pending) {
    my ($what, $directive, $why) = @$p;
    if (defined $directive && index($so, $directive) >= 0) {
        $why = "the module now has $directive, but bench/run.pl does not exercise it yet";
    }
    push @L, "not measured yet: $what: $why";
}
push @L, sprintf('took %.0f s', time - $t_start);

my $report = join("\n", @L) . "\n";
write_file("$OUT/report.txt", $report);
print "\n$report";
print "report: $OUT/report.txt\n";
if (@failed) {
    print STDERR "bench: FAILED\n", map { "  $_\n" } @failed;
    exit 1;
}
exit 0;
