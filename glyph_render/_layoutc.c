/* glyph_render._layoutc: the line breaker's hot loops in C (optional; paragraph.py has the
 * Python path, which is the definition).
 *
 * Two functions, each a statement-for-statement port of its Python twin in paragraph.py:
 *
 *   frag_words(frags, cache, width)      -> _frag_words_py(frags, m), or None
 *   break_kind1(words, max_widths, space, m) -> (lines, words_used), as Paragraph._break_kind1
 *
 * Doubles are added and compared in the Python code's order (the build forbids fused
 * multiply-add), word widths come from the Metrics memo (or its width() for a word not seen
 * yet), and the objects handed back (frag words, Runs, Lines) are the Python path's. Where an
 * input is outside what the port handles (an offset map it cannot follow), frag_words returns
 * None and the caller takes the Python path. setup() hands over the classes and the long-word
 * cutter once, at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* piece styles and frag-word kinds, as paragraph.py defines them */
#define S_TEXT 0
#define S_MARKER 1
#define S_BREAK 2
#define K_HS 1
#define K_SPLIT 2
#define K_SPLIT_END 4
#define K_INJECTED 8
#define K_LINEBREAK 16
#define SPACE_SHRINKAGE 0.05

static PyObject *RunType = NULL;  /* paragraph.Run */
static PyObject *LineType = NULL; /* paragraph.Line */
static PyObject *FragType = NULL; /* paragraph.Frag */
static PyObject *CutFn = NULL;    /* paragraph._cut_word: (w, avail, max_widths, lineno, m) -> words */
static PyObject *s_style, *s_text, *s_starts, *s_base, *s_chars, *s_texts, *s_widths, *s_offs,
    *s_pos, *s_stop, *s_empty;

/* ---- small helpers ------------------------------------------------------------------------ */

/* reportlab's _wsc: Python's whitespace less U+00A0, plus U+200B */
static int is_wsc(Py_UCS4 c) {
    if (c == 0xa0) return 0;
    if (c == 0x200b) return 1;
    return Py_UNICODE_ISSPACE(c);
}

static int is_string_ws(Py_UCS4 c) { /* string.whitespace */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c;
}

