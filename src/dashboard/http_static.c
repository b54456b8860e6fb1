/*
 * http_static.c - files of the front end from one directory: a content
 * type by extension, an ETag for conditional GETs, and nothing outside
 * the root (the path is sanitised, then resolved and checked again so a
 * symlink cannot lead out).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dashboard/http_internal.h"

#define STATIC_MAX_FILE (16u * 1024u * 1024u)

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Reads the regular file at path if it resolves inside root. */
static int open_inside(const char *root, const char *rel, struct stat *st)
{
    char joined[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", root, rel) >= sizeof joined)
        return -1;
    if (!realpath(joined, real))
        return -1;
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || real[rl] != '/')
        return -1;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_size > STATIC_MAX_FILE) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool etag_matches(const char *if_none_match, const char *etag)
{
    if (strcmp(if_none_match, "*") == 0)
        return true;
    /* a list of tags, possibly weak (W/"...") */
    return strstr(if_none_match, etag) != NULL;
}

bool cel__dash_http_serve_static(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp)
{
    const struct cel_dash_http *s = req->server;
    size_t pl = s->static_root ? strlen(s->static_prefix) : 0;
    if (!s->static_root || strncmp(req->path, s->static_prefix, pl) != 0)
        return false;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        cel__dash_http_add_header(resp, "Allow", "GET, HEAD");
        cel__dash_http_error(resp, 405, "method not allowed");
        return true;
    }
    char rel[PATH_MAX];
    struct stat st;
    int fd = -1;
    if (cel__dash_http_static_path(req->path + pl, rel, sizeof rel) != CEL_OK) {
        cel__dash_http_error(resp, 403, "forbidden path");
        return true;
    }
    fd = open_inside(s->static_root, rel, &st);
    if (fd < 0) {
        cel__dash_http_error(resp, 404, "not found");
        return true;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    cel__dash_http_add_header(resp, "ETag", etag);
    cel__dash_http_add_header(resp, "Cache-Control", "no-cache");
    const char *inm = cel__dash_http_header(req, "If-None-Match");
    if (inm && etag_matches(inm, etag)) {
        close(fd);
        resp->status = 304;
        return true;
    }
    size_t size = (size_t)st.st_size;
    char *data = malloc(size + 1);
    size_t got = 0;
    while (data && got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!data || got != size || cel__dash_http_set_body(resp, content_type(rel), data, size))
        cel__dash_http_error(resp, 500, "cannot read the file");
    else
        resp->status = 200;
    free(data);
    return true;
}
