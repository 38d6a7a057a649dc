/**
 * Litestream outliving the coordinator long enough for its final sync. Litestream is a Go program, and a
 * Go program that writes to a broken stdout or stderr pipe dies of SIGPIPE. When the coordinator dies
 * (kill -9), the pipes it read Litestream's output from break; Litestream's `-exec` watch of it ends, and
 * the first thing Litestream then does is print "subprocess exited, litestream shutting down": it died
 * there, before its final sync, and the writes of its last second never reached S3.
 *
 * So Litestream's output goes through a relay: a few lines of perl (perl-base is part of every
 * Debian/Ubuntu system) that start the command with pipes of their own, copy its stdout and stderr to
 * theirs, ignore SIGPIPE (output nobody reads any more is dropped, the command keeps running), forward
 * SIGTERM and SIGINT to it, and exit with its status (128 + the signal that ended it). In the same process
 * group, so killing the group still kills both.
 */
import { findSystemTool } from "../coordinator/sandbox/system-tools.js";

const RELAY = `
use strict;
$SIG{PIPE} = "IGNORE";
pipe(my $out_r, my $out_w) or die "pipe: $!\\n";
pipe(my $err_r, my $err_w) or die "pipe: $!\\n";
my $pid = fork();
defined $pid or die "fork: $!\\n";
if ($pid == 0) {
  close $out_r; close $err_r;
  open(STDOUT, ">&", $out_w) or die "dup: $!\\n";
  open(STDERR, ">&", $err_w) or die "dup: $!\\n";
  $SIG{PIPE} = "DEFAULT";
  exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n";
}
close $out_w; close $err_w;
$SIG{TERM} = sub { kill "TERM", $pid };
$SIG{INT} = sub { kill "INT", $pid };
my %to = (fileno($out_r) => \\*STDOUT, fileno($err_r) => \\*STDERR);
my @open = ($out_r, $err_r);
while (@open) {
  my $want = "";
  vec($want, fileno($_), 1) = 1 for @open;
  my $n = select(my $ready = $want, undef, undef, undef);
  if ($n < 0) { next if $!{EINTR}; last; }
  for my $fh (@open) {
    next unless vec($ready, fileno($fh), 1);
    my $got = sysread($fh, my $buf, 65536);
    next if !defined $got && $!{EINTR};
    if (!$got) { @open = grep { $_ != $fh } @open; next; }
    syswrite($to{fileno($fh)}, $buf);
  }
}
1 while waitpid($pid, 0) < 0 && $!{EINTR};
exit($? & 127 ? 128 + ($? & 127) : $? >> 8);
`;

/** `command args` run through the relay when perl is installed; as they are otherwise. */
export function relayedCommand(command: string, args: string[]): { command: string; args: string[]; relayed: boolean } {
  const perl = findSystemTool("perl");
  if (!perl) return { command, args, relayed: false };
  return { command: perl, args: ["-e", RELAY, command, ...args], relayed: true };
}
