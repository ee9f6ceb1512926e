#!/usr/bin/env perl
# Generates a synthetic agentgov policy for the evaluation benchmark
# (SPEC section 10: policy evaluation time at 10, 1,000 and 10,000 rules).
#
#   perl bench/gen-policy.pl RULES [--tools N] [--seed S] [--call CALL.json]
#                            [--one-cell] [--resources K] > policy.json
#   agentgov policy eval policy.json CALL.json --bench 1000000
#
# Rules are spread over N tools (default 100) with varied effects, methods,
# glob and regex paths and `when` conditions on headers, query and body. The
# call written with --call goes to the (tool, method) that holds the most
# rules, on a path of one of them, so the figure is for a busy index cell
# rather than an empty one. Perl core modules only.
#
# --one-cell puts every rule on one tool and method (tool001, GET): the
# worst case for the index by tool and method. --resources K draws the
# paths' resource names from K names instead of 10, so that a path is
# shared by about RULES / K rules (with K = RULES / 10 the call matches a
# handful of rules, as a real call does). Without these two options the
# output is the same as before they existed.

use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use JSON::PP ();

my ($ntools, $seed, $callfile, $onecell, $nres) = (100, 1, undef, 0, 10);
GetOptions('tools=i' => \$ntools, 'seed=i' => \$seed, 'call=s' => \$callfile,
           'one-cell' => \$onecell, 'resources=i' => \$nres)
    && @ARGV == 1 && $ARGV[0] =~ /^[0-9]+$/ && $ntools > 0 && $nres > 0
    or die "usage: $0 RULES [--tools N] [--seed S] [--call CALL.json]"
         . " [--one-cell] [--resources K]\n";
my $nrules = $ARGV[0];
srand($seed);

my @methods = qw(GET GET GET POST POST PUT PATCH DELETE);
my @res = qw(tickets users orders refunds invoices reports files jobs items notes);
push @res, map { "res$_" } scalar(@res) + 1 .. $nres;
splice @res, $nres;
sub pick { $_[int rand @_] }

my %tools;
$tools{sprintf "tool%03d", $_} = { hosts => [sprintf "tool%03d.internal", $_] }
    for 1 .. $ntools;

sub path_of {
    my ($r) = @_;
    my $k = rand;
    return "/v1/$r/**"                                  if $k < 0.30;
    return "/v1/$r/*"                                   if $k < 0.55;
    return "/v1/$r/*/" . pick(qw(items notes history))  if $k < 0.75;
    return "/v1/$r"                                     if $k < 0.90;
    return { regex => "/v1/$r/[0-9]+(/[a-z]+)?" };
}

sub when_of {
    my $k = rand;
    return { 'header:X-Priority' => { in => ['low', 'normal'] } }        if $k < 0.10;
    return { 'query:limit' => { le => 1 + int rand 500 } }               if $k < 0.20;
    return { 'body:/amount' => { gt => int rand 10000 } }                if $k < 0.30;
    return { any => [ { 'body:/status' => { eq => 'open' } },
                      { 'header:X-Team' => { glob => 'team-*' } } ] }    if $k < 0.35;
    return undef;
}

my @rules;
my %count;
for my $i (1 .. $nrules) {
    my $k = rand;
    my $effect = $k < 0.70 ? 'allow' : $k < 0.90 ? 'deny' : 'hold';
    my $tool = sprintf "tool%03d", 1 + int rand $ntools;
    my ($method, $res) = (pick(@methods), pick(@res));
    ($tool, $method) = ('tool001', 'GET') if $onecell;
    $count{"$tool $method"}{n}++;
    $count{"$tool $method"}{res} //= $res;
    my %r = (id => "r$i", effect => $effect, tool => $tool,
             method => $method, path => path_of($res));
    my $w = when_of();
    $r{when} = $w if $w;
    if ($effect eq 'hold') {
        $r{approvers} = ['approvers'];
        $r{timeout} = '10m';
    }
    $r{reason} = "synthetic rule $i" if $effect eq 'deny';
    $r{tags} = ['BENCH'] if $i % 7 == 0;
    push @rules, \%r;
}

my $policy = {
    agentgov => 1,
    agents   => { 'bench-bot' => { jwt => { iss => 'agentgov-dev', sub => 'bench-bot' },
                                   owner => 'team-bench' } },
    groups   => { approvers => [ { jwt => { iss => 'agentgov-dev', groups => 'approvers' } } ] },
    tools    => \%tools,
    rules    => \@rules,
    default  => 'deny',
};

my $json = JSON::PP->new->canonical->pretty;
print $json->encode($policy);

if (defined $callfile) {
    my ($cell) = sort { $count{$b}{n} <=> $count{$a}{n} || $a cmp $b } keys %count;
    my ($busy, $method) = split / /, $cell // 'tool001 GET';
    my $res = $cell ? $count{$cell}{res} : 'tickets';
    my $call = {
        agent   => 'bench-bot', tool => $busy, method => $method,
        host    => "$busy.internal", path => "/v1/$res/1234/items",
        query   => 'limit=50&page=2',
        headers => { 'X-Priority' => 'normal', 'X-Team' => 'team-support' },
        body    => { amount => 1200, status => 'open' },
    };
    open my $fh, '>', $callfile or die "$callfile: $!\n";
    print $fh $json->encode($call);
    close $fh or die "$callfile: $!\n";
}
