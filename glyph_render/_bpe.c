/* glyph_render._bpe: an exact cl100k_base token counter in C (optional; text_tokens.py falls
 * back to tiktoken).
 *
 * tiktoken's cost for one document is mostly fixed: building its CoreBPE (~0.1 s) before the
 * first count. Here the ranks come from a compact file (an open-addressing hash table, ready
 * to use once read) and the count is two steps, both as tiktoken does them:
 *
 * 1. pre-tokenisation by cl100k's pattern (PATTERN below), written out as the matcher it is:
 *    the alternatives are tried in order at each position, with the regex's possessive and
 *    backtracking quantifiers resolved by hand (see next_piece);
 * 2. per piece: the piece itself if it is a token, else byte-pair merging, lowest rank first
 *    and leftmost on ties.
 *
 * The character classes (\p{L}, \p{N}, \s) come from _bpe_tables.h (scripts/gen_bpe_tables.py).
 * A code point whose class the tables cannot vouch for (unassigned in the newest Unicode, or a
 * class that changed between the versions tiktoken may have been built with, or a surrogate)
 * makes count() return None, and the caller counts that text with tiktoken itself.
 *
 * The text is read from the str's own buffer with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bpe_tables.h"

/* The pattern implemented below: tiktoken's cl100k_base pat_str, character for character. */
static const char PATTERN[] =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+|"
    " ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

#define FORMAT 2
#define HEADER 48
#define NO_RANK UINT32_MAX
static const char MAGIC[8] = {'G', 'R', 'B', 'P', 'E', 't', 'b', '\n'};

/* ---- character classes ------------------------------------------------------------------- */

enum { T_OTHER = 0, T_LETTER = 1, T_NUMBER = 2, T_SPACE = 3, T_UNSURE = 4 };
/* what the matcher needs per character: the class, with the characters the pattern names */
enum { K_P = 0, K_L, K_N, K_WS, K_SP, K_NL, K_AP };

static inline int table_class(Py_UCS4 c) {
    if (c >= 0x110000) return T_UNSURE;
    return bpe_blocks[bpe_block_index[c >> BPE_BLOCK_SHIFT]][c & ((1u << BPE_BLOCK_SHIFT) - 1)];
}

/* Index of the first character the tables cannot vouch for, or n. One loop per string kind:
 * PyUnicode_READ's switch per character would cost more than the lookup. */
static Py_ssize_t first_unsure(int kind, const void *data, Py_ssize_t n) {
#define SCAN(T)                                                    \
    do {                                                           \
        const T *p = (const T *)data;                              \
        for (Py_ssize_t i = 0; i < n; i++)                         \
            if (p[i] >= 0x80 && table_class(p[i]) == T_UNSURE) return i; \
    } while (0)
    if (kind == PyUnicode_1BYTE_KIND) SCAN(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND) SCAN(Py_UCS2);
    else SCAN(Py_UCS4);
#undef SCAN
    return n;
}

/* K_* of the ASCII characters (from the tables, plus the characters the pattern names) */
static uint8_t ascii_kind[128];

static void init_ascii_kind(void) {
    static const uint8_t of_class[4] = {K_P, K_L, K_N, K_WS};
    for (int c = 0; c < 128; c++) ascii_kind[c] = of_class[table_class((Py_UCS4)c)];
    ascii_kind['\r'] = ascii_kind['\n'] = K_NL;
    ascii_kind[' '] = K_SP;
    ascii_kind['\''] = K_AP;
}

#define IS_WS(k) ((k) == K_WS || (k) == K_SP || (k) == K_NL)
#define IS_P(k) ((k) == K_P || (k) == K_AP)

/* ---- hashing ----------------------------------------------------------------------------- */

static inline uint64_t hash_bytes(const uint8_t *s, size_t n) {
    /* word at a time (most keys are under 8 bytes), then a murmur3-style finish so the low
     * bits, which pick the slot, depend on every byte */
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h ^= w;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t checksum(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 31);
}

/* ---- the rank table ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the bytes the table lives in (kept alive) */
    uint8_t *copy;   /* or a malloc'd aligned copy */
    uint32_t n, mask;
    const uint32_t *slots, *offs, *ranks;
    const uint8_t *blob;
} Ranks;