static int get_long(PyObject *o, long *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static int get_ssize(PyObject *o, Py_ssize_t *out) {
    Py_ssize_t v = PyLong_AsSsize_t(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static int get_double(PyObject *o, double *out) {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* A new reference to the memoised width of ``word``, measuring it through ``width`` if new. */
static PyObject *word_width(PyObject *cache, PyObject *width, PyObject *word) {
    PyObject *w = PyDict_GetItemWithError(cache, word);
    if (w) {
        Py_INCREF(w);
        return w;
    }
    if (PyErr_Occurred()) return NULL;
    return PyObject_CallOneArg(width, word);
}

/* Frag.first(): the source offset of a frag's first character (new reference). */
static PyObject *frag_first(PyObject *f) {
    PyObject *base = PyObject_GetAttr(f, s_base);
    if (!base) return NULL;
    long b;
    if (get_long(base, &b) < 0) {
        Py_DECREF(base);
        return NULL;
    }
    if (b >= 0) return base;
    Py_DECREF(base);
    PyObject *chars = PyObject_GetAttr(f, s_chars);
    if (!chars) return NULL;
    if (chars != Py_None) {
        int t = PyObject_IsTrue(chars);
        if (t < 0) {
            Py_DECREF(chars);
            return NULL;
        }
        if (t) {
            PyObject *r = PySequence_GetItem(chars, 0);
            Py_DECREF(chars);
            return r;
        }
    }
    Py_DECREF(chars);
    PyObject *starts = PyObject_GetAttr(f, s_starts);
    if (!starts) return NULL;
    Py_ssize_t n = PySequence_Size(starts);
    if (n < 0) {
        Py_DECREF(starts);
        return NULL;
    }
    PyObject *r = n ? PySequence_GetItem(starts, 0) : PyLong_FromLong(0);
    Py_DECREF(starts);
    return r;
}

/* (a, b, c) with references stolen; NULL (and the others released) if any is NULL */
static PyObject *tuple3(PyObject *a, PyObject *b, PyObject *c) {
    if (!a || !b || !c) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        return NULL;
    }
    PyObject *t = PyTuple_New(3);
    if (!t) {
        Py_DECREF(a);
        Py_DECREF(b);
        Py_DECREF(c);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    PyTuple_SET_ITEM(t, 2, c);
    return t;
}

/* list.append that steals the item; -1 on failure (item released) */
static int append_steal(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

/* ---- frag_words --------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t a, b; /* a word's span in the frag's text */
} Span;

typedef struct {
    Span *s;
    Py_ssize_t *off;
    Py_ssize_t n, cap;
    int lone; /* no words, yet _piece_words gave one offset (lone_off): an aligned frag's */
    Py_ssize_t lone_off;
} Parts;

static int parts_push(Parts *p, Py_ssize_t a, Py_ssize_t b) {
    if (p->n == p->cap) {
        Py_ssize_t cap = p->cap ? 2 * p->cap : 64;
        Span *s = PyMem_Realloc(p->s, cap * sizeof(Span));
        if (!s) return -1;
        p->s = s;
        Py_ssize_t *o = PyMem_Realloc(p->off, cap * sizeof(Py_ssize_t));
        if (!o) return -1;
        p->off = o;
        p->cap = cap;
    }
    p->s[p->n].a = a;
    p->s[p->n].b = b;
    p->n++;
    return 0;
}

/* rl_split of text[a:len]: reportlab's whitespace if it holds a U+00A0 (empty words at the
 * ends kept, as re.split keeps them), else str.split(). Spans index the whole text. */
static int rl_split(PyObject *text, Py_ssize_t a, Py_ssize_t len, Parts *p) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    int nbsp = 0;
    for (Py_ssize_t i = a; i < len; i++)
        if (PyUnicode_READ(kind, data, i) == 0xa0) {
            nbsp = 1;
            break;
        }
    p->n = 0;
    if (nbsp) {
        Py_ssize_t s = a;
        for (;;) {
            Py_ssize_t j = s;
            while (j < len && !is_wsc(PyUnicode_READ(kind, data, j))) j++;
            if (parts_push(p, s, j) < 0) return -1;
            if (j == len) break;
            while (j < len && is_wsc(PyUnicode_READ(kind, data, j))) j++;
            s = j;
            if (j == len) {
                if (parts_push(p, len, len) < 0) return -1;
                break;
            }
        }
    } else {
        Py_ssize_t i = a;
        while (i < len) {
            while (i < len && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
            if (i == len) break;
            Py_ssize_t j = i;
            while (j < len && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, j))) j++;
            if (parts_push(p, i, j) < 0) return -1;
            i = j;
        }
    }
    return 0;
}

/* _piece_words: each word's source offset. 1 = done, 0 = a case left to Python, -1 = error. */
static int piece_offsets(PyObject *f, PyObject *text, Py_ssize_t a, Py_ssize_t len, Parts *p) {
    PyObject *base_o = PyObject_GetAttr(f, s_base);
    if (!base_o) return -1;
    Py_ssize_t base;
    int r = get_ssize(base_o, &base);
    Py_DECREF(base_o);
    if (r < 0) return -1;
    if (base >= 0) {
        /* pos = base + len(frag.text) - len(text) + len(text) - len(text.lstrip(" ")) */
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        Py_ssize_t lead = 0;
        while (a + lead < len && PyUnicode_READ(kind, data, a + lead) == ' ') lead++;
        Py_ssize_t pos = base + a + lead;
        p->lone = p->n == 0; /* accumulate([], initial=pos) is [pos] */
        p->lone_off = pos;
        for (Py_ssize_t i = 0; i < p->n; i++) {
            p->off[i] = pos;
            pos += (p->s[i].b - p->s[i].a) + 1;
        }
        return 1;
    }
    p->lone = 0;
    PyObject *starts = PyObject_GetAttr(f, s_starts);
    if (!starts) return -1;
    if (!PyList_CheckExact(starts)) {
        Py_DECREF(starts);
        return 0;
    }
    Py_ssize_t ns = PyList_GET_SIZE(starts), real = 0;
    for (Py_ssize_t i = 0; i < p->n; i++) real += p->s[i].b > p->s[i].a;
    Py_ssize_t k = ns - real;
    if (k < 0) { /* Python would index from the end: leave that to it */
        Py_DECREF(starts);
        return 0;
    }
    for (Py_ssize_t i = 0; i < p->n; i++) {
        PyObject *o;
        if (p->s[i].b > p->s[i].a)
            o = PyList_GET_ITEM(starts, k++);
        else
            o = k < ns ? PyList_GET_ITEM(starts, k) : (ns ? PyList_GET_ITEM(starts, ns - 1) : NULL);
        Py_ssize_t v = 0;
        if (o && get_ssize(o, &v) < 0) {
            Py_DECREF(starts);
            return -1;
        }
        p->off[i] = v;
    }
    Py_DECREF(starts);
    return 1;
}

typedef struct {
    PyObject *R;     /* the frag words */
    int last_hs;     /* R[-1] is a Run or has HS */
    PyObject *W;     /* pieces of the word being built, or NULL */
    double n;        /* its width */
    PyObject *cache, *width;
} FW;

static int r_push(FW *st, PyObject *item, int hs) {
    if (append_steal(st->R, item) < 0) return -1;
    st->last_hs = hs;
    return 0;
}

/* R.append((n, W, kind)); W, n = [], 0.0 */
static int close_word(FW *st, long kind) {
    PyObject *t = tuple3(PyFloat_FromDouble(st->n), st->W, PyLong_FromLong(kind));
    st->W = NULL;
    st->n = 0.0;
    return r_push(st, t, kind & K_HS);
}

/* W.append((style, word, off)); n += width(word) */
static int add_piece(FW *st, PyObject *style, PyObject *word, Py_ssize_t off) {
    if (!st->W && !(st->W = PyList_New(0))) return -1;
    PyObject *w = word_width(st->cache, st->width, word);
    if (!w) return -1;
    double d;
    if (get_double(w, &d) < 0) {
        Py_DECREF(w);
        return -1;
    }
    Py_DECREF(w);
    Py_INCREF(style);
    Py_INCREF(word);
    if (append_steal(st->W, tuple3(style, word, PyLong_FromSsize_t(off))) < 0) return -1;
    st->n += d;
    return 0;
}

PyDoc_STRVAR(frag_words_doc,
             "frag_words(frags, cache, width) -> list | None\n\n"
             "_frag_words_py(frags, m) with m's memo and width(); None where the Python path "
             "must answer.");

static PyObject *frag_words(PyObject *self, PyObject *args) {
    PyObject *frags, *cache, *width;
    if (!PyArg_ParseTuple(args, "OO!O:frag_words", &frags, &PyDict_Type, &cache, &width))
        return NULL;
    if (!RunType) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup() was not called");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(frags, "frag_words: frags must be a sequence");
    if (!seq) return NULL;
    FW st = {PyList_New(0), 0, NULL, 0.0, cache, width};
    Parts p = {NULL, NULL, 0, 0, 0, 0};
    PyObject *text = NULL, *style = NULL, *S0 = NULL;
    int fallback = 0;
    if (!st.R) goto error;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    int strip = 1;
    for (Py_ssize_t fi = 0; fi < nf; fi++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, fi);
        style = PyObject_GetAttr(f, s_style);
        if (!style) goto error;
        long st_v;
        if (get_long(style, &st_v) < 0) goto error;
        if (st_v == S_BREAK) {
            if (st.W && close_word(&st, 0) < 0) goto error;
            PyObject *pc = tuple3(PyLong_FromLong(S_TEXT), Py_NewRef(s_empty), frag_first(f));
            PyObject *l = pc ? PyList_New(1) : NULL;
            if (!l) {
                Py_XDECREF(pc);
                goto error;
            }
            PyList_SET_ITEM(l, 0, pc);
            if (r_push(&st, tuple3(PyFloat_FromDouble(0.0), l, PyLong_FromLong(K_LINEBREAK)),
                       0) < 0)
                goto error;
            strip = 1;
            Py_CLEAR(style);
            continue;
        }
        text = PyObject_GetAttr(f, s_text);
        if (!text) goto error;
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "frag_words: a frag's text must be a str");
            goto error;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        if (!len) {
            Py_CLEAR(text);
            Py_CLEAR(style);
            continue;
        }
        Py_ssize_t a = 0; /* the (possibly stripped) text is text[a:] */
        if (strip) {
            while (a < len && is_wsc(PyUnicode_READ(kind, data, a))) a++;
            if (a == len) {
                Py_CLEAR(text);
                Py_CLEAR(style);
                continue;
            }
            strip = 0;
        }
        if (rl_split(text, a, len, &p) < 0) goto nomem;
        int r = piece_offsets(f, text, a, len, &p);
        if (r < 0) goto error;
        if (r == 0) {
            fallback = 1;
            goto error;
        }
        /* S[i] = text[s.a:s.b]; an inserted "" word is index -1 */
        int lead_empty = 0;
        Py_ssize_t lead_off = 0;
        if (is_string_ws(PyUnicode_READ(kind, data, a)) || p.n == 0) {
            int whs;
            if (st.W) {
                if (close_word(&st, 0) < 0) goto error;
                whs = 0;
            } else {
                whs = PyList_GET_SIZE(st.R) > 0 && st.last_hs;
            }
            if (!whs) {
                lead_empty = 1;
                if (p.n) {
                    lead_off = p.off[0];
                } else if (p.lone) {
                    lead_off = p.lone_off;
                } else {
                    PyObject *o = frag_first(f);
                    if (!o) goto error;
                    int e = get_ssize(o, &lead_off);
                    Py_DECREF(o);
                    if (e < 0) goto error;
                }
            } else if (p.n == 0) {
                Py_CLEAR(text);
                Py_CLEAR(style);
                continue;
            }
        }
        Py_ssize_t total = p.n + lead_empty; /* len(S) */
#define S_A(i) (lead_empty ? ((i) ? p.s[(i) - 1].a : 0) : p.s[i].a)
#define S_B(i) (lead_empty ? ((i) ? p.s[(i) - 1].b : 0) : p.s[i].b)
#define S_OFF(i) (lead_empty ? ((i) ? p.off[(i) - 1] : lead_off) : p.off[i])
        if (total > 1) {
            Py_ssize_t start = 0, stop = total - 1;
            if (st.W) {
                S0 = PyUnicode_Substring(text, S_A(0), S_B(0));
                if (!S0 || add_piece(&st, style, S0, S_OFF(0)) < 0) goto error;
                Py_CLEAR(S0);
                if (close_word(&st, K_HS) < 0) goto error;
                start = 1;
            }
            int all_nonempty = 1;
            for (Py_ssize_t i = start; i < stop; i++)
                if (S_B(i) == S_A(i)) {
                    all_nonempty = 0;
                    break;
                }
            if (stop - start >= 4 && st_v == S_TEXT && all_nonempty) {
                Py_ssize_t m = stop - start;
                PyObject *texts = PyList_New(m), *ws = PyList_New(m), *offs = PyList_New(m);
                PyObject *run = NULL;
                if (!texts || !ws || !offs) goto run_fail;
                for (Py_ssize_t i = 0; i < m; i++) {
                    PyObject *t = PyUnicode_Substring(text, S_A(start + i), S_B(start + i));
                    if (!t) goto run_fail;
                    PyList_SET_ITEM(texts, i, t);
                    PyObject *o = PyLong_FromSsize_t(S_OFF(start + i));
                    if (!o) goto run_fail;
                    PyList_SET_ITEM(offs, i, o);
                }
                for (Py_ssize_t i = 0; i < m; i++) {
                    PyObject *w = word_width(cache, width, PyList_GET_ITEM(texts, i));
                    if (!w) goto run_fail;
                    PyList_SET_ITEM(ws, i, w);
                }
                run = PyObject_CallFunctionObjArgs(RunType, style, texts, ws, offs, NULL);
            run_fail:
                Py_XDECREF(texts);
                Py_XDECREF(ws);
                Py_XDECREF(offs);
                if (!run || r_push(&st, run, 1) < 0) goto error;
            } else {
                for (Py_ssize_t i = start; i < stop; i++) {
                    PyObject *t = PyUnicode_Substring(text, S_A(i), S_B(i));
                    if (!t) goto error;
                    PyObject *w = word_width(cache, width, t);
                    PyObject *pc = tuple3(Py_NewRef(style), Py_NewRef(t),
                                          PyLong_FromSsize_t(S_OFF(i)));
                    Py_DECREF(t);
                    PyObject *l = pc ? PyList_New(1) : NULL;
                    if (!l) {
                        Py_XDECREF(pc);
                        Py_XDECREF(w);
                        goto error;
                    }
                    PyList_SET_ITEM(l, 0, pc);
                    if (r_push(&st, tuple3(w, l, PyLong_FromLong(K_HS)), 1) < 0) goto error;
                }
            }
        }
        S0 = PyUnicode_Substring(text, S_A(total - 1), S_B(total - 1));
        if (!S0 || add_piece(&st, style, S0, S_OFF(total - 1)) < 0) goto error;
        Py_CLEAR(S0);
#undef S_A
#undef S_B
#undef S_OFF
        if (is_string_ws(PyUnicode_READ(kind, data, len - 1)) && close_word(&st, K_HS) < 0)
            goto error;
        Py_CLEAR(text);
        Py_CLEAR(style);
    }
    if (st.W && close_word(&st, 0) < 0) goto error;
    if (PyList_GET_SIZE(st.R) == 0 && nf) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, 0);
        style = PyObject_GetAttr(f, s_style);
        long st_v;
        if (!style || get_long(style, &st_v) < 0) goto error;
        PyObject *stl = st_v != S_BREAK ? Py_NewRef(style) : PyLong_FromLong(S_TEXT);
        PyObject *pc = tuple3(stl, Py_NewRef(s_empty), frag_first(f));
        PyObject *l = pc ? PyList_New(1) : NULL;
        if (!l) {
            Py_XDECREF(pc);
            goto error;
        }
        PyList_SET_ITEM(l, 0, pc);
        if (r_push(&st, tuple3(PyFloat_FromDouble(0.0), l, PyLong_FromLong(0)), 0) < 0)
            goto error;
        Py_CLEAR(style);
    }
    Py_DECREF(seq);
    PyMem_Free(p.s);
    PyMem_Free(p.off);
    return st.R;
