/**
 * TLS failures in plain words. OpenSSL and Node name them with codes such as
 * DEPTH_ZERO_SELF_SIGNED_CERT or ERR_SSL_WRONG_VERSION_NUMBER; users need the reason and what to do.
 */

/** Certificate verification failures (client side): what is wrong with the certificate, and the way out. */
const VERIFY_FAILURES: Record<string, { what: string; hint: string }> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: { what: 'is self-signed', hint: 'pass --ca FILE to trust it or --insecure' },
  SELF_SIGNED_CERT_IN_CHAIN: { what: 'is signed by an untrusted self-signed CA', hint: 'pass --ca FILE with that CA or --insecure' },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { what: 'is signed by an unknown authority', hint: 'pass --ca FILE with the CA that signed it or --insecure' },
  UNABLE_TO_GET_ISSUER_CERT: { what: 'is signed by an unknown authority', hint: 'pass --ca FILE with the CA that signed it or --insecure' },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: { what: 'is signed by an unknown authority', hint: 'pass --ca FILE with the CA that signed it or --insecure' },
  CERT_HAS_EXPIRED: { what: 'has expired', hint: 'the server must renew it (--insecure skips the check)' },
  CERT_NOT_YET_VALID: { what: 'is not valid yet', hint: "check this machine's clock (--insecure skips the check)" },
  CERT_SIGNATURE_FAILURE: { what: 'has an invalid signature', hint: 'it may have been tampered with' },
  CERT_REVOKED: { what: 'has been revoked', hint: 'the server must get a new one' },
  INVALID_CA: { what: 'is signed by a certificate that is not a CA', hint: 'pass --ca FILE with the real CA' },
  CERT_UNTRUSTED: { what: 'is not trusted', hint: 'pass --ca FILE to trust it or --insecure' },
};

/** Which end we are: a client names the server it reached; a server names the client that came in. */
export type TlsSide = 'client' | 'server';

/** Alerts the peer sent, or protocol mismatches, keyed by a fragment of the error code. */
const HANDSHAKE_FAILURES: [RegExp, (label: string, side: TlsSide) => string][] = [
  [
    /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE|UNKNOWN_PROTOCOL|UNEXPECTED_MESSAGE/,
    (l, side) => (side === 'client' ? `${l} does not speak TLS (a plain TCP service? then use tcp: instead of tls:)` : `client ${l} does not speak TLS (plain text sent to this TLS port)`),
  ],
  [/HTTP_REQUEST/, (l, side) => (side === 'client' ? `${l}: plain HTTP was sent to a TLS port (use https://)` : `client ${l} sent plain HTTP to this TLS port (it should use https://)`)],
  [
    /ALERT_CERTIFICATE_REQUIRED|PEER_DID_NOT_RETURN_A_CERTIFICATE/,
    (l, side) => (side === 'client' ? `${l} requires a client certificate — pass --client-cert FILE --client-key FILE` : `refused client ${l}: it sent no client certificate (--require-client-cert)`),
  ],
  [/ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE_UNKNOWN/, (l) => `${l} rejected the certificate it was shown (not signed by a CA it trusts)`],
  [/ALERT_HANDSHAKE_FAILURE|NO_SHARED_CIPHER|ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/, (l) => `TLS handshake with ${l} failed: no protocol version or cipher in common`],
  [/ERR_TLS_HANDSHAKE_TIMEOUT/, (l) => `TLS handshake with ${l} timed out`],
];

/**
 * Words a TLS error for the user, naming `label` (e.g. "tls:127.0.0.1:8443", or the client's
 * address on the server `side`); undefined when the error is not a TLS one (then the caller's
 * generic wording applies).
 */
export function describeTlsError(err: unknown, label: string, side: TlsSide = 'client'): string | undefined {
  const e = err as NodeJS.ErrnoException & { reason?: string; host?: string; cert?: { subjectaltname?: string } };
  const code = e?.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = e.cert?.subjectaltname ? ` (it is for ${e.cert.subjectaltname})` : '';
    return `certificate of ${label} does not match the name '${e.host ?? '?'}'${names} — connect by a name it lists, or pass --servername NAME`;
  }
  const verify = VERIFY_FAILURES[code];
  if (verify) return `certificate of ${label} ${verify.what} — ${verify.hint}`;
  for (const [pattern, words] of HANDSHAKE_FAILURES) if (pattern.test(code)) return words(label, side);
  if (code.startsWith('ERR_SSL_')) return `TLS error with ${label}: ${e.reason ?? e.message}`;
  if (/before secure TLS connection was established/.test(e?.message ?? '')) {
    return `${label} closed the connection during the TLS handshake (does it speak TLS? does it want a client certificate?)`;
  }
  return undefined;
}
