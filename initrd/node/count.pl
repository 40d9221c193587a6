#!/usr/bin/perl
# The seed's acceptance test for a process-migration cluster: a CPU-bound
# loop that counts to TOTAL and, every STEP counts, records how far it got
# and where it runs.  Usage: count.pl DIR TOTAL [STEP]
#   DIR/progress   "<state> <count> <host> <pid>", replaced (temp, rename)
#   DIR/history    one such line appended per step: the whole computation,
#                  across the nodes it ran on
# It becomes the leader of its own session first, so that it is a process
# tree of its own that CRIU can dump and restore elsewhere.
use strict;
use warnings;
use POSIX ();

my ($dir, $total, $step) = @ARGV;
die "usage: count.pl DIR TOTAL [STEP]\n" unless defined $dir && defined $total && $total =~ /^\d+$/;
$step = 100_000 unless defined $step;
POSIX::setsid();

sub host {
    open(my $in, '<', '/proc/sys/kernel/hostname') or return 'unknown';
    my $name = <$in>;
    close $in;
    chomp $name;
    return $name;
}

sub record {
    my ($state, $count) = @_;
    my $line = sprintf("%s %d %s %d\n", $state, $count, host(), $$);
    open(my $out, '>', "$dir/progress.tmp") or die "progress.tmp: $!";
    print $out $line;
    close $out;
    rename("$dir/progress.tmp", "$dir/progress") or die "progress: $!";
    open(my $log, '>>', "$dir/history") or die "history: $!";
    print $log $line;
    close $log;
}

my $count = 0;
record('start', $count);
while ($count < $total) {
    $count++;
    record('count', $count) if $count % $step == 0;
}
record('done', $count);