static inline uint32_t lookup(const Ranks *r, const uint8_t *s, size_t len) {
    uint32_t i = (uint32_t)hash_bytes(s, len) & r->mask;
    for (;;) {
        uint32_t e = r->slots[i];
        if (!e) return NO_RANK;
        e--;
        uint32_t a = r->offs[e], b = r->offs[e + 1];
        if (b - a == len && memcmp(r->blob + a, s, len) == 0) return r->ranks[e];
        i = (i + 1) & r->mask;
    }
}

/* ---- pre-tokenisation -------------------------------------------------------------------- */

typedef struct {
    const uint8_t *kind; /* K_* per character */
    int ukind;           /* PyUnicode kind of the text */
    const void *data;
    Py_ssize_t n;
} Text;

static inline Py_UCS4 ch(const Text *t, Py_ssize_t i) { return PyUnicode_READ(t->ukind, t->data, i); }

/* End of the piece that starts at i: the pattern's alternatives in order. */
static Py_ssize_t next_piece(const Text *t, Py_ssize_t i) {
    const uint8_t *k = t->kind;
    const Py_ssize_t n = t->n;
    const int c = k[i];
    Py_ssize_t j;
    /* '(?i:[sdmt]|ll|ve|re)  (case folding adds U+017F LONG S to s) */
    if (c == K_AP && i + 1 < n) {
        Py_UCS4 a = ch(t, i + 1);
        if (a < 128) a |= 0x20;
        if (a == 's' || a == 'd' || a == 'm' || a == 't' || a == 0x17F) return i + 2;
        if (i + 2 < n) {
            Py_UCS4 b = ch(t, i + 2);
            if (b < 128) b |= 0x20;
            if ((a == 'l' && b == 'l') || ((a == 'v' || a == 'r') && b == 'e')) return i + 3;
        }
    }
    /* [^\r\n\p{L}\p{N}]?+\p{L}++ */
    if (c == K_L || (c != K_N && c != K_NL && i + 1 < n && k[i + 1] == K_L)) {
        j = i + 1;
        while (j < n && k[j] == K_L) j++;
        return j;
    }
    /* \p{N}{1,3}+ */
    if (c == K_N) {
        j = i + 1;
        while (j < n && j < i + 3 && k[j] == K_N) j++;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]++[\r\n]*+  */
    j = (c == K_SP && i + 1 < n && IS_P(k[i + 1])) ? i + 1 : i;
    if (IS_P(k[j])) {
        j++;
        while (j < n && IS_P(k[j])) j++;
        while (j < n && k[j] == K_NL) j++;
        return j;
    }
    /* c is white space from here on */
    j = i + 1;
    while (j < n && IS_WS(k[j])) j++;
    if (j == n) return n; /* \s++$ */
    for (Py_ssize_t m = j - 1; m >= i; m--)
        if (k[m] == K_NL) return m + 1; /* \s*[\r\n] */
    if (j - i >= 2) return j - 1;       /* \s+(?!\S) */
    return i + 1;                       /* \s */
}

/* ---- byte-pair merging ------------------------------------------------------------------- */

typedef struct {
    size_t *start;   /* part starts (small merge) */
    uint32_t *rank;
    size_t cap;
    /* large merge */
    size_t *next, *prev;
    uint64_t *heap_key; /* the rank; ties go to the lower heap_pos */
    size_t *heap_pos, *heap_end;
    size_t hcap;
} Work;

static int work_reserve(Work *w, size_t m) {
    if (m + 2 <= w->cap) return 0;
    size_t cap = m + 2 < 256 ? 256 : m + 2;
    size_t *s = realloc(w->start, cap * sizeof *s);
    if (!s) return -1;
    w->start = s;
    uint32_t *r = realloc(w->rank, cap * sizeof *r);
    if (!r) return -1;
    w->rank = r;
    w->cap = cap;
    return 0;
}

typedef struct {
    uint32_t *tok; /* tokens out (NULL: count only) */
    size_t len, cap;
    size_t count;
} Out;

static inline int out_push(Out *o, uint32_t v) {
    o->count++;
    if (!o->cap) return 0; /* counting only */
    if (o->len == o->cap) {
        size_t cap = o->cap * 2;
        uint32_t *t = realloc(o->tok, cap * sizeof *t);
        if (!t) return -1;
        o->tok = t;
        o->cap = cap;
    }
    o->tok[o->len++] = v;
    return 0;
}

