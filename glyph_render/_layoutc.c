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
#include <structmember.h>

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
static PyObject *CutFn = NULL;    /* paragraph._cut_word: (w, avail, max_widths, lineno, m) -> words */
static PyObject *s_frags, *s_extra, *s_count, *s_line_break, *s_max_width, *s_lo, *s_hi,
    *s_nbsp, *s_sfw, *s_kind0;
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

/* A tuple of strs and numbers holds no reference cycle: CPython's collector untracks such a
 * tuple the first time it meets one (_PyTuple_MaybeUntrack); doing it at once spares every
 * collection until then from walking it. */
static PyObject *untracked(PyObject *t) {
    if (!t) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *o = PyTuple_GET_ITEM(t, i);
        if (!PyUnicode_CheckExact(o) && !PyLong_CheckExact(o) && !PyFloat_CheckExact(o))
            return t;
    }
    if (PyObject_GC_IsTracked(t)) PyObject_GC_UnTrack(t);
    return t;
}

/* list.append that steals the item; -1 on failure (item released) */
static int append_steal(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}


/* ---- slot dataclasses made without their Python __init__ ---------------------------------- */

/* A dataclass(slots=True) with no __post_init__: its fields are object slots at fixed offsets,
 * so an instance can be made by allocating it and filling the slots, which is what the
 * generated __init__ does, without running Python code. Where the class is not like that
 * (a subclass, a property, a __dict__), the class is called instead. */
#define MAX_FIELDS 12
typedef struct {
    PyTypeObject *type;
    int n, direct;
    Py_ssize_t off[MAX_FIELDS];
} SlotClass;

static SlotClass PLine = {NULL, 0, 0, {0}}; /* paragraph.Line */
static SlotClass LLine = {NULL, 0, 0, {0}}; /* layout.Line */
static SlotClass FragSC = {NULL, 0, 0, {0}}; /* paragraph.Frag */
static SlotClass RunSC = {NULL, 0, 0, {0}}; /* paragraph.Run: style, texts, widths, offs, pos,
                                               stop (its __init__ only stores them) */

static int slot_class(SlotClass *sc, PyObject *type, const char *const *names) {
    Py_XDECREF(sc->type);
    Py_INCREF(type);
    sc->type = (PyTypeObject *)type;
    sc->n = 0;
    sc->direct = 1;
    for (int i = 0; names[i]; i++) {
        if (i >= MAX_FIELDS) return -1;
        sc->n = i + 1;
        PyObject *d = PyObject_GetAttrString(type, names[i]);
        if (!d) return -1;
        if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyMemberDef *md = ((PyMemberDescrObject *)d)->d_member;
            if (md->type == T_OBJECT_EX && !(md->flags & READONLY) &&
                md->offset + (Py_ssize_t)sizeof(PyObject *) <= sc->type->tp_basicsize)
                sc->off[i] = md->offset;
            else
                sc->direct = 0;
        } else {
            sc->direct = 0;
        }
        Py_DECREF(d);
    }
    /* the generated __init__ must be the only thing a call does */
    if (sc->type->tp_dictoffset != 0 || sc->type->tp_new != PyBaseObject_Type.tp_new)
        sc->direct = 0;
    return 0;
}

/* an instance with its fields, in order (references stolen); NULL if any is NULL */
static PyObject *slot_new(SlotClass *sc, PyObject **vals) {
    PyObject *obj = NULL;
    for (int i = 0; i < sc->n; i++)
        if (!vals[i]) goto done;
    if (sc->direct) {
        obj = sc->type->tp_alloc(sc->type, 0);
        if (obj) {
            for (int i = 0; i < sc->n; i++) {
                *(PyObject **)((char *)obj + sc->off[i]) = vals[i];
                vals[i] = NULL;
            }
        }
    } else {
        PyObject *args = PyTuple_New(sc->n);
        if (args) {
            for (int i = 0; i < sc->n; i++) {
                PyTuple_SET_ITEM(args, i, vals[i]);
                vals[i] = NULL;
            }
            obj = PyObject_Call((PyObject *)sc->type, args, NULL);
            Py_DECREF(args);
        }
    }
done:
    for (int i = 0; i < sc->n; i++) Py_XDECREF(vals[i]);
    return obj;
}

/* a field of an instance of sc (new reference) */
static PyObject *slot_get(SlotClass *sc, PyObject *obj, int i, PyObject *name) {
    if (sc->direct && Py_TYPE(obj) == sc->type) {
        PyObject *v = *(PyObject **)((char *)obj + sc->off[i]);
        if (v) return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, name);
}

/* paragraph.Line(frags, extra, count, line_break, max_width, sfw, lo, hi, None); steals frags */
static PyObject *new_pline(PyObject *frags, double extra, Py_ssize_t count, int line_break,
                           double max_width, Py_ssize_t sfw, Py_ssize_t lo, Py_ssize_t hi) {
    PyObject *v[9] = {frags,
                      PyFloat_FromDouble(extra),
                      PyLong_FromSsize_t(count),
                      PyBool_FromLong(line_break),
                      PyFloat_FromDouble(max_width),
                      PyLong_FromSsize_t(sfw),
                      PyLong_FromSsize_t(lo),
                      PyLong_FromSsize_t(hi),
                      Py_NewRef(Py_None)};
    return slot_new(&PLine, v);
}

/* ---- the word table ---------------------------------------------------------------------- */

