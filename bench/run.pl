#!/usr/bin/env perl
# The `make bench` driver (SPEC section 10, docs/bench.md). In one run, on
# this machine, all on 127.0.0.1:
#
#   1. throughput and latency under the same wrk load and the same upstream,
#      for each worker count of BENCH_WORKERS ("1 2"): plain nginx proxy_pass
#      with a JSON access log, the gateway with audit on, and nginx asking
#      Cerbos (auth_request, njs) about every call, on a GET, a 1 KiB JSON
#      POST decided by body rules and a 1 KiB MCP tools/call; every variant
#      warmed up, then BENCH_ROUNDS interleaved rounds (each round runs every
#      variant in turn), medians; first at BENCH_CONNECTIONS, then at the
#      throughput knee found by a connection ramp on plain nginx; with
#      worker_processes 2, a perf profile of the gateway's workers for the
#      share of time spent on the shared zone's lock;
#   2. policy evaluation time per call at 10 to 10,000 rules
#      (agentgov policy eval --bench, policies from bench/gen-policy.pl), and
#      for the gateway's own policy and calls;
#   3. memory, idle CPU and resume latency of BENCH_HOLDS calls held at once
#      (bench/holds.pl, which also writes build/bench/holds.json);
#   4. a compact table on stdout, also written to build/bench/report.txt, and
#      every figure in build/bench/results.json (holds.json merged in).
#
# Every nginx, Cerbos, wrk and perf it starts is stopped when it ends, also on
# failure or interruption. Perl core modules only; wrk, taskset, perf
# (optional), and for Cerbos its binary (BENCH_CERBOS_BIN, from npm) and
# nginx's njs module.
#
# Environment: AGENTGOV_BUILD, NGINX_BIN, BENCH_SECONDS (4), BENCH_ROUNDS (3),
# BENCH_WARMUP (1), BENCH_CONNECTIONS (50), BENCH_KNEE_SECONDS (2),
# BENCH_RAMP ("1 2 4 8 16 32 64"), BENCH_WORKERS ("1 2"), BENCH_VARIANTS,
# BENCH_PERF (1), BENCH_NICE (-10), BENCH_CERBOS_BIN (empty: no Cerbos), BENCH_EVAL_MS (1000),
# BENCH_EVAL_RULES ("10 100 1000 10000"), BENCH_HOLDS (10000; 0 leaves the
# holds out) and bench/holds.pl's BENCH_HOLDS_* variables.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);

use FindBin;
use lib $FindBin::Bin;
use BenchLib qw(read_file write_file env_int sh free_port wait_port);

