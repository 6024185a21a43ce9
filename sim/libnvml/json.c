/* Minimal JSON reader; see json.h. */
#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *start;
    char *err;
    size_t errlen;
    int depth;
} parser;

static void fail(parser *ps, const char *what)
{
    if (ps->err && ps->errlen && ps->err[0] == '\0')
        snprintf(ps->err, ps->errlen, "%s at offset %ld", what, (long)(ps->p - ps->start));
}

static void skip_ws(parser *ps)
{
    while (*ps->p && isspace((unsigned char)*ps->p))
        ps->p++;
}

static simjson *node_new(simjson_type type)
{
    simjson *n = calloc(1, sizeof(*n));
    if (n)
        n->type = type;
    return n;
}

static simjson *parse_value(parser *ps);

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *parse_string_raw(parser *ps)
{
    size_t cap = 32, len = 0;
    char *out;
    if (*ps->p != '"') {
        fail(ps, "expected string");
        return NULL;
    }
    ps->p++;
    out = malloc(cap);
    if (!out)
        return NULL;
    while (*ps->p && *ps->p != '"') {
        char c = *ps->p++;
        char buf[4];
        size_t n = 1;
        if (c == '\\') {
            char e = *ps->p++;
            switch (e) {
            case '"': buf[0] = '"'; break;
            case '\\': buf[0] = '\\'; break;
            case '/': buf[0] = '/'; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                int i, cp = 0;
                for (i = 0; i < 4; i++) {
                    int h = hexval(ps->p[i]);
                    if (h < 0) {
                        fail(ps, "bad \\u escape");
                        free(out);
                        return NULL;
                    }
                    cp = cp * 16 + h;
                }
                ps->p += 4;
                if (cp < 0x80) {
                    buf[0] = (char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (char)(0xC0 | (cp >> 6));
                    buf[1] = (char)(0x80 | (cp & 0x3F));
                    n = 2;
                } else {
                    buf[0] = (char)(0xE0 | (cp >> 12));
                    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[2] = (char)(0x80 | (cp & 0x3F));
                    n = 3;
                }
                break;
            }
            default:
                fail(ps, "bad escape");
                free(out);
                return NULL;
            }
        } else {
            buf[0] = c;
        }
        if (len + n + 1 > cap) {
            char *grown;
            cap = (len + n + 1) * 2;
            grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, buf, n);
        len += n;
    }
    if (*ps->p != '"') {
        fail(ps, "unterminated string");
        free(out);
        return NULL;
    }
    ps->p++;
    out[len] = '\0';
    return out;
}

static simjson *parse_container(parser *ps, int is_obj)
{
    simjson *node = node_new(is_obj ? SJ_OBJ : SJ_ARR);
    simjson **tail;
    char close = is_obj ? '}' : ']';
    if (!node)
        return NULL;
    if (++ps->depth > 64) {
        fail(ps, "nesting too deep");
        free(node);
        return NULL;
    }
    tail = &node->child;
    ps->p++;
    skip_ws(ps);
    if (*ps->p == close) {
        ps->p++;
        ps->depth--;
        return node;
    }
    for (;;) {
        char *key = NULL;
        simjson *child;
        skip_ws(ps);
        if (is_obj) {
            key = parse_string_raw(ps);
            if (!key)
                goto bad;
            skip_ws(ps);
            if (*ps->p != ':') {
                free(key);
                fail(ps, "expected ':'");
                goto bad;
            }
            ps->p++;
        }
        child = parse_value(ps);
        if (!child) {
            free(key);
            goto bad;
        }
        child->key = key;
        *tail = child;
        tail = &child->next;
        node->len++;
        skip_ws(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            ps->depth--;
            return node;
        }
        fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto bad;
    }
bad:
    simjson_free(node);
    return NULL;
}

