#!/usr/bin/perl
# When the audit log cannot be written (SPEC section 8): fail=closed refuses
# every call with 503 gateway_error until writing works again, fail=open goes
# on and counts; both say so in the error log at most once a second; health
# and metrics show it. A full disk is a size-limited tmpfs where this machine
# lets the test mount one, else a file-size limit on nginx; an unwritable
# file is a removed file in a directory the workers may not write.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use AgTest;

my $iss = 'agentgov-test';
my $policy = {
    agentgov => 1,
    agents => { bot => { jwt => { iss => $iss, sub => 'bot' }, owner => 'o' } },
    tools => { tickets => {} },
    intents => { work => { agents => ['bot'], tools => ['tickets'], max_ttl => '1h' } },
    rules => [ { id => 'all', effect => 'allow', tool => 'tickets' } ],
};

sub gateway {
    my (%o) = @_;
    my $t = AgTest->new;
    my $echo = $t->echo_port;
    $t->policy($policy);
    $t->audit_file;             # its directory, before a tmpfs is mounted on it
    $o{before}->($t) if $o{before};
    $t->config(<<"EOF", workers => 2);
@{[ $t->gateway_http(audit => { fail => $o{fail} }, state => 1) ]}
    server {
        listen 127.0.0.1:@{[ $t->port ]};
@{[ $t->api_location ]}
        location /tools/tickets/ { agentgov on; agentgov_tool tickets; proxy_pass http://127.0.0.1:$echo/; }
    }
EOF
    $t->start_echo->start(%o);
    return $t;
}

sub call {
    my ($t, $h, $i) = @_;
    return $t->request('GET', "/tools/tickets/v1/item/$i", headers => $h);
}

sub metric {
    my ($t, $name) = @_;
    my $r = $t->request('GET', '/agentgov/metrics');
    my ($v) = $r->{body} =~ /^\Q$name\E (\S+)$/m;
    return $v;
}

sub unwritable {
    my ($t) = @_;
    my $dir = $t->dir . '/audit';
    unlink $t->audit_file or die "unlink: $!";
    chmod 0555, $dir or die "chmod: $!";
}

sub writable {
    my ($t) = @_;
    chmod 0755, $t->dir . '/audit' or die "chmod: $!";
}

# --- fail=closed, the file removed and not writable ----------------------------------

{
    my $t = gateway(fail => 'closed');
    my @h = $t->agent_headers(sub => 'bot', intent => 'work');
    is(call($t, \@h, 0)->{status}, 200, 'closed: a call while the log is written');

    unwritable($t);
    my $r = call($t, \@h, 1);
    is($r->{status}, 503, 'closed: refused once the record cannot be written');
    is($r->{json}{error}, 'gateway_error', 'closed: gateway_error');
    is($r->{headers}{'agent-decision'}, 'deny', 'closed: Agent-Decision deny');
    is(call($t, \@h, $_)->{status}, 503, "closed: refused again ($_)") for 2 .. 4;
    is(scalar(my @x = $t->echo_log =~ m{/v1/item/[1-4]\b}g), 0, 'closed: no refused call reached the tool');

    $r = $t->request('GET', '/agentgov/health');
    is($r->{status}, 503, 'closed: health 503');
    is($r->{json}{audit}, 'failing', 'closed: audit failing');
    is(metric($t, 'agentgov_audit_failing'), 1, 'closed: metrics show it');
    ok(metric($t, 'agentgov_audit_failures_total') >= 4, 'closed: failures counted');

    my @alerts = $t->error_log =~ /cannot write the audit log.*fail=closed/g;
    ok(@alerts >= 1 && @alerts <= 2, 'closed: logged, at most once a second') or diag(scalar @alerts);

    writable($t);
    is(call($t, \@h, 5)->{status}, 200, 'closed: calls pass again once the file can be written');
    ok(-e $t->audit_file, 'closed: the file is created again');
    my @recs = $t->audit_records;
    is($recs[0]{action}{path}, '/v1/item/5', 'closed: the first record of the new file');
    like($t->error_log, qr/is written again/, 'closed: the recovery is logged');
    $r = $t->request('GET', '/agentgov/health');
    is($r->{json}{audit}, 'ok', 'closed: health ok again');
    $t->stop;
}

# --- fail=open ---------------------------------------------------------------------------

{
    my $t = gateway(fail => 'open');
    my @h = $t->agent_headers(sub => 'bot', intent => 'work');
    unwritable($t);
    is(call($t, \@h, $_)->{status}, 200, "open: calls go on ($_)") for 1 .. 3;
    like($t->error_log, qr/calls go on unrecorded \(fail=open\)/, 'open: the failure is logged');
    ok(metric($t, 'agentgov_audit_failures_total') >= 3, 'open: and counted');
    my $r = $t->request('GET', '/agentgov/health');
    is($r->{status}, 200, 'open: health stays 200');
    is($r->{json}{audit}, 'failing', 'open: but says the audit is failing');
    writable($t);
    $t->stop;
}

# --- a full disk ---------------------------------------------------------------------------

my $tmpfs;
{
    my $probe = AgTest->new->dir . '/probe';
    mkdir $probe;
    $tmpfs = $> == 0 && system("mount -t tmpfs -o size=64k tmpfs $probe 2>/dev/null") == 0;
    system("umount $probe") if $tmpfs;
}

if ($tmpfs) {
    my $t = gateway(fail => 'closed', before => sub {
        my ($t) = @_;
        my $dir = $t->dir . '/audit';
        my (undef, undef, $uid, $gid) = getpwnam('nobody');
        system("mount -t tmpfs -o size=256k,mode=0755,uid=$uid,gid=$gid tmpfs $dir") == 0
            or die "mount: $?";
    });
    my $dir = $t->dir . '/audit';
    my @h = $t->agent_headers(sub => 'bot', intent => 'work');
    is(call($t, \@h, 0)->{status}, 200, 'tmpfs: a call while there is room');

    # fill the file system but for a little
    open my $fh, '>', "$dir/filler" or die;
    1 while syswrite($fh, 'x' x 4096);
    close $fh;
    my $r;
    for my $i (1 .. 50) {
        $r = call($t, \@h, $i);
        last if $r->{status} == 503;
    }
    is($r->{status}, 503, 'tmpfs: a full disk refuses calls');
    is($r->{json}{error}, 'gateway_error', 'tmpfs: gateway_error');
    unlink "$dir/filler";
    is(call($t, \@h, 99)->{status}, 200, 'tmpfs: calls pass once there is room again');
    $t->stop;
    is($t->audit_check, '', 'tmpfs: no partial record was left: the chain verifies');
    system("umount $dir");
} else {
    # RLIMIT_FSIZE on nginx: a write past it fails (SIGXFSZ ignored, as it
    # stays across exec)
    local $SIG{XFSZ} = 'IGNORE';
    my $t = gateway(fail => 'closed', wrap => ['sh', '-c', 'ulimit -f 64; exec "$@"', 'sh']);
    my @h = $t->agent_headers(sub => 'bot', intent => 'work');
    my $r;
    for my $i (1 .. 400) {
        $r = call($t, \@h, $i);
        last if $r->{status} == 503;
    }
    is($r->{status}, 503, 'ulimit: a full file refuses calls');
    is($r->{json}{error}, 'gateway_error', 'ulimit: gateway_error');
    my $file = $t->audit_file;
    rename $file, "$file.1" or die;
    kill 'USR1', $t->nginx_pid;
    for (1 .. 100) { last if -e $file; sleep 0.05 }
    sleep 0.2;
    is(call($t, \@h, 999)->{status}, 200, 'ulimit: calls pass once the log is rotated');
    $t->stop;
    is($t->audit_check("$file.1", $file), '', 'ulimit: no partial record: the chain verifies across both');
}

done_testing;