nomem:
    PyErr_NoMemory();
error:
    Py_DECREF(seq);
    Py_XDECREF(st.R);
    Py_XDECREF(st.W);
    Py_XDECREF(text);
    Py_XDECREF(style);
    Py_XDECREF(S0);
    PyMem_Free(p.s);
    PyMem_Free(p.off);
    if (fallback && !PyErr_Occurred()) Py_RETURN_NONE;
    return NULL;
}

/* ---- break_kind1 -------------------------------------------------------------------------- */

/* One of a line's frags being built: [style, text, src] with its text in a buffer. */
typedef struct {
    long style;
    PyObject *src; /* owned */
    Py_UCS4 *buf;
    Py_ssize_t len, cap;
    Py_ssize_t spaces; /* the spaces the breaker put into it (reportlab's per-frag count) */
} LFrag;

typedef struct {
    LFrag *f;
    Py_ssize_t n, cap;
} LFrags;

static int lf_grow(LFrag *g, Py_ssize_t n) {
    if (g->len + n <= g->cap) return 0;
    Py_ssize_t cap = g->cap ? g->cap : 64;
    while (cap < g->len + n) cap *= 2;
    Py_UCS4 *b = PyMem_Realloc(g->buf, cap * sizeof(Py_UCS4));
    if (!b) {
        PyErr_NoMemory();
        return -1;
    }
    g->buf = b;
    g->cap = cap;
    return 0;
}

