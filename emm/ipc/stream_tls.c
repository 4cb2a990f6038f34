/*
 * stream_tls.c - TLS 1.3 sessions for the stream transport with GnuTLS (see
 * stream_tls.h). Nothing here is cryptography of our own: GnuTLS does the
 * handshake, the key exchange, the record layer and the certificate checks;
 * this file loads credentials, pins TLS 1.3 and adapts a session to
 * emm_stream_io.
 *
 * Locking: struct emm_tls is immutable after emm_tls_create (GnuTLS
 * credentials may be shared by sessions). A session has one reader and one
 * writer thread; shutdown(2) on its fd wakes both, and close runs after
 * both have stopped.
 */
#include "stream_tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEYS 256

struct psk_entry {
    char *identity;
    gnutls_datum_t key;
};

struct emm_tls {
    int server;
    int psk;
    struct psk_entry keys[MAX_KEYS];
    unsigned nkeys;
    gnutls_psk_server_credentials_t psk_server;
    gnutls_psk_client_credentials_t psk_client;
    gnutls_certificate_credentials_t x509;
    gnutls_priority_t prio;
};

struct session {
    struct emm_stream_io io;
    gnutls_session_t ss;
    int fd;
    char who[160];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void
global_init(void)
{
    global_rc = gnutls_global_init();
}

static int
fail(char *err, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return rc;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads "IDENTITY:HEXKEY" lines. */
static int
load_psk(struct emm_tls *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
        fprintf(stderr, "warning: %s: the key file is readable by group or others\n", path);
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line) {
            rc = fail(err, errlen, -EINVAL, "%s:%d: want IDENTITY:HEXKEY", path, lineno);
            break;
        }
        *colon = '\0';
        const char *hex = colon + 1;
        size_t hl = strlen(hex);
        if (hl < 32 || hl % 2 != 0 || hl > 2 * 512) {
            rc = fail(err, errlen, -EINVAL,
                      "%s:%d: the key must be 16..512 bytes in hex (an even number of digits)",
                      path, lineno);
            break;
        }
        if (t->nkeys == MAX_KEYS) {
            rc = fail(err, errlen, -E2BIG, "%s:%d: more than %d keys", path, lineno, MAX_KEYS);
            break;
        }
        struct psk_entry *e = &t->keys[t->nkeys];
        e->key.data = gnutls_malloc(hl / 2);
        e->identity = strdup(line);
        if (e->key.data == NULL || e->identity == NULL) {
            gnutls_free(e->key.data);
            free(e->identity);
            rc = -ENOMEM;
            break;
        }
        e->key.size = (unsigned)(hl / 2);
        t->nkeys++;
        for (size_t i = 0; i < hl / 2; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = fail(err, errlen, -EINVAL, "%s:%d: the key is not hex", path, lineno);
                break;
            }
            e->key.data[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    if (rc == 0 && t->nkeys == 0)
        rc = fail(err, errlen, -EINVAL, "%s: no IDENTITY:HEXKEY line", path);
    return rc;
}

static int
psk_lookup(gnutls_session_t ss, const char *username, gnutls_datum_t *key)
{
    struct emm_tls *t = gnutls_session_get_ptr(ss);
    for (unsigned i = 0; i < t->nkeys; i++) {
        if (strcmp(t->keys[i].identity, username) == 0) {
            key->data = gnutls_malloc(t->keys[i].key.size);
            if (key->data == NULL)
                return -1;
            memcpy(key->data, t->keys[i].key.data, t->keys[i].key.size);
            key->size = t->keys[i].key.size;
            return 0;
        }
    }
    return -1; /* unknown identity: the handshake fails */
}

int
emm_tls_create(const struct emm_tls_params *p, int server, struct emm_tls **out, char *err,
               size_t errlen)
{
    pthread_once(&global_once, global_init);
    if (global_rc < 0)
        return fail(err, errlen, -EIO, "gnutls: %s", gnutls_strerror(global_rc));
    int x509 = p->ca_file != NULL || p->cert_file != NULL || p->key_file != NULL;
    if ((p->psk_file != NULL) == x509)
        return fail(err, errlen, -EINVAL,
                    "give either a PSK file or an X.509 CA, certificate and key");
    if (x509 && (p->ca_file == NULL || p->cert_file == NULL || p->key_file == NULL))
        return fail(err, errlen, -EINVAL, "X.509 needs a CA file, a certificate and a key");
    struct emm_tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->server = server;
    t->psk = p->psk_file != NULL;
    int rc = 0, g;
    const char *prio;
    if (t->psk) {
        rc = load_psk(t, p->psk_file, err, errlen);
        if (rc == 0 && server) {
            g = gnutls_psk_allocate_server_credentials(&t->psk_server);
            if (g == 0)
                gnutls_psk_set_server_credentials_function(t->psk_server, psk_lookup);
        } else if (rc == 0) {
            g = gnutls_psk_allocate_client_credentials(&t->psk_client);
            if (g == 0)
                g = gnutls_psk_set_client_credentials(t->psk_client, t->keys[0].identity,
                                                      &t->keys[0].key, GNUTLS_PSK_KEY_RAW);
        }
        if (rc == 0 && g < 0)
            rc = fail(err, errlen, -EIO, "%s: %s", p->psk_file, gnutls_strerror(g));
        prio = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:+PSK";
    } else {
        g = gnutls_certificate_allocate_credentials(&t->x509);
        if (g == 0) {
            g = gnutls_certificate_set_x509_trust_file(t->x509, p->ca_file, GNUTLS_X509_FMT_PEM);
            if (g <= 0)
                rc = fail(err, errlen, -EINVAL, "%s: %s", p->ca_file,
                          g == 0 ? "no certificate in it" : gnutls_strerror(g));
        }
        if (rc == 0 && g >= 0) {
            g = gnutls_certificate_set_x509_key_file(t->x509, p->cert_file, p->key_file,
                                                     GNUTLS_X509_FMT_PEM);
            if (g < 0)
                rc = fail(err, errlen, -EINVAL, "%s / %s: %s", p->cert_file, p->key_file,
                          gnutls_strerror(g));
        }
        if (rc == 0 && g < 0)
            rc = fail(err, errlen, -EIO, "gnutls: %s", gnutls_strerror(g));
        prio = "NORMAL:-VERS-ALL:+VERS-TLS1.3";
    }
    if (rc == 0) {
        g = gnutls_priority_init(&t->prio, prio, NULL);
        if (g < 0)
            rc = fail(err, errlen, -EIO, "gnutls priority: %s", gnutls_strerror(g));
    }
    if (rc < 0) {
        emm_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void
emm_tls_free(struct emm_tls *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < t->nkeys; i++) {
        explicit_bzero(t->keys[i].key.data, t->keys[i].key.size);
        gnutls_free(t->keys[i].key.data);
        free(t->keys[i].identity);
    }
    if (t->psk_server != NULL)
        gnutls_psk_free_server_credentials(t->psk_server);
    if (t->psk_client != NULL)
        gnutls_psk_free_client_credentials(t->psk_client);
    if (t->x509 != NULL)
        gnutls_certificate_free_credentials(t->x509);
    if (t->prio != NULL)
        gnutls_priority_deinit(t->prio);
    free(t);
}

const char *
emm_tls_mode(const struct emm_tls *t)
{
    return t->psk ? "psk" : "x509";
}

/* ---- a session as an emm_stream_io ---------------------------------------- */

static ssize_t
tls_read(void *ctx, void *buf, size_t len)
{
    struct session *s = ctx;
    for (;;) {
        ssize_t r = gnutls_record_recv(s->ss, buf, len);
        if (r >= 0)
            return r;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR ||
            r == GNUTLS_E_PUSH_ERROR)
            return -ECONNRESET;
        return -EBADMSG; /* a record that fails authentication, or worse */
    }
}

static ssize_t
tls_writev(void *ctx, const struct iovec *iov, int n)
{
    struct session *s = ctx;
    size_t total = 0;
    gnutls_record_cork(s->ss);
    for (int i = 0; i < n; i++) {
        ssize_t w = gnutls_record_send(s->ss, iov[i].iov_base, iov[i].iov_len);
        if (w < 0) {
            gnutls_record_discard_queued(s->ss);
            gnutls_record_uncork(s->ss, 0);
            return -EPIPE;
        }
        total += iov[i].iov_len;
    }
    for (;;) {
        int r = gnutls_record_uncork(s->ss, GNUTLS_RECORD_WAIT);
        if (r >= 0)
            break;
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
            return -EPIPE;
    }
    return (ssize_t)total;
}

static int
tls_wait(void *ctx, int timeout_ms)
{
    struct session *s = ctx;
    if (gnutls_record_check_pending(s->ss) > 0)
        return 1;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    return n < 0 ? -errno : n;
}

static void
tls_shutdown(void *ctx)
{
    struct session *s = ctx;
    shutdown(s->fd, SHUT_RDWR);
}

static void
tls_close(void *ctx)
{
    struct session *s = ctx;
    gnutls_deinit(s->ss);
    close(s->fd);
    free(s);
}

static int
describe_peer(struct emm_tls *t, struct session *s)
{
    if (t->psk) {
        const char *id = t->server ? gnutls_psk_server_get_username(s->ss) : t->keys[0].identity;
        snprintf(s->who, sizeof(s->who), "psk identity %s", id ? id : "?");
        return 0;
    }
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s->ss, &n);
    snprintf(s->who, sizeof(s->who), "x509");
    if (certs == NULL || n == 0)
        return -EACCES;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) == 0) {
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
            char dn[128];
            size_t dl = sizeof(dn);
            if (gnutls_x509_crt_get_dn(crt, dn, &dl) == 0)
                snprintf(s->who, sizeof(s->who), "x509 %s", dn);
        }
        gnutls_x509_crt_deinit(crt);
    }
    return 0;
}

