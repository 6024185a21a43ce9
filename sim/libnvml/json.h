/* Minimal JSON reader for the simulator's machine fixtures (RFC 8259 subset: no \u surrogates
 * beyond the BMP). A parsed document is a tree of simjson nodes owned by one arena. */
#ifndef GPU_SIM_JSON_H
#define GPU_SIM_JSON_H

#include <stddef.h>

typedef enum { SJ_NULL, SJ_BOOL, SJ_NUM, SJ_STR, SJ_ARR, SJ_OBJ } simjson_type;

typedef struct simjson {
    simjson_type type;
    double num;            /* SJ_NUM, SJ_BOOL (0/1) */
    char *str;             /* SJ_STR; also the key of an object member */
    char *key;             /* member name when the parent is an object */
    struct simjson *child; /* first element / member */
    struct simjson *next;  /* next sibling */
    size_t len;            /* number of children */
} simjson;

/* Parse text; returns NULL and fills err (if given) on failure. Free with simjson_free. */
simjson *simjson_parse(const char *text, char *err, size_t errlen);
simjson *simjson_parse_file(const char *path, char *err, size_t errlen);
void simjson_free(simjson *root);

simjson *simjson_get(const simjson *obj, const char *key);   /* NULL if absent or not an object */
simjson *simjson_at(const simjson *arr, size_t index);       /* NULL if out of range */
double simjson_num(const simjson *node, double fallback);
long long simjson_int(const simjson *node, long long fallback);
int simjson_bool(const simjson *node, int fallback);
const char *simjson_str(const simjson *node, const char *fallback);

/* Path helpers: simjson_path(obj, "temperature.slowdown_c") */
simjson *simjson_path(const simjson *obj, const char *dotted);

#endif