static int lf_put_str(LFrag *g, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (lf_grow(g, n) < 0) return -1;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_UCS4 *out = g->buf + g->len;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = data;
        for (Py_ssize_t i = 0; i < n; i++) out[i] = d[i];
    } else {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = PyUnicode_READ(kind, data, i);
    }
    g->len += n;
    return 0;
}

static int lf_space(LFrag *g) {
    if (lf_grow(g, 1) < 0) return -1;
    g->buf[g->len++] = ' ';
    return 0;
}

static int lf_ends_space(LFrag *g) { return g->len && g->buf[g->len - 1] == ' '; }

/* words.append([style, text, src]) */
static LFrag *lfs_new(LFrags *L, long style, PyObject *src, PyObject *text) {
    if (L->n == L->cap) {
        Py_ssize_t cap = L->cap ? 2 * L->cap : 8;
        LFrag *f = PyMem_Realloc(L->f, cap * sizeof(LFrag));
        if (!f) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(f + L->cap, 0, (cap - L->cap) * sizeof(LFrag));
        L->f = f;
        L->cap = cap;
    }
    LFrag *g = &L->f[L->n++];
    g->style = style;
    Py_INCREF(src);
    Py_XSETREF(g->src, src);
    g->len = 0;
    g->spaces = 0;
    if (text && lf_put_str(g, text) < 0) return NULL;
    return g;
}

static void lfs_free(LFrags *L) {
    for (Py_ssize_t i = 0; i < L->cap; i++) {
        Py_XDECREF(L->f[i].src);
        PyMem_Free(L->f[i].buf);
    }
    PyMem_Free(L->f);
}

/* the line's frags as reportlab's [[style, text, src], ...] */
static PyObject *lfs_list(LFrags *L) {
    PyObject *out = PyList_New(L->n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < L->n; i++) {
        LFrag *g = &L->f[i];
        PyObject *l = PyList_New(3);
        if (!l) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, l);
        PyObject *st = PyLong_FromLong(g->style);
        PyObject *t = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, g->buf, g->len);
        if (!st || !t) {
            Py_XDECREF(st);
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(l, 0, st);
        PyList_SET_ITEM(l, 1, t);
        Py_INCREF(g->src);
        PyList_SET_ITEM(l, 2, g->src);
    }
    return out;
}

/* The breaker's queue: words pushed back at its front, then the rest of the source list. */
typedef struct {
    PyObject *obj; /* owned: a word tuple or a Run */
    Py_ssize_t pos, stop;
    int is_run;
} QItem;

typedef struct {
    QItem *front; /* a stack: the last item is the queue's front */
    Py_ssize_t nfront, capfront;
    PyObject *src; /* list */
    Py_ssize_t next;
} Queue;