static simjson *parse_value(parser *ps)
{
    simjson *node;
    skip_ws(ps);
    switch (*ps->p) {
    case '{':
        return parse_container(ps, 1);
    case '[':
        return parse_container(ps, 0);
    case '"': {
        char *s = parse_string_raw(ps);
        if (!s)
            return NULL;
        node = node_new(SJ_STR);
        if (!node) {
            free(s);
            return NULL;
        }
        node->str = s;
        return node;
    }
    case 't':
        if (strncmp(ps->p, "true", 4) == 0) {
            ps->p += 4;
            node = node_new(SJ_BOOL);
            if (node)
                node->num = 1;
            return node;
        }
        break;
    case 'f':
        if (strncmp(ps->p, "false", 5) == 0) {
            ps->p += 5;
            return node_new(SJ_BOOL);
        }
        break;
    case 'n':
        if (strncmp(ps->p, "null", 4) == 0) {
            ps->p += 4;
            return node_new(SJ_NULL);
        }
        break;
    default:
        if (*ps->p == '-' || isdigit((unsigned char)*ps->p)) {
            char *end;
            double v = strtod(ps->p, &end);
            if (end == ps->p)
                break;
            ps->p = end;
            node = node_new(SJ_NUM);
            if (node)
                node->num = v;
            return node;
        }
    }
    fail(ps, "unexpected character");
    return NULL;
}

simjson *simjson_parse(const char *text, char *err, size_t errlen)
{
    parser ps;
    simjson *root;
    ps.p = ps.start = text;
    ps.err = err;
    ps.errlen = errlen;
    ps.depth = 0;
    if (err && errlen)
        err[0] = '\0';
    root = parse_value(&ps);
    if (!root)
        return NULL;
    skip_ws(&ps);
    if (*ps.p) {
        fail(&ps, "trailing characters");
        simjson_free(root);
        return NULL;
    }
    return root;
}

simjson *simjson_parse_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    long size;
    char *buf;
    simjson *root;
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        if (err && errlen)
            snprintf(err, errlen, "short read on %s", path);
        return NULL;
    }
    buf[size] = '\0';
    fclose(f);
    root = simjson_parse(buf, err, errlen);
    free(buf);
    return root;
}

void simjson_free(simjson *node)
{
    while (node) {
        simjson *next = node->next;
        simjson_free(node->child);
        free(node->str);
        free(node->key);
        free(node);
        node = next;
    }
}

simjson *simjson_get(const simjson *obj, const char *key)
{
    simjson *c;
    if (!obj || obj->type != SJ_OBJ)
        return NULL;
    for (c = obj->child; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

simjson *simjson_at(const simjson *arr, size_t index)
{
    simjson *c;
    if (!arr || (arr->type != SJ_ARR && arr->type != SJ_OBJ))
        return NULL;
    for (c = arr->child; c && index; c = c->next)
        index--;
    return c;
}

double simjson_num(const simjson *node, double fallback)
{
    if (!node || (node->type != SJ_NUM && node->type != SJ_BOOL))
        return fallback;
    return node->num;
}

long long simjson_int(const simjson *node, long long fallback)
{
    if (!node || (node->type != SJ_NUM && node->type != SJ_BOOL))
        return fallback;
    return (long long)node->num;
}

int simjson_bool(const simjson *node, int fallback)
{
    if (!node)
        return fallback;
    if (node->type == SJ_BOOL || node->type == SJ_NUM)
        return node->num != 0;
    if (node->type == SJ_NULL)
        return 0;
    return fallback;
}

const char *simjson_str(const simjson *node, const char *fallback)
{
    if (!node || node->type != SJ_STR)
        return fallback;
    return node->str;
}

simjson *simjson_path(const simjson *obj, const char *dotted)
{
    char part[128];
    const char *p = dotted;
    const simjson *cur = obj;
    while (cur && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = simjson_get(cur, part);
        p += n;
        if (*p == '.')
            p++;
    }
    return (simjson *)cur;
}