/* tiktoken's _byte_pair_merge, as written there: a vector of parts, the minimum found by a
 * scan (leftmost on ties), the merged part's neighbours re-ranked. Quadratic, so only for
 * short pieces. */
static int merge_small(const Ranks *r, Work *w, const uint8_t *p, size_t m, Out *o) {
    if (work_reserve(w, m) < 0) return -1;
    size_t *st = w->start;
    uint32_t *rk = w->rank;
    size_t cnt = m + 1;
    for (size_t i = 0; i + 1 < m; i++) {
        st[i] = i;
        rk[i] = lookup(r, p + i, 2);
    }
    st[m - 1] = m - 1;
    rk[m - 1] = NO_RANK;
    st[m] = m;
    rk[m] = NO_RANK;
    for (;;) {
        uint32_t best = NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < cnt; i++)
            if (rk[i] < best) {
                best = rk[i];
                bi = i;
            }
        if (best == NO_RANK) break;
        if (bi > 0)
            rk[bi - 1] = bi + 2 < cnt ? lookup(r, p + st[bi - 1], st[bi + 2] - st[bi - 1]) : NO_RANK;
        rk[bi] = bi + 3 < cnt ? lookup(r, p + st[bi], st[bi + 3] - st[bi]) : NO_RANK;
        memmove(st + bi + 1, st + bi + 2, (cnt - bi - 2) * sizeof *st);
        memmove(rk + bi + 1, rk + bi + 2, (cnt - bi - 2) * sizeof *rk);
        cnt--;
    }
    for (size_t i = 0; i + 1 < cnt; i++) {
        uint32_t t = o->cap ? lookup(r, p + st[i], st[i + 1] - st[i]) : 0;
        if (out_push(o, t) < 0) return -1;
    }
    return 0;
}

/* The same merge order (lowest rank, then leftmost) with a binary heap and a linked list of
 * parts, for long pieces. An entry is current while its part is alive and still ends where
 * it did when pushed (a merge moves the end of every pair it touches). */
static inline int heap_less(const Work *w, size_t a, size_t b) {
    return w->heap_key[a] < w->heap_key[b] ||
           (w->heap_key[a] == w->heap_key[b] && w->heap_pos[a] < w->heap_pos[b]);
}

static inline void heap_swap(Work *w, size_t a, size_t b) {
    uint64_t k = w->heap_key[a];
    w->heap_key[a] = w->heap_key[b];
    w->heap_key[b] = k;
    size_t t = w->heap_pos[a];
    w->heap_pos[a] = w->heap_pos[b];
    w->heap_pos[b] = t;
    t = w->heap_end[a];
    w->heap_end[a] = w->heap_end[b];
    w->heap_end[b] = t;
}