static int q_push(Queue *q, PyObject *obj, Py_ssize_t pos, Py_ssize_t stop, int is_run) {
    if (q->nfront == q->capfront) {
        Py_ssize_t cap = q->capfront ? 2 * q->capfront : 16;
        QItem *f = PyMem_Realloc(q->front, cap * sizeof(QItem));
        if (!f) {
            PyErr_NoMemory();
            return -1;
        }
        q->front = f;
        q->capfront = cap;
    }
    Py_INCREF(obj);
    q->front[q->nfront++] = (QItem){obj, pos, stop, is_run};
    return 0;
}

/* 1 and the front item (owned), 0 when empty, -1 on error */
static int q_pop(Queue *q, QItem *out) {
    if (q->nfront) {
        *out = q->front[--q->nfront];
        return 1;
    }
    if (q->next >= PyList_GET_SIZE(q->src)) return 0;
    PyObject *o = PyList_GET_ITEM(q->src, q->next++);
    Py_INCREF(o);
    out->obj = o;
    out->is_run = (PyObject *)Py_TYPE(o) == RunType;
    if (out->is_run) {
        PyObject *a = PyObject_GetAttr(o, s_pos), *b = a ? PyObject_GetAttr(o, s_stop) : NULL;
        int bad = !b || get_ssize(a, &out->pos) < 0 || get_ssize(b, &out->stop) < 0;
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (bad) {
            Py_DECREF(o);
            return -1;
        }
    } else if (!PyTuple_CheckExact(o) || PyTuple_GET_SIZE(o) != 3) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_TypeError, "break_kind1: a word must be a 3-tuple or a Run");
        return -1;
    }
    return 1;
}

static void q_free(Queue *q) {
    for (Py_ssize_t i = 0; i < q->nfront; i++) Py_DECREF(q->front[i].obj);
    PyMem_Free(q->front);
}

/* a piece (style, text, src) */
static int piece(PyObject *pc, long *style, PyObject **text, PyObject **src) {
    if (!PyTuple_Check(pc) || PyTuple_GET_SIZE(pc) != 3 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(pc, 1))) {
        PyErr_SetString(PyExc_TypeError, "break_kind1: a piece must be (style, str, offset)");
        return -1;
    }
    *text = PyTuple_GET_ITEM(pc, 1);
    *src = PyTuple_GET_ITEM(pc, 2);
    return get_long(PyTuple_GET_ITEM(pc, 0), style);
}

PyDoc_STRVAR(break_kind1_doc,
             "break_kind1(words, max_widths, space, m) -> (lines, words_used)\n\n"
             "Paragraph._break_kind1 on frag words (tuples and Runs).");

static PyObject *break_kind1(PyObject *self, PyObject *args) {
    PyObject *src_words, *max_widths, *m;
    double space;
    if (!PyArg_ParseTuple(args, "O!O!dO:break_kind1", &PyList_Type, &src_words, &PyList_Type,
                          &max_widths, &space, &m))
        return NULL;
    if (!RunType) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup() was not called");
        return NULL;
    }
    Py_ssize_t nmw = PyList_GET_SIZE(max_widths);
    if (nmw < 1) {
        PyErr_SetString(PyExc_ValueError, "break_kind1: max_widths is empty");
        return NULL;
    }
    double *mws = PyMem_Malloc(nmw * sizeof(double));
    if (!mws) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < nmw; i++)
        if (get_double(PyList_GET_ITEM(max_widths, i), &mws[i]) < 0) {
            PyMem_Free(mws);
            return NULL;
        }
    Queue q = {NULL, 0, 0, src_words, 0};
    LFrags L = {NULL, 0, 0};
    PyObject *FW = PyList_New(0), *lines = PyList_New(0);
    QItem it = {NULL, 0, 0, 0};
    if (!FW || !lines) goto error;
    Py_ssize_t taken = 0, lineno = 0, maxlineno = nmw - 1, sfw = 0, n = 0;
    double max_width = mws[0], space_width = 0.0, current = 0.0;
    long g_style = -1;
    Py_ssize_t lo = -1, hi = -1;
