/**
 * Destinations for agents' egress (docs/security.md): the address blocks agents may never reach
 * unless the operator allow-lists them (`--agent-network-allow CIDR[:port]`), and the parser for
 * those allow rules. Addresses are checked as bytes, so "10.0.0.5/8" (host bits set) is refused
 * rather than silently widened or narrowed.
 */
import net from "node:net";

export interface EgressAllowRule {
  /** Canonical "address/prefix" (IPv4, or IPv6 without brackets). */
  cidr: string;
  /** Only this TCP/UDP port; every port when undefined. */
  port?: number;
}

/** Private, loopback, link-local (cloud metadata 169.254.169.254), CGNAT, reserved and multicast. */
export const BLOCKED_IPV4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3"] as const;

/** Unspecified, loopback, IPv4-mapped/translated (they would reach the IPv4 blocks), ULA, link- and site-local, multicast. */
export const BLOCKED_IPV6 = ["::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"] as const;

export interface ParsedCidr {
  family: 4 | 6;
  bytes: number[];
  prefix: number;
  cidr: string;
}

/** IPv6 text (with "::" and an optional dotted IPv4 tail) as 16 bytes. */
function ipv6Bytes(text: string): number[] {
  let head = text;
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    tail = dotted[1].split(".").map(Number);
    head = text.slice(0, -dotted[1].length);
    head = head.endsWith("::") ? head : head.slice(0, -1); // drop the ":" before the IPv4 part
  }
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const [left = "", right] = head.split("::");
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const missing = 8 - tail.length / 2 - l.length - r.length;
  const words = [...l, ...new Array<number>(right === undefined ? 0 : missing).fill(0), ...r];
  return [...words.flatMap((w) => [w >> 8, w & 0xff]), ...tail];
}

/** The bits of byte `i` that a /prefix keeps. */
function maskOf(prefix: number, i: number): number {
  const keep = Math.max(0, Math.min(8, prefix - i * 8));
  return (0xff << (8 - keep)) & 0xff;
}

function format(family: 4 | 6, bytes: number[]): string {
  if (family === 4) return bytes.join(".");
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return words.join(":");
}

/** Parses "ADDRESS[/PREFIX]" (a bare address is one host). Throws naming what is wrong. */
export function parseCidr(text: string): ParsedCidr {
  const [address = "", prefixText, extra] = text.trim().split("/");
  const family = net.isIPv4(address) ? 4 : net.isIPv6(address) ? 6 : undefined;
  if (!family || extra !== undefined || address.includes("%")) throw new Error(`"${text}" is not an IPv4 or IPv6 address or CIDR block`);
  const bits = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? String(bits)) || prefix > bits) throw new Error(`"${text}": the prefix length must be 0-${bits}`);
  const bytes = family === 4 ? address.split(".").map(Number) : ipv6Bytes(address.toLowerCase());
  const network = bytes.map((byte, i) => byte & maskOf(prefix, i));
  if (network.some((byte, i) => byte !== bytes[i])) {
    throw new Error(`"${text}" has bits set after the /${prefix} prefix; did you mean ${format(family, network)}/${prefix}?`);
  }
  return { family, bytes, prefix, cidr: `${family === 4 ? address : address.toLowerCase()}/${prefix}` };
}

/** Parses an `--agent-network-allow` value: "CIDR[:port]", IPv6 as "CIDR" or "[CIDR]:port". */
export function parseEgressAllow(text: string): EgressAllowRule {
  const trimmed = text.trim();
  let cidrText = trimmed;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(trimmed);
  if (bracketed) {
    cidrText = bracketed[1] ?? "";
    portText = bracketed[2];
  } else if (trimmed.split(":").length === 2) {
    [cidrText = "", portText] = trimmed.split(":");
  }
  let cidr: ParsedCidr;
  try {
    cidr = parseCidr(cidrText);
  } catch (err) {
    throw new Error(`--agent-network-allow "${text}": ${(err as Error).message} (expected CIDR[:port], e.g. 10.0.0.0/8, 10.1.2.3:443 or [fd00::/8]:443)`);
  }
  if (bracketed && cidr.family === 4) throw new Error(`--agent-network-allow "${text}": brackets are for IPv6 addresses only`);
  if (portText === undefined) return { cidr: cidr.cidr };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new Error(`--agent-network-allow "${text}": the port must be a number 1-65535 (got "${portText}")`);
  }
  return { cidr: cidr.cidr, port };
}

/** True when `rule` lets agents reach the host's 127.0.0.1 (slirp4netns's 10.0.2.2 maps there). */
export function allowsHostLoopback(rule: EgressAllowRule): boolean {
  const { family, bytes, prefix } = parseCidr(rule.cidr);
  return family === 4 && [127, 0, 0, 1].every((byte, i) => (byte & maskOf(prefix, i)) === bytes[i]);
}