/* Metrics' memo seen from C: word content -> (the word as a str, its width). A word met again
 * is found from the frag's text without making a new str or hashing one with siphash; the
 * widths are the memo's own objects (the first look-up goes through Metrics.width). */
typedef struct {
    Py_uhash_t h;
    PyObject *word, *width; /* owned; word NULL: a free slot */
} WEntry;

typedef struct {
    WEntry *e;
    Py_ssize_t cap, n, limit;
    PyObject *charmap; /* Metrics._char (owned), or NULL: width() measures every new word */
    double k;          /* Metrics.k */
    double lat1[256];  /* charmap's widths of U+0000..U+00FF met so far */
    unsigned char have[256];
} WTable;

#define WTABLE "glyph_render._layoutc.WordTable"

static void wtable_free(PyObject *cap) {
    WTable *t = PyCapsule_GetPointer(cap, WTABLE);
    if (!t) return;
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        Py_XDECREF(t->e[i].word);
        Py_XDECREF(t->e[i].width);
    }
    Py_XDECREF(t->charmap);
    PyMem_Free(t->e);
    PyMem_Free(t);
}

PyDoc_STRVAR(word_table_doc,
             "word_table(limit, char_widths, k) -> capsule: a C-side view of a Metrics memo, "
             "for frag_words (at most limit words); char_widths and k let it measure a new "
             "word as Metrics.width does (on Pythons whose sum() adds floats plainly).");

static PyObject *word_table(PyObject *self, PyObject *args) {
    Py_ssize_t limit;
    PyObject *charmap;
    double k;
    if (!PyArg_ParseTuple(args, "nO!d:word_table", &limit, &PyDict_Type, &charmap, &k))
        return NULL;
    WTable *t = PyMem_Calloc(1, sizeof(WTable));
    if (!t) return PyErr_NoMemory();
    t->cap = 1024;
    t->limit = limit;
    t->k = k;
#if PY_VERSION_HEX < 0x030C0000
    /* sum() of floats is a plain left-to-right double sum before 3.12 (which compensates) */
    t->charmap = Py_NewRef(charmap);
#endif
    t->e = PyMem_Calloc(t->cap, sizeof(WEntry));
    if (!t->e) {
        PyMem_Free(t);
        return PyErr_NoMemory();
    }
    PyObject *c = PyCapsule_New(t, WTABLE, wtable_free);
    if (!c) {
        Py_XDECREF(t->charmap);
        PyMem_Free(t->e);
        PyMem_Free(t);
    }
    return c;
}

static Py_uhash_t span_hash(int kind, const void *data, Py_ssize_t a, Py_ssize_t b) {
    Py_uhash_t h = 1469598103934665603ULL;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = data;
        for (Py_ssize_t i = a; i < b; i++) h = (h ^ d[i]) * 1099511628211ULL;
    } else {
        for (Py_ssize_t i = a; i < b; i++) h = (h ^ PyUnicode_READ(kind, data, i)) * 1099511628211ULL;
    }
    return h ^ (Py_uhash_t)(b - a);
}

static int span_equals(PyObject *word, int kind, const void *data, Py_ssize_t a, Py_ssize_t b) {
    if (PyUnicode_GET_LENGTH(word) != b - a) return 0;
    int wk = PyUnicode_KIND(word);
    const void *wd = PyUnicode_DATA(word);
    if (wk == kind) return memcmp(wd, (const char *)data + a * kind, (b - a) * kind) == 0;
    for (Py_ssize_t i = a; i < b; i++)
        if (PyUnicode_READ(wk, wd, i - a) != PyUnicode_READ(kind, data, i)) return 0;
    return 1;
}

static int wtable_grow(WTable *t) {
    Py_ssize_t cap = t->cap * 2;
    WEntry *e = PyMem_Calloc(cap, sizeof(WEntry));
    if (!e) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (!t->e[i].word) continue;
        Py_ssize_t j = t->e[i].h & (cap - 1);
        while (e[j].word) j = (j + 1) & (cap - 1);
        e[j] = t->e[i];
    }
    PyMem_Free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

typedef struct {
    PyObject *cache, *width; /* Metrics._cache and Metrics.width */
    WTable *tab;             /* or NULL */
} Measure;

/* Metrics.width of a word not in its memo: k * sum(char widths), summed left to right from
 * 0.0 as sum() does, then memoised as width() memoises. A character whose width is not a
 * float leaves the word to width() itself. */
static PyObject *new_word_width(Measure *ms, PyObject *w) {
    WTable *t = ms->tab;
    if (!t || !t->charmap) return PyObject_CallOneArg(ms->width, w);
    int kind = PyUnicode_KIND(w);
    const void *data = PyUnicode_DATA(w);
    double total = 0.0;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(w); i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        double cw;
        if (c < 256 && t->have[c]) {
            cw = t->lat1[c];
        } else {
            PyObject *ch = PyUnicode_FromOrdinal(c);
            if (!ch) return NULL;
            PyObject *v = PyObject_GetItem(t->charmap, ch); /* __missing__ resolves it */
            Py_DECREF(ch);
            if (!v) return NULL;
            if (!PyFloat_CheckExact(v)) {
                Py_DECREF(v);
                return PyObject_CallOneArg(ms->width, w);
            }
            cw = PyFloat_AS_DOUBLE(v);
            Py_DECREF(v);
            if (c < 256) {
                t->lat1[c] = cw;
                t->have[c] = 1;
            }
        }
        total += cw;
    }
    PyObject *wd = PyFloat_FromDouble(t->k * total);
    if (wd && PyDict_GET_SIZE(ms->cache) < t->limit && PyDict_SetItem(ms->cache, w, wd) < 0)
        Py_CLEAR(wd);
    return wd;
}

