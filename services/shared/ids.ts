import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

/** A random, URL-safe id with a readable prefix: `inst-7k2m9x0q4d1v3c8b`. 80 bits of entropy. */
export function newId(prefix: string): string {
  const bytes = randomBytes(10);
  let out = "";
  for (let i = 0; i < 16; i++) {
    const bit = i * 5;
    const byte = bit >> 3;
    const shift = bit & 7;
    const word = ((bytes[byte] ?? 0) << 8) | (bytes[byte + 1] ?? 0);
    out += ALPHABET[(word >> (11 - shift)) & 31];
  }
  return `${prefix}-${out}`;
}

/** Ids that clients may choose (agent ids): letters, digits, '.', '_', '-'; 1..128 chars. */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidClientId(id: string): boolean {
  return CLIENT_ID_PATTERN.test(id);
}
