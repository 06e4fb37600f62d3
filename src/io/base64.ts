// Base64 in plain JavaScript (btoa/atob), the same in Node and in a browser:
// signed Fleet metadata travels as base64 headers, keys as PEM and OpenSSH text.

export function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** base64url without padding, as JWK writes key coordinates. */
export function fromBase64Url(text: string): Uint8Array {
  return fromBase64(text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '='));
}
