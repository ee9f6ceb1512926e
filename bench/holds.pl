#!/usr/bin/env perl
# `make bench`, holds (SPEC sections 6 and 10; docs/bench.md): memory and CPU
# of BENCH_HOLDS requests held at once, and how fast a decision resumes them.
# Called by bench/run.pl; runs alone too:
#
#   perl bench/holds.pl        (AGENTGOV_BUILD, NGINX_BIN, BENCH_HOLDS, ...)
#
# For each worker count in BENCH_HOLDS_WORKERS ("2 1"), on 127.0.0.1:
#
#   1. a gateway whose one rule holds every call (hold timeout 1h) and an
#      upstream nginx; after a warm-up, the memory of the gateway's processes
#      and the zone's use;
#   2. BENCH_HOLDS connections from this process, each sending one held POST
#      (a 1/4 KiB JSON body) and waiting; then, once the metrics say they
#      are all pending, the same memory figures again, and the workers' CPU
#      over BENCH_HOLDS_IDLE seconds of nothing but waiting;
#   3. BENCH_HOLDS_SAMPLES holds approved one at a time: from sending the
#      approve POST to the first byte of the held call's response;
#   4. every other hold approved at once from four API connections (the ids
#      read from the pending list, 1000 at a time), timed until every held
#      call has its answer: each must be 200, from the upstream, with the
#      Agent-Approval of its own hold.
#
# The table is printed and written to build/bench/holds.txt, the figures to
# build/bench/holds.json; the run's files stay in build/bench/holds/. Every
# nginx it starts is stopped when it ends, also on failure. Perl core
# modules only. Exits non-zero when a check fails.
#
# Environment: AGENTGOV_BUILD, NGINX_BIN, BENCH_HOLDS (10000),
# BENCH_HOLDS_WORKERS ("2 1"), BENCH_HOLDS_IDLE (10 s), BENCH_HOLDS_SAMPLES
# (200). For looking closer: BENCH_HOLDS_PERF=1 records a perf profile of
# the workers while idle and during the sweep (build/bench/holds/perf-*.txt);
# BENCH_HOLDS_NGINX_HTTP="directive ...;" adds http-level directives to every
# nginx it starts; AGENTGOV_HOLDS_PAUSE=SECONDS waits that long once the calls are parked
# (gdb, strace); AGENTGOV_HOLDS_CORE=1 lets a crashing worker dump core.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use List::Util qw(shuffle sum0);
use POSIX qw(strftime);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
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
my $DIR    = "$OUT/holds";