/* text[a:b] as a str and its width (new references), found in the table or measured */
static int measure(Measure *ms, PyObject *text, Py_ssize_t a, Py_ssize_t b, PyObject **word,
                   PyObject **width) {
    WTable *t = ms->tab;
    Py_uhash_t h = 0;
    Py_ssize_t j = 0;
    if (t) {
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        h = span_hash(kind, data, a, b);
        j = h & (t->cap - 1);
        while (t->e[j].word) {
            if (t->e[j].h == h && span_equals(t->e[j].word, kind, data, a, b)) {
                *word = Py_NewRef(t->e[j].word);
                *width = Py_NewRef(t->e[j].width);
                return 0;
            }
            j = (j + 1) & (t->cap - 1);
        }
    }
    PyObject *w = PyUnicode_Substring(text, a, b);
    if (!w) return -1;
    PyObject *wd = PyDict_GetItemWithError(ms->cache, w);
    if (wd)
        Py_INCREF(wd);
    else if (!PyErr_Occurred())
        wd = new_word_width(ms, w);
    if (!wd) {
        Py_DECREF(w);
        return -1;
    }
    if (t && t->n < t->limit) {
        /* width() ran Python code, which may have let another thread fill or grow the
         * table: find the slot again */
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        j = h & (t->cap - 1);
        while (t->e[j].word) {
            if (t->e[j].h == h && span_equals(t->e[j].word, kind, data, a, b)) break;
            j = (j + 1) & (t->cap - 1);
        }
    }
    if (t && t->n < t->limit && !t->e[j].word) {
        t->e[j] = (WEntry){h, Py_NewRef(w), Py_NewRef(wd)};
        t->n++;
        if (2 * t->n > t->cap && wtable_grow(t) < 0) {
            Py_DECREF(w);
            Py_DECREF(wd);
            return -1;
        }
    }
    *word = w;
    *width = wd;
    return 0;
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

static inline int parts_push(Parts *p, Py_ssize_t a, Py_ssize_t b) {
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
static unsigned char py_space1[256]; /* Py_UNICODE_ISSPACE for U+0000..U+00FF */

static int rl_split(PyObject *text, Py_ssize_t a, Py_ssize_t len, Parts *p) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    int nbsp = 0;
    p->n = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = data;
        if (!memchr(d + a, 0xa0, len - a)) { /* str.split(), the common case */
            Py_ssize_t i = a;
            while (i < len) {
                while (i < len && py_space1[d[i]]) i++;
                if (i == len) break;
                Py_ssize_t j = i;
                while (j < len && !py_space1[d[j]]) j++;
                if (parts_push(p, i, j) < 0) return -1;
                i = j;
            }
            return 0;
        }
    }
    for (Py_ssize_t i = a; i < len; i++)
        if (PyUnicode_READ(kind, data, i) == 0xa0) {
            nbsp = 1;
            break;
        }
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
    Measure *ms;
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

/* word = text[a:b]; W.append((style, word, off)); n += width(word) */
static int add_piece(FW *st, PyObject *style, PyObject *text, Py_ssize_t a, Py_ssize_t b,
                     Py_ssize_t off) {
    if (!st->W && !(st->W = PyList_New(0))) return -1;
    PyObject *word, *w;
    if (measure(st->ms, text, a, b, &word, &w) < 0) return -1;
    double d;
    if (get_double(w, &d) < 0) {
        Py_DECREF(w);
        Py_DECREF(word);
        return -1;
    }
    Py_DECREF(w);
    Py_INCREF(style);
    if (append_steal(st->W, untracked(tuple3(style, word, PyLong_FromSsize_t(off)))) < 0)
        return -1;
    st->n += d;
    return 0;
}

PyDoc_STRVAR(frag_words_doc,
             "frag_words(frags, cache, width, table) -> list | None\n\n"
             "_frag_words_py(frags, m) with m's memo, width() and word_table (or None); None "
             "where the Python path must answer.");

static PyObject *frag_words(PyObject *self, PyObject *args) {
    PyObject *frags, *cache, *width, *table;
    if (!PyArg_ParseTuple(args, "OO!OO:frag_words", &frags, &PyDict_Type, &cache, &width,
                          &table))
        return NULL;
    Measure ms = {cache, width, NULL};
    if (table != Py_None && !(ms.tab = PyCapsule_GetPointer(table, WTABLE))) return NULL;
    if (!RunType) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup() was not called");
        return NULL;
    }
    /* a copy: the width() callback runs Python code, which must not change it under us */
    PyObject *seq = PySequence_List(frags);
    if (!seq) return NULL;
    FW st = {PyList_New(0), 0, NULL, 0.0, &ms};
    Parts p = {NULL, NULL, 0, 0, 0, 0};
    PyObject *text = NULL, *style = NULL;
    int fallback = 0;
    if (!st.R) goto error;
    Py_ssize_t nf = PyList_GET_SIZE(seq);
    int strip = 1;
    for (Py_ssize_t fi = 0; fi < nf; fi++) {
        PyObject *f = PyList_GET_ITEM(seq, fi);
        style = PyObject_GetAttr(f, s_style);
        if (!style) goto error;
        long st_v;
        if (get_long(style, &st_v) < 0) goto error;
        if (st_v == S_BREAK) {
            if (st.W && close_word(&st, 0) < 0) goto error;
            PyObject *pc =
                untracked(tuple3(PyLong_FromLong(S_TEXT), Py_NewRef(s_empty), frag_first(f)));
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
                if (add_piece(&st, style, text, S_A(0), S_B(0), S_OFF(0)) < 0) goto error;
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
                    PyObject *t, *w;
                    if (measure(&ms, text, S_A(start + i), S_B(start + i), &t, &w) < 0)
                        goto run_fail;
                    PyList_SET_ITEM(texts, i, t);
                    PyList_SET_ITEM(ws, i, w);
                    PyObject *o = PyLong_FromSsize_t(S_OFF(start + i));
                    if (!o) goto run_fail;
                    PyList_SET_ITEM(offs, i, o);
                }
                PyObject *v[6] = {Py_NewRef(style), texts, ws, offs, PyLong_FromLong(0),
                                  PyLong_FromSsize_t(m)};
                texts = ws = offs = NULL;
                run = slot_new(&RunSC, v);
            run_fail:
                Py_XDECREF(texts);
                Py_XDECREF(ws);
                Py_XDECREF(offs);
                if (!run || r_push(&st, run, 1) < 0) goto error;
            } else {
                for (Py_ssize_t i = start; i < stop; i++) {
                    PyObject *t, *w;
                    if (measure(&ms, text, S_A(i), S_B(i), &t, &w) < 0) goto error;
                    PyObject *pc = untracked(tuple3(Py_NewRef(style), Py_NewRef(t),
                                                    PyLong_FromSsize_t(S_OFF(i))));
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
        if (add_piece(&st, style, text, S_A(total - 1), S_B(total - 1), S_OFF(total - 1)) < 0)
            goto error;
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
        PyObject *f = PyList_GET_ITEM(seq, 0);
        style = PyObject_GetAttr(f, s_style);
        long st_v;
        if (!style || get_long(style, &st_v) < 0) goto error;
        PyObject *stl = st_v != S_BREAK ? Py_NewRef(style) : PyLong_FromLong(S_TEXT);
        PyObject *pc = untracked(tuple3(stl, Py_NewRef(s_empty), frag_first(f)));
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
        PyObject *a = slot_get(&RunSC, o, 4, s_pos), *b = a ? slot_get(&RunSC, o, 5, s_stop) : NULL;
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
            int bad = !(texts = slot_get(&RunSC, run, 1, s_texts)) ||
                      !(widths = slot_get(&RunSC, run, 2, s_widths)) ||
                      !(offs = slot_get(&RunSC, run, 3, s_offs)) ||
                      !(rstyle = slot_get(&RunSC, run, 0, s_style));
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
                if (!bad && (end > PyList_GET_SIZE(texts) || end > PyList_GET_SIZE(offs) ||
                             end > PyList_GET_SIZE(widths))) { /* changed by a __float__ */
                    PyErr_SetString(PyExc_RuntimeError, "break_kind1: a Run changed under it");
                    bad = 1;
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
                            bad = append_steal(FW, tuple3(Py_NewRef(run),
                                                          PyLong_FromSsize_t(start),
                                                          PyLong_FromSsize_t(k))) < 0;
                        taken += k - start;
                        space_width = space;
                    }
                }
            }
            if (!bad && k < end) {
                /* the word at k goes the general way; the rest stays a run */
                if (k + 1 < end) bad = q_push(&q, run, k + 1, end, 1) < 0;
                if (!bad) {
                    PyObject *pc = untracked(tuple3(Py_NewRef(rstyle),
                                                    Py_NewRef(PyList_GET_ITEM(texts, k)),
                                                    Py_NewRef(PyList_GET_ITEM(offs, k))));
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
            PyObject *ln = new_pline(fr, max_width - current, n, llb, max_width, sfw,
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
        PyObject *ln = new_pline(fr, max_width - current, n, 0, max_width, sfw,
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
    /* Frag(TEXT, text, starts, base, None); steals text and starts */
    PyObject *v[5] = {PyLong_FromLong(S_TEXT), text, starts, PyLong_FromSsize_t(base),
                      Py_NewRef(Py_None)};
    return slot_new(&FragSC, v);
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
    if (!FragSC.type) {
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

/* ---- take / has_cut / rebase_lines (a page split's bookkeeping) ---------------------------- */


/* an item of a breaker's record: its run and word span if it is a Run or (run, s, e); 0 if a
 * word; -1 on error */
static int item_run(PyObject *it, PyObject **run, Py_ssize_t *s, Py_ssize_t *e) {
    if ((PyObject *)Py_TYPE(it) == RunType) {
        PyObject *a = slot_get(&RunSC, it, 4, s_pos), *b = a ? slot_get(&RunSC, it, 5, s_stop)
                                                              : NULL;
        int bad = !b || get_ssize(a, s) < 0 || get_ssize(b, e) < 0;
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (bad) return -1;
        *run = it;
        return 1;
    }
    if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) < 1) {
        PyErr_SetString(PyExc_TypeError, "take: an item must be a word, a Run or a run slice");
        return -1;
    }
    if ((PyObject *)Py_TYPE(PyTuple_GET_ITEM(it, 0)) == RunType) {
        if (PyTuple_GET_SIZE(it) != 3 || get_ssize(PyTuple_GET_ITEM(it, 1), s) < 0 ||
            get_ssize(PyTuple_GET_ITEM(it, 2), e) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "take: a bad run slice");
            return -1;
        }
        *run = PyTuple_GET_ITEM(it, 0);
        return 1;
    }
    return 0;
}

PyDoc_STRVAR(take_doc, "take(items, a, b) -> list: paragraph.take (b None: to the end).");

static PyObject *take(PyObject *self, PyObject *args) {
    PyObject *items, *b_o;
    Py_ssize_t a, b = 0;
    if (!PyArg_ParseTuple(args, "O!nO:take", &PyList_Type, &items, &a, &b_o)) return NULL;
    if (!RunSC.type) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup() was not called");
        return NULL;
    }
    int open_end = b_o == Py_None;
    if (!open_end && get_ssize(b_o, &b) < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    Py_ssize_t *sizes = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *ends = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    PyObject *out = PyList_New(0);
    if (!sizes || !ends || !out) {
        if (sizes && ends) PyErr_NoMemory();
        goto error;
    }
    Py_ssize_t acc = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *run;
        Py_ssize_t s, e;
        int r = item_run(PyList_GET_ITEM(items, j), &run, &s, &e);
        if (r < 0) goto error;
        sizes[j] = r ? e - s : 1;
        acc += sizes[j];
        ends[j] = acc;
    }
    /* first = bisect_right(ends, a); last = bisect_left(ends, b) + 1 */
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a < ends[mid]) hi = mid; else lo = mid + 1;
    }
    Py_ssize_t first = lo, last = n;
    if (!open_end) {
        lo = 0, hi = n;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (ends[mid] < b) lo = mid + 1; else hi = mid;
        }
        if (lo + 1 < n) last = lo + 1;
    }
    for (Py_ssize_t j = first; j < last; j++) {
        PyObject *it = PyList_GET_ITEM(items, j), *run;
        Py_ssize_t i = ends[j] - sizes[j], s, e;
        int r = item_run(it, &run, &s, &e);
        if (r < 0) goto error;
        if (r) {
            Py_ssize_t rlo = a - i + s > s ? a - i + s : s;
            Py_ssize_t rhi = open_end ? e : (b - i + s < e ? b - i + s : e);
            if (rlo < rhi) {
                PyObject *v[6] = {slot_get(&RunSC, run, 0, s_style),
                                  slot_get(&RunSC, run, 1, s_texts),
                                  slot_get(&RunSC, run, 2, s_widths),
                                  slot_get(&RunSC, run, 3, s_offs), PyLong_FromSsize_t(rlo),
                                  PyLong_FromSsize_t(rhi)};
                if (append_steal(out, slot_new(&RunSC, v)) < 0) goto error;
            }
        } else if (i >= a && (open_end || i < b)) {
            if (PyList_Append(out, it) < 0) goto error;
        }
    }
    PyMem_Free(sizes);
    PyMem_Free(ends);
    return out;