#define MW(i) mws[(i) < maxlineno ? (i) : maxlineno]
#define G (&L.f[L.n - 1])
    for (;;) {
        int r = q_pop(&q, &it);
        if (r < 0) goto error;
        if (!r) break;
        if (it.is_run) {
            PyObject *run = it.obj;
            PyObject *texts = NULL, *widths = NULL, *offs = NULL, *rstyle = NULL;
            Py_ssize_t k = it.pos, end = it.stop;
            int bad = !(texts = PyObject_GetAttr(run, s_texts)) ||
                      !(widths = PyObject_GetAttr(run, s_widths)) ||
                      !(offs = PyObject_GetAttr(run, s_offs)) ||
                      !(rstyle = PyObject_GetAttr(run, s_style));
            long style = 0;
            if (!bad) bad = get_long(rstyle, &style) < 0;
            if (!bad && (!PyList_CheckExact(texts) || !PyList_CheckExact(widths) ||
                         !PyList_CheckExact(offs) || end > PyList_GET_SIZE(texts) ||
                         end > PyList_GET_SIZE(widths) || end > PyList_GET_SIZE(offs) ||
                         k < 0)) {
                PyErr_SetString(PyExc_ValueError, "break_kind1: a Run's lists are too short");
                bad = 1;
            }
            if (!bad && L.n && g_style == style && space_width == space && !lf_ends_space(G)) {
                double prefix = space_width;
                for (Py_ssize_t i = 0; i + 1 < L.n; i++)
                    if (L.f[i].spaces) prefix += (double)L.f[i].spaces * space;
                Py_ssize_t ns_last = G->spaces, start = k;
                while (k < end) {
                    double ww;
                    if (get_double(PyList_GET_ITEM(widths, k), &ww) < 0) {
                        bad = 1;
                        break;
                    }
                    double nw = current + space + ww;
                    double shrink = ns_last ? prefix + (double)ns_last * space : prefix;
                    if (ww <= 0 || nw > max_width + shrink * SPACE_SHRINKAGE) break;
                    current = nw;
                    ns_last++;
                    k++;
                }
                if (!bad && k > start) {
                    LFrag *g = G;
                    for (Py_ssize_t i = start; !bad && i < k; i++) {
                        PyObject *t = PyList_GET_ITEM(texts, i);
                        if (!PyUnicode_Check(t)) {
                            PyErr_SetString(PyExc_TypeError, "break_kind1: a word is not a str");
                            bad = 1;
                        } else {
                            bad = lf_space(g) < 0 || lf_put_str(g, t) < 0;
                        }
                    }
                    if (!bad) {
                        g->spaces = ns_last;
                        n += k - start;
                        Py_ssize_t o = 0;
                        bad = get_ssize(PyList_GET_ITEM(offs, k - 1), &o) < 0;
                        hi = o + PyUnicode_GET_LENGTH(PyList_GET_ITEM(texts, k - 1));
                        if (!bad)
                            bad = append_steal(FW, Py_BuildValue("(Onn)", run, start, k)) < 0;
                        taken += k - start;
                        space_width = space;
                    }
                }
            }
            if (!bad && k < end) {
                /* the word at k goes the general way; the rest stays a run */
                if (k + 1 < end) bad = q_push(&q, run, k + 1, end, 1) < 0;
                if (!bad) {
                    PyObject *pc = tuple3(Py_NewRef(rstyle), Py_NewRef(PyList_GET_ITEM(texts, k)),
                                          Py_NewRef(PyList_GET_ITEM(offs, k)));
                    PyObject *l = pc ? PyList_New(1) : NULL;
                    if (!l) {
                        Py_XDECREF(pc);
                        bad = 1;
                    } else {
                        PyList_SET_ITEM(l, 0, pc);
                        PyObject *w = tuple3(Py_NewRef(PyList_GET_ITEM(widths, k)), l,
                                             PyLong_FromLong(K_HS));
                        bad = !w || q_push(&q, w, 0, 0, 0) < 0;
                        Py_XDECREF(w);
                    }
                }
            }
            Py_XDECREF(texts);
            Py_XDECREF(widths);
            Py_XDECREF(offs);
            Py_XDECREF(rstyle);
            Py_CLEAR(it.obj);
            if (bad) goto error;
            continue;
        }
        PyObject *w = it.obj;
        if (PyList_Append(FW, w) < 0) goto error;
        taken++;
        if (!L.n) {
            n = 0;
            space_width = current = 0.0;
            lo = hi = -1;
        }
        double word_width;
        long kind;
        PyObject *pieces = PyTuple_GET_ITEM(w, 1);
        if (get_double(PyTuple_GET_ITEM(w, 0), &word_width) < 0 ||
            get_long(PyTuple_GET_ITEM(w, 2), &kind) < 0)
            goto error;
        if (!PyList_Check(pieces) || PyList_GET_SIZE(pieces) < 1) {
            PyErr_SetString(PyExc_TypeError, "break_kind1: a word's pieces must be a list");
            goto error;
        }
        long style;
        PyObject *ntext, *src;
        PyObject *piece0 = PyList_GET_ITEM(pieces, 0);
        if (piece(piece0, &style, &ntext, &src) < 0) goto error;
        Py_ssize_t src_v, ntext_len = PyUnicode_GET_LENGTH(ntext);
        if (get_ssize(src, &src_v) < 0) goto error;
        double new_width = word_width > 0 ? current + space_width + word_width : current;
        double shrink = space_width;
        for (Py_ssize_t i = 0; i < L.n; i++)
            if (L.f[i].spaces) shrink += (double)L.f[i].spaces * space;
        double lim = max_width + shrink * SPACE_SHRINKAGE;
        if ((kind & ~K_HS) == 0 && PyList_GET_SIZE(pieces) == 1 && style == g_style &&
            new_width <= lim) {
            /* the common case: one more word in the line's current frag */
            LFrag *g = G;
            if (ntext_len) {
                n++;
                if (lo < 0) lo = src_v;
                hi = style != S_MARKER ? src_v + ntext_len : src_v + 1;
            }
            if (space_width != 0.0 && !lf_ends_space(g)) {
                if (lf_space(g) < 0) goto error;
                g->spaces++;
            }
            if (lf_put_str(g, ntext) < 0) goto error;
            space_width = kind ? space : 0.0;
            current = new_width;
            Py_CLEAR(it.obj);
            continue;
        }
        int line_break = (kind & K_LINEBREAK) != 0;
        if (!line_break && new_width > lim && !(kind & (K_SPLIT_END | K_SPLIT)) &&
            word_width > MW(lineno)) {
            /* a word longer than a line: cut it (in Python), then go on with its pieces */
            PyObject *parts = PyObject_CallFunction(CutFn, "OdOnO", w, max_width - space_width -
                                                    current, max_widths, lineno, m);
            if (!parts) goto error;
            if (!PyList_Check(parts)) {
                Py_DECREF(parts);
                PyErr_SetString(PyExc_TypeError, "break_kind1: the cutter must give a list");
                goto error;
            }
            for (Py_ssize_t i = PyList_GET_SIZE(parts) - 1; i >= 0; i--) {
                PyObject *pw = PyList_GET_ITEM(parts, i);
                int pr = (PyObject *)Py_TYPE(pw) == RunType;
                if (pr || !PyTuple_CheckExact(pw) || PyTuple_GET_SIZE(pw) != 3) {
                    Py_DECREF(parts);
                    PyErr_SetString(PyExc_TypeError, "break_kind1: the cutter gave a non-word");
                    goto error;
                }
                if (q_push(&q, pw, 0, 0, 0) < 0) {
                    Py_DECREF(parts);
                    goto error;
                }
            }
            Py_DECREF(parts);
            if (PyList_SetSlice(FW, PyList_GET_SIZE(FW) - 1, PyList_GET_SIZE(FW), NULL) < 0)
                goto error;
            taken--;
            Py_CLEAR(it.obj);
            continue;
        }
        int end_line = (new_width > lim && n > 0) || line_break;
        if (!end_line) {
            if (ntext_len) n++;
            if (!L.n) {
                if (!lfs_new(&L, style, src, ntext)) goto error;
            } else if (g_style != style) {
                if (space_width != 0.0) {
                    for (Py_ssize_t i = L.n - 1; i >= 0; i--) {
                        LFrag *wi = &L.f[i];
                        if (wi->style != S_BREAK) {
                            if (!lf_ends_space(wi)) {
                                if (lf_space(wi) < 0) goto error;
                                wi->spaces++;
                            }
                            break;
                        }
                    }
                }
                if (!lfs_new(&L, style, src, ntext)) goto error;
            } else {
                LFrag *g = G;
                if (space_width != 0.0 && !lf_ends_space(g)) {
                    if (lf_space(g) < 0) goto error;
                    g->spaces++;
                }
                if (lf_put_str(g, ntext) < 0) goto error;
            }
            g_style = style;
            space_width = kind & K_HS ? space : 0.0;
            int ni = 0;
            for (Py_ssize_t pi = 0; pi < PyList_GET_SIZE(pieces); pi++) {
                PyObject *pc = PyList_GET_ITEM(pieces, pi);
                long pstyle;
                PyObject *ptext, *psrc;
                Py_ssize_t psrc_v;
                if (piece(pc, &pstyle, &ptext, &psrc) < 0 || get_ssize(psrc, &psrc_v) < 0)
                    goto error;
                Py_ssize_t plen = PyUnicode_GET_LENGTH(ptext);
                if (pc != piece0) {
                    if (!lfs_new(&L, pstyle, psrc, ptext)) goto error;
                    g_style = pstyle;
                    if (plen) ni = 1;
                }
                if (plen) {
                    if (lo < 0) lo = psrc_v;
                    hi = pstyle != S_MARKER ? psrc_v + plen : psrc_v + 1;
                }
            }
            if (!ntext_len && ni) n++;
            current = new_width;
        } else {
            int llb = 0;
            if (line_break) {
                if (!lfs_new(&L, S_BREAK, src, NULL)) goto error;
                llb = !(kind & K_INJECTED);
            }
            PyObject *fr = lfs_list(&L);
            if (!fr) goto error;
            PyObject *ln = PyObject_CallFunction(LineType, "NdnNdnnn", fr, max_width - current, n,
                                                 PyBool_FromLong(llb), max_width, sfw,
                                                 lo >= 0 ? lo : src_v, lo >= 0 ? hi : src_v);
            if (append_steal(lines, ln) < 0) goto error;
            sfw = taken - 1;
            lineno++;
            max_width = MW(lineno);
            if (line_break) {
                L.n = 0;
                g_style = -1;
                Py_CLEAR(it.obj);
                continue;
            }
            space_width = kind & K_HS ? space : 0.0;
            current = word_width;
            n = 1;
            lo = hi = -1;
            L.n = 0;
            for (Py_ssize_t pi = 0; pi < PyList_GET_SIZE(pieces); pi++) {
                long pstyle;
                PyObject *ptext, *psrc;
                Py_ssize_t psrc_v;
                if (piece(PyList_GET_ITEM(pieces, pi), &pstyle, &ptext, &psrc) < 0 ||
                    get_ssize(psrc, &psrc_v) < 0)
                    goto error;
                if (!lfs_new(&L, pstyle, psrc, ptext)) goto error;
                g_style = pstyle;
                Py_ssize_t plen = PyUnicode_GET_LENGTH(ptext);
                if (plen) {
                    if (lo < 0) lo = psrc_v;
                    hi = pstyle != S_MARKER ? psrc_v + plen : psrc_v + 1;
                }
            }
        }
        Py_CLEAR(it.obj);
    }
    if (L.n) {
        Py_ssize_t anchor;
        if (get_ssize(L.f[0].src, &anchor) < 0) goto error;
        PyObject *fr = lfs_list(&L);
        if (!fr) goto error;
        PyObject *ln = PyObject_CallFunction(LineType, "NdnNdnnn", fr, max_width - current, n,
                                             PyBool_FromLong(0), max_width, sfw,
                                             lo >= 0 ? lo : anchor, lo >= 0 ? hi : anchor);
        if (append_steal(lines, ln) < 0) goto error;
    }