my $ROOT   = abs_path(dirname(__FILE__) . '/..');
my $BUILD  = abs_path($ENV{AGENTGOV_BUILD} // "$ROOT/build");
my $NGINX  = $ENV{NGINX_BIN} // '/usr/sbin/nginx';
my $CLI    = "$BUILD/agentgov";
my $MODULE = "$BUILD/ngx_http_agentgov_module.so";
my $OUT    = "$BUILD/bench";
my $DIR    = "$OUT/run";

my $SECONDS = env_int('BENCH_SECONDS', 4, 1, 300);
my $ROUNDS  = env_int('BENCH_ROUNDS', 3, 1, 50);
my $WARMUP  = env_int('BENCH_WARMUP', 1, 0, 60);
my $CONNS   = env_int('BENCH_CONNECTIONS', 50, 1, 1000);
my $KNEE_SECONDS = env_int('BENCH_KNEE_SECONDS', 2, 1, 300);
my $PERF    = env_int('BENCH_PERF', 1, 0, 1);
my $EVAL_MS = env_int('BENCH_EVAL_MS', 1000, 10, 60000);
my $HOLDS   = env_int('BENCH_HOLDS', 10000, 0, 100000);
my @RAMP = split ' ', ($ENV{BENCH_RAMP} // '1 2 4 8 16 32 64');
/^[0-9]+$/ && $_ >= 1 && $_ <= 1000 or die "BENCH_RAMP: $_ is not a connection count\n"
    for @RAMP;
@RAMP = sort { $a <=> $b } @RAMP;
@RAMP >= 2 or die "BENCH_RAMP needs two connection counts at least\n";
my @WORKERS = split ' ', ($ENV{BENCH_WORKERS} // '1 2');
/^[1-9][0-9]?$/ or die "BENCH_WORKERS: $_ is not a worker count\n" for @WORKERS;
@WORKERS or die "BENCH_WORKERS is empty\n";
my @EVAL_RULES = split ' ', ($ENV{BENCH_EVAL_RULES} // '10 100 1000 10000');
/^[0-9]+$/ && $_ > 0 or die "BENCH_EVAL_RULES: $_ is not a rule count\n"
    for @EVAL_RULES;
my $CERBOS = $ENV{BENCH_CERBOS_BIN} // '';
# the servers, Cerbos and wrk run at this nice value (root only; 0: as is),
# so that background work on the machine (a build, a test suite) takes less
# of their CPU; what it still takes is reported (other%)
my $NICE = $ENV{BENCH_NICE} // -10;
$NICE =~ /^-?[0-9]+$/ && $NICE >= -20 && $NICE <= 19
    or die "BENCH_NICE: $NICE is not a nice value from -20 to 19\n";
$NICE = 0 if $NICE < 0 && $> != 0;
my $KNEE_GROWTH = 1.05;     # the knee: the next step adds less than 5% throughput,
my $KNEE_NEAR = 0.90;       # at 90% of the ramp's best throughput at least
my $TARGET_P99_US = 150;    # issue 9: p99 added at most 150 us at the knee

my $JSON = JSON::PP->new->canonical->pretty;
my $GW_RULES = 100;         # rules in the gateway's policy, the bench rules included
my $GW_TOOLS = 10;
my $ISS = 'agentgov-dev';   # the issuer bench/gen-policy.pl's agent names
my $BODY_SIZE = 1024;

# --- clean-up, whatever happens ----------------------------------------------------

my (@started, %child, %daemon);   # nginx pid files; wrk and perf runs; Cerbos

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

sub stop_daemon {
    my ($pid) = @_;
    kill 'TERM', $pid;
    for (1 .. 100) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    delete $daemon{$pid};
}

sub cleanup {
    for my $pid (keys %child) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    %child = ();
    stop_daemon($_) for keys %daemon;
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

# user + system CPU time of processes (all their threads), in seconds
my $TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub cpu_seconds {
    my $t = 0;
    for my $pid (@_) {
        my $s = read_file("/proc/$pid/stat") // next;
        $s =~ s/^.*\) //s;
        my @f = split ' ', $s;      # f[0] is the state: utime is f[11], stime f[12]
        $t += ($f[11] + $f[12]) / $TCK;
    }
    return $t;
}

# CPU time used on the whole machine (user, nice and system of every CPU),
# in seconds; and that of this process's waited-for children (wrk)
sub machine_busy {
    my $s = read_file('/proc/stat') // return 0;
    my ($u, $n, $sy) = $s =~ /^cpu\s+(\d+)\s+(\d+)\s+(\d+)/m;
    return (($u // 0) + ($n // 0) + ($sy // 0)) / $TCK;
}
sub children_cpu { my @t = times; return $t[2] + $t[3] }

sub rss_kib {
    my $k = 0;
    for my $pid (@_) {
        my $s = read_file("/proc/$pid/status") // next;
        $k += $1 if $s =~ /^VmRSS:\s+(\d+)/m;
    }
    return $k;
}

sub loadavg {
    my ($l) = (read_file('/proc/loadavg') // '?') =~ /^(\S+ \S+ \S+)/;
    return $l // '?';
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
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

# The CPUs this process may use. With one worker, the system under test (the
# front nginx, the upstream nginx and Cerbos) runs on the first of them and
# wrk on the second, so that each variant has exactly one CPU for all its
# server-side work. With more workers nothing is pinned: the workers, the
# upstream, Cerbos and wrk share every CPU, as the kernel schedules them.
my $TASKSET = which('taskset');
my @CPUS;
{
    my $aff = $TASKSET ? (`$TASKSET -pc $$ 2>/dev/null` // '') : '';
    if ($aff =~ /:\s*([0-9,\-]+)\s*$/) {
        for (split /,/, $1) {
            push @CPUS, /^(\d+)-(\d+)$/ ? ($1 .. $2) : $_;
        }
    }
}

sub pinned {
    my ($cpu, @cmd) = @_;
    unshift @cmd, 'nice', '-n', $NICE if $NICE;
    return defined $cpu ? ($TASKSET, '-c', $cpu, @cmd) : @cmd;
}

# --- nginx -------------------------------------------------------------------------------

my $NGINX_V = `$NGINX -V 2>&1` // '';
my ($MODULES_PATH) = $NGINX_V =~ /--modules-path=(\S+)/;
$MODULES_PATH //= '/usr/lib/nginx/modules';
my $NJS_MODULE = "$MODULES_PATH/ngx_http_js_module.so";

sub nginx_conf {
    my ($pass, $name, %o) = @_;
    my $d = "$pass->{dir}/$name";
    make_path("$d/logs");
    chmod 0755, $d;
    my $conf = '';
    $conf .= "load_module $MODULE;\n" if $o{module};
    $conf .= "load_module $NJS_MODULE;\n" if $o{njs};
    $conf .= <<"EOF";
worker_processes $pass->{workers};
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

# Starts nginx on DIR/nginx.conf (pinned in a one-worker pass); returns its
# workers' pids.
sub start_nginx {
    my ($pass, $d, $port) = @_;
    push @started, "$d/nginx.pid";
    my ($rc, $out, $err) = run(pinned($pass->{cpu_sut}, $NGINX, '-p', "$d/", '-c', "$d/nginx.conf"));
    die "nginx ($d) failed to start:\n$out$err" . (read_file("$d/logs/error.log") // '')
        if $rc;
    wait_port($port);
    my $pid = read_file("$d/nginx.pid") // die "nginx ($d): no pid file\n";
    chomp $pid;
    my @w;
    for (1 .. 100) {
        @w = children($pid);
        last if @w >= $pass->{workers};
        sleep 0.02;
    }
    die "nginx ($d): " . scalar(@w) . " worker processes, not $pass->{workers}\n"
        unless @w == $pass->{workers};
    return [ sort { $a <=> $b } @w ];
}

# --- wrk ---------------------------------------------------------------------------------------

# Starts wrk for SECS seconds on a variant (pinned in a one-worker pass);
# wrk_wait() returns its figures.
sub wrk_start {
    my ($pass, $v, $secs, $tag, $conns) = @_;
    my $log = "$pass->{dir}/wrk/$v->{key}-$tag.txt";
    my @cmd = (pinned($pass->{cpu_wrk}, 'wrk', '-t1', "-c$conns", "-d${secs}s", '--latency',
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
    return { pid => $pid, log => $log, secs => $secs, v => $v };
}

sub wrk_wait {
    my ($w) = @_;
    my $deadline = time + $w->{secs} + 30;
    my $done = 0;
    while (time < $deadline) {
        if (waitpid($w->{pid}, WNOHANG) == $w->{pid}) { $done = 1; last; }
        sleep 0.02;
    }
    unless ($done) {
        kill 'TERM', $w->{pid};
        waitpid $w->{pid}, 0;
    }
    delete $child{ $w->{pid} };
    die "wrk ($w->{v}{name}) did not finish within $w->{secs}s + 30s\n" unless $done;
    my $text = read_file($w->{log}) // '';
    my ($line) = $text =~ /^BENCH (.*)$/m;
    die "wrk ($w->{v}{name}) gave no figures:\n$text" unless $line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    $r{rps} = $r{duration_us} ? $r{requests} / ($r{duration_us} / 1e6) : 0;
    $r{errors} = $r{non2xx} + $r{connect} + $r{read} + $r{write} + $r{timeout};
    return \%r;
}

sub wrk { return wrk_wait(wrk_start(@_)) }

# --- 0. set up --------------------------------------------------------------------------

-x $CLI && -f $MODULE or die "build $CLI and $MODULE first (make all)\n";
which('wrk') or die "wrk is not installed (scripts/deps.sh wrk)\n";
remove_tree($DIR);
make_path($DIR);
chmod 0755, $OUT, $DIR;
unlink "$OUT/results.json";
my $t_start = time;
my $loadavg_before = loadavg();
# nginx loads a copy of the module: `make` rewrites the built one in place
# (cp), which kills a running worker with SIGBUS; the CLI is copied too, so
# that another checkout's make during the run does not pull it away
{
    require File::Copy;
    File::Copy::copy($MODULE, "$DIR/ngx_http_agentgov_module.so")
        or die "copy $MODULE: $!\n";
    $MODULE = "$DIR/ngx_http_agentgov_module.so";
    File::Copy::copy($CLI, "$DIR/agentgov") or die "copy $CLI: $!\n";
    chmod 0755, "$DIR/agentgov";
    $CLI = "$DIR/agentgov";
}

my $ncpu = () = (read_file('/proc/cpuinfo') // '') =~ /^processor\s*:/mg;
my ($cpu_model) = (read_file('/proc/cpuinfo') // '') =~ /^model name\s*:\s*(.*)$/m;
my ($nginx_ver) = `$NGINX -v 2>&1` =~ m{nginx/(\S+)};
my ($wrk_ver) = `wrk -v 2>&1` =~ /^wrk (\S+)/m;
my $kernel = (POSIX::uname())[2];
my $commit = `git -C @{[ sh($ROOT) ]} rev-parse --short HEAD 2>/dev/null` // '';
chomp $commit;
if (length $commit) {
    $commit .= '+dirty'
        if `git -C @{[ sh($ROOT) ]} status --porcelain -- src ngx_agentgov_module.c config 2>/dev/null` ne '';
} else {
    $commit = 'unknown';
}

# Cerbos: its binary (npm), and nginx's njs module to read its answers
my @not_measured;
my ($cerbos_ver, $njs_ver);
if (!length $CERBOS) {
    push @not_measured, ['nginx auth_request to Cerbos',
        'no Cerbos binary (BENCH_CERBOS=0, or not an x86_64 machine: the npm package is @cerbos/cerbos-linux-x64)'];
} elsif (!-x $CERBOS) {
    die "BENCH_CERBOS_BIN: $CERBOS is not an executable (make deps-cerbos)\n";
} elsif (!-f $NJS_MODULE) {
    die "$NJS_MODULE is missing: nginx's njs module reads Cerbos's answers (scripts/deps.sh libnginx-mod-http-js)\n";
} else {
    ($cerbos_ver) = `@{[ sh($CERBOS) ]} --version 2>&1` =~ /^(\d+\.\d+\.\d+)/m;
    $cerbos_ver //= '?';
    $njs_ver = `dpkg-query -W -f='\${Version}' libnginx-mod-http-js 2>/dev/null` || '?';
    $njs_ver =~ s/-[^-]*$//;
}

# The variants: a front (plain, gateway, audit, cerbos) and a request (get,
# post, mcp). The plain run of the same request is every variant's base.
my %VARIANT_NAME = (
    'plain-get' => 'plain GET', 'plain-post' => 'plain POST 1 KiB', 'plain-mcp' => 'plain MCP 1 KiB',
    'gw-get' => 'gateway GET', 'gw-post' => 'gateway POST 1 KiB', 'gw-mcp' => 'gateway MCP 1 KiB',
    'gwa-get' => 'gateway+audit GET', 'gwa-post' => 'gateway+audit POST',
    'gwa-mcp' => 'gateway+audit MCP',
    'cerbos-get' => 'Cerbos GET', 'cerbos-post' => 'Cerbos POST 1 KiB',
    'cerbos-mcp' => 'Cerbos MCP 1 KiB',
);
my %FRONT_OF = (plain => 'plain', gw => 'gateway', gwa => 'audit', cerbos => 'cerbos');
my @keys = split ' ', ($ENV{BENCH_VARIANTS}
    // 'plain-get gwa-get cerbos-get plain-post gwa-post cerbos-post plain-mcp gwa-mcp');
for (@keys) { $VARIANT_NAME{$_} or die "BENCH_VARIANTS: no variant $_ (one of: "
                                        . join(' ', sort keys %VARIANT_NAME) . ")\n" }
if (!length $CERBOS) { @keys = grep { !/^cerbos-/ } @keys }
# every variant's plain base is run too, first in its group
{
    my (%seen, @k);
    for my $req (qw(get post mcp)) {
        my @of = grep { /-\Q$req\E$/ } @keys;
        next unless @of;
        push @k, grep { !$seen{$_}++ } "plain-$req", @of;
    }
    @keys = @k;
}

print "agentgov bench: wrk -t1; per pass ${WARMUP}s warm-up, then $ROUNDS interleaved rounds of "
    . "${SECONDS}s at $CONNS connections, a ramp (@RAMP), $ROUNDS rounds of ${KNEE_SECONDS}s at the knee; "
    . "worker_processes @WORKERS; load average $loadavg_before\n";

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


# --- Cerbos: the same decisions as the bench rules ----------------------------------------

# One resource policy per tool (the Cerbos resource kind is the tool's name,
# the action the HTTP method, or tools/call for MCP), with the conditions of
# bench-read, bench-write-limit, bench-write, bench-mcp-limit and bench-mcp.
# The agent is the subject of the JWT that Cerbos verifies (auxData, the
# bench's JWKS); the call's path, query, X-Team header and JSON body (MCP: the
# tool's name and arguments) are the resource's attributes (bench/cerbos.js).
my $CERBOS_AGENT = "request.aux_data.jwt.iss == \"$ISS\" && request.aux_data.jwt.sub == \"bench-bot\"";
my $cerbos_policy_dir = "$DIR/cerbos-policies";
if (length $CERBOS) {
    make_path($cerbos_policy_dir);
    my $all = sub { return { match => { all => { of => [ map { { expr => $_ } } @_ ] } } } };
    my $items = 'request.resource.attr.path.matches("^/v1/bench/[^/]+/items$")';
    my $notes = 'request.resource.attr.path.matches("^/v1/bench/[^/]+/notes$")';
    my %pol;
    push @{ $pol{ $tool_for{GET} } },
        { name => 'bench-read', actions => ['GET'], effect => 'EFFECT_ALLOW', roles => ['agent'],
          condition => $all->($CERBOS_AGENT, $items,
                              'request.resource.attr.headers["x-team"].startsWith("team-")',
                              'int(request.resource.attr.query.limit) <= 100') };
    push @{ $pol{ $tool_for{POST} } },
        { name => 'bench-write-limit', actions => ['POST'], effect => 'EFFECT_DENY', roles => ['*'],
          condition => $all->($notes, 'request.resource.attr.body.amount > 5000') },
        { name => 'bench-write', actions => ['POST'], effect => 'EFFECT_ALLOW', roles => ['agent'],
          condition => $all->($CERBOS_AGENT, $notes,
                              'request.resource.attr.body.amount <= 5000',
                              'request.resource.attr.body.status in ["open", "pending"]') };
    push @{ $pol{'bench-mcp'} },
        { name => 'bench-mcp-limit', actions => ['tools/call'], effect => 'EFFECT_DENY', roles => ['*'],
          condition => $all->('request.resource.attr.tool == "update_note"',
                              'request.resource.attr.args.amount > 5000') },
        { name => 'bench-mcp', actions => ['tools/call'], effect => 'EFFECT_ALLOW', roles => ['agent'],
          condition => $all->($CERBOS_AGENT, 'request.resource.attr.tool == "update_note"',
                              'request.resource.attr.args.amount <= 5000',
                              'request.resource.attr.args.status in ["open", "pending"]') };
    for my $kind (sort keys %pol) {
        write_file("$cerbos_policy_dir/$kind.json", $JSON->encode({
            apiVersion => 'api.cerbos.dev/v1',
            resourcePolicy => { version => 'default', resource => $kind, rules => $pol{$kind} } }));
    }
}

# Starts Cerbos (HTTP and gRPC on loopback, disk storage, no telemetry, no
# audit log; pinned in a one-worker pass); returns { pid, port, dir }.
sub start_cerbos {
    my ($pass) = @_;
    my $d = "$pass->{dir}/cerbos-pdp";
    make_path($d);
    my ($hport, $gport) = (free_port(), free_port());
    write_file("$d/config.yaml", <<"EOF");
server:
  httpListenAddr: "127.0.0.1:$hport"
  grpcListenAddr: "127.0.0.1:$gport"
storage:
  driver: disk
  disk:
    directory: "$cerbos_policy_dir"
    watchForChanges: false
auxData:
  jwt:
    keySets:
      - id: agents
        local:
          file: "$jwks"
audit:
  enabled: false
telemetry:
  disabled: true
EOF
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        $ENV{CERBOS_NO_TELEMETRY} = 1;
        open STDOUT, '>', "$d/cerbos.log" or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec pinned($pass->{cpu_sut}, $CERBOS, 'server', "--config=$d/config.yaml",
                    '--log-level=warn') or POSIX::_exit(127);
    }
    $daemon{$pid} = 1;
    for (1 .. 400) {
        die "Cerbos exited at start:\n" . (read_file("$d/cerbos.log") // '')
            if waitpid($pid, WNOHANG) == $pid;
        my ($st, $b) = eval { http($hport, 'GET', '/_cerbos/health', []) };
        return { pid => $pid, port => $hport, dir => $d } if ($st // 0) == 200 && $b =~ /SERVING/;
        sleep 0.05;
    }
    die "Cerbos did not answer its health check:\n" . (read_file("$d/cerbos.log") // '');
}

# Cerbos's effect for one call, asked directly (outside the timed runs)
sub cerbos_effect {
    my ($port, $kind, $action, $attr) = @_;
    my $req = JSON::PP->new->canonical->encode({
        requestId => 'check', principal => { id => 'bench-bot', roles => ['agent'] },
        auxData => { jwt => { token => $token, keySetId => 'agents' } },
        resources => [ { actions => [$action],
                         resource => { kind => $kind, id => 'call', attr => $attr } } ] });
    my ($st, $b) = http($port, 'POST', '/api/check/resources', [], $req);
    return "HTTP $st" unless $st == 200;
    my $d = eval { JSON::PP->new->decode($b) } // return 'no JSON';
    return $d->{results}[0]{actions}{$action} // 'no effect';
}

# --- 1. the passes: plain nginx, the gateway and Cerbos under the same load -----------

# The audit log's key (a test key); each pass's gateway+audit writes its own log.
my $audit_key = write_file("$DIR/audit.key", 'agentgov bench audit key, test only: 0123456789');
chmod 0600, $audit_key;

my %REQ = (
    get  => { method => 'GET', target => "/tools/read$calls{GET}{path}?$calls{GET}{query}" },
    post => { method => 'POST', body_file => $body_file,
              target => "/tools/write$calls{POST}{path}?$calls{POST}{query}" },
    mcp  => { method => 'POST', body_file => $mcp_file, target => '/tools/mcp/' },
);
my @headers = ("Agent-Authorization: Bearer $token", 'X-Team: team-support',
               'Accept: application/json');
my @failed;

# What an operator runs without agentgov: a JSON access log line per request,
# written to a file (unbuffered, nginx's default). The plain and the Cerbos
# fronts have it; the gateway fronts keep access logs off (the audit log is
# their log).
my $LOG_FORMAT = <<'EOF';
    log_format bench_json escape=json
        '{"time":"$time_iso8601","request_id":"$request_id","remote_addr":"$remote_addr",'
        '"method":"$request_method","uri":"$uri","args":"$args","status":$status,'
        '"body_bytes_sent":$body_bytes_sent,"request_length":$request_length,'
        '"request_time":$request_time,"upstream_addr":"$upstream_addr",'
        '"upstream_status":"$upstream_status",'
        '"upstream_response_time":"$upstream_response_time","user_agent":"$http_user_agent"}';
EOF

# A front's http block: the same upstream and locations for every front; the
# gateways add the module's directives, the Cerbos front its checks.
sub front_http {
    my ($pass, $name, $port, $d) = @_;
    my $gw = $name eq 'gateway' || $name eq 'audit';
    my $h = '';
    $h .= "    agentgov_policy $policy_file;\n    agentgov_trust  $ISS $jwks;\n"
        . "    agentgov_zone bench 32m;\n    agentgov_signing_key $gw_key;\n" if $gw;
    $h .= "    agentgov_audit_log $pass->{dir}/audit/audit.jsonl key=$audit_key fail=closed;\n"
        if $name eq 'audit';
    $h .= $LOG_FORMAT if !$gw;
    $h .= "    js_import cerbos from $ROOT/bench/cerbos.js;\n" if $name eq 'cerbos';
    $h .= <<"EOF";
    upstream tool {
        server 127.0.0.1:$pass->{up}{port};
        keepalive 128;
        keepalive_requests 1000000;
    }
EOF
    $h .= <<"EOF" if $name eq 'cerbos';
    upstream pdp {
        server 127.0.0.1:$pass->{cerbos}{port};
        keepalive 128;
        keepalive_requests 1000000;
    }
EOF
    $h .= <<"EOF";
    server {
        listen 127.0.0.1:$port;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
EOF
    $h .= "        access_log $d/logs/access.json bench_json;\n" if !$gw;
    $h .= "        location /agentgov/ { agentgov_api; }\n" if $gw;
    my @locs = (['read', $tool_for{GET}], ['write', $tool_for{POST}], ['mcp', 'bench-mcp']);
    if ($name eq 'cerbos') {
        # a GET: auth_request; a call with a body: njs reads it, asks, proxies
        my ($read, $write, $mcp) = map { $_->[1] } @locs;
        $h .= <<"EOF";
        location /tools/read/ {
            set \$authz_tool $read;
            set \$authz_method \$request_method;
            set \$authz_uri \$uri;
            set \$authz_args \$args;
            auth_request /_authz;
            proxy_pass http://tool/;
        }
        location /tools/write/ {
            set \$authz_tool $write;
            js_content cerbos.gate;
        }
        location \@$write {
            rewrite ^/tools/write/(.*)\$ /\$1 break;
            proxy_pass http://tool;
        }
        location /tools/mcp/ {
            set \$authz_tool $mcp;
            set \$authz_mcp 1;
            js_content cerbos.gate;
        }
        location \@$mcp {
            rewrite ^/tools/mcp/(.*)\$ /\$1 break;
            proxy_pass http://tool;
        }
        location = /_authz {
            internal;
            js_content cerbos.check;
        }
        location = /_cerbos {
            internal;
            proxy_pass http://pdp/api/check/resources;
            proxy_pass_request_headers off;
            proxy_set_header Connection "";
            proxy_set_header Content-Type application/json;
        }
EOF
    } else {
        for (@locs) {
            my ($loc, $tool) = @$_;
            $h .= "        location /tools/$loc/ {\n";
            $h .= "            agentgov on;\n            agentgov_tool $tool;\n" if $gw;
            $h .= "            proxy_pass http://tool/;\n        }\n";
        }
    }
    $h .= "    }\n";
    return $h;
}

# Counts the access log's lines since the last call (every request must have
# its line, a JSON object), then empties it.
sub check_access_log {
    my ($pass, $v, $r, $tag) = @_;
    my $path = $pass->{front}{ $v->{front} }{access_log};
    sleep 0.1;
    my ($lines, @head) = (0);
    if (open my $fh, '<', $path) {
        while (@head < 100 && defined(my $l = <$fh>)) { push @head, $l }
        $lines = @head;
        my $buf;
        while (read($fh, $buf, 1 << 20)) { $lines += ($buf =~ tr/\n//) }
        close $fh;
    }
    truncate $path, 0;
    return if $tag eq 'warmup';
    $r->{log_lines} = $lines;
    # the first lines: JSON objects with a request id, the variant's answers
    # among them (a line of the run before may come first: a call wrk left
    # in flight is logged when it ends)
    my @d = map { scalar eval { JSON::PP->new->decode($_) } } @head;
    my $ok = @d && !grep({ !$_ || ($_->{request_id} // '') !~ /^[0-9a-f]{32}$/ } @d)
        && grep({ ($_->{status} // 0) == 200 && $_->{method} eq $v->{method} } @d);
    push @failed, "$v->{name} ($pass->{workers} w, $tag): the JSON access log has $lines lines for "
        . "$r->{requests} requests, first line: " . ($head[0] // 'none')
        unless $ok && $lines >= $r->{requests};
}

# One measured wrk run of a variant, with the CPU time of the front's workers,
# of Cerbos (its variants) and of the upstream's workers.
sub measure {
    my ($pass, $v, $secs, $conns, $tag) = @_;
    my $f = $pass->{front}{ $v->{front} };
    my @pdp = $v->{front} eq 'cerbos' ? ($pass->{cerbos}{pid}) : ();
    my @up = @{ $pass->{up}{workers} };
    my ($c0, $p0, $u0) = (cpu_seconds(@{ $f->{workers} }), cpu_seconds(@pdp), cpu_seconds(@up));
    my ($m0, $w0) = (machine_busy(), children_cpu());
    my $r = wrk($pass, $v, $secs, $tag, $conns);
    my ($m1, $w1) = (machine_busy(), children_cpu());
    my ($c1, $p1, $u1) = (cpu_seconds(@{ $f->{workers} }), cpu_seconds(@pdp), cpu_seconds(@up));
    my $n = $r->{requests} || 1;
    my $dur = ($r->{duration_us} || 1) / 1e6;
    $r->{connections} = $conns;
    $r->{cpu_front_us} = ($c1 - $c0) * 1e6 / $n;
    $r->{cpu_pdp_us} = ($p1 - $p0) * 1e6 / $n;
    $r->{cpu_up_us} = ($u1 - $u0) * 1e6 / $n;
    $r->{cpu_us} = $r->{cpu_front_us} + $r->{cpu_pdp_us};
    $r->{cpu_share} = ($c1 - $c0 + $p1 - $p0 + $u1 - $u0) / $dur / $pass->{sut_cpus};
    # what the rest of the machine used meanwhile (other work competing for
    # the CPUs), in CPUs: the machine's busy time less the servers' and wrk's
    my $other = ($m1 - $m0) - ($c1 - $c0 + $p1 - $p0 + $u1 - $u0) - ($w1 - $w0);
    $r->{other_cpu} = $other > 0 ? $other / $dur : 0;
    $r->{rss_kib} = rss_kib(@{ $f->{workers} }, @pdp);
    $r->{pdp_rss_kib} = rss_kib(@pdp) if @pdp;
    check_access_log($pass, $v, $r, $tag) if $f->{access_log};
    push @failed, "$v->{name} ($pass->{workers} w, $tag): $r->{non2xx} non-2xx responses, "
        . ($r->{errors} - $r->{non2xx}) . " socket errors (see $pass->{dir}/wrk/$v->{key}-$tag.txt)"
        if $r->{errors} && $tag ne 'warmup';
    delete $r->{$_} for qw(bytes);
    return $r;
}

# Medians over the rounds; a variant's ratio and added latency and CPU are
# the medians of each round's difference to its base's run in that round.
sub summarize {
    my ($set, $vs) = @_;
    for my $v (@$vs) {
        my $s = $set->{ $v->{key} };
        my @r = @{ $s->{rounds} };
        for my $f (qw(rps p50_us p90_us p99_us max_us cpu_us cpu_front_us cpu_pdp_us
                      cpu_up_us cpu_share other_cpu rss_kib)) {
            $s->{$f} = median(map { $_->{$f} } @r);
        }
        $s->{errors} = 0;
        $s->{errors} += $_->{errors} for @r;
        $s->{requests} = 0;
        $s->{requests} += $_->{requests} for @r;
        next unless $v->{base};
        my @b = @{ $set->{ $v->{base} }{rounds} };
        my @i = grep { $b[$_] && $b[$_]{rps} } 0 .. $#r;
        $s->{ratio} = median(map { $r[$_]{rps} / $b[$_]{rps} } @i);
        $s->{added_p50_us} = median(map { $r[$_]{p50_us} - $b[$_]{p50_us} } @i);
        $s->{added_p99_us} = median(map { $r[$_]{p99_us} - $b[$_]{p99_us} } @i);
        $s->{added_cpu_us} = median(map { $r[$_]{cpu_us} - $b[$_]{cpu_us} } @i);
    }
}

# perf: where the gateway's workers spend their time under load, and how
# much of it on the shared zone's lock (spinning in ngx_shmtx_lock, then
# sched_yield or a semaphore wait, both in the kernel's futex and yield).
my $LOCK_SYMS = qr/^(?:ngx_shmtx_(?:lock|unlock|trylock|wakeup)|(?:__)?sched_yield|do_sched_yield
                     |__x64_sys_sched_yield|(?:__new_)?sem_(?:wait|post|timedwait)\S*
                     |do_futex|futex_\w+|__x64_sys_futex|ngx_agentgov_\w*lock\w*)$/x;
sub lock_profile {
    my ($pass, $v) = @_;
    my $perf = which('perf') or return { error => 'perf is not installed (Debian: linux-perf)' };
    my $data = "$pass->{dir}/perf-$v->{key}.data";
    my $w = wrk_start($pass, $v, $KNEE_SECONDS + 1, 'perf', $CONNS);
    sleep 0.5;
    my $pids = join ',', @{ $pass->{front}{ $v->{front} }{workers} };
    my ($rc, $out, $err) = run($perf, 'record', '-q', '-e', 'cpu-clock', '-F', '2999', '-p', $pids,
                               '-o', $data, '--', 'sleep', $KNEE_SECONDS);
    my $r = wrk_wait($w);
    return { error => "perf record failed: $err" } if $rc || !-s $data;
    ($rc, $out, $err) = run($perf, 'report', '-i', $data, '--stdio', '--no-children',
                            '--sort', 'sym', '--percent-limit', '0.01');
    unlink $data;
    return { error => "perf report failed: $err" } if $rc;
    my ($lock, @top) = (0);
    my ($samples) = $out =~ /^# Samples: (\S+)/m;
    for (split /\n/, $out) {
        next unless /^\s*([0-9.]+)%\s+\[(.)\]\s+(\S.*?)\s*$/;
        my ($pct, $where, $sym) = ($1, $2, $3);
        push @top, { pct => $pct + 0, sym => $sym, kernel => ($where eq 'k' ? 1 : 0) }
            if @top < 12;
        $lock += $pct if $sym =~ $LOCK_SYMS;
    }
    write_file("$pass->{dir}/perf-$v->{key}.txt", $out);
    return { lock_pct => $lock, samples => $samples, top => \@top, rps => $r->{rps},
             seconds => $KNEE_SECONDS, connections => $CONNS };
}

sub run_pass {
    my ($workers) = @_;
    my $pass = { workers => $workers, dir => "$DIR/w$workers" };
    make_path("$pass->{dir}/wrk", "$pass->{dir}/audit");
    if ($workers == 1 && $TASKSET && @CPUS >= 2) {
        @{$pass}{qw(cpu_sut cpu_wrk)} = @CPUS[0, 1];
        $pass->{sut_cpus} = 1;
        $pass->{placement} = "nginx (front and upstream) and Cerbos pinned to CPU $CPUS[0], wrk to CPU $CPUS[1]";
    } else {
        $pass->{sut_cpus} = scalar(@CPUS) || $ncpu || 1;
        $pass->{placement} = sprintf('nothing pinned: the %d front workers, the upstream, Cerbos and wrk share %d CPUs',
                                     $workers, $pass->{sut_cpus});
    }
    $pass->{placement} .= "; servers and wrk at nice $NICE" if $NICE;
    $pass->{loadavg_before} = loadavg();
    print "worker_processes $workers ($pass->{placement}); load average $pass->{loadavg_before}\n";

    my $up_port = free_port();
    $pass->{up} = { port => $up_port };
    my $up_dir = nginx_conf($pass, 'upstream', http => <<"EOF");
    server {
        listen 127.0.0.1:$up_port;
        default_type application/json;
        location / { return 200 '{"ok":true}\\n'; }
    }
EOF
    $pass->{up}{workers} = start_nginx($pass, $up_dir, $up_port);

    my %need = map { ($FRONT_OF{ (split /-/, $_)[0] } => 1) } @keys;
    $pass->{cerbos} = start_cerbos($pass) if $need{cerbos};
    for my $name (qw(plain gateway audit cerbos)) {
        next unless $need{$name};
        my $port = free_port();
        my $d = "$pass->{dir}/$name";
        nginx_conf($pass, $name, module => ($name eq 'gateway' || $name eq 'audit'),
                   njs => $name eq 'cerbos', http => front_http($pass, $name, $port, $d));
        $pass->{front}{$name} = { dir => $d, port => $port,
                                  workers => start_nginx($pass, $d, $port) };
        $pass->{front}{$name}{access_log} = "$d/logs/access.json"
            if $name eq 'plain' || $name eq 'cerbos';
    }

    # The gateway's calls carry the token of a task the agent declares first.
    my %task_header;
    for my $name (grep { $pass->{front}{$_} } qw(gateway audit)) {
        my ($st, $b) = http($pass->{front}{$name}{port}, 'POST', '/agentgov/v1/tasks',
                            ["Agent-Authorization: Bearer $token", 'Content-Type: application/json'],
                            '{"intent": "bench", "ttl": "1h"}');
        die "$name: declaring the bench task got HTTP $st: $b\n" unless $st == 201;
        $task_header{$name} = 'Agent-Task: ' . JSON::PP->new->decode($b)->{token};
    }

    my @vs;
    for my $key (@keys) {
        my ($f, $req) = split /-/, $key;
        my $front = $FRONT_OF{$f};
        my $port = $pass->{front}{$front}{port};
        push @vs, { %{ $REQ{$req} }, key => $key, name => $VARIANT_NAME{$key}, front => $front,
                    req => $req, base => ($f eq 'plain' ? undef : "plain-$req"),
                    url => "http://127.0.0.1:$port$REQ{$req}{target}",
                    headers => [ @headers, $task_header{$front} // () ] };
    }
    $pass->{variants} = \@vs;

    # Every call is answered by the upstream; the gateway and Cerbos govern:
    # no token is 401, a call the rules refuse 403 (an MCP one, from the
    # gateway, a tool error result).
    for my $v (@vs) {
        my $port = $pass->{front}{ $v->{front} }{port};
        my ($st, $b) = http($port, $v->{method}, $v->{target}, $v->{headers},
                            $v->{body_file} ? read_file($v->{body_file}) : undef);
        die "$v->{name}: HTTP $st, not the upstream's answer: $b\n"
            unless $st == 200 && $b eq "{\"ok\":true}\n";
    }
    (my $big = $body) =~ s/"amount":1200/"amount":9000/;
    (my $bigmcp = $mcp_body) =~ s/"amount":1200/"amount":9000/;
    (my $wide = $REQ{get}{target}) =~ s/limit=50/limit=500/;
    for my $name (grep { $pass->{front}{$_} } qw(gateway audit)) {
        my $port = $pass->{front}{$name}{port};
        my @h = (@headers, $task_header{$name});
        my ($st, $b) = http($port, 'GET', $REQ{get}{target}, ['X-Team: team-support']);
        die "$name: a call without a token got $st, not 401\n" unless $st == 401;
        ($st) = http($port, 'POST', $REQ{post}{target}, \@h, $big);
        die "$name: a note over the limit got $st, not 403\n" unless $st == 403;
        ($st, $b) = http($port, 'POST', '/tools/mcp/', \@h, $bigmcp);
        die "$name: an MCP note over the limit got $st $b, not a tool error result\n"
            unless $st == 200 && $b =~ /"isError":true/ && $b =~ /bench-mcp-limit/;
    }
    if (my $c = $pass->{cerbos}) {
        # Cerbos itself: EFFECT_ALLOW for the bench's calls, EFFECT_DENY for
        # the ones the rules refuse
        my %get = (method => 'GET', path => $calls{GET}{path}, query => { limit => '50', page => '2' },
                   headers => { 'x-team' => 'team-support' });
        my %post = (method => 'POST', path => $calls{POST}{path}, query => { notify => '0' },
                    headers => { 'x-team' => 'team-support' });
        my @cases = (
            ['GET', $tool_for{GET}, 'GET', {%get}, 'EFFECT_ALLOW'],
            ['GET limit=500', $tool_for{GET}, 'GET', {%get, query => { limit => '500' }}, 'EFFECT_DENY'],
            ['POST', $tool_for{POST}, 'POST', {%post, body => JSON::PP->new->decode($body)}, 'EFFECT_ALLOW'],
            ['POST amount 9000', $tool_for{POST}, 'POST', {%post, body => JSON::PP->new->decode($big)},
             'EFFECT_DENY'],
            ['MCP', 'bench-mcp', 'tools/call', { method => 'POST', path => '/', tool => 'update_note',
              args => JSON::PP->new->decode($body) }, 'EFFECT_ALLOW'],
            ['MCP amount 9000', 'bench-mcp', 'tools/call', { method => 'POST', path => '/',
              tool => 'update_note', args => JSON::PP->new->decode($big) }, 'EFFECT_DENY'],
        );
        for (@cases) {
            my ($what, $kind, $action, $attr, $want) = @$_;
            my $got = cerbos_effect($c->{port}, $kind, $action, $attr);
            die "Cerbos: the bench's $what call got $got, not $want\n" unless $got eq $want;
            push @{ $pass->{cerbos_checks} }, "$what: $got";
        }
        # and the Cerbos front acts on them
        my $port = $pass->{front}{cerbos}{port};
        my ($st) = http($port, 'GET', $REQ{get}{target}, ['X-Team: team-support']);
        die "Cerbos front: a call without a token got $st, not 401\n" unless $st == 401;
        ($st) = http($port, 'GET', $wide, \@headers);
        die "Cerbos front: a GET with limit=500 got $st, not 403\n" unless $st == 403;
        ($st) = http($port, 'POST', $REQ{post}{target}, \@headers, $big);
        die "Cerbos front: a note over the limit got $st, not 403\n" unless $st == 403;
        ($st) = http($port, 'POST', '/tools/mcp/', \@headers, $bigmcp);
        die "Cerbos front: an MCP note over the limit got $st, not 403\n" unless $st == 403;
    }
    # the checks' lines out of the access logs (nginx writes a line just
    # after the response)
    sleep 0.2;
    truncate $pass->{front}{$_}{access_log}, 0
        for grep { $pass->{front}{$_}{access_log} } keys %{ $pass->{front} };

    # warm-up: every variant, unmeasured
    if ($WARMUP) {
        measure($pass, $_, $WARMUP, $CONNS, 'warmup') for @vs;
    }

    # the knee: plain GET (or the first plain variant) on a ramp of connections
    my ($pv) = (grep({ $_->{key} eq 'plain-get' } @vs), grep({ !$_->{base} } @vs));
    my @ramp;
    for my $c (@RAMP) {
        my $r = measure($pass, $pv, $KNEE_SECONDS, $c, "ramp-$c");
        push @ramp, { connections => $c, rps => $r->{rps}, p50_us => $r->{p50_us},
                      p99_us => $r->{p99_us}, cpu_share => $r->{cpu_share},
                      other_cpu => $r->{other_cpu} };
    }
    # the knee: the first count whose next step adds less than 5% req/s,
    # among the counts that reach 90% of the ramp's best (so that a dip at
    # one step, noise, is not taken for the knee); else the last count
    my ($top) = sort { $b <=> $a } map { $_->{rps} } @ramp;
    my $knee = $ramp[-1]{connections};
    for my $i (0 .. $#ramp - 1) {
        if ($ramp[$i]{rps} >= $KNEE_NEAR * $top
            && $ramp[$i + 1]{rps} < $ramp[$i]{rps} * $KNEE_GROWTH) {
            $knee = $ramp[$i]{connections};
            last;
        }
    }
    $pass->{knee} = { variant => $pv->{name}, connections => $knee, ramp => \@ramp,
                      rule => sprintf('the first connection count whose next step adds less than %.0f%% '
                                      . 'req/s, among those reaching %.0f%% of the ramp\'s best',
                                      ($KNEE_GROWTH - 1) * 100, $KNEE_NEAR * 100) };
    printf "  knee: %d connections (%s)\n", $knee,
        join(', ', map { sprintf '%d: %.0f', $_->{connections}, $_->{rps} } @ramp);

    # the rounds: every variant in turn, ROUNDS times, at CONNS, then at the knee
    for my $set (['load', $CONNS, $SECONDS], ['at_knee', $knee, $KNEE_SECONDS]) {
        my ($what, $conns, $secs) = @$set;
        for my $round (1 .. $ROUNDS) {
            print "  ", ($what eq 'load' ? 'load' : 'knee'), " round $round ($conns connections):";
            for my $v (@vs) {
                my $r = measure($pass, $v, $secs, $conns, ($what eq 'load' ? 'load' : 'knee') . "-$round");
                push @{ $pass->{$what}{ $v->{key} }{rounds} }, $r;
                printf ' %s %.0f', $v->{key}, $r->{rps};
            }
            print "\n";
        }
        summarize($pass->{$what}, \@vs);
    }

    # the shared zone's lock, in the gateway+audit variants' workers
    if ($PERF) {
        for my $v (grep { $_->{front} eq 'audit' } @vs) {
            $pass->{locks}{ $v->{key} } = lock_profile($pass, $v);
        }
    }

    $pass->{loadavg_after} = loadavg();
    for my $name (sort keys %{ $pass->{front} }) {
        my $errlog = read_file("$pass->{front}{$name}{dir}/logs/error.log") // '';
        push @failed, "$name nginx ($workers w): $1"
            if $errlog =~ /(.*(?:exited on signal|\[(?:alert|crit|emerg)\]|js exception).*)/;
    }
    if (my $c = $pass->{cerbos}) {
        $pass->{cerbos_rss_kib} = rss_kib($c->{pid});
    }
    cleanup();

    # The audit log the runs wrote: its size per record, and the CLI's time
    # to verify it; removed once verified (it reaches a GB).
    if ($pass->{front}{audit}) {
        my $file = "$pass->{dir}/audit/audit.jsonl";
        my $size = -s $file // 0;
        my $n = 0;
        if (open my $fh, '<', $file) {
            my $buf;
            while (read($fh, $buf, 1 << 20)) { $n += ($buf =~ tr/\n//) }
            close $fh;
        }
        my ($rc, $out, $err, $dt) = run($CLI, 'audit', 'verify', $file, '--key', $audit_key);
        if ($rc) {
            push @failed, "audit verify of the $workers-worker pass's audit log failed: $out$err";
        } else {
            unlink $file;
        }
        $pass->{audit} = { records => $n, bytes => $n ? $size / $n : 0,
                           verify_s_per_million => $n ? $dt * 1e6 / $n : 0, verified => !$rc };
    }
    return $pass;
}

my @passes = map { run_pass($_) } @WORKERS;

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
    unlink "$OUT/holds.txt", "$OUT/holds.json";
    my $rc = system($^X, "$ROOT/bench/holds.pl");
    $holds_report = read_file("$OUT/holds.txt") // '';
    push @failed, "holds: bench/holds.pl failed (exit " . ($rc >> 8) . ")" if $rc;
}

# --- 4. the report ------------------------------------------------------------------------------

my $loadavg_after = loadavg();
my $took = time - $t_start;
my $one_pass = @passes == 1;
my @L;
push @L, sprintf('agentgov bench, %s, commit %s', strftime('%Y-%m-%d %H:%M UTC', gmtime), $commit);
push @L, sprintf('machine: %d CPU (%s), Linux %s; nginx %s, wrk %s%s',
                 $ncpu, $cpu_model // '?', $kernel, $nginx_ver // '?', $wrk_ver // '?',
                 length $CERBOS ? ", Cerbos $cerbos_ver (npm), njs $njs_ver" : '');
push @L, "load average (1, 5, 15 min): $loadavg_before before the run, $loadavg_after after it "
    . '(other work on the machine adds noise)';
push @L, "method: wrk -t1, keep-alive; for each worker count every variant is warmed up ${WARMUP}s, "
    . "then runs in $ROUNDS rounds, each round running every variant in turn (A B C A B C ...);";
push @L, '  figures are the medians of the rounds; ratio, +p50, +p99 and +us the medians of each '
    . 'round\'s difference to the plain run of the same request in the same round';
push @L, 'upstream: one nginx, return 200 (12 bytes), reached through a keepalive pool; every nginx '
    . 'of a pass runs its worker_processes';
push @L, 'plain: proxy_pass, and a JSON access log (14 fields, escape=json) written to a file, '
    . 'a line per request';
push @L, sprintf('gateway+audit: ES256 agent JWT and task token (both cached per worker after first '
                 . 'sight; the task looked up live in the zone on every call), %d-rule policy over %d tools, '
                 . 'keys stripped,', scalar @{ $policy->{rules} }, $GW_TOOLS);
push @L, '  headers, query and body scanned for secrets, a minted JWT injected (warm cache), '
    . 'agentgov_audit_log fail=closed; no access log (the audit log is the log);';
push @L, sprintf('  GET: %d candidate rules evaluated, allowed by bench-read (header: and query: conditions);',
                 $candidates{GET});
push @L, sprintf('  POST: %d candidates, allowed by bench-write (body: conditions) after deny bench-write-limit;',
                 $candidates{POST});
push @L, sprintf('  MCP: the same note as the arguments of a JSON-RPC tools/call (%d bytes), %d candidates, '
                 . 'allowed by bench-mcp (args: conditions)', length $mcp_body, $candidates{MCP});
if (length $CERBOS) {
    push @L, 'Cerbos: the plain front (JSON access log included) asking Cerbos about every call '
        . '(CheckResources over HTTP, keepalive pool) through njs (bench/cerbos.js),';
    push @L, '  which acts on the effect (EFFECT_ALLOW proceeds, EFFECT_DENY is 403): GET by '
        . 'auth_request; POST and MCP by js_content (an auth_request subrequest cannot see the body),';
    push @L, '  Cerbos verifies the agent\'s JWT (auxData) and evaluates the bench rules\' conditions; '
        . 'no task, key stripping, secret scan, credential or audit; us/req includes Cerbos\'s CPU';
}

sub fmt_diff {
    my ($s, $field, $scale, $fmt) = @_;
    return '-' unless defined $s->{$field};
    return sprintf($fmt, $s->{$field} / $scale);
}

for my $p (@passes) {
    my @vs = @{ $p->{variants} };
    push @L, '';
    push @L, "worker_processes $p->{workers}: $p->{placement}";
    push @L, "under load: $CONNS connections, $ROUNDS rounds of ${SECONDS}s";
    push @L, sprintf('%-19s %7s %6s %7s %7s %6s %6s %7s %6s %5s %6s %6s %6s',
                     'variant', 'req/s', 'ratio', 'p50 ms', 'p99 ms', '+p50', '+p99',
                     'us/req', '+us', 'cpu%', 'other%', 'RSS MB', 'errors');
    for my $v (@vs) {
        my $s = $p->{load}{ $v->{key} };
        push @L, sprintf('%-19s %7.0f %6s %7.2f %7.2f %6s %6s %7.1f %6s %5.0f %6.0f %6.1f %6d',
                         $v->{name}, $s->{rps},
                         defined $s->{ratio} ? sprintf('%.3f', $s->{ratio}) : '1.000',
                         $s->{p50_us} / 1000, $s->{p99_us} / 1000,
                         fmt_diff($s, 'added_p50_us', 1000, '%+.2f'),
                         fmt_diff($s, 'added_p99_us', 1000, '%+.2f'),
                         $s->{cpu_us}, fmt_diff($s, 'added_cpu_us', 1, '%+.1f'),
                         $s->{cpu_share} * 100, $s->{other_cpu} * 100, $s->{rss_kib} / 1024,
                         $s->{errors});
    }
    my $k = $p->{knee};
    push @L, sprintf('knee: %s stops growing by more than %.0f%% at %d connections (ramp, %ds each, req/s: %s)',
                     $k->{variant}, ($KNEE_GROWTH - 1) * 100, $k->{connections}, $KNEE_SECONDS,
                     join(', ', map { sprintf '%d: %.0f', $_->{connections}, $_->{rps} } @{ $k->{ramp} }));
    push @L, "at the knee: $k->{connections} connections, $ROUNDS rounds of ${KNEE_SECONDS}s";
    push @L, sprintf('%-19s %7s %6s %7s %7s %7s %7s %7s %6s  %s',
                     'variant', 'req/s', 'ratio', 'p50 us', 'p99 us', '+p50', '+p99', 'us/req',
                     'other%', "+p99 <= $TARGET_P99_US us");
    for my $v (@vs) {
        my $s = $p->{at_knee}{ $v->{key} };
        push @L, sprintf('%-19s %7.0f %6s %7.0f %7.0f %7s %7s %7.1f %6.0f  %s',
                         $v->{name}, $s->{rps},
                         defined $s->{ratio} ? sprintf('%.3f', $s->{ratio}) : '1.000',
                         $s->{p50_us}, $s->{p99_us},
                         fmt_diff($s, 'added_p50_us', 1, '%+.0f'),
                         fmt_diff($s, 'added_p99_us', 1, '%+.0f'),
                         $s->{cpu_us}, $s->{other_cpu} * 100,
                         !$v->{base} ? '' : $s->{added_p99_us} <= $TARGET_P99_US ? 'met' : 'not met');
    }
    if ($p->{locks}) {
        my @l;
        for my $v (grep { $p->{locks}{ $_->{key} } } @vs) {
            my $l = $p->{locks}{ $v->{key} };
            push @l, defined $l->{lock_pct}
                ? sprintf('%s %.2f%%', $v->{name}, $l->{lock_pct}) : "$v->{name}: $l->{error}";
        }
        push @L, "shared zone lock (perf, ${KNEE_SECONDS}s at $CONNS connections): "
            . join(', ', @l) . ' of the gateway workers\' samples' if @l;
    }
    if (my $a = $p->{audit}) {
        push @L, sprintf('audit: %d records written in this pass, %.0f bytes each; agentgov audit verify: '
                         . '%.2f s per million records%s', $a->{records}, $a->{bytes},
                         $a->{verify_s_per_million}, $a->{verified} ? '' : ' (FAILED)');
    }
    if (my @cv = grep { $_->{front} eq 'cerbos' } @vs) {
        push @L, 'Cerbos variants\' us/req under load: ' . join(', ', map {
            my $s = $p->{load}{ $_->{key} };
            sprintf('%s %.0f in nginx (njs, subrequest, proxy) + %.0f in Cerbos', $_->{name},
                    $s->{cpu_front_us}, $s->{cpu_pdp_us}) } @cv)
            . sprintf('; Cerbos\'s RSS %.0f MB', ($p->{cerbos_rss_kib} // 0) / 1024);
    }
    push @L, 'Cerbos, asked directly outside the timed runs: ' . join('; ', @{ $p->{cerbos_checks} })
        if $p->{cerbos_checks};
    my ($most) = sort { $b <=> $a } map { ($p->{load}{ $_->{key} }{other_cpu},
                                            $p->{at_knee}{ $_->{key} }{other_cpu}) } @vs;
    push @L, sprintf('WARNING: other processes used up to %.0f%% of a CPU during the rounds: they '
                     . 'competed with the servers and wrk, so req/s and latency (p99 most) vary with '
                     . 'that work; us/req is the figure to compare.', $most * 100)
        if $most > 0.10;
    if (defined $p->{cpu_sut}) {
        my ($least) = sort { $a <=> $b } map { $p->{load}{ $_->{key} }{cpu_share} } @vs;
        push @L, sprintf('WARNING: the servers got as little as %.0f%% of their CPU: other work on this '
                         . 'machine competed with them, so req/s and latency vary with that work; '
                         . 'us/req is the figure to compare.', $least * 100)
            if $least < 0.85;
    }
    push @L, "load average: $p->{loadavg_before} before this pass, $p->{loadavg_after} after it";
}
push @L, '';
push @L, 'ratio: req/s against the plain run of the same request; +p50, +p99 (ms under load, us at the '
    . 'knee), +us: the same differences;';
push @L, 'us/req: CPU time of the front\'s workers per request (Cerbos variants: plus Cerbos\'s), so +us '
    . 'is what the design costs a call; cpu%: CPU used by the front, upstream and Cerbos, of the CPUs they had;';
push @L, 'other%: CPU used meanwhile by every other process on the machine (wrk excluded), % of one CPU: '
    . 'near 0 on a quiet machine.';

if (@passes > 1) {
    push @L, '';
    push @L, 'workers: the same variants under load with ' . join(' and ', map { $_->{workers} } @passes)
        . ' worker processes';
    my @w = map { $_->{workers} } @passes;
    push @L, sprintf('%-19s %s %s %s', 'variant',
                     join(' ', map { sprintf '%9s', "req/s $_" } @w),
                     join(' ', map { sprintf '%9s', "us/req $_" } @w),
                     join(' ', map { sprintf '%8s', "lock% $_" } @w));
    for my $v (@{ $passes[0]{variants} }) {
        push @L, sprintf('%-19s %s %s %s', $v->{name},
                         join(' ', map { sprintf '%9.0f', $_->{load}{ $v->{key} }{rps} // 0 } @passes),
                         join(' ', map { sprintf '%9.1f', $_->{load}{ $v->{key} }{cpu_us} // 0 } @passes),
                         join(' ', map { my $l = ($_->{locks} // {})->{ $v->{key} };
                                         $l && defined $l->{lock_pct} ? sprintf('%8.2f', $l->{lock_pct})
                                                                      : sprintf('%8s', '-') } @passes));
    }
    push @L, 'lock%: share of the gateway+audit workers\' perf samples in the shared zone\'s lock '
        . '(ngx_shmtx_lock spinning, sched_yield, semaphore waits).';
}

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
push @L, "not measured: $_->[0]: $_->[1]" for @not_measured;
push @L, sprintf('took %.0f s', $took);

my $report = join("\n", @L) . "\n";
write_file("$OUT/report.txt", $report);

# results.json: every figure, per round too
sub rounded {
    my ($v) = @_;
    return { map { ($_ => rounded($v->{$_})) } keys %$v } if ref $v eq 'HASH';
    return [ map { rounded($_) } @$v ] if ref $v eq 'ARRAY';
    return $v if !defined $v || ref $v || $v !~ /^-?\d+\.\d+(?:e-?\d+)?$/i;
    return 0 + sprintf('%.3f', $v);
}
sub num { my ($x) = @_; return defined $x ? $x + 0 : undef }
my @pass_json;
for my $p (@passes) {
    my %set;
    for my $what (qw(load at_knee)) {
        my %vars;
        for my $v (@{ $p->{variants} }) {
            my $s = $p->{$what}{ $v->{key} };
            $vars{ $v->{key} } = {
                name => $v->{name}, front => $v->{front}, request => $v->{req},
                base => $v->{base}, method => $v->{method}, target => $v->{target},
                body_bytes => $v->{body_file} ? -s $v->{body_file} : 0,
                (map { ($_ => num($s->{$_})) }
                 qw(rps p50_us p90_us p99_us max_us cpu_us cpu_front_us cpu_pdp_us cpu_up_us
                    cpu_share other_cpu rss_kib errors requests ratio added_p50_us added_p99_us
                    added_cpu_us)),
                ($what eq 'at_knee' && $v->{base}
                    ? (target_added_p99_us => $TARGET_P99_US,
                       target_met => ($s->{added_p99_us} <= $TARGET_P99_US
                                      ? JSON::PP::true : JSON::PP::false)) : ()),
                rounds => [ map { my $r = $_; +{ map { ($_ => num($r->{$_})) }
                    grep { defined $r->{$_} } qw(rps requests duration_us p50_us p90_us p99_us max_us
                        errors non2xx cpu_us cpu_front_us cpu_pdp_us cpu_up_us cpu_share other_cpu
                        rss_kib pdp_rss_kib log_lines) } } @{ $s->{rounds} } ],
            };
        }
        $set{$what} = \%vars;
    }
    my %ratios;
    for my $v (grep { $_->{base} } @{ $p->{variants} }) {
        $ratios{"$v->{name} / $VARIANT_NAME{ $v->{base} }"} = num($p->{load}{ $v->{key} }{ratio});
    }
    push @pass_json, {
        workers => $p->{workers}, placement => $p->{placement},
        pinned => defined $p->{cpu_sut} ? JSON::PP::true : JSON::PP::false,
        loadavg_before => $p->{loadavg_before}, loadavg_after => $p->{loadavg_after},
        load => { connections => $CONNS, seconds => $SECONDS, rounds => $ROUNDS,
                  variants => $set{load} },
        knee => { connections => $p->{knee}{connections}, variant => $p->{knee}{variant},
                  rule => $p->{knee}{rule}, ramp => $p->{knee}{ramp}, seconds => $KNEE_SECONDS,
                  rounds => $ROUNDS, variants => $set{at_knee} },
        ratios => \%ratios,
        locks => $p->{locks}, audit => $p->{audit},
        cerbos_checks => $p->{cerbos_checks}, cerbos_rss_kib => $p->{cerbos_rss_kib},
    };
}
my $holds_json = $HOLDS ? eval { JSON::PP->new->decode(read_file("$OUT/holds.json") // '') } : undef;
my $results = rounded({
    date => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime), commit => $commit, took_s => $took,
    machine => { cpus => $ncpu, cpu_model => $cpu_model, kernel => $kernel },
    versions => { nginx => $nginx_ver, wrk => $wrk_ver, cerbos => $cerbos_ver, njs => $njs_ver },
    loadavg => { before => $loadavg_before, after => $loadavg_after },
    settings => { seconds => $SECONDS, rounds => $ROUNDS, warmup => $WARMUP, connections => $CONNS,
                  knee_seconds => $KNEE_SECONDS, ramp => [ map { $_ + 0 } @RAMP ],
                  knee_growth => $KNEE_GROWTH, knee_near => $KNEE_NEAR, workers => [ map { $_ + 0 } @WORKERS ],
                  variants => \@keys, eval_ms => $EVAL_MS, nice => $NICE + 0,
                  eval_rules => [ map { $_ + 0 } @EVAL_RULES ], holds => $HOLDS, perf => $PERF },
    target => { added_p99_us_at_knee => $TARGET_P99_US },
    gateway => { rules => scalar @{ $policy->{rules} }, tools => $GW_TOOLS,
                 candidates => \%candidates, mcp_body_bytes => length $mcp_body },
    passes => \@pass_json,
    eval => \@evals,
    holds => $holds_json,
    not_measured => [ map { { what => $_->[0], why => $_->[1] } } @not_measured ],
    failed => \@failed,
});
write_file("$OUT/results.json", JSON::PP->new->canonical->pretty->encode($results));

print "\n$report";
print "report: $OUT/report.txt, $OUT/results.json\n";
if (@failed) {
    print STDERR "bench: FAILED\n", map { "  $_\n" } @failed;
    exit 1;
}
exit 0;
