/*
 * stream_tls.h - TLS 1.3 (GnuTLS) under the stream transport between hosts:
 * credentials loaded once (a pre-shared key file, or X.509 CA + certificate
 * + key), and per connection a handshake that authenticates the peer before
 * a single byte of the protocol is read, giving an emm_stream_io.
 *
 * PSK file: lines "IDENTITY:HEXKEY" (the format of nbdkit's --tls-psk and
 * GnuTLS's psktool); blank lines and lines starting with '#' are skipped. A
 * server accepts any identity of its file; a client presents the first.
 * X.509: both sides present a certificate signed by the CA and check the
 * other's (the server requires a client certificate).
 *
 * Locking: a struct emm_tls is read-only once made and shared by every
 * session; a session is one connection's, used by its one reader and one
 * writer thread (GnuTLS allows one sender and one receiver at a time).
 */
#ifndef EMM_STREAM_TLS_H
#define EMM_STREAM_TLS_H

#include <stddef.h>

#include "port_stream.h"

struct emm_tls_params {
    const char *psk_file;  /* PSK mode when set */
    const char *ca_file;   /* X.509 mode: all three */
    const char *cert_file;
    const char *key_file;
};

struct emm_tls;

/* Loads the credentials for a server (server = 1) or a client. 0, or -errno
 * with a message naming the file (and line) in err. */
int emm_tls_create(const struct emm_tls_params *p, int server, struct emm_tls **out, char *err,
                   size_t errlen);
void emm_tls_free(struct emm_tls *t);
/* "psk" or "x509". */
const char *emm_tls_mode(const struct emm_tls *t);
/* Runs the handshake on the connected socket fd (owned: closed on failure)
 * within timeout_ms. On success *out reads and writes through the session
 * and *who names the authenticated peer ("psk identity NAME", "x509 CN=...")
 * until io->close. -EACCES when the peer failed authentication (wrong key,
 * unknown identity, bad certificate), -ETIMEDOUT, -EPROTO for other TLS
 * errors: why gets GnuTLS's text. */
int emm_tls_session(struct emm_tls *t, int fd, int timeout_ms, struct emm_stream_io **out,
                    const char **who, char *why, size_t whylen);

#endif
