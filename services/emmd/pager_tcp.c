/*
 * pager_tcp.c - the tcp: branch of pager_conn.c: a filesystem whose pager is
 * on another host (pager = tcp:HOST:PORT, an emm-memserver). Loads the
 * filesystem's TLS credentials once, and per connection attempt connects,
 * runs the TLS 1.3 handshake (stream_tls.h) and hands pager_conn.c an io for
 * the stream transport. With pager.tls = off the connection stays plain
 * text, and only when the peer is a loopback address (tests).
 *
 * Locking: none of its own; pager_conn.c calls it from one thread at a time
 * (the start, then its supervisor).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "emmd.h"
#include "log.h"
#include "stream_tcp.h"
#include "stream_tls.h"

int
emmd_pager_tcp_init(const struct emm_fs_config *cfg, struct emm_tls **out)
{
    *out = NULL;
    if (!cfg->pager_tls) {
        emm_warn("fs %s: WARNING: pager.tls = off: the pager link to %s is PLAIN TEXT, "
                 "unauthenticated and unencrypted; only a loopback peer is accepted",
                 cfg->name, cfg->pager_addr);
        return 0;
    }
    struct emm_tls_params p = {.psk_file = cfg->pager_tls_psk_file, .ca_file = cfg->pager_tls_ca,
                               .cert_file = cfg->pager_tls_cert, .key_file = cfg->pager_tls_key};
    char err[512] = "";
    int rc = emm_tls_create(&p, 0, out, err, sizeof(err));
    if (rc < 0)
        emm_err("fs %s: pager TLS credentials: %s", cfg->name, err[0] ? err : strerror(-rc));
    return rc;
}

void
emmd_pager_tcp_fini(struct emm_tls *tls)
{
    emm_tls_free(tls);
}

int
emmd_pager_tcp_open(const struct emm_fs_config *cfg, struct emm_tls *tls,
                    struct emm_stream_io **io, char *label, size_t len)
{
    int fd = emm_tcp_connect(cfg->pager_addr, 5000);
    if (fd < 0) {
        emm_warn("fs %s: pager at %s: %s", cfg->name, cfg->pager_addr, strerror(-fd));
        return fd;
    }
    char peer[80];
    emm_tcp_peer_name(fd, peer, sizeof(peer));
    snprintf(label, len, "pager of fs %s at %s", cfg->name, peer);
    if (tls == NULL) {
        if (!emm_tcp_peer_is_loopback(fd)) {
            emm_err("fs %s: refused to talk plain text to %s: pager.tls = off is for loopback "
                    "peers only", cfg->name, peer);
            close(fd);
            return -EPERM;
        }
        return emm_tcp_plain_io(fd, io);
    }
    const char *who = NULL;
    char why[256] = "";
    int rc = emm_tls_session(tls, fd, 10000, io, &who, why, sizeof(why));
    if (rc < 0) {
        emm_err("fs %s: TLS with the pager at %s failed: %s%s", cfg->name, peer, why,
                rc == -EACCES ? " (wrong key or certificate?)" : "");
        return rc;
    }
    emm_info("fs %s: TLS 1.3 with the pager at %s (%s, %s)", cfg->name, peer, emm_tls_mode(tls),
             who);
    return 0;
}