static void heap_push(Work *w, size_t *len, uint32_t rank, size_t pos, size_t end) {
    size_t i = (*len)++;
    w->heap_key[i] = rank;
    w->heap_pos[i] = pos;
    w->heap_end[i] = end;
    while (i > 0 && heap_less(w, i, (i - 1) / 2)) {
        heap_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_pop(Work *w, size_t *len) {
    heap_swap(w, 0, --(*len));
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, s = i;
        if (l < *len && heap_less(w, l, s)) s = l;
        if (l + 1 < *len && heap_less(w, l + 1, s)) s = l + 1;
        if (s == i) break;
        heap_swap(w, i, s);
        i = s;
    }
}

static int merge_large(const Ranks *r, Work *w, const uint8_t *p, size_t m, Out *o) {
    size_t hcap = 3 * m + 4;
    if (hcap > w->hcap) {
        free(w->next); free(w->prev); free(w->heap_key); free(w->heap_pos); free(w->heap_end);
        w->next = malloc((m + 1) * sizeof(size_t)); /* a later m' has 3m' + 4 <= hcap */
        w->prev = malloc((m + 1) * sizeof(size_t));
        w->heap_key = malloc(hcap * sizeof(uint64_t));
        w->heap_pos = malloc(hcap * sizeof(size_t));
        w->heap_end = malloc(hcap * sizeof(size_t));
        w->hcap = hcap;
        if (!w->next || !w->prev || !w->heap_key || !w->heap_pos || !w->heap_end) {
            w->hcap = 0;
            return -1;
        }
    }
    size_t *next = w->next, *prev = w->prev, hl = 0;
    for (size_t i = 0; i <= m; i++) {
        next[i] = i + 1;
        prev[i] = i ? i - 1 : SIZE_MAX;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t rk = lookup(r, p + i, 2);
        if (rk != NO_RANK) heap_push(w, &hl, rk, i, i + 2);
    }
    while (hl) {
        size_t a = w->heap_pos[0], end = w->heap_end[0];
        heap_pop(w, &hl);
        /* a part is alive when its successor's prev points back at it */
        size_t b = next[a];
        if (b >= m || prev[b] != a || next[b] != end) continue;
        /* merge a and b */
        next[a] = end;
        prev[end] = a;
        if (end < m) {
            uint32_t rk = lookup(r, p + a, next[end] - a);
            if (rk != NO_RANK) heap_push(w, &hl, rk, a, next[end]);
        }
        if (a > 0) {
            size_t q = prev[a];
            uint32_t rk = lookup(r, p + q, end - q);
            if (rk != NO_RANK) heap_push(w, &hl, rk, q, end);
        }
    }
    for (size_t a = 0; a < m; a = next[a]) {
        uint32_t t = o->cap ? lookup(r, p + a, next[a] - a) : 0;
        if (out_push(o, t) < 0) return -1;
    }
    return 0;
}

#define SMALL_PIECE 128

/* ---- the count --------------------------------------------------------------------------- */

/* 0: done; 1: a character the tables cannot vouch for; -1: out of memory. */
static int tokenize(const Ranks *r, PyObject *text, Out *o) {
    Text t;
    t.n = PyUnicode_GET_LENGTH(text);
    t.ukind = PyUnicode_KIND(text);
    t.data = PyUnicode_DATA(text);
    int ascii = PyUnicode_IS_ASCII(text);
    if (!ascii && first_unsure(t.ukind, t.data, t.n) < t.n) return 1;
    if (t.n >= ((Py_ssize_t)1 << 30)) return 1; /* byte offsets fit 32 bits below this */
    int rc = -1;
    uint8_t *kind = NULL, *utf8 = NULL;
    uint32_t *boff = NULL; /* byte offset of each character in utf8 */
    Work w;
    memset(&w, 0, sizeof w);
    kind = malloc(t.n ? (size_t)t.n : 1);
    if (!kind) goto done;
    if (!ascii) {
        boff = malloc(((size_t)t.n + 1) * sizeof *boff);
        utf8 = malloc((size_t)t.n * 4 + 1);
        if (!boff || !utf8) goto done;
    }
    uint32_t nb = 0;
    for (Py_ssize_t i = 0; i < t.n; i++) {
        Py_UCS4 c = ch(&t, i);
        int k;
        if (c < 128) k = ascii_kind[c];
        else {
            switch (table_class(c)) {
            case T_LETTER: k = K_L; break;
            case T_NUMBER: k = K_N; break;
            case T_SPACE: k = K_WS; break;
            case T_OTHER: k = K_P; break;
            default: rc = 1; goto done;
            }
        }
        kind[i] = (uint8_t)k;
        if (!ascii) {
            boff[i] = nb;
            if (c < 0x80) utf8[nb++] = (uint8_t)c;
            else if (c < 0x800) {
                utf8[nb++] = (uint8_t)(0xC0 | (c >> 6));
                utf8[nb++] = (uint8_t)(0x80 | (c & 0x3F));
            } else if (c < 0x10000) {
                utf8[nb++] = (uint8_t)(0xE0 | (c >> 12));
                utf8[nb++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
                utf8[nb++] = (uint8_t)(0x80 | (c & 0x3F));
            } else {
                utf8[nb++] = (uint8_t)(0xF0 | (c >> 18));
                utf8[nb++] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
                utf8[nb++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
                utf8[nb++] = (uint8_t)(0x80 | (c & 0x3F));
            }
        }
    }
    if (!ascii) boff[t.n] = nb;
    t.kind = kind;
    const uint8_t *bytes = ascii ? (const uint8_t *)t.data : utf8;
    for (Py_ssize_t i = 0; i < t.n;) {
        Py_ssize_t j = next_piece(&t, i);
        size_t a = ascii ? (size_t)i : boff[i], b = ascii ? (size_t)j : boff[j];
        const uint8_t *p = bytes + a;
        size_t m = b - a;
        uint32_t whole = lookup(r, p, m);
        if (whole != NO_RANK) {
            if (out_push(o, whole) < 0) goto done;
        } else if (m == 1) {
            goto done; /* cannot happen: every byte is a token (checked when the table is built) */
        } else if (m <= SMALL_PIECE) {
            if (merge_small(r, &w, p, m, o) < 0) goto done;
        } else {
            if (merge_large(r, &w, p, m, o) < 0) goto done;
        }
        i = j;
    }
    rc = 0;
done:
    free(kind);
    free(boff);
    free(utf8);
    free(w.start); free(w.rank);
    free(w.next); free(w.prev); free(w.heap_key); free(w.heap_pos); free(w.heap_end);
    return rc;
}

static int check_text(PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "text must be str, got %s", Py_TYPE(text)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return -1;
#endif
    return 0;
}

PyDoc_STRVAR(count_doc,
"count(text) -> int | None\n\n"
"cl100k_base tokens in text, as len(encoding.encode_ordinary(text)); None when text holds a\n"
"character the class tables cannot vouch for (count it with tiktoken).");

static PyObject *Ranks_count(Ranks *self, PyObject *text) {
    if (check_text(text) < 0) return NULL;
    Out o = {NULL, 0, 0, 0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tokenize(self, text, &o);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    if (rc > 0) Py_RETURN_NONE;
    return PyLong_FromSize_t(o.count);
}

PyDoc_STRVAR(encode_doc,
"encode(text) -> list[int] | None\n\n"
"The tokens of encoding.encode_ordinary(text), or None (as count).");

static PyObject *Ranks_encode(Ranks *self, PyObject *text) {
    if (check_text(text) < 0) return NULL;
    Out o = {NULL, 0, 64, 0};
    o.tok = malloc(o.cap * sizeof *o.tok);
    if (!o.tok) return PyErr_NoMemory();
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tokenize(self, text, &o);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        free(o.tok);
        if (rc < 0) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    PyObject *list = PyList_New((Py_ssize_t)o.len);
    for (size_t i = 0; list && i < o.len; i++) {
        PyObject *v = PyLong_FromUnsignedLong(o.tok[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    free(o.tok);
    return list;
}

PyDoc_STRVAR(covers_doc,
"covers(text) -> bool\n\nWhether every character of text has a class the tables vouch for\n"
"(else count() and encode() return None).");

static PyObject *covers(PyObject *Py_UNUSED(mod), PyObject *text) {
    if (check_text(text) < 0) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), at = n;
    if (!PyUnicode_IS_ASCII(text)) {
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        Py_BEGIN_ALLOW_THREADS
        at = first_unsure(kind, data, n);
        Py_END_ALLOW_THREADS
    }
    return PyBool_FromLong(at == n);
}

/* ---- loading and building the table file ------------------------------------------------- */

static uint64_t pattern_hash(void) {
    return hash_bytes((const uint8_t *)PATTERN, sizeof PATTERN - 1);
}

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Whether the table after the header is whole: checksum, offsets rising to the blob's end,
 * every slot naming an entry (so no lookup reads outside the data). No Python calls. */
static int table_ok(const uint8_t *base, size_t len, uint32_t n, uint32_t bits,
                    uint32_t blob_len, uint64_t sum) {
    if (checksum(base + HEADER, len - HEADER) != sum) return 0;
    const uint32_t *slots = (const uint32_t *)(base + HEADER), *offs = slots + (1u << bits);
    if (offs[0] != 0 || offs[n] != blob_len) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (offs[i + 1] <= offs[i]) return 0;
    for (uint32_t i = 0; i < (1u << bits); i++)
        if (slots[i] > n) return 0;
    return 1;
}

static PyObject *Ranks_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"data", NULL};
    PyObject *obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Ranks", kwlist, &obj)) return NULL;
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "data must be bytes, got %s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(obj);
    size_t len = (size_t)PyBytes_GET_SIZE(obj);
    const char *bad = NULL;
    uint32_t format = 0, n = 0, bits = 0, blob_len = 0;
    if (len < HEADER || memcmp(d, MAGIC, 8) != 0) bad = "bad magic";
    else {
        format = rd32(d + 8), n = rd32(d + 12), bits = rd32(d + 16), blob_len = rd32(d + 20);
        if (format != FORMAT) bad = "other format";
        else if (rd64(d + 24) != pattern_hash()) bad = "other pattern";
        else if (bits < 1 || bits > 30 || n == 0 || n >= (1u << bits)) bad = "bad sizes";
        else if ((uint64_t)HEADER + 4ull * (1ull << bits) + 8ull * n + 4 + blob_len != len)
            bad = "bad length";
    }
    if (bad) {
        PyErr_Format(PyExc_ValueError, "not a cl100k rank table: %s", bad);
        return NULL;
    }
    uint8_t *copy = NULL;
    const uint8_t *base = d;
    if (((uintptr_t)d) & 3) { /* unaligned bytes object: work on an aligned copy */
        copy = malloc(len);
        if (!copy) return PyErr_NoMemory();
        memcpy(copy, d, len);
        base = copy;
    }
    int ok;
    uint64_t sum = rd64(d + 32);
    Py_BEGIN_ALLOW_THREADS /* ~1 ms for cl100k: let a renderer run meanwhile */
    ok = table_ok(base, len, n, bits, blob_len, sum);
    Py_END_ALLOW_THREADS
    if (!ok) {
        free(copy);
        PyErr_SetString(PyExc_ValueError, "not a cl100k rank table: damaged (checksum or offsets)");
        return NULL;
    }
    Ranks *self = (Ranks *)type->tp_alloc(type, 0);
    if (!self) {
        free(copy);
        return NULL;
    }
    Py_INCREF(obj);
    self->owner = obj;
    self->copy = copy;
    self->n = n;
    self->mask = (1u << bits) - 1;
    self->slots = (const uint32_t *)(base + HEADER);
    self->offs = self->slots + (1u << bits);
    self->ranks = self->offs + n + 1;
    self->blob = (const uint8_t *)(self->ranks + n);
    return (PyObject *)self;
}

static void Ranks_dealloc(Ranks *self) {
    Py_XDECREF(self->owner);
    free(self->copy);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Ranks_len(Ranks *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromUnsignedLong(self->n);
}

static PyMethodDef Ranks_methods[] = {
    {"count", (PyCFunction)Ranks_count, METH_O, count_doc},
    {"encode", (PyCFunction)Ranks_encode, METH_O, encode_doc},
    {"tokens", (PyCFunction)Ranks_len, METH_NOARGS, "Number of tokens in the table."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RanksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "glyph_render._bpe.Ranks",
    .tp_basicsize = sizeof(Ranks),
    .tp_dealloc = (destructor)Ranks_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ranks(data: bytes): a rank table file's contents (from build()), checked.",
    .tp_methods = Ranks_methods,
    .tp_new = Ranks_new,
};

PyDoc_STRVAR(build_doc,
"build(ranks: dict[bytes, int], pattern: str) -> bytes\n\n"
"The rank table file for tiktoken's mergeable ranks. ValueError unless pattern is PATTERN,\n"
"every single byte is a token and the ranks are distinct and below 2**32 - 1.");

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static PyObject *build(PyObject *Py_UNUSED(mod), PyObject *args) {
    PyObject *dict;
    const char *pat;
    Py_ssize_t pat_len;
    if (!PyArg_ParseTuple(args, "O!s#:build", &PyDict_Type, &dict, &pat, &pat_len)) return NULL;
    if ((size_t)pat_len != sizeof PATTERN - 1 || memcmp(pat, PATTERN, sizeof PATTERN - 1) != 0) {
        PyErr_SetString(PyExc_ValueError, "build: not the pattern this counter implements");
        return NULL;
    }
    Py_ssize_t n = PyDict_Size(dict);
    if (n < 256 || n > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "build: between 256 and 2**24 ranks expected");
        return NULL;
    }
    uint32_t bits = 1;
    while ((1ull << bits) < 2ull * (uint64_t)n) bits++;
    uint64_t blob_len = 0;
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &val)) {
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) == 0) {
            PyErr_SetString(PyExc_ValueError, "build: tokens must be non-empty bytes");
            return NULL;
        }
        blob_len += (uint64_t)PyBytes_GET_SIZE(key);
    }
    if (blob_len > UINT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "build: tokens too long");
        return NULL;
    }
    uint64_t size = HEADER + 4ull * (1ull << bits) + 4ull * ((uint64_t)n + 1) + 4ull * n + blob_len;
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!res) return NULL;
    uint8_t *d = (uint8_t *)PyBytes_AS_STRING(res);
    memset(d, 0, (size_t)size);
    uint8_t *slots = d + HEADER, *offs = slots + 4ull * (1ull << bits), *ranks = offs + 4ull * (n + 1),
            *blob = ranks + 4ull * n;
    uint32_t mask = (1u << bits) - 1, off = 0, e = 0;
    pos = 0;
    while (PyDict_Next(dict, &pos, &key, &val)) {
        unsigned long long rk = PyLong_AsUnsignedLongLong(val);
        if (rk == (unsigned long long)-1 && PyErr_Occurred()) goto fail;
        if (rk >= NO_RANK) {
            PyErr_SetString(PyExc_ValueError, "build: rank out of range");
            goto fail;
        }
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(key);
        size_t len = (size_t)PyBytes_GET_SIZE(key);
        uint32_t i = (uint32_t)hash_bytes(s, len) & mask;
        while (rd32(slots + 4ull * i)) i = (i + 1) & mask;
        wr32(slots + 4ull * i, e + 1);
        wr32(offs + 4ull * e, off);
        wr32(ranks + 4ull * e, (uint32_t)rk);
        memcpy(blob + off, s, len);
        off += (uint32_t)len;
        e++;
    }
    wr32(offs + 4ull * e, off);
    memcpy(d, MAGIC, 8);
    wr32(d + 8, FORMAT);
    wr32(d + 12, (uint32_t)n);
    wr32(d + 16, bits);
    wr32(d + 20, (uint32_t)blob_len);
    wr64(d + 24, pattern_hash());
    wr64(d + 32, checksum(d + HEADER, (size_t)size - HEADER));
    /* every single byte must be a token (a one-byte piece is never merged) */
    {
        Ranks probe;
        probe.n = (uint32_t)n;
        probe.mask = mask;
        probe.slots = NULL;
        const uint8_t *base = d;
        uint32_t *tmp = NULL;
        if (((uintptr_t)base) & 3) {
            tmp = malloc((size_t)size);
            if (!tmp) {
                PyErr_NoMemory();
                goto fail;
            }
            memcpy(tmp, d, (size_t)size);
            base = (const uint8_t *)tmp;
        }
        probe.slots = (const uint32_t *)(base + HEADER);
        probe.offs = probe.slots + (1u << bits);
        probe.ranks = probe.offs + n + 1;
        probe.blob = (const uint8_t *)(probe.ranks + n);
        int missing = 0;
        for (int b = 0; b < 256 && !missing; b++) {
            uint8_t c = (uint8_t)b;
            missing = lookup(&probe, &c, 1) == NO_RANK;
        }
        free(tmp);
        if (missing) {
            PyErr_SetString(PyExc_ValueError, "build: not every byte is a token");
            goto fail;
        }
    }
    return res;