int
emm_tls_session(struct emm_tls *t, int fd, int timeout_ms, struct emm_stream_io **out,
                const char **who, char *why, size_t whylen)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->fd = fd;
    int g = gnutls_init(&s->ss, (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT));
    if (g < 0) {
        close(fd);
        free(s);
        return fail(why, whylen, -ENOMEM, "%s", gnutls_strerror(g));
    }
    gnutls_session_set_ptr(s->ss, t);
    g = gnutls_priority_set(s->ss, t->prio);
    if (g == 0 && t->psk)
        g = t->server ? gnutls_credentials_set(s->ss, GNUTLS_CRD_PSK, t->psk_server)
                      : gnutls_credentials_set(s->ss, GNUTLS_CRD_PSK, t->psk_client);
    if (g == 0 && !t->psk) {
        g = gnutls_credentials_set(s->ss, GNUTLS_CRD_CERTIFICATE, t->x509);
        if (g == 0 && t->server)
            gnutls_certificate_server_set_request(s->ss, GNUTLS_CERT_REQUIRE);
        if (g == 0)
            gnutls_session_set_verify_cert(s->ss, NULL, 0); /* the CA decides */
    }
    int rc = 0;
    if (g == 0) {
        gnutls_transport_set_int(s->ss, fd);
        gnutls_handshake_set_timeout(s->ss, (unsigned)timeout_ms);
        do
            g = gnutls_handshake(s->ss);
        while (g < 0 && gnutls_error_is_fatal(g) == 0);
    }
    if (g == 0 && !t->psk && t->server) {
        unsigned status = 0;
        g = gnutls_certificate_verify_peers2(s->ss, &status);
        if (g == 0 && status != 0)
            g = GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
    if (g == 0)
        rc = describe_peer(t, s);
    if (g < 0 || rc < 0) {
        if (g == GNUTLS_E_TIMEDOUT)
            rc = -ETIMEDOUT;
        else if (g == GNUTLS_E_DECRYPTION_FAILED || g == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR ||
                 g == GNUTLS_E_CERTIFICATE_ERROR || g == GNUTLS_E_NO_CERTIFICATE_FOUND ||
                 g == GNUTLS_E_INSUFFICIENT_CREDENTIALS || g == GNUTLS_E_KEY_USAGE_VIOLATION ||
                 g == GNUTLS_E_USER_ERROR || rc == -EACCES)
            rc = -EACCES;
        else
            rc = -EPROTO;
        fail(why, whylen, rc, "%s", g < 0 ? gnutls_strerror(g) : "no peer certificate");
        gnutls_deinit(s->ss);
        close(fd);
        free(s);
        return rc;
    }
    s->io = (struct emm_stream_io){tls_read, tls_writev, tls_wait, tls_shutdown, tls_close, s};
    *out = &s->io;
    *who = s->who;
    return 0;
}