error:
    PyMem_Free(sizes);
    PyMem_Free(ends);
    Py_XDECREF(out);
    return NULL;
}

PyDoc_STRVAR(has_cut_doc,
             "has_cut(words) -> bool: any(_kind(w) & (SPLIT | INJECTED) for w in words).");

static PyObject *has_cut(PyObject *self, PyObject *arg) {
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "has_cut: words must be a list");
        return NULL;
    }
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(arg); j++) {
        PyObject *w = PyList_GET_ITEM(arg, j);
        if ((PyObject *)Py_TYPE(w) == RunType) continue; /* HS */
        PyObject *k = PySequence_GetItem(w, 2);
        if (!k) return NULL;
        long kind;
        int r = get_long(k, &kind);
        Py_DECREF(k);
        if (r < 0) return NULL;
        if (kind & (K_SPLIT | K_INJECTED)) Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

PyDoc_STRVAR(rebase_lines_doc,
             "rebase_lines(lines, b) -> list: copies of paragraph Lines with sfw - b.");

static PyObject *rebase_lines(PyObject *self, PyObject *args) {
    PyObject *lines;
    Py_ssize_t b;
    if (!PyArg_ParseTuple(args, "O!n:rebase_lines", &PyList_Type, &lines, &b)) return NULL;
    static PyObject **names[9] = {&s_frags, &s_extra, &s_count, &s_line_break, &s_max_width,
                                  &s_sfw, &s_lo, &s_hi, &s_kind0};
    Py_ssize_t n = PyList_GET_SIZE(lines);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *ln = PyList_GET_ITEM(lines, j), *v[9];
        for (int i = 0; i < 9; i++) v[i] = slot_get(&PLine, ln, i, *names[i]);
        if (v[5]) {
            Py_ssize_t sfw;
            if (get_ssize(v[5], &sfw) < 0) {
                Py_CLEAR(v[5]);
            } else {
                Py_SETREF(v[5], PyLong_FromSsize_t(sfw - b));
            }
        }
        PyObject *c = slot_new(&PLine, v);
        if (!c) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, c);
    }
    return out;
}