#undef MW
#undef G
    PyMem_Free(mws);
    q_free(&q);
    lfs_free(&L);
    return Py_BuildValue("(NN)", lines, FW);
error:
    Py_XDECREF(it.obj);
    PyMem_Free(mws);
    q_free(&q);
    lfs_free(&L);
    Py_XDECREF(FW);
    Py_XDECREF(lines);
    return NULL;
}

/* ---- line_frags (layout._line_frags) ------------------------------------------------------ */

static PyObject *new_frag(PyObject *text, PyObject *starts, Py_ssize_t base) {
    /* Frag(TEXT, text, starts[, base]); steals text and starts */
    PyObject *r = NULL;
    if (text && starts) {
        PyObject *style = PyLong_FromLong(S_TEXT);
        if (style) {
            if (base >= 0)
                r = PyObject_CallFunction(FragType, "OOOn", style, text, starts, base);
            else
                r = PyObject_CallFunctionObjArgs(FragType, style, text, starts, NULL);
            Py_DECREF(style);
        }
    }
    Py_XDECREF(text);
    Py_XDECREF(starts);
    return r;
}

PyDoc_STRVAR(line_frags_doc,
             "line_frags(text, a, b, rl_ws) -> list of Frag\n\n"
             "layout._line_frags_py over text[a:b]: &nbsp; runs and entities as frags of their "
             "own, whitespace (reportlab's if rl_ws, else Python's) collapsed to single spaces.");

