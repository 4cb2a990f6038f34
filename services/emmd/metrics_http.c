/*
 * metrics_http.c - the optional /metrics endpoint (metrics-listen =
 * ADDRESS:PORT): libmicrohttpd serves GET (and HEAD) /metrics with the text
 * of metrics.c, "text/plain; version=0.0.4"; any other path is 404, any other
 * method 405. Off unless configured. libmicrohttpd runs its own polling
 * thread (started after the capabilities are dropped and with emmd's signals
 * blocked, like every thread); each request formats the metrics into a
 * memory stream the library frees after sending. At most 16 connections, 10 s
 * idle timeout. No locks of its own: metrics.c takes what it needs.
 */
#include "emmd.h"
#include "log.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct emmd_http {
    struct MHD_Daemon *mhd;
};

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct emmd *d = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        if (*upload_data_size != 0) {
            *upload_data_size = 0; /* drain a body; the answer is the same */
            return MHD_YES;
        }
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    }
    if (strcmp(url, "/metrics") != 0)
        return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: emmd serves /metrics\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    pthread_rwlock_rdlock(&d->fs_lock);
    int rc = emmd_metrics_write(d, f);
    pthread_rwlock_unlock(&d->fs_lock);
    if (fclose(f) != 0 || rc < 0) {
        free(buf);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics failed\n");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int
emmd_http_start(struct emmd *d, const char *listen, struct emmd_http **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    *out = NULL;
    if (emm_config_listen_addr(listen, &ss, &len) < 0)
        return -EINVAL; /* the config loader checked it */
    struct emmd_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 16u,
                              MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (h->mhd == NULL) {
        int e = errno ? errno : EADDRINUSE;
        free(h);
        return -e;
    }
    emm_info("metrics: serving http://%s/metrics", listen);
    *out = h;
    return 0;
}

void
emmd_http_stop(struct emmd_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->mhd);
    free(h);
}