/* ---- aligned / has_cjk (layout._aligned, paragraph.cjk_trigger) ---------------------------- */

PyDoc_STRVAR(aligned_doc,
             "aligned(text, a, b) -> bool: layout._aligned(text[a:b]) without the slice.");

static PyObject *aligned(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t a, b;
    if (!PyArg_ParseTuple(args, "Unn:aligned", &text, &a, &b)) return NULL;
    if (a < 0 || b > PyUnicode_GET_LENGTH(text) || a > b) {
        PyErr_Format(PyExc_ValueError, "aligned: span %zd:%zd outside a text of %zd", a, b,
                     PyUnicode_GET_LENGTH(text));
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t unprintable = -1; /* the first character str.isprintable() refuses */
    Py_UCS4 prev = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '&' || c == '<' || c == '>' || (c == ' ' && prev == ' ')) Py_RETURN_FALSE;
        if (unprintable < 0 && !(c >= 0x20 && c < 0x7f) && !Py_UNICODE_ISPRINTABLE(c))
            unprintable = i;
        prev = c;
    }
    if (unprintable < 0) Py_RETURN_TRUE;
    /* a CRLF's CR: seg[-1:] == "\r" and seg[:-1].isprintable() and not seg[:-1].endswith(" ") */
    if (unprintable == b - 1 && PyUnicode_READ(kind, data, b - 1) == '\r' &&
        !(b - 1 > a && PyUnicode_READ(kind, data, b - 2) == ' '))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

