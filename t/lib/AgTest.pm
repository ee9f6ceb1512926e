package AgTest;

# The integration harness: a temporary directory with dev keys, a policy, an
# nginx configuration that loads the built module, Debian's nginx started on
# it, an echo upstream, and plain HTTP requests over real sockets.
# Perl core modules only.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our $ROOT  = abs_path(dirname(__FILE__) . '/../..');
our $BUILD = $ENV{AGENTGOV_BUILD} // "$ROOT/build";
our $NGINX = $ENV{NGINX_BIN} // '/usr/sbin/nginx';
our $CLI   = "$BUILD/agentgov";
our $JSON  = JSON::PP->new->canonical->utf8->allow_nonref;

sub new {
    my ($class, %o) = @_;
    my $dir = tempdir('agentgov-t-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{AGENTGOV_KEEP});
    # nginx's workers run as an unprivileged user when the tests run as root
    chmod 0755, $dir;
    my $self = bless { dir => $dir, procs => [], %o }, $class;
    mkdir "$dir/logs";
    $self->{port} = $self->free_port;
    $self->{echo_port} = $self->free_port;
    return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub echo_port { $_[0]{echo_port} }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, Proto => 'tcp')
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh;
    chmod $mode, $path if defined $mode;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return undef;
    local $/;
    return <$fh>;
}

sub run {
    my ($self, @cmd) = @_;
    my $out = `@{[ join ' ', map { _sh($_) } @cmd ]} 2>&1`;
    return wantarray ? ($?, $out) : $out;
}