my $N       = env_int('BENCH_HOLDS', 10000, 10, 100000);
my $IDLE    = env_int('BENCH_HOLDS_IDLE', 10, 1, 300);
my $SAMPLES = env_int('BENCH_HOLDS_SAMPLES', 200, 1, 1000);
my @WORKERS = split ' ', ($ENV{BENCH_HOLDS_WORKERS} // '2 1');
/^[1-9][0-9]?$/ or die "BENCH_HOLDS_WORKERS: $_ is not a worker count\n" for @WORKERS;
@WORKERS or die "BENCH_HOLDS_WORKERS is empty\n";
$SAMPLES = int($N / 2) if $SAMPLES > $N / 2;

my $APPROVERS = 4;            # API connections of the sweep
my $TICK_MS = 50;             # the gateway's hold tick, for spreading samples
my $ISS = 'agentgov-bench';
my $BODY_SIZE = 256;
# the zone: a hold takes about 1 KiB (a 1 KiB slab chunk); 4.5 KiB a hold
# and 8 MiB for the rest leave room for longer previews, never below 16m
my $ZONE_MB = int($N * 4.5 / 1024) + 8;
$ZONE_MB = 16 if $ZONE_MB < 16;
# more http-level directives for every nginx, to try settings
# (request_pool_size, for one)
my $EXTRA_HTTP = $ENV{BENCH_HOLDS_NGINX_HTTP} // '';

# --- file descriptors: this process holds N, each gateway worker up to 2N ----------

sub nofile {
    open my $fh, '<', '/proc/self/limits' or return (0, 0);
    while (<$fh>) {
        return ($1 eq 'unlimited' ? 1e9 : $1, $2 eq 'unlimited' ? 1e9 : $2)
            if /^Max open files\s+(\S+)\s+(\S+)/;
    }
    return (0, 0);
}

my $FD_WANT = 2 * $N + 4096;
my ($fd_soft, $fd_hard) = nofile();
if ($fd_soft < $FD_WANT && !$ENV{AGENTGOV_HOLDS_REEXEC}) {
    # Perl has no setrlimit of its own: the shell's ulimit, then this again.
    # As root the hard limit rises too; otherwise the soft one up to it.
    $ENV{AGENTGOV_HOLDS_REEXEC} = 1;
    exec 'sh', '-c', 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; '
                   . 'shift; exec "$@"', 'sh', $FD_WANT, $^X, __FILE__, @ARGV;
    die "exec sh: $!\n";
}
($fd_soft, $fd_hard) = nofile();
die "holds: $N holds need about " . ($N + 100) . " open files here and nginx's "
    . "workers up to " . (2 * $N + 1024) . "; the limit is $fd_soft (hard $fd_hard): "
    . "raise it (ulimit -Hn) or lower BENCH_HOLDS\n"
    if $fd_soft < $N + 200;
# each worker: every held call (all of them may land in one worker), and an
# upstream connection for each call resumed; nginx cannot go past the hard
# limit without CAP_SYS_RESOURCE (setrlimit fails with an alert)
my $NGX_NOFILE = 2 * $N + 2048;     # worker_rlimit_nofile
$NGX_NOFILE = $fd_hard if $NGX_NOFILE > $fd_hard;
my $NGX_CONNS  = $NGX_NOFILE - 64;  # worker_connections

# --- clean-up, whatever happens ------------------------------------------------------

my @started;
my %perf_pid;          # perf record runs under way (BENCH_HOLDS_PERF)

sub children {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = read_file($stat) // next;
        push @kids, $1 if $s =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

sub stop_nginx {
    my ($pidfile) = @_;
    my $pid = read_file($pidfile) // return;
    return unless $pid =~ /^\s*(\d+)\s*$/;
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
    for my $pid (values %perf_pid) {
        kill 'INT', $pid;
        waitpid $pid, 0;
    }
    %perf_pid = ();
    stop_nginx($_) for reverse @started;
    @started = ();
}

$SIG{$_} = sub { die "interrupted by SIG$_[0]\n" } for qw(INT TERM HUP);
$SIG{PIPE} = 'IGNORE';
END {
    my $rc = $?;
    cleanup();
    $? = $rc;
}

# --- helpers ----------------------------------------------------------------------------

sub run_ok {
    my (@cmd) = @_;
    my $out = `@{[ join ' ', map { sh($_) } @cmd ]} 2>&1`;
    die "failed ($?): @cmd\n$out" if $?;
    return $out;
}

# CPU time of a process, seconds: from schedstat (nanoseconds) when the
# kernel has it, else utime + stime from stat (clock ticks, 10 ms)
my $TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub cpu_seconds {
    my ($pid) = @_;
    my $ss = read_file("/proc/$pid/schedstat");
    return $1 / 1e9 if defined $ss && $ss =~ /^(\d+) /;
    my $s = read_file("/proc/$pid/stat") // return 0;
    $s =~ s/^.*\) //s;
    my @f = split ' ', $s;          # f[0] is the state: utime is f[11], stime f[12]
    return ($f[11] + $f[12]) / $TCK;
}

# memory of one process, KiB: VmRSS, its shared-memory part (the zone), Pss
# (shared pages divided among the processes mapping them: a sum over
# processes counts each page once), and voluntary context switches
sub mem {
    my ($pid) = @_;
    my $s = read_file("/proc/$pid/status") // '';
    my $r = read_file("/proc/$pid/smaps_rollup") // '';
    my %m;
    $m{rss}   = $s =~ /^VmRSS:\s+(\d+)/m ? $1 + 0 : 0;
    $m{shmem} = $s =~ /^RssShmem:\s+(\d+)/m ? $1 + 0 : 0;
    $m{anon}  = $s =~ /^RssAnon:\s+(\d+)/m ? $1 + 0 : 0;
    $m{pss}   = $r =~ /^Pss:\s+(\d+)/m ? $1 + 0 : 0;
    $m{vcsw}  = $s =~ /^voluntary_ctxt_switches:\s+(\d+)/m ? $1 + 0 : 0;
    return \%m;
}

# the kernel's slab memory, KiB: sockets and their files live there
sub slab_kib {
    my ($kib) = (read_file('/proc/meminfo') // '') =~ /^Slab:\s+(\d+)/m;
    return ($kib // 0) + 0;
}

sub pct {
    my ($sorted, $p) = @_;
    return 0 unless @$sorted;
    my $i = int($p / 100 * @$sorted + 0.5) - 1;
    $i = 0 if $i < 0;
    $i = $#$sorted if $i > $#$sorted;
    return $sorted->[$i];
}

# --- HTTP over one fresh connection, blocking ---------------------------------------------

sub http {
    my ($port, $method, $target, $headers, $body) = @_;
    $body //= '';
    my $req = "$method $target HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    $req .= "$_\r\n" for @$headers;
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if length $body;
    $req .= "\r\n$body";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 30)
        or die "connect 127.0.0.1:$port: $!\n";
    $s->autoflush(1);
    print $s $req;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $rbody) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    if (($head // '') =~ /^Transfer-Encoding:\s*chunked/mi) {
        my $out = '';
        while ($rbody =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($rbody, 0, $n, '');
            $rbody =~ s/^\r\n//;
        }
        $rbody = $out;
    }
    return ($status // 0, $rbody // '', $head // '');
}

# --- an API connection that stays open: one request at a time, non-blocking -------------

sub api_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp') or die "connect 127.0.0.1:$port: $!\n";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    $s->blocking(0);
    return { sock => $s, buf => '', busy => 0 };
}

sub api_send {
    my ($c, $method, $target, $auth, $body, $cb) = @_;
    my $req = "$method $target HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $auth\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if defined $body;
    $req .= "\r\n" . ($body // '');
    $c->{busy} = 1;
    $c->{cb} = $cb;
    $c->{buf} = '';
    $c->{sent} = time;
    my $off = 0;
    while ($off < length $req) {        # a few hundred bytes: goes at once
        my $n = syswrite($c->{sock}, $req, length($req) - $off, $off);
        if (!defined $n) {
            die "API connection: $!\n" unless $!{EAGAIN};
            sleep 0.001;
            next;
        }
        $off += $n;
    }
    return $c->{sent};
}

# Reads what is there; when a whole response is in, calls back with
# (status, head, body). False when the connection closed.
sub api_read {
    my ($c) = @_;
    my $n = sysread($c->{sock}, my $chunk, 1 << 20);
    return 1 if !defined $n && $!{EAGAIN};
    return 0 unless $n;
    $c->{buf} .= $chunk;
    my $i = index($c->{buf}, "\r\n\r\n");
    return 1 if $i < 0;
    my $head = substr($c->{buf}, 0, $i);
    my $rest = substr($c->{buf}, $i + 4);
    my $body;
    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
        return 1 if length($rest) < $1;
        $body = substr($rest, 0, $1);
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        return 1 unless $rest =~ /(?:^|\r\n)0\r\n\r\n\z/;
        $body = '';
        while ($rest =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $body .= substr($rest, 0, $len, '');
            $rest =~ s/^\r\n//;
        }
    } else {
        $body = $rest;
    }
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    $c->{busy} = 0;
    $c->{buf} = '';
    my $cb = delete $c->{cb};
    $cb->($status // 0, $head, $body) if $cb;
    return 1;
}

# --- the pending list: hold id by the held call's path ---------------------------------

# The items are long (the preview of each call); JSON::PP takes a second for
# a thousand of them, so only the two members needed are picked out: each
# item's "id" comes first, its action's path after it.
sub pending_ids {
    my ($body) = @_;
    my @r;
    while ($body =~ /\{"id":"([^"]+)".*?"action":\{[^}]*?"path":"([^"]+)"/gs) {
        push @r, [$1, $2];
    }
    return @r;
}

# --- set up ---------------------------------------------------------------------------------

-x $CLI && -f $MODULE or die "build $CLI and $MODULE first (make all)\n";
remove_tree($DIR);
make_path($DIR);
chmod 0755, $OUT, $DIR;
# nginx runs a copy of the module: `make` writes the built one in place (cp),
# which would kill a running worker with SIGBUS mid-run
copy($MODULE, "$DIR/ngx_http_agentgov_module.so") or die "copy $MODULE: $!\n";
$MODULE = "$DIR/ngx_http_agentgov_module.so";
my $t_start = time;
my ($LOADAVG) = (read_file('/proc/loadavg') // '?') =~ /^(\S+ \S+ \S+)/;
$LOADAVG //= '?';
my $COMMIT = `git -C @{[ sh($ROOT) ]} rev-parse --short HEAD 2>/dev/null` // '';
chomp $COMMIT;
if (length $COMMIT) {
    $COMMIT .= '+dirty'
        if `git -C @{[ sh($ROOT) ]} status --porcelain -- src ngx_agentgov_module.c config 2>/dev/null` ne '';
} else {
    $COMMIT = 'unknown';
}

my $key = "$DIR/idp.pem";
my $jwks = "$DIR/idp.jwks.json";
run_ok($CLI, 'keygen', '--out', $key, '--type', 'p256', '--jwks', $jwks);
my $gw_key = "$DIR/gateway.pem";
run_ok($CLI, 'keygen', '--out', $gw_key, '--type', 'ed25519');
my $agent_jwt = run_ok($CLI, 'token', '--key', $key, '--iss', $ISS, '--sub', 'bench-bot',
                       '--ttl', '2h');
my $approver = run_ok($CLI, 'token', '--key', $key, '--iss', $ISS, '--sub', 'fay',
                      '--groups', 'finance', '--ttl', '2h');
s/\s+$// for $agent_jwt, $approver;

my $policy = {
    agentgov => 1,
    agents => { 'bench-bot' => { jwt => { iss => $ISS, sub => 'bench-bot' },
                                 owner => 'support', max_pending => $N } },
    groups => { finance => [ { jwt => { iss => $ISS, groups => 'finance' } } ] },
    tools => { payments => {} },
    intents => { refunds => { agents => ['bench-bot'], tools => ['payments'],
                              max_ttl => '2h' } },
    rules => [ { id => 'refund-needs-approval', effect => 'hold', tool => 'payments',
                 method => 'POST', path => '/v1/refunds/*', approvers => ['finance'],
                 timeout => '1h' } ],
};
my $policy_file = write_file("$DIR/policy.json",
                             JSON::PP->new->canonical->pretty->encode($policy));
run_ok($CLI, 'policy', 'check', $policy_file);

sub nginx_conf {
    my ($name, %o) = @_;
    my $d = "$DIR/$name";
    make_path("$d/logs");
    chmod $ENV{AGENTGOV_HOLDS_CORE} ? 0777 : 0755, $d;
    my $conf = '';
    $conf .= "load_module $MODULE;\n" if $o{module};
    # AGENTGOV_HOLDS_CORE=1: a crashing worker leaves its core in DIR/NAME
    $conf .= "worker_rlimit_core 4g;\nworking_directory $d;\n" if $ENV{AGENTGOV_HOLDS_CORE};
    $conf .= <<"EOF";
worker_processes $o{workers};
worker_rlimit_nofile $NGX_NOFILE;
daemon on;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections $NGX_CONNS; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
$EXTRA_HTTP
$o{http}
}
EOF
    write_file("$d/nginx.conf", $conf);
    return $d;
}

sub start_nginx {
    my ($d, $port, $workers) = @_;
    push @started, "$d/nginx.pid";
    my $out = `@{[ sh($NGINX) ]} -p @{[ sh("$d/") ]} -c @{[ sh("$d/nginx.conf") ]} 2>&1`;
    die "nginx ($d) failed to start:\n$out" . (read_file("$d/logs/error.log") // '') if $?;
    wait_port($port);
    my $pid = read_file("$d/nginx.pid") // die "nginx ($d): no pid file\n";
    chomp $pid;
    my @w;
    for (1 .. 100) {
        @w = children($pid);
        last if @w == $workers;
        sleep 0.02;
    }
    die "nginx ($d): " . scalar(@w) . " workers, not $workers\n" unless @w == $workers;
    return ($pid, @w);
}

# the held call: a refund with a 1/4 KiB JSON body
sub call_body {
    my ($i) = @_;
    my $b = JSON::PP->new->canonical->encode({
        order => "ord_$i", amount => 1000 + ($i =~ /(\d+)/)[0] % 5000, currency => 'EUR',
        reason => 'damaged in transit', customer => 'cus_8f14e45fceea167a',
        note => '' });
    my $pad = $BODY_SIZE - length $b;
    $b =~ s/"note":""/'"note":"' . ('x' x $pad) . '"'/e if $pad > 0;
    return $b;
}

# --- BENCH_HOLDS_PERF=1: a perf profile of the workers in the idle and sweep phases -------

my $PERF = $ENV{BENCH_HOLDS_PERF} ? (grep { -x "$_/perf" } split /:/, $ENV{PATH} // '') : 0;
sub perf_start {
    my ($name, @pids) = @_;
    return unless $PERF;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDOUT, '>', "$DIR/perf-$name.log" or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec 'perf', 'record', '-F', '999', '-g', '-p', join(',', @pids),
             '-o', "$DIR/perf-$name.data" or POSIX::_exit(127);
    }
    $perf_pid{$name} = $pid;
    sleep 0.5;                  # perf attaches
}

sub perf_stop {
    my ($name) = @_;
    my $pid = delete $perf_pid{$name} or return;
    kill 'INT', $pid;
    waitpid $pid, 0;
    system("perf report --stdio --no-children --percent-limit 1 -g none "
           . "-i @{[ sh(\"$DIR/perf-$name.data\") ]} > @{[ sh(\"$DIR/perf-$name.txt\") ]} 2>/dev/null");
    print "\n    perf: $DIR/perf-$name.txt\n    ";
}

# --- one run: W workers -------------------------------------------------------------------

my @failed;
my $AUTH;                   # the held calls' identity headers, for the baseline

sub metric {
    my ($port, $name) = @_;
    my ($st, $mb) = http($port, "GET", "/agentgov/metrics", []);
    die "metrics: HTTP $st\n" unless $st == 200;
    return $mb =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub snapshot {
    my ($master, @workers) = @_;
    my %s = (master => mem($master), workers => [ map { mem($_) } @workers ]);
    for my $k (qw(rss shmem anon pss vcsw)) {
        $s{"w_$k"} = sum0(map { $_->{$k} } @{ $s{workers} });
    }
    $s{pss_all} = $s{w_pss} + $s{master}{pss};
    $s{slab} = slab_kib();
    return \%s;
}

sub one_run {
    my ($W) = @_;
    my %R = (workers => $W, holds => $N);
    print "  $W worker" . ($W > 1 ? 's' : '') . ": ";

    my $up_port = free_port();
    my $up_dir = nginx_conf("upstream-$W", workers => 1, http => <<"EOF");
    server {
        listen 127.0.0.1:$up_port backlog=4096;
        default_type application/json;
        location / { return 200 '{"ok":true}\\n'; }
    }
EOF
    start_nginx($up_dir, $up_port, 1);

    my $port = free_port();
    my $gw_dir = nginx_conf("gateway-$W", module => 1, workers => $W, http => <<"EOF");
    agentgov_policy       $policy_file;
    agentgov_trust        $ISS $jwks;
    agentgov_zone         bench ${ZONE_MB}m;
    agentgov_signing_key  $gw_key;
    agentgov_hold_timeout 1h;
    upstream tool {
        server 127.0.0.1:$up_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        add_header X-Worker \$pid always;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /agentgov/ { agentgov_api; }
        location /tools/payments/ {
            agentgov on;
            agentgov_tool payments;
            proxy_pass http://tool/;
        }
    }
EOF
    my ($master, @workers) = start_nginx($gw_dir, $port, $W);

    my ($st, $tb) = http($port, 'POST', '/agentgov/v1/tasks',
                         ["Agent-Authorization: Bearer $agent_jwt"],
                         '{"intent": "refunds", "ttl": "2h"}');
    die "declaring the task got HTTP $st: $tb\n" unless $st == 201;
    my $task = JSON::PP->new->decode($tb)->{token};
    my $auth = "Agent-Authorization: Bearer $agent_jwt\r\nAgent-Task: $task";
    $AUTH = $auth;

    my %sock_of;          # path => held socket
    my %info;             # socket => { path, buf, t_first, id }
    my $held = sub {
        my ($i) = @_;
        my $path = "/v1/refunds/$i";
        my $body = call_body($i);
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp')
            or die "connection $i: $!\n";
        $s->blocking(0);
        my $req = "POST /tools/payments$path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Connection: close\r\n$auth\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        my $n = syswrite($s, $req);
        die "connection $i: wrote " . ($n // "nothing: $!") . "\n"
            unless ($n // 0) == length $req;
        $sock_of{$path} = $s;
        $info{$s} = { path => $path, buf => '', sock => $s };
        return $s;
    };

    # reads a held socket; true once it is answered (EOF after the response)
    my $read_held = sub {
        my ($s, $now) = @_;
        my $in = $info{$s};
        my $n = sysread($s, my $chunk, 65536);
        return 0 if !defined $n && $!{EAGAIN};
        if ($n) {
            $in->{t_first} //= $now;
            $in->{buf} .= $chunk;
            return 0;
        }
        $in->{done} = $now;
        $in->{error} = $! unless defined $n;
        return 1;
    };

    my $check_held = sub {
        my ($in) = @_;
        my ($status) = $in->{buf} =~ m{^HTTP/1\.1 (\d+)};
        my ($aid) = $in->{buf} =~ /^Agent-Approval: (\S+)\r$/mi;
        my ($wk) = $in->{buf} =~ /^X-Worker: (\d+)\r$/mi;
        $in->{worker} = $wk;
        return ($status // 0) == 200 && defined $aid && defined $in->{id}
            && $aid eq $in->{id} && $in->{buf} =~ /\r\n\r\n\{"ok":true\}\n\z/;
    };

    # warm-up: a few calls held and approved, so the workers have served
    # held calls, the API and the upstream before the baseline
    {
        my @w = map { $held->("warm$_") } 1 .. 4 * $W;
        my $want = 4 * $W;
        my @p;
        for (1 .. 200) {
            my (undef, $lb) = http($port, 'GET', '/agentgov/v1/approvals?state=pending',
                                   ["Authorization: Bearer $approver"]);
            @p = pending_ids($lb);
            last if @p == $want;
            sleep 0.05;
        }
        die "warm-up: " . scalar(@p) . " of $want calls pending\n" unless @p == $want;
        for (@p) {
            my ($ast) = http($port, 'POST', "/agentgov/v1/approvals/$_->[0]",
                             ["Authorization: Bearer $approver"], '{"decision":"approve"}');
            die "warm-up approval: HTTP $ast\n" unless $ast == 200;
        }
        for my $s (@w) {
            $s->blocking(1);
            local $/;
            my $r = <$s> // '';
            die "warm-up call: not resumed with 200: " . substr($r, 0, 200) . "\n"
                unless $r =~ m{^HTTP/1\.1 200};
            delete $sock_of{ $info{$s}{path} };
            delete $info{$s};
            close $s;
        }
    }
    sleep 1;
    my $zone_before = metric($port, 'agentgov_zone_used_ratio');
    my $m0 = snapshot($master, @workers);

    # park N calls, each on its own connection
    my $t0 = time;
    my @socks;
    for my $i (1 .. $N) {
        push @socks, $held->($i);
    }
    my $t_sent = time - $t0;
    my $pending = 0;
    my $deadline = time + 60;
    while (time < $deadline) {
        $pending = metric($port, 'agentgov_pending_holds') // 0;
        last if $pending >= $N;
        sleep 0.1;
    }
    $R{park_s} = time - $t0;
    die "only $pending of $N calls pending after " . sprintf('%.0f', $R{park_s}) . " s\n"
        . (read_file("$gw_dir/logs/error.log") // '') if $pending < $N;
    printf "%d parked in %.1f s; ", $N, $R{park_s};

    sleep 1;
    if ($ENV{AGENTGOV_HOLDS_PAUSE}) {
        print STDERR "\nparked; gateway master $master, workers @workers\n";
        sleep $ENV{AGENTGOV_HOLDS_PAUSE};
    }
    my $zone_after = metric($port, 'agentgov_zone_used_ratio');
    my $m1 = snapshot($master, @workers);

    # idle: nothing but waiting
    my @c0 = map { cpu_seconds($_) } $master, @workers;
    my $i0 = time;
    sleep $IDLE;
    my @c1 = map { cpu_seconds($_) } $master, @workers;
    my $idle_s = time - $i0;
    if ($PERF) {                # after the figures: perf costs CPU itself
        perf_start("idle-$W", @workers);
        sleep $IDLE;
        perf_stop("idle-$W");
    }
    my $m2 = snapshot($master, @workers);
    $R{idle_s} = $idle_s;
    $R{idle_cpu_pct} = 100 * sum0(map { $c1[$_] - $c0[$_] } 1 .. $W) / $idle_s;
    $R{idle_cpu_pct_master} = 100 * ($c1[0] - $c0[0]) / $idle_s;
    $R{idle_wakeups_per_s} = ($m2->{w_vcsw} - $m1->{w_vcsw}) / $idle_s;
    printf "idle CPU %.2f%%; ", $R{idle_cpu_pct};

    # nothing may have been answered while pending
    my $early = 0;
    for my $s (IO::Select->new(@socks)->can_read(0)) { $early++ }
    push @failed, "$W workers: $early held calls answered before any decision" if $early;

    my $zsize = $ZONE_MB * 1024 * 1024;
    %R = (%R,
        zone_mb => $ZONE_MB,
        zone_used_before => $zone_before * $zsize,
        zone_used_after => $zone_after * $zsize,
        rss_workers_before_kib => $m0->{w_rss}, rss_workers_after_kib => $m1->{w_rss},
        rss_master_before_kib => $m0->{master}{rss}, rss_master_after_kib => $m1->{master}{rss},
        rss_shmem_workers_before_kib => $m0->{w_shmem}, rss_shmem_workers_after_kib => $m1->{w_shmem},
        pss_before_kib => $m0->{pss_all}, pss_after_kib => $m1->{pss_all},
        kernel_slab_before_kib => $m0->{slab}, kernel_slab_after_kib => $m1->{slab},
        per_worker_rss_after_kib => [ map { $_->{rss} } @{ $m1->{workers} } ],
    );
    $R{zone_bytes} = $R{zone_used_after} - $R{zone_used_before};
    $R{rss_extra_kib} = ($m1->{w_rss} + $m1->{master}{rss}) - ($m0->{w_rss} + $m0->{master}{rss});
    $R{pss_extra_kib} = $m1->{pss_all} - $m0->{pss_all};
    $R{kernel_slab_extra_kib} = $m1->{slab} - $m0->{slab};

    # the ids of the newest 1000 pending holds, by path
    my $list = sub {
        my ($lst, $lb) = http($port, 'GET', '/agentgov/v1/approvals?state=pending',
                              ["Authorization: Bearer $approver"]);
        die "listing the pending holds: HTTP $lst\n" unless $lst == 200;
        my @p = pending_ids($lb);
        for (@p) {
            my $s = $sock_of{ $_->[1] } or die "a pending hold for $_->[1], not a call of the bench\n";
            $info{$s}{id} = $_->[0];
        }
        return @p;
    };

    # resume latency: one decision at a time
    my $api = api_open($port);
    my @samples = grep { defined } (shuffle($list->()))[0 .. $SAMPLES - 1];
    my (@lat, @api_lat, %by_worker);
    my $bad = 0;
    for my $p (@samples) {
        my ($id, $path) = @$p;
        my $s = $sock_of{$path};
        # decisions at random points of the workers' 50 ms ticks
        sleep rand($TICK_MS / 1000);
        my ($ast, $api_worker);
        my $sent = api_send($api, 'POST', "/agentgov/v1/approvals/$id", $approver,
                            '{"decision":"approve","reason":"bench"}', sub {
                                ($ast, my $h) = @_;
                                ($api_worker) = $h =~ /^X-Worker: (\d+)\r?$/mi;
                                push @api_lat, time - $api->{sent};
                            });
        my $sel = IO::Select->new($api->{sock}, $s);
        my $answered = 0;
        my $until = time + 10;
        while ((!$answered || $api->{busy}) && time < $until) {
            for my $r ($sel->can_read(1)) {
                my $now = time;
                if ($r == $api->{sock}) {
                    api_read($api) or die "the API connection closed\n";
                } elsif ($read_held->($r, $now)) {
                    $answered = 1;
                    $sel->remove($r);
                }
            }
        }
        my $in = $info{$s};
        delete $sock_of{$path};
        close $s;
        if (!$answered || ($ast // 0) != 200 || !$check_held->($in)) {
            $bad++;
            next;
        }
        my $dt = $in->{t_first} - $sent;
        push @lat, $dt;
        my $same = defined $api_worker && defined $in->{worker} && $api_worker eq $in->{worker};
        push @{ $by_worker{ $same ? 'same' : 'other' } }, $dt;
    }
    push @failed, "$W workers: $bad of $SAMPLES approvals one at a time did not resume "
        . "their call with 200 and its Agent-Approval" if $bad;
    @lat = sort { $a <=> $b } @lat;
    @api_lat = sort { $a <=> $b } @api_lat;
    $R{resume_samples} = scalar @lat;
    $R{resume_ms_p50} = pct(\@lat, 50) * 1000;
    $R{resume_ms_p99} = pct(\@lat, 99) * 1000;
    $R{resume_ms_max} = ($lat[-1] // 0) * 1000;
    $R{approve_api_ms_p50} = pct(\@api_lat, 50) * 1000;
    for my $k (qw(same other)) {
        my @l = sort { $a <=> $b } @{ $by_worker{$k} // [] };
        $R{"resume_${k}_worker"} = { n => scalar @l, p50_ms => pct(\@l, 50) * 1000,
                                     p99_ms => pct(\@l, 99) * 1000 };
    }
    printf "resume p50 %.1f ms, p99 %.1f ms; ", $R{resume_ms_p50}, $R{resume_ms_p99};

    # the sweep: every other hold approved at once, from a few connections
    my @api = ($api, map { api_open($port) } 2 .. $APPROVERS);
    my %waiting;                 # approved, not answered yet
    my (@queue, $listing, $listed_empty);
    my ($approved, $refused) = (0, 0);
    my $remaining = keys %sock_of;
    my $ts = time;
    my $t_last_approval;
    my $sweep_deadline = $ts + 120;
    my $next_list = sub {
        my $c = $api[0];
        $listing = 1;
        api_send($c, 'GET', '/agentgov/v1/approvals?state=pending', $approver, undef, sub {
            my ($lst, undef, $lb) = @_;
            $listing = 0;
            die "listing the pending holds: HTTP $lst\n" unless $lst == 200;
            my @p = pending_ids($lb);
            $listed_empty = 1 unless @p;
            for (@p) {
                my $s = $sock_of{ $_->[1] }
                    or die "a pending hold for $_->[1], not a call of the bench\n";
                $info{$s}{id} = $_->[0];
                push @queue, [ $_->[0], $s ];
            }
        });
    };
    my $answered = 0;
    my $good = 0;
    my @sweep_lat;
    my $finish = sub {
        my ($s) = @_;
        delete $waiting{$s};
        $answered++;
        push @sweep_lat, $info{$s}{t_first} - $info{$s}{approve_sent}
            if defined $info{$s}{t_first} && defined $info{$s}{approve_sent};
        $good++ if $check_held->($info{$s});
        close $s;
    };
    perf_start("sweep-$W", @workers);
    $next_list->();
    while (($answered < $remaining) && time < $sweep_deadline) {
        # idle connections take the next ids; list again when all are done
        for my $c (@api) {
            next if $c->{busy} || !@queue;
            my ($id, $s) = @{ shift @queue };
            api_send($c, 'POST', "/agentgov/v1/approvals/$id", $approver,
                     '{"decision":"approve","reason":"bench sweep"}', sub {
                         my ($ast) = @_;
                         if ($ast == 200) {
                             $approved++;
                             $waiting{$s} = $s;
                             $info{$s}{approve_sent} = $c->{sent};
                         } else {
                             $refused++;
                         }
                         $t_last_approval = time;
                     });
        }
        if (!@queue && !$listing && !$listed_empty && !grep { $_->{busy} } @api) {
            $next_list->();
        }
        my $sel = IO::Select->new((map { $_->{sock} } grep { $_->{busy} } @api),
                                  values %waiting);
        last unless $sel->count;
        my @r = $sel->can_read(1);
        my $now = time;
        for my $r (@r) {
            my ($c) = grep { $_->{sock} == $r } @api;
            if ($c) {
                api_read($c) or die "an API connection closed\n";
            } elsif ($read_held->($r, $now)) {
                $finish->($r);
            }
        }
    }
    perf_stop("sweep-$W");
    @sweep_lat = sort { $a <=> $b } @sweep_lat;
    $R{sweep_resume_ms_p50} = pct(\@sweep_lat, 50) * 1000;
    $R{sweep_resume_ms_p99} = pct(\@sweep_lat, 99) * 1000;
    $R{sweep_resume_ms_max} = ($sweep_lat[-1] // 0) * 1000;
    $R{sweep_holds} = $remaining;
    $R{sweep_s} = time - $ts;
    $R{sweep_approvals_s} = ($t_last_approval // time) - $ts;
    $R{sweep_approved} = $approved;
    $R{sweep_answered} = $answered;
    $R{sweep_ok} = $good;
    push @failed, "$W workers: the sweep approved $approved of $remaining holds"
        . ($refused ? ", $refused approvals refused" : '') if $approved != $remaining;
    push @failed, "$W workers: $answered of $remaining held calls answered after the sweep, "
        . "$good with 200 and their own Agent-Approval" if $good != $remaining;
    printf "sweep of %d in %.1f s\n", $remaining, $R{sweep_s};

    $R{pending_after} = (metric($port, 'agentgov_pending_holds') // -1) + 0;
    push @failed, "$W workers: $R{pending_after} holds still pending after the sweep"
        if $R{pending_after};
    my $errlog = read_file("$gw_dir/logs/error.log") // '';
    my @alerts = $errlog =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;
    push @failed, "$W workers, gateway error log: $_" for @alerts[0 .. ($#alerts < 4 ? $#alerts : 4)];
    $R{error_log_alerts} = scalar @alerts;
    $_->{sock}->close for @api;
    close $_ for values %sock_of;
    cleanup();
    return \%R;
}

print "holds: $N calls held at once, worker_processes " . join(' then ', @WORKERS)
    . "; open files $fd_soft; zone ${ZONE_MB}m\n";
# nginx's own floor: the same requests parked by plain nginx, limit_req's
# delay (the mechanism holds follow), no module loaded
sub baseline_run {
    my %R;
    print "  plain nginx, limit_req delay: ";
    my $port = free_port();
    my $d = nginx_conf('baseline', workers => 1, http => <<"EOF");
    limit_req_zone \$host zone=park:1m rate=1r/m;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / { limit_req zone=park burst=$N; empty_gif; }
    }
EOF
    my ($master, $worker) = start_nginx($d, $port, 1);
    # the first request passes at once: the others wait in the burst
    my ($st) = http($port, 'GET', '/', []);
    die "baseline: HTTP $st\n" unless $st == 200;
    sleep 1;
    my $m0 = snapshot($master, $worker);
    my @socks;
    my $t0 = time;
    for my $i (1 .. $N) {
        my $body = call_body($i);
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp') or die "baseline connection $i: $!\n";
        syswrite($s, "POST /tools/payments/v1/refunds/$i HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     . "Connection: close\r\n$AUTH\r\nContent-Type: application/json\r\n"
                     . "Content-Length: " . length($body) . "\r\n\r\n$body");
        push @socks, $s;
    }
    # parked once the worker has every connection and stops growing
    my ($last, $m1) = (-1);
    for (1 .. 100) {
        sleep 0.2;
        $m1 = snapshot($master, $worker);
        last if $m1->{pss_all} == $last && time - $t0 > 1;
        $last = $m1->{pss_all};
    }
    my $early = () = IO::Select->new(@socks)->can_read(0);
    $R{answered_early} = $early;
    $R{rss_extra_kib} = ($m1->{w_rss} + $m1->{master}{rss}) - ($m0->{w_rss} + $m0->{master}{rss});
    $R{pss_extra_kib} = $m1->{pss_all} - $m0->{pss_all};
    printf "%d parked, +%.1f MB\n", $N, $R{pss_extra_kib} / 1024;
    close $_ for @socks;
    cleanup();
    return \%R;
}

my @runs = map { one_run($_) } @WORKERS;
my $base = baseline_run();
push @failed, "baseline: $base->{answered_early} requests answered while limit_req should "
    . "delay them" if $base->{answered_early};

# --- the report -----------------------------------------------------------------------------

my $MB = 1024;
my @L;
push @L, sprintf('holds (SPEC section 6): %d POSTs with a %d-byte JSON body held at once, each on '
                 . 'its own connection (hold rule, timeout 1h); agentgov_zone %dm; load average '
                 . 'before: %s', $N, $BODY_SIZE, $ZONE_MB, $LOADAVG);
push @L, sprintf('%-8s %7s %8s %8s %7s %8s %7s %7s %7s',
                 'workers', 'RSS MB', '+RSS MB', '+PSS MB', 'B/hold', 'zone MB', 'zone B',
                 'idle %', 'wake/s');
for my $r (@runs) {
    push @L, sprintf('%-8d %7.1f %8.1f %8.1f %7.0f %8.1f %7.0f %7.3f %7.0f',
                     $r->{workers},
                     ($r->{rss_workers_before_kib} + $r->{rss_master_before_kib}) / $MB,
                     $r->{rss_extra_kib} / $MB, $r->{pss_extra_kib} / $MB,
                     $r->{pss_extra_kib} * 1024 / $N, $r->{zone_bytes} / 1048576,
                     $r->{zone_bytes} / $N, $r->{idle_cpu_pct}, $r->{idle_wakeups_per_s});
}
push @L, 'RSS MB: VmRSS of the gateway\'s master and workers before parking; +RSS MB: its growth '
    . 'with every call parked (a zone page two workers touched counts twice);';
push @L, '+PSS MB: the same growth in Pss, shared pages counted once: what the holds cost; '
    . 'B/hold: +PSS per hold; zone MB, zone B: the zone\'s growth, and per hold;';
push @L, sprintf('idle %%: CPU of all workers while the holds wait, %% of one core over %d s; '
                 . 'wake/s: their voluntary context switches a second.', $IDLE);
push @L, sprintf('plain nginx, no module, the same %d requests parked by limit_req\'s delay (what '
                 . 'holds follow), one worker: +PSS %.1f MB, %.0f B per request: nginx\'s own floor;',
                 $N, $base->{pss_extra_kib} / $MB, $base->{pss_extra_kib} * 1024 / $N);
push @L, sprintf('the kernel\'s slab memory grew by %.1f MB with the %d loopback connections '
                 . '(both ends; in no process\'s RSS).', $runs[0]{kernel_slab_extra_kib} / $MB, $N);
push @L, '';
push @L, 'resume: ms from sending the approve POST to the first byte of the held call\'s response';
push @L, sprintf('%-8s %7s %7s %7s %7s | %7s %7s %7s %7s %7s %7s %6s',
                 'workers', 'one at', 'p50', 'p99', 'max', 'sweep', 'approve', 'all', 'p50',
                 'p99', 'max', 'errors');
push @L, sprintf('%-8s %7s %7s %7s %7s | %7s %7s %7s %7s %7s %7s %6s',
                 '', 'a time', '', '', '', 'holds', 's', 'done s', '', '', '', '');
for my $r (@runs) {
    my $errors = ($SAMPLES - $r->{resume_samples}) + ($r->{sweep_holds} - $r->{sweep_ok});
    push @L, sprintf('%-8d %7d %7.1f %7.1f %7.1f | %7d %7.2f %7.2f %7.1f %7.1f %7.1f %6d',
                     $r->{workers}, $r->{resume_samples}, $r->{resume_ms_p50},
                     $r->{resume_ms_p99}, $r->{resume_ms_max}, $r->{sweep_holds},
                     $r->{sweep_approvals_s}, $r->{sweep_s}, $r->{sweep_resume_ms_p50},
                     $r->{sweep_resume_ms_p99}, $r->{sweep_resume_ms_max}, $errors);
}
push @L, sprintf('one at a time: %d decisions, each after a random 0-%d ms pause, the next once the '
                 . 'call has its answer;', $SAMPLES, $TICK_MS);
for my $r (@runs) {
    next if $r->{workers} < 2;
    my ($s, $o) = @{$r}{qw(resume_same_worker resume_other_worker)};
    push @L, sprintf('  %d workers: decided in the worker holding the call %d times (p50 %.1f, '
                     . 'p99 %.1f), in the other %d times (p50 %.1f, p99 %.1f: it wakes at its '
                     . 'next %d ms tick);', $r->{workers}, $s->{n}, $s->{p50_ms}, $s->{p99_ms},
                     $o->{n}, $o->{p50_ms}, $o->{p99_ms}, $TICK_MS);
}
push @L, sprintf('sweep: every other hold approved from %d API connections, the ids read from '
                 . 'the pending list 1000 at a time; approve s: until the last approval was '
                 . 'answered; all done s: until every call had its answer;', $APPROVERS);
push @L, 'errors: calls not answered 200 by the upstream with the Agent-Approval of their own '
    . 'hold; must be 0.';
push @L, sprintf('parked in %s s; took %.0f s',
                 join(' and ', map { sprintf('%.1f', $_->{park_s}) } @runs), time - $t_start);

s/\s+$// for @L;
my $report = join("\n", @L) . "\n";
write_file("$OUT/holds.txt", $report);
# figures to three decimals in the JSON
sub rounded {
    my ($v) = @_;
    return { map { ($_ => rounded($v->{$_})) } keys %$v } if ref $v eq 'HASH';
    return [ map { rounded($_) } @$v ] if ref $v eq 'ARRAY';
    return $v if !defined $v || ref $v || $v !~ /^-?\d+\.\d+(?:e-?\d+)?$/i;
    return 0 + sprintf('%.3f', $v);
}
write_file("$OUT/holds.json", JSON::PP->new->canonical->pretty->encode(rounded({
    date => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime), commit => $COMMIT, loadavg => $LOADAVG,
    holds => $N, idle_seconds => $IDLE, samples => $SAMPLES, body_bytes => $BODY_SIZE,
    zone_mb => $ZONE_MB, open_files => $fd_soft, worker_rlimit_nofile => $NGX_NOFILE,
    worker_connections => $NGX_CONNS, approver_connections => $APPROVERS,
    runs => \@runs, baseline_limit_req => $base, failed => \@failed })));
print "\n$report" unless $ENV{AGENTGOV_HOLDS_QUIET};
print "holds: $OUT/holds.txt, $OUT/holds.json\n";
if (@failed) {
    print STDERR "holds: FAILED\n", map { "  $_\n" } @failed;
    exit 1;
}
exit 0;