static PyObject *line_frags(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t a, b;
    int rl_ws;
    if (!PyArg_ParseTuple(args, "Unnp:line_frags", &text, &a, &b, &rl_ws)) return NULL;
    if (!FragType) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup() was not called");
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    if (a < 0 || b > len || a > b) {
        PyErr_Format(PyExc_ValueError, "line_frags: span %zd:%zd outside a text of %zd", a, b,
                     len);
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
#define CH(i) PyUnicode_READ(kind, data, (i))
#define WS(c) (rl_ws ? is_wsc(c) : Py_UNICODE_ISSPACE(c))
    PyObject *out = PyList_New(0);
    LFrag buf = {0, NULL, NULL, 0, 0, 0};
    PyObject *nbsp = PyUnicode_FromOrdinal(0xa0);
    if (!out || !nbsp) goto error;
    Py_ssize_t i = a;
    while (i < b) {
        Py_UCS4 c = CH(i);
        if (c == ' ' && i + 1 < b && CH(i + 1) == ' ') { /* (?P<nb> {2,}) */
            Py_ssize_t j = i;
            while (j < b && CH(j) == ' ') j++;
            for (Py_ssize_t k = i; k < j; k++) {
                PyObject *starts = Py_BuildValue("[n]", k);
                Py_INCREF(nbsp);
                if (append_steal(out, new_frag(nbsp, starts, -1)) < 0) goto error;
            }
            i = j;
        } else if (c == '&' || c == '<' || c == '>') { /* (?P<ent>[&<>]) */
            PyObject *starts = Py_BuildValue("[n]", i);
            if (append_steal(out, new_frag(PyUnicode_Substring(text, i, i + 1), starts, -1)) < 0)
                goto error;
            i++;
        } else { /* (?P<txt>(?:[^&<> ]| (?! ))+) */
            Py_ssize_t s = i, e = i;
            while (e < b) {
                Py_UCS4 d = CH(e);
                if (d == '&' || d == '<' || d == '>') break;
                if (d == ' ' && e + 1 < b && CH(e + 1) == ' ') break;
                e++;
            }
            PyObject *starts = PyList_New(0);
            if (!starts) goto error;
            buf.len = 0;
            if (WS(CH(s)) && lf_space(&buf) < 0) {
                Py_DECREF(starts);
                goto error;
            }
            Py_ssize_t k = s;
            int words = 0;
            while (k < e) {
                while (k < e && WS(CH(k))) k++;
                if (k == e) break;
                Py_ssize_t w0 = k;
                while (k < e && !WS(CH(k))) k++;
                if (words && lf_space(&buf) < 0) {
                    Py_DECREF(starts);
                    goto error;
                }
                if (lf_grow(&buf, k - w0) < 0 || append_steal(starts, PyLong_FromSsize_t(w0)) < 0) {
                    Py_DECREF(starts);
                    goto error;
                }
                for (Py_ssize_t q = w0; q < k; q++) buf.buf[buf.len++] = CH(q);
                words++;
            }
            if (words && WS(CH(e - 1)) && lf_space(&buf) < 0) {
                Py_DECREF(starts);
                goto error;
            }
            PyObject *t = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf.buf, buf.len);
            if (append_steal(out, new_frag(t, starts, words ? -1 : s)) < 0) goto error;
            i = e;
        }
    }
#undef CH
#undef WS
    PyMem_Free(buf.buf);
    Py_DECREF(nbsp);
    return out;
error:
    PyMem_Free(buf.buf);
    Py_XDECREF(nbsp);
    Py_XDECREF(out);
    return NULL;
}

PyDoc_STRVAR(setup_doc,
             "setup(Run, Line, Frag, cut) -> None: the classes and the long-word cutter.");

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *run, *line, *frag, *cut;
    if (!PyArg_ParseTuple(args, "OOOO:setup", &run, &line, &frag, &cut)) return NULL;
    if (!PyType_Check(run) || !PyType_Check(line) || !PyType_Check(frag) ||
        !PyCallable_Check(cut)) {
        PyErr_SetString(PyExc_TypeError, "setup: expected three classes and a callable");
        return NULL;
    }
    Py_INCREF(frag);
    Py_XSETREF(FragType, frag);
    Py_INCREF(run);
    Py_XSETREF(RunType, run);
    Py_INCREF(line);
    Py_XSETREF(LineType, line);
    Py_INCREF(cut);
    Py_XSETREF(CutFn, cut);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, setup_doc},
    {"frag_words", frag_words, METH_VARARGS, frag_words_doc},
    {"break_kind1", break_kind1, METH_VARARGS, break_kind1_doc},
    {"line_frags", line_frags, METH_VARARGS, line_frags_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_layoutc",
    "The kind-1 line breaker and frag words in C (see paragraph.py for the Python path).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__layoutc(void) {
#define INTERN(var, s) \
    if (!(var = PyUnicode_InternFromString(s))) return NULL;
    INTERN(s_style, "style");
    INTERN(s_text, "text");
    INTERN(s_starts, "starts");
    INTERN(s_base, "base");
    INTERN(s_chars, "chars");
    INTERN(s_texts, "texts");
    INTERN(s_widths, "widths");
    INTERN(s_offs, "offs");
    INTERN(s_pos, "pos");
    INTERN(s_stop, "stop");
    INTERN(s_empty, "");
#undef INTERN
    return PyModule_Create(&module);
}