sub _sh {
    my ($s) = @_;
    return $s if $s =~ m{^[\w./=:,+-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# A dev signing key and its JWKS, made by the CLI: issuer "agentgov-test".
sub issuer_key {
    my ($self, $name, $type) = @_;
    $name //= 'idp';
    $type //= 'p256';
    my $key = "$self->{dir}/$name.pem";
    my $jwks = "$self->{dir}/$name.jwks.json";
    unless (-e $key) {
        my ($rc, $out) = $self->run($CLI, 'keygen', '--out', $key,
                                    '--type', $type, '--jwks', $jwks);
        die "keygen: $out" if $rc;
    }
    return ($key, $jwks);
}

# The gateway's own signing key (task tokens, minted credentials): Ed25519.
sub gateway_key {
    my ($self) = @_;
    my $key = "$self->{dir}/gateway.pem";
    unless (-e $key) {
        my ($rc, $out) = $self->run($CLI, 'keygen', '--out', $key,
                                    '--type', 'ed25519', '--jwks',
                                    "$self->{dir}/gateway.jwks.json");
        die "keygen: $out" if $rc;
    }
    return $key;
}

# The http-level directives every gateway test needs: policy, trust in the
# test issuer, the zone and the signing key (and, with state => 1, a state
# file). Returns the text to put in the http block.
sub gateway_http {
    my ($self, %o) = @_;
    my (undef, $jwks) = $self->issuer_key;
    my $key = $self->gateway_key;
    my $text = "    agentgov_policy      " . ($o{policy} // 'policy.json') . ";\n"
             . "    agentgov_trust       " . ($o{iss} // 'agentgov-test') . " $jwks;\n"
             . "    agentgov_zone        agentgov " . ($o{zone} // '1m') . ";\n"
             . "    agentgov_signing_key $key;\n";
    if ($o{state}) {
        # the workers write the state file: as root, nginx runs them as nobody
        my $dir = "$self->{dir}/state";
        mkdir $dir;
        if ($> == 0) {
            my (undef, undef, $uid, $gid) = getpwnam('nobody');
            chown $uid, $gid, $dir if defined $uid;
        }
        $text .= "    agentgov_state       $dir/agentgov.state;\n";
    }
    if ($o{audit}) {
        my $fail = ref $o{audit} ? $o{audit}{fail} // 'closed' : 'closed';
        $text .= "    agentgov_audit_log   " . $self->audit_file . " key="
               . $self->audit_key . " fail=$fail;\n";
    }
    return $text;
}

# The audit log of gateway_http(audit => 1), in a directory the workers may
# write (they create the file again if it is removed), and its HMAC key: a
# clearly marked test key, readable by its owner only.
sub audit_file {
    my ($self) = @_;
    my $dir = "$self->{dir}/audit";
    unless (-d $dir) {
        mkdir $dir or die "mkdir $dir: $!";
        if ($> == 0) {
            my (undef, undef, $uid, $gid) = getpwnam('nobody');
            chown $uid, $gid, $dir if defined $uid;
        }
    }
    return "$dir/audit.jsonl";
}

sub audit_key {
    my ($self) = @_;
    my $key = "$self->{dir}/audit.key";
    unless (-e $key) {
        $self->write_file('audit.key', 'agentgov TEST audit key, never use it: 0123456789');
        chmod 0600, $key;
    }
    return $key;
}

# An independent check of the chain (SPEC section 8) in Perl, over files in
# order: each line's HMAC over its bytes before ,"hash", prev linking to the
# record before, seq increasing by one. Returns '' or the first fault.
sub audit_check {
    my ($self, @files) = @_;
    require Digest::SHA;
    my $key = $self->read_file('audit.key');
    my ($prev, $seq);
    for my $file (@files ? @files : $self->audit_file) {
        open my $fh, '<', $file or return "$file: $!";
        while (my $l = <$fh>) {
            return "$file:$.: no newline" unless $l =~ s/\n\z//;
            my ($body, $hash) = $l =~ /\A(.*),"hash":"([0-9a-f]{64})"\}\z/
                or return "$file:$.: no hash";
            my ($s) = $body =~ /\A\{"seq":(\d+),/ or return "$file:$.: no seq";
            my ($p) = $body =~ /,"prev":"([0-9a-f]{64})"\z/ or return "$file:$.: no prev";
            return "seq $s: hash" unless Digest::SHA::hmac_sha256_hex($body, $key) eq $hash;
            return "seq $s: prev" if defined $prev && $p ne $prev;
            return "seq $s: after seq $seq" if defined $seq && $s != $seq + 1;
            ($prev, $seq) = ($hash, $s);
        }
    }
    return '';
}

# The audit records, parsed, in file order.
sub audit_records {
    my ($self, $file) = @_;
    open my $fh, '<', $file // $self->audit_file or return ();
    my @r;
    while (my $l = <$fh>) {
        chomp $l;
        push @r, eval { JSON::PP->new->decode($l) } // { _bad => $l };
    }
    return @r;
}

# The control API location, for a server block.
sub api_location {
    return "        location /agentgov/ { agentgov_api; }\n";
}

# Declare a task with an agent's JWT; returns the task token (dies on
# failure), or with want_response => 1 the whole response.
sub declare {
    my ($self, %o) = @_;
    my $body = { intent => $o{intent}, ttl => $o{ttl} // '5m' };
    $body->{tools} = $o{tools} if $o{tools};
    $body->{purpose} = $o{purpose} if $o{purpose};
    my @h = ('Agent-Authorization' => "Bearer $o{jwt}",
             'Content-Type' => 'application/json');
    push @h, 'Agent-Task' => $o{parent} if $o{parent};
    my $r = $self->request('POST', '/agentgov/v1/tasks', headers => \@h,
                           body => $body);
    return $r if $o{want_response};
    die "declare $o{intent}: $r->{status} $r->{body}\n"
        unless $r->{status} == 201;
    return $r->{json}{token};
}

# The headers of an agent calling inside a task: its identity token and the
# token of a task it declared for `intent` (declared once per agent and intent).
sub agent_headers {
    my ($self, %o) = @_;
    my $key = "$o{sub}\0$o{intent}";
    $self->{jwts}{ $o{sub} } //= $self->token(sub => $o{sub},
                                              iss => $o{iss} // 'agentgov-test');
    my $jwt = $self->{jwts}{ $o{sub} };
    $self->{tasks}{$key} //= $self->declare(jwt => $jwt, intent => $o{intent},
                                            ttl => $o{ttl} // '1h');
    return ('Agent-Authorization' => "Bearer $jwt",
            'Agent-Task' => $self->{tasks}{$key});
}

sub token {
    my ($self, %o) = @_;
    my ($key) = $self->issuer_key($o{key_name});
    my @cmd = ($CLI, 'token', '--key', $o{key} // $key,
               '--iss', $o{iss} // 'agentgov-test', '--sub', $o{sub});
    push @cmd, '--aud', $o{aud} if defined $o{aud};
    push @cmd, '--ttl', $o{ttl} if defined $o{ttl};
    push @cmd, '--groups', $o{groups} if defined $o{groups};
    push @cmd, map { ('--claim', $_) } @{ $o{claims} // [] };
    my ($rc, $out) = $self->run(@cmd);
    die "token: $out" if $rc;
    $out =~ s/\s+$//;
    return $out;
}

sub policy {
    my ($self, $policy) = @_;
    my $text = ref $policy ? JSON::PP->new->canonical->pretty->encode($policy) : $policy;
    return $self->write_file('policy.json', $text);
}

# The whole nginx.conf around an http block body.
sub config {
    my ($self, $http, %o) = @_;
    my $workers = $o{workers} // 1;
    my $conns = $o{connections} // 256;
    my $conf = <<"EOF";
load_module $BUILD/ngx_http_agentgov_module.so;
worker_processes $workers;
daemon on;
master_process on;
pid $self->{dir}/nginx.pid;
error_log $self->{dir}/logs/error.log info;
events { worker_connections $conns; }
http {
    access_log $self->{dir}/logs/access.log;
    client_body_temp_path $self->{dir}/body;
    proxy_temp_path $self->{dir}/proxy;
    fastcgi_temp_path $self->{dir}/fastcgi;
    uwsgi_temp_path $self->{dir}/uwsgi;
    scgi_temp_path $self->{dir}/scgi;
$http
}
EOF
    $self->write_file('nginx.conf', $conf);
    return $conf;
}

sub nginx_test {
    my ($self) = @_;
    my @env = sanitizer_env();
    return $self->run(@env ? ('env', @env) : (), $NGINX, '-t', '-p',
                      "$self->{dir}/", '-c', "$self->{dir}/nginx.conf");
}

# Under `make test-asan` the module carries AddressSanitizer and UBSan, which
# Debian's nginx does not: their runtime is preloaded, and any report in the
# error log fails the test script (see the END block).
our $SANITIZE = $ENV{AGENTGOV_SANITIZE};
our @LOGS;
our %KILLED;     # worker pids a test killed on purpose (kill_workers)
our @INSTANCES;

sub sanitizer_env {
    return () unless $SANITIZE;
    my $asan = `gcc -print-file-name=libasan.so`;
    chomp $asan;
    return ("LD_PRELOAD=$asan",
            'ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0',
            'UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1');
}

sub start {
    my ($self, %o) = @_;
    push @LOGS, "$self->{dir}/logs/error.log";
    my @env = sanitizer_env();
    # wrap => [...]: a command to start nginx through (limits, for example)
    my ($rc, $out) = $self->run(@{ $o{wrap} // [] }, @env ? ('env', @env) : (),
                                $NGINX, '-p', "$self->{dir}/", '-c',
                                "$self->{dir}/nginx.conf");
    die "nginx failed to start: $out\n" . ($self->read_file('logs/error.log') // '')
        if $rc;
    $self->{started} = 1;
    push @INSTANCES, $self;
    $self->wait_port($self->{port});
    for (1 .. 100) {                # the daemon writes its pid file after forking
        last if $self->{pid} = $self->nginx_pid;
        sleep 0.01;
    }
    return $self;
}

# SIGHUP to the master, as "nginx -s reload" would send if it could parse the
# new configuration itself (it cannot when the policy is broken).
sub reload {
    my ($self) = @_;
    my $pid = $self->nginx_pid or die "nginx is not running\n";
    kill 'HUP', $pid or die "reload: $!\n";
    return 1;
}

sub nginx_pid {
    my ($self) = @_;
    my $pid = $self->read_file('nginx.pid') // return;
    chomp $pid;
    return $pid;
}

sub stop {
    my ($self) = @_;
    local $?;            # runs from DESTROY: never change the test's exit code
    if ($self->{started}) {
        my $pid = $self->nginx_pid // $self->{pid};
        if ($pid) {
            kill 'QUIT', $pid;
            for (1 .. 100) {
                last unless kill 0, $pid;
                sleep 0.05;
            }
            kill 'KILL', $pid if kill 0, $pid;
        }
        $self->{started} = 0;
    }
    for my $p (@{ $self->{procs} }) {
        kill 'TERM', $p;
        waitpid $p, 0;
    }
    $self->{procs} = [];
}

sub DESTROY { $_[0]->stop }

# Stop every nginx still running before File::Temp's own END removes the
# directories (and the pid files) under them.
END {
    $_->stop for @INSTANCES;
    @INSTANCES = ();
    for my $log (@LOGS) {
        open my $fh, '<', $log or next;
        while (<$fh>) {
            next if /worker process (\d+) exited on signal 9/ && $KILLED{$1};
            if (/ERROR: AddressSanitizer|runtime error:|LeakSanitizer|worker process \d+ exited on signal/) {
                print STDERR "# sanitizer or crash report in $log: $_";
                $? = 1 if !$?;
            }
        }
    }
}

# SIGKILL to every worker (the master starts new ones); their deaths are
# expected, not crash reports.
sub kill_workers {
    my ($self) = @_;
    my $master = $self->nginx_pid or return;
    my @w = grep { /^\d+$/ } split /\s+/, `pgrep -P $master`;
    $KILLED{$_} = 1 for @w;
    kill 'KILL', @w;
    return @w;
}

sub wait_port {
    my ($self, $port) = @_;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) { close $s; return 1; }
        sleep 0.025;
    }
    die "nothing listens on 127.0.0.1:$port\n";
}

# The echo upstream (t/lib/echo.pl) on echo_port.
sub start_echo {
    my ($self) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        exec $^X, "$ROOT/t/lib/echo.pl", $self->{echo_port},
            "$self->{dir}/logs/echo.log";
        exit 127;
    }
    push @{ $self->{procs} }, $pid;
    $self->wait_port($self->{echo_port});
    return $self;
}

# The MCP server of t/mcp (the official SDK's) on a free port; options:
# json => 1 (application/json answers instead of SSE), desc_file => FILE (the
# description of read_file), log => FILE, port => PORT (default: a free
# one). Returns its port.
sub start_mcp {
    my ($self, %o) = @_;
    my $port = $o{port} // $self->free_port;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{AGENTGOV_BUILD} = $BUILD;
        open STDOUT, '>', '/dev/null';
        exec 'node', "$ROOT/t/mcp/server.mjs", '--port', $port,
            ($o{json} ? '--json' : ()),
            ($o{desc_file} ? ('--desc-file', $o{desc_file}) : ()),
            ($o{log} ? ('--log', $o{log}) : ());
        exit 127;
    }
    push @{ $self->{procs} }, $pid;
    $self->wait_port($port);
    return $port;
}

# The SDK's MCP client (t/mcp/client.mjs) against URL with headers, running
# ops; returns one decoded JSON line per op.
sub mcp_client {
    my ($self, $url, $headers, @ops) = @_;
    my @args = ('node', "$ROOT/t/mcp/client.mjs", '--url', $url);
    for (my $i = 0; $i < @$headers; $i += 2) {
        push @args, '--header', "$headers->[$i]: $headers->[$i + 1]";
    }
    local $ENV{AGENTGOV_BUILD} = $BUILD;
    open my $fh, '-|', @args, @ops or die "node: $!";
    my @out = map { $JSON->decode($_) } grep { /^\{/ } <$fh>;
    close $fh;
    return @out;
}

# One HTTP/1.1 request over a fresh connection. Returns a hash: status,
# headers (lower-case names, arrays of values for repeats under headers_all),
# body, json (decoded body when it is JSON).
sub request {
    my ($self, $method, $target, %o) = @_;
    my $body = $o{body} // '';
    $body = $JSON->encode($body) if ref $body;
    my @h = @{ $o{headers} // [] };
    my $req = "$method $target HTTP/1.1\r\n";
    $req .= "Host: " . ($o{host} // 'localhost') . "\r\n";
    $req .= "Connection: close\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    if (length $body || $o{content_length}) {
        $req .= "Content-Length: " . ($o{content_length} // length $body) . "\r\n"
            unless $o{chunked};
    }
    if ($o{chunked}) {
        $req .= "Transfer-Encoding: chunked\r\n\r\n";
        my $rest = $body;
        while (length $rest) {
            my $part = substr($rest, 0, $o{chunk} // 1000, '');
            $req .= sprintf("%x\r\n%s\r\n", length $part, $part);
        }
        $req .= "0\r\n\r\n";
    } else {
        $req .= "\r\n" . $body;
    }
    return $self->raw($req, port => $o{port});
}

sub raw {
    my ($self, $bytes, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $self->{port},
                                  Proto => 'tcp', Timeout => 10)
        or die "connect: $!";
    $s->autoflush(1);
    print $s $bytes;
    local $/;
    my $resp = <$s> // '';
    close $s;
    return parse_response($resp);
}

sub parse_response {
    my ($resp) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    $body //= '';
    my @lines = split /\r\n/, $head // '';
    my $status_line = shift @lines // '';
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d+)};
    my (%headers, %all);
    for (@lines) {
        my ($k, $v) = split /:\s*/, $_, 2;
        $headers{lc $k} = $v;
        push @{ $all{lc $k} }, $v;
    }
    if (($headers{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    my $json = eval { $JSON->decode($body) };
    return { status => $status // 0, headers => \%headers,
             headers_all => \%all, body => $body, json => $json,
             raw => $resp };
}

# The upstream's view of a request that reached it (the echo body), with its
# headers as a lower-case name => [values] hash.
sub echoed {
    my ($res) = @_;
    my $j = $res->{json} or return;
    return unless ref $j eq 'HASH' && exists $j->{target};
    my %h;
    push @{ $h{lc $_->[0]} }, $_->[1] for @{ $j->{headers} };
    $j->{h} = \%h;
    return $j;
}

# Every request the echo upstream received, decoded.
sub echo_log {
    my ($self) = @_;
    my $text = $self->read_file('logs/echo.log') // '';
    return [ map { $JSON->decode($_) } grep { length } split /\n/, $text ];
}

sub b64url {
    my ($bytes) = @_;
    require MIME::Base64;
    return MIME::Base64::encode_base64url($bytes);
}

sub b64url_decode {
    my ($text) = @_;
    require MIME::Base64;
    return MIME::Base64::decode_base64url($text);
}

sub error_log { $_[0]->read_file('logs/error.log') // '' }

1;