PyDoc_STRVAR(has_cjk_doc,
             "has_cjk(text) -> bool: paragraph.cjk_trigger: a character of U+4E00..U+9FFF.");

static PyObject *has_cjk(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "has_cjk: text must be a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    if (kind == PyUnicode_1BYTE_KIND) Py_RETURN_FALSE;
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *d = data;
        for (Py_ssize_t i = 0; i < n; i++)
            if (d[i] >= 0x4e00 && d[i] <= 0x9fff) Py_RETURN_TRUE;
    } else {
        const Py_UCS4 *d = data;
        for (Py_ssize_t i = 0; i < n; i++)
            if (d[i] >= 0x4e00 && d[i] <= 0x9fff) Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* ---- draw_lines (layout._Placer.draw's loop) ---------------------------------------------- */

static PyObject *FpStr = NULL, *PopplerNumber = NULL, *PdfValue = NULL; /* pdfnum's */

/* layout._Pen: reportlab's text object as poppler reads it */
typedef struct {
    double tm_e, tm_f, line_x, line_y, leading;
    PyObject *ws;      /* owned: a float */
    PyObject *pending; /* owned: the fp_str of a Td not yet read, or NULL */
} Pen;

static int pen_flush(Pen *pen) {
    if (!pen->pending) return 0;
    PyObject *v = PyObject_CallOneArg(PopplerNumber, pen->pending);
    if (!v) return -1;
    double d;
    int r = get_double(v, &d);
    Py_DECREF(v);
    if (r < 0) return -1;
    pen->line_x = pen->line_x + d;
    Py_CLEAR(pen->pending);
    return 0;
}

static int pen_set_x(Pen *pen, double dx) {
    if (!(dx > 1e-6 || dx < -1e-6)) return 0;
    if (pen->pending) {
        PyObject *f = PyFloat_FromString(pen->pending);
        if (!f) return -1;
        dx += PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
    }
    PyObject *x = PyFloat_FromDouble(dx);
    if (!x) return -1;
    PyObject *t = PyObject_CallOneArg(FpStr, x);
    Py_DECREF(x);
    if (!t) return -1;
    Py_XSETREF(pen->pending, t);
    return 0;
}

static int pen_word_space(Pen *pen, double ws) {
    if (pen_flush(pen) < 0) return -1;
    PyObject *x = PyFloat_FromDouble(ws);
    if (!x) return -1;
    PyObject *v = PyObject_CallOneArg(PdfValue, x);
    Py_DECREF(x);
    if (!v) return -1;
    Py_XSETREF(pen->ws, v);
    return 0;
}

/* _Placer.src: a stripped-text offset mapped back to the source */
static PyObject *src_offset(PyObject *omap, Py_ssize_t i) {
    if (omap == Py_None) return PyLong_FromSsize_t(i);
    Py_ssize_t n = PyList_GET_SIZE(omap);
    if (i >= 0 && i < n) return Py_NewRef(PyList_GET_ITEM(omap, i));
    if (i < 0 && i >= -n) return Py_NewRef(PyList_GET_ITEM(omap, n + i));
    if (i >= n) {
        if (!n) return PyLong_FromSsize_t(i);
        Py_ssize_t last;
        if (get_ssize(PyList_GET_ITEM(omap, n - 1), &last) < 0) return NULL;
        return PyLong_FromSsize_t(last + 1);
    }
    PyErr_SetString(PyExc_IndexError, "draw_lines: offset outside the offset map");
    return NULL;
}

PyDoc_STRVAR(draw_lines_doc,
             "draw_lines(out, lines, kind0, align, no_justify_last, first_indent, tm_e, tm_f, "
             "leading, omap, block, ex, ey, top) -> None\n\n"
             "_Placer.draw's loop over a placed paragraph's lines (align: 0 LEFT, 1 JUSTIFY, "
             "2 CENTER, 3 RIGHT): appends layout.Line objects to out.");

static PyObject *draw_lines(PyObject *self, PyObject *args) {
    PyObject *out, *lines, *omap, *block;
    int kind0, align, no_justify_last;
    double first_indent, ex, ey, top;
    Pen pen = {0};
    if (!PyArg_ParseTuple(args, "O!O!pipddddOOddd:draw_lines", &PyList_Type, &out,
                          &PyList_Type, &lines, &kind0, &align, &no_justify_last, &first_indent,
                          &pen.tm_e, &pen.tm_f, &pen.leading, &omap, &block, &ex, &ey, &top))
        return NULL;
    if (!LLine.type || !PLine.type) {
        PyErr_SetString(PyExc_RuntimeError, "_layoutc.setup_draw() was not called");
        return NULL;
    }
    if (omap != Py_None && !PyList_CheckExact(omap)) {
        PyErr_SetString(PyExc_TypeError, "draw_lines: omap must be a list or None");
        return NULL;
    }
    if (align < 0 || align > 3) {
        PyErr_SetString(PyExc_ValueError, "draw_lines: align must be 0..3");
        return NULL;
    }
    pen.ws = PyFloat_FromDouble(0.0);
    if (!pen.ws) return NULL;
    /* a copy: the pen's callbacks run Python code, which must not change it under us */
    lines = PyList_GetSlice(lines, 0, PyList_GET_SIZE(lines));
    if (!lines) {
        Py_DECREF(pen.ws);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(lines);
    PyObject *frags = NULL, *o = NULL, *runs = NULL, *cur = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        double offset = i == 0 ? first_indent : 0.0;
        int last = no_justify_last && i == n - 1;
        double extra, max_width;
        Py_ssize_t count, lo, hi;
        int line_break;
        frags = slot_get(&PLine, line, 0, s_frags);
        if (!frags) goto error;
        if (!PyList_Check(frags)) {
            PyErr_SetString(PyExc_TypeError, "draw_lines: a line's frags must be a list");
            goto error;
        }
#define FIELD(idx, name, conv, dst)                              \
    if (!(o = slot_get(&PLine, line, idx, name))) goto error;   \
    if (conv(o, dst) < 0) goto error;                           \
    Py_CLEAR(o);
        FIELD(1, s_extra, get_double, &extra);
        FIELD(2, s_count, get_ssize, &count);
        FIELD(4, s_max_width, get_double, &max_width);
        FIELD(6, s_lo, get_ssize, &lo);
        FIELD(7, s_hi, get_ssize, &hi);
#undef FIELD
        if (!(o = slot_get(&PLine, line, 3, s_line_break))) goto error;
        if ((line_break = PyObject_IsTrue(o)) < 0) goto error;
        Py_CLEAR(o);
        Py_ssize_t nf = PyList_GET_SIZE(frags);
        /* the frags' text (f[1]) and style (f[0]), checked once */
        for (Py_ssize_t j = 0; j < nf; j++) {
            PyObject *f = PyList_GET_ITEM(frags, j);
            if (!PyList_Check(f) || PyList_GET_SIZE(f) < 2 ||
                !PyUnicode_Check(PyList_GET_ITEM(f, 1))) {
                PyErr_SetString(PyExc_TypeError, "draw_lines: a frag must be [style, str, ...]");
                goto error;
            }
        }
        Py_ssize_t nb = 0;
        if (kind0 || nf == 1) {
            if (!nf) {
                PyErr_SetString(PyExc_IndexError, "draw_lines: a line without frags");
                goto error;
            }
            nb = PyUnicode_Count(PyList_GET_ITEM(PyList_GET_ITEM(frags, 0), 1), s_nbsp, 0,
                                 PY_SSIZE_T_MAX);
            if (nb < 0) goto error;
        } else {
            for (Py_ssize_t j = 0; j < nf; j++) {
                Py_ssize_t c = PyUnicode_Count(PyList_GET_ITEM(PyList_GET_ITEM(frags, j), 1),
                                               s_nbsp, 0, PY_SSIZE_T_MAX);
                if (c < 0) goto error;
                nb += c;
            }
        }
        Py_ssize_t n_spaces = count + nb - 1;
        int simple;
        if (align == 1)
            simple = (!kind0 && line_break) || (-1e-8 < extra && extra <= 1e-8) ||
                     (last && extra > -1e-8);
        else
            simple = extra > -1e-8;
        if (!simple) simple = n_spaces <= 0;
        int has_ws = !simple;
        double ws = has_ws ? extra / (double)n_spaces : 0.0;
        double m;
        if (align <= 1) {
            m = offset;
            if (pen_set_x(&pen, m) < 0) goto error;
            if (has_ws && pen_word_space(&pen, ws) < 0) goto error;
        } else if (simple) {
            m = offset + (align == 2 ? 0.5 * extra : extra);
            if (pen_set_x(&pen, m) < 0) goto error;
        } else {
            m = offset;
            if (pen_word_space(&pen, ws) < 0) goto error;
            if (kind0 && pen_set_x(&pen, m) < 0) goto error;
        }
        if (pen_flush(&pen) < 0) goto error;
        double ux = 1.0 * pen.line_x + 0.0 * pen.line_y + pen.tm_e;
        double uy = 0.0 * pen.line_x + 1.0 * pen.line_y + pen.tm_f;
        /* runs: the frags' texts, neighbours of one style merged */
        runs = PyList_New(0);
        if (!runs) goto error;
        long cur_style = -1;
        for (Py_ssize_t j = 0; j < nf; j++) {
            PyObject *f = PyList_GET_ITEM(frags, j);
            PyObject *t = PyList_GET_ITEM(f, 1);
            if (!PyUnicode_GET_LENGTH(t)) continue;
            long fs;
            if (get_long(PyList_GET_ITEM(f, 0), &fs) < 0) goto error;
            long st = fs == S_MARKER ? S_MARKER : S_TEXT;
            if (cur && cur_style == st) {
                PyObject *c = PyUnicode_Concat(cur, t);
                if (!c) goto error;
                Py_SETREF(cur, c);
            } else {
                if (cur) {
                    PyObject *pair = untracked(Py_BuildValue("(Nl)", cur, cur_style));
                    cur = NULL;
                    if (append_steal(runs, pair) < 0) goto error;
                }
                cur = Py_NewRef(t);
                cur_style = st;
            }
        }
        if (cur) {
            PyObject *pair = untracked(Py_BuildValue("(Nl)", cur, cur_style));
            cur = NULL;
            if (append_steal(runs, pair) < 0) goto error;
        }
        PyObject *v[11] = {src_offset(omap, lo),
                           src_offset(omap, hi),
                           runs,
                           PyFloat_FromDouble(ux),
                           PyFloat_FromDouble(uy),
                           Py_NewRef(pen.ws),
                           Py_NewRef(block),
                           PyFloat_FromDouble(top - (ey + uy)),
                           PyFloat_FromDouble(ex + ux),
                           PyBool_FromLong(line_break),
                           PyFloat_FromDouble(max_width - extra)};
        runs = NULL;
        if (append_steal(out, slot_new(&LLine, v)) < 0) goto error;
        pen.line_y = pen.line_y - pen.leading; /* T* */
        if (has_ws && pen_word_space(&pen, 0) < 0) goto error;
        if (pen_set_x(&pen, -m) < 0) goto error;
        Py_CLEAR(frags);
    }
    Py_DECREF(lines);
    Py_XDECREF(pen.ws);
    Py_XDECREF(pen.pending);
    Py_RETURN_NONE;
error:
    Py_DECREF(lines);
    Py_XDECREF(frags);
    Py_XDECREF(o);
    Py_XDECREF(runs);
    Py_XDECREF(cur);
    Py_XDECREF(pen.ws);
    Py_XDECREF(pen.pending);
    return NULL;
}

PyDoc_STRVAR(setup_draw_doc,
             "setup_draw(Line, fp_str, poppler_number, pdf_value) -> None: layout.Line and "
             "pdfnum's number functions, for draw_lines.");

static PyObject *setup_draw(PyObject *self, PyObject *args) {
    PyObject *line, *fp, *pn, *pv;
    if (!PyArg_ParseTuple(args, "OOOO:setup_draw", &line, &fp, &pn, &pv)) return NULL;
    if (!PyType_Check(line) || !PyCallable_Check(fp) || !PyCallable_Check(pn) ||
        !PyCallable_Check(pv)) {
        PyErr_SetString(PyExc_TypeError, "setup_draw: expected a class and three callables");
        return NULL;
    }
    static const char *const fields[] = {"start", "end", "runs", "ux", "uy", "word_space",
                                         "block", "baseline", "x", "forced", "width", NULL};
    if (slot_class(&LLine, line, fields) < 0) return NULL;
    Py_INCREF(fp);
    Py_XSETREF(FpStr, fp);
    Py_INCREF(pn);
    Py_XSETREF(PopplerNumber, pn);
    Py_INCREF(pv);
    Py_XSETREF(PdfValue, pv);
    Py_RETURN_NONE;
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
    static const char *const frag_fields[] = {"style", "text", "starts", "base", "chars", NULL};
    if (slot_class(&FragSC, frag, frag_fields) < 0) return NULL;
    Py_INCREF(run);
    Py_XSETREF(RunType, run);
    static const char *const pline_fields[] = {"frags", "extra", "count", "line_break",
                                               "max_width", "sfw", "lo", "hi", "kind0", NULL};
    if (slot_class(&PLine, line, pline_fields) < 0) return NULL;
    static const char *const run_fields[] = {"style", "texts", "widths", "offs", "pos", "stop",
                                             NULL};
    if (slot_class(&RunSC, run, run_fields) < 0) return NULL;
    Py_INCREF(cut);
    Py_XSETREF(CutFn, cut);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, setup_doc},
    {"frag_words", frag_words, METH_VARARGS, frag_words_doc},
    {"word_table", word_table, METH_VARARGS, word_table_doc},
    {"break_kind1", break_kind1, METH_VARARGS, break_kind1_doc},
    {"line_frags", line_frags, METH_VARARGS, line_frags_doc},
    {"draw_lines", draw_lines, METH_VARARGS, draw_lines_doc},
    {"take", take, METH_VARARGS, take_doc},
    {"aligned", aligned, METH_VARARGS, aligned_doc},
    {"has_cjk", has_cjk, METH_O, has_cjk_doc},
    {"has_cut", has_cut, METH_O, has_cut_doc},
    {"rebase_lines", rebase_lines, METH_VARARGS, rebase_lines_doc},
    {"setup_draw", setup_draw, METH_VARARGS, setup_draw_doc},
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
    for (int c = 0; c < 256; c++) py_space1[c] = Py_UNICODE_ISSPACE(c) ? 1 : 0;
    INTERN(s_frags, "frags");
    INTERN(s_extra, "extra");
    INTERN(s_count, "count");
    INTERN(s_line_break, "line_break");
    INTERN(s_max_width, "max_width");
    INTERN(s_lo, "lo");
    INTERN(s_hi, "hi");
    INTERN(s_sfw, "sfw");
    INTERN(s_kind0, "kind0");
    if (!(s_nbsp = PyUnicode_FromOrdinal(0xa0))) return NULL;
#undef INTERN
    return PyModule_Create(&module);
}