fail:
    Py_DECREF(res);
    return NULL;
}

PyDoc_STRVAR(char_class_doc,
"char_class(cp) -> int\n\n"
"The table's class of a code point: 0 other, 1 letter, 2 number, 3 space, 4 unsure.");

static PyObject *char_class(PyObject *Py_UNUSED(mod), PyObject *arg) {
    long cp = PyLong_AsLong(arg);
    if (cp == -1 && PyErr_Occurred()) return NULL;
    if (cp < 0 || cp > 0x10FFFF) {
        PyErr_Format(PyExc_ValueError, "code point out of range: %ld", cp);
        return NULL;
    }
    return PyLong_FromLong(table_class((Py_UCS4)cp));
}

static PyMethodDef methods[] = {
    {"build", build, METH_VARARGS, build_doc},
    {"char_class", char_class, METH_O, char_class_doc},
    {"covers", covers, METH_O, covers_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "glyph_render._bpe",
    "An exact cl100k_base counter (tiktoken's pattern and byte-pair merge) in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__bpe(void) {
    init_ascii_kind();
    if (PyType_Ready(&RanksType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&RanksType);
    if (PyModule_AddObject(m, "Ranks", (PyObject *)&RanksType) < 0 ||
        PyModule_AddStringConstant(m, "PATTERN", PATTERN) < 0 ||
        PyModule_AddStringConstant(m, "UNICODE_OLD", BPE_UNICODE_OLD) < 0 ||
        PyModule_AddStringConstant(m, "UNICODE_NEW", BPE_UNICODE_NEW) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT", FORMAT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
